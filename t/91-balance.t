# CometBalance: a new stream goes to the child whose loop has the fewest
# streams, whichever child accepted it (comet_handoff.h). A private server
# of the test server's MPM with four children: 200 streams of every plain
# transport spread within 1.2 times the mean, each gets every message once,
# in order, through whichever child holds it; the channel counts each
# stream once; when they go, every child is back to none. With
# CometBalance Off nothing moves.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;
use Comet::Private;
use List::Util qw(max sum);

plan tests => 16, need_module('comet');

# four children, none stopped (event and worker alike)
my $threads = <<'EOC';
    ServerLimit 4
    StartServers 4
    ThreadsPerChild 25
    ThreadLimit 25
    MinSpareThreads 25
    MaxSpareThreads 100
    MaxRequestWorkers 100
    MaxConnectionsPerChild 0
EOC
my $children = join '', map { "<IfModule mpm_${_}_module>\n$threads</IfModule>\n" } qw(event worker);
$children .= <<'EOC';
<Location /comet-status>
    SetHandler comet-status
</Location>
EOC

sub status {
    my $r = http(GET => '/comet-status');
    return $r->{status} == 200 ? $r->{json} : undef;
}

# the subscribers of each live child
sub spread {
    my $st = status() or return ();
    return map { $_->{subscribers} } grep { defined $_->{subscribers} } @{ $st->{children} };
}

my $srv = Comet::Private->start('balance', conf => "$children\nCometBalance On\n");
local $Comet::Test::PORT = $srv->port;
ok wait_until(sub { my @s = spread(); @s >= 4 }, 10), 'a private server with four children';

my $ch = new_channel('balance');
my @tr = qw(stream sse iframe stream sse iframe stream sse);
my @streams;
for my $i (0 .. 199) {
    my $s = subscribe("/comet/$ch?transport=" . $tr[$i % @tr]);
    push @streams, $s if $s->{status} == 200;
}
is scalar(@streams), 200, '200 streams of three transports';
ok wait_subscribers($ch, 200), '... the channel counts each once';
my @s;
wait_until(sub { @s = spread(); sum(@s) == 200 }, 10);
my $mean = sum(@s) / @s;
ok max(@s) <= 1.2 * $mean, "the busiest child within 1.2 times the mean (@s)";
ok !grep({ $_ == 0 } @s), '... every child holds some';

# the messages in what a stream received, whatever its framing:
# iframe p(id,"m1",...), stream "data":"m1", SSE "data: m1"
sub got_messages {
    my ($s, $timeout) = @_;
    my $c = $s->{conn};
    $c->read_until(sub { $_[0] =~ /(?:"|data: )m10(?:"|\n)/ }, $timeout);
    return $c->{buf} =~ /(?:"|data: )(m\d+)(?:"|\n)/g;
}

publish($ch, "m$_") for 1 .. 10;
my ($all, $order) = (0, 0);
for my $s (@streams) {
    my @data = got_messages($s, 5);
    my %seen = map { $_ => 1 } @data;
    $all++ if keys %seen == 10;
    $order++ if join(' ', @data) eq join(' ', map { "m$_" } 1 .. 10);
}
is $all, 200, 'every stream got the ten messages';
is $order, 200, '... in order, once';
ok !grep({ /CMT00135|not understood|cannot be taken/ } $srv->log_since(0)),
    'no stream failed to move';

$_->close for @streams;
ok wait_until(sub { my @z = spread(); @z && sum(@z) == 0 }, 10),
    'the streams gone, no child holds any';
ok wait_until(sub { (channel_info($ch)->{subscribers} // -1) == 0 }, 10),
    '... and the channel counts none';

# a connect burst: 400 requests sent before any answer is read
my @burst = map { Comet::Test::Conn->new } 1 .. 400;
for my $i (0 .. $#burst) {
    $burst[$i]->send_bytes("GET /comet/$ch?transport=$tr[$i % @tr] HTTP/1.1\r\nHost: "
                           . Comet::Test::hostport() . "\r\n\r\n");
}
my $answered = grep { $_->read_until(sub { $_[0] =~ /\r\n\r\n/ }, 10) && $_->{buf} =~ m{^HTTP/1\.1 200} }
    @burst;
is $answered, 400, 'a burst of 400 streams, all answered';
wait_until(sub { @s = spread(); sum(@s) == 400 }, 10);
$mean = sum(@s) / @s;
# (a child's count includes the streams on their way to it, or the
# answers to a burst would all go to the loops that have not read theirs;
# typically within 1.05, the handlers of a child deciding at once)
ok max(@s) <= 1.25 * $mean, "... spread within 1.25 times the mean (@s)";
$_->close for @burst;
$srv->stop;

# long-poll waits move too: each gets the message it waited for
$srv = Comet::Private->start('balance-lp', conf => "$children\nCometBalance On\n");
local $Comet::Test::PORT = $srv->port;
wait_until(sub { my @z = spread(); @z >= 4 }, 10);
$ch = new_channel('balance-lp');
my @polls = grep { $_->{status} == 200 }
    map { subscribe("/comet/$ch?transport=longpoll") } 1 .. 40;
ok wait_subscribers($ch, 40), '40 long-polls wait';
wait_until(sub { @s = spread(); sum(@s) == 40 }, 10);
ok max(@s) <= 14, "... spread over the children, none past 1.4 times the mean (@s)";
publish($ch, 'lp');
is scalar(grep { my ($b) = $_->rest(5); $b =~ /"lp"/ } @polls), 40,
    '... each gets the message';
$srv->stop;

# CometBalance Off: a stream stays where it was accepted
$srv = Comet::Private->start('balance-off', conf => "$children\nCometBalance Off\n");
local $Comet::Test::PORT = $srv->port;
wait_until(sub { my @z = spread(); @z >= 4 }, 10);
$ch = new_channel('balance-off');
my $one = subscribe("/comet/$ch?transport=stream");
wait_subscribers($ch, 1);
my $mark = 0;
ok !grep({ /handed to slot|taken from slot/ } $srv->log_since($mark)),
    'with CometBalance Off nothing is handed over';
$one->close;
$srv->stop;
