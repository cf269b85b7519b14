# CometMaxThreadStreams: streams that keep a worker thread (here
# CometStreamMode thread; HTTP/2 streams and rewriting filters alike) take a
# place before their response starts; past the limit they get 503 with
# Retry-After and a log line, and whatever they do, publishes, pages and the
# module's assets keep being answered. A private server with a limit of 2
# (per child under a threaded MPM: the streams are pinned to one child;
# under prefork the whole server's).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;
use Comet::Private;
use Time::HiRes qw(time sleep);

plan tests => 16, need_module('comet');

my $srv = Comet::Private->start('guard', conf => <<'EOC');
CometMaxThreadStreams 2
<Location /comet-thread>
    SetHandler comet
    CometStreamMode thread
</Location>
EOC
ok $srv, 'a private server: CometMaxThreadStreams 2, /comet-thread in thread mode';
local $Comet::Test::PORT = $srv->port;
my $prefork = Comet::Private::mpm() eq 'prefork';

# Connections to one child (its pid learnt on each), for the per-child count.
my %by_pid;
sub conn_to {
    my ($pid) = @_;
    for (1 .. 60) {
        my $c = Comet::Test::Conn->new;
        my $r = http(GET => '/comet-publish/', conn => $c);
        next unless $r->{status} == 200;
        my $p = $c->{child} = $r->{json}{this_process}{pid};
        return $c if !defined $pid || $p == $pid;
        push @{ $by_pid{$p} }, $c;              # kept open: the next lands elsewhere
    }
    die "no connection to child $pid\n";
}

my $chan = new_channel('guard');
my $c1 = conn_to();
my $pid = $prefork ? undef : $c1->{child};
my $t1 = subscribe("/comet-thread/$chan?transport=sse", conn => $c1);
is $t1->{status}, 200, 'a first stream that keeps a thread';
my $t2 = subscribe("/comet-thread/$chan?transport=sse", conn => conn_to($pid));
is $t2->{status}, 200, 'a second';
ok wait_subscribers($chan, 2), '... both subscribed';
is store_info()->{thread_streams}, 2, '... both counted';

my $mark = $srv->log_mark;
my $t3 = subscribe("/comet-thread/$chan?transport=sse", conn => conn_to($pid));
is $t3->{status}, 503, 'a third: 503';
is $t3->{headers}{'retry-after'}, '5', '... with Retry-After: 5';
ok $srv->wait_log($mark, qr/CMT00120: \/comet-thread\/\Q$chan\E: CometMaxThreadStreams \(2 in (?:this child|the server)\) reached/),
    '... logged, naming the directive';
$t3->close;

# meanwhile everything else is answered
my $t0 = time;
my $pub = publish($chan, 'still here');
is $pub->{status}, 201, 'a publish is answered';
is $pub->{json}{subscribers}, 2, '... to both held streams';
like $t1->upto("data: still here\n\n", 5) // '', qr/data: still here\n\n\z/, '... which get it';
is http(GET => '/comet/comet.js')->{status}, 200, 'the browser class is served';
my $auto = subscribe("/comet/$chan?transport=sse", conn => conn_to($pid));
is $auto->{status}, 200, 'a stream of the event loop is taken';
cmp_ok time - $t0, '<', 3, '... all at once';
$auto->close;

# a place given back is a place to take
$t1->close;
ok wait_until(sub { store_info()->{thread_streams} == 1 }, 5), 'a held stream ends: its place is free';
my $t4 = subscribe("/comet-thread/$chan?transport=sse", conn => conn_to($pid));
is $t4->{status}, 200, '... and taken by the next';
$_->close for $t2, $t4, map { @$_ } values %by_pid;
$srv->stop;
