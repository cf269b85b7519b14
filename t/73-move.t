# CometMoveStreams (default On): a child that stops gracefully hands its
# plain-HTTP streams to live children, whose loops go on with them. Through
# three graceful restarts, MaxConnectionsPerChild recycling and idle
# reaping, 2,000 streams over every plain transport (COMET_TEST_MOVE_STREAMS
# to change the number) keep their connections: no end frame, no close,
# every message once and in order; long-polls waiting get their message.
# Once the clients go, no process holds a socket of theirs and the shared
# memory counts no subscriber. Private servers of the test server's MPM;
# prefork never says a child's stop is graceful: its streams end as t/70
# tests.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;
use Comet::Private;
use List::Util qw(sum);
use Time::HiRes qw(sleep time);

my $mpm = Comet::Private::mpm();
plan skip_all => 'prefork: no child stop is graceful, streams end (t/70)' if $mpm eq 'prefork';
plan tests => 43, need_module('comet');

my $N = $ENV{COMET_TEST_MOVE_STREAMS} || 2000;

# Children of 25 threads (event and worker alike); %o: other values
sub mpm_conf {
    my %o = (ServerLimit => 8, StartServers => 4, MinSpareThreads => 25, MaxSpareThreads => 100,
             MaxRequestWorkers => 100, MaxConnectionsPerChild => 0, @_);
    my $settings = join '', "    ThreadsPerChild 25\n    ThreadLimit 25\n",
        map { "    $_ $o{$_}\n" } sort keys %o;
    return join '', map { "<IfModule mpm_${_}_module>\n$settings</IfModule>\n" } qw(event worker);
}

my $status = <<'EOC';
<Location /comet-status>
    SetHandler comet-status
</Location>
<Location /comet-thread>
    SetHandler comet
    CometStreamMode thread
</Location>
EOC

sub status {
    my $r = eval { http(GET => '/comet-status') };
    return $r && $r->{status} == 200 ? $r->{json} : undef;
}

# the streams of each child, by pid
sub spread {
    my $st = status() or return ();
    return map { $_->{pid} => $_->{subscribers} }
        grep { defined $_->{subscribers} && $_->{pid} } @{ $st->{children} };
}

# the server's sockets of connections the clients closed, not closed by
# the server: a descriptor some process still holds
sub close_wait {
    my ($port) = @_;
    my $hex = sprintf '%04X', $port;
    open my $fh, '<', '/proc/net/tcp' or return -1;
    return scalar grep { /^\s*\d+: [0-9A-F]{8}:$hex [0-9A-F]{8}:[0-9A-F]{4} 08 / } <$fh>;
}

# Streams of every plain transport on $ch (a tenth of them SSE of two
# channels); long-polls apart.
my @tr = ('', '?transport=sse', '?transport=stream', '?transport=sse', '', '?transport=stream',
          '?transport=sse', '', '?transport=stream', 'multi');
sub open_streams {
    my ($ch, $aux, $n) = @_;
    my @s;
    for my $i (0 .. $n - 1) {
        my $t = $tr[$i % @tr];
        my $path = $t eq 'multi' ? "/comet/$ch,$aux?transport=sse" : "/comet/$ch$t";
        my $s = eval { subscribe($path) };
        push @s, $s if $s && $s->{status} == 200;
    }
    return @s;
}

# What a stream received, whatever its framing (iframe p(id,"m1",...),
# stream "data":"m1", SSE "data: m1"): its messages in order, whether an
# end frame came, whether the server closed.
sub received {
    my ($s, $last, $timeout) = @_;
    my $c = $s->{conn};
    $c->read_until(sub { $_[0] =~ /(?:"|data: )\Q$last\E(?:"|\n)/ }, $timeout);
    $c->read_more(0) unless $c->{eof};
    my @m = $c->{buf} =~ /(?:"|data: )(m\d+)(?:"|\n)/g;
    my $ended = $c->{buf} =~ /reconnect/ ? 1 : 0;
    return (\@m, $ended, $c->{eof} ? 1 : 0);
}

# Every stream got m1..m$k once, in order, and is still open.
sub check_streams {
    my ($what, $streams, $k) = @_;
    my $want = join ' ', map { "m$_" } 1 .. $k;
    my ($good, $ended, $closed, @bad) = (0, 0, 0);
    for my $s (@$streams) {
        my ($m, $e, $eof) = received($s, "m$k", 10);
        $ended += $e;
        $closed += $eof;
        if ("@$m" eq $want) { $good++ }
        elsif (@bad < 3) { push @bad, "@$m" }
    }
    is $good, scalar(@$streams), "$what: every stream got the $k messages once, in order"
        or diag explain \@bad;
    is "$ended $closed", '0 0', "$what: no stream ended, none closed";
}

# The clients go: nothing of theirs is left in any process.
sub check_gone {
    my ($what, $srv, $streams, $chans) = @_;
    $_->close for @$streams;
    ok wait_until(sub { close_wait($srv->port) == 0 }, 15),
        "$what: the clients gone, no process holds a socket of theirs";
    ok wait_until(sub { my %s = spread(); %s && sum(values %s) == 0 }, 10),
        '... no child counts a stream';
    ok wait_until(sub { !grep { (channel_info($_)->{subscribers} // -1) != 0 } @$chans }, 10),
        '... the shared memory counts no subscriber';
    ok !grep({ /cannot be taken|not understood|cannot hand|AH00060|AH00052/ } $srv->log_since(0))
        && !$srv->problems, '... no stream failed to move, no child crashed, no sanitizer report';
}

# the streams moved and ended by the children that stopped, from their log lines
sub moves {
    my ($srv, $mark) = @_;
    my ($moved, $ended) = (0, 0);
    for ($srv->log_since($mark)) {
        next unless /this child stops: (\d+) streams moved to live children, (\d+) ended/;
        $moved += $1;
        $ended += $2;
    }
    return ($moved, $ended);
}

my $pub = 0;
sub publish_next { my $ch = shift; $pub++; publish($ch, "m$pub") }

# --- three graceful restarts -------------------------------------------------
{
    my $four = mpm_conf();
    my $srv = Comet::Private->start('move', conf => "$four$status");
    local $Comet::Test::PORT = $srv->port;
    ok wait_until(sub { my %s = spread(); keys %s >= 4 }, 10), 'a private server with four children';

    my ($ch, $aux) = (new_channel('move'), new_channel('move-aux'));
    $pub = 0;
    my @streams = open_streams($ch, $aux, $N);
    is scalar(@streams), $N, "$N streams: iframe, SSE, SSE of two channels, XHR stream";
    my @polls = grep { $_->{status} == 200 } map { subscribe("/comet/$aux?transport=longpoll") } 1 .. 100;
    ok wait_subscribers($ch, $N) && wait_subscribers($aux, 100 + int($N / 10)),
        '... and 100 long-polls wait';
    publish_next($ch) for 1 .. 3;

    my $mark = $srv->log_mark;
    for my $round (1 .. 3) {
        my %old = spread();
        ok $srv->graceful, "graceful restart $round";
        # publish all along, until no child of the old generation is left
        my $gone = wait_until(sub {
            publish_next($ch);
            sleep 0.05;
            my %now = map { $_->{pid} => 1 } $srv->workers;
            return !grep { $now{$_} } keys %old;
        }, 30);
        ok $gone, "... the old generation's children gone ($pub messages so far)";
        publish_next($ch) for 1 .. 2;
    }
    my ($moved, $ended) = moves($srv, $mark);
    ok $moved >= 3 * $N, "the children that stopped moved their streams ($moved)";
    is $ended, 0, '... and ended none';
    check_streams('three graceful restarts', \@streams, $pub);
    my %s = spread();
    is sum(values %s), $N + 100, "the new children hold the $N streams and the long-polls"
        or diag explain \%s;
    publish($aux, 'lp');
    my @lp = map { [$_->rest(5)] } @polls;
    is scalar(grep { $_->[0] =~ /"lp"/ } @lp), 100, 'each long-poll got the message it waited for'
        or diag explain [grep { $_->[0] !~ /"lp"/ } @lp]->[0];
    check_gone('three graceful restarts', $srv, \@streams, [$ch, $aux]);
    $srv->stop;
}

# --- MaxConnectionsPerChild: children recycled while streams open and flow ----
{
    my $recycled = mpm_conf(ServerLimit => 16, MaxConnectionsPerChild => 300);
    my $srv = Comet::Private->start('move-recycle', conf => "$recycled$status");
    local $Comet::Test::PORT = $srv->port;
    ok wait_until(sub { my %s = spread(); keys %s >= 4 }, 10),
        'a private server with four children, each stopped after 300 connections';
    my ($ch, $aux) = (new_channel('recycle'), new_channel('recycle-aux'));
    $pub = 0;
    my $mark = $srv->log_mark;
    my @streams = open_streams($ch, $aux, $N);
    is scalar(@streams), $N, "$N streams opened while the children are recycled";
    ok wait_subscribers($ch, $N), '... the channel counts each once';
    # each publish and status request is one more connection: more children
    # stop while the messages flow
    for my $i (1 .. 20) {
        publish_next($ch);
        status() for 1 .. 20;
    }
    ok wait_until(sub { my %s = spread(); sum(values %s) == $N }, 15),
        '... all held by live children';
    my ($moved, $ended) = moves($srv, $mark);
    ok $moved >= $N / 2, "children stopped after 300 connections moved their streams ($moved)";
    is $ended, 0, '... and ended none';
    check_streams('MaxConnectionsPerChild 300', \@streams, $pub);
    check_gone('MaxConnectionsPerChild 300', $srv, \@streams, [$ch, $aux]);
    $srv->stop;
}

# --- idle reaping: MaxSpareThreads ---------------------------------------------
{
    my $reaped = mpm_conf(ServerLimit => 16, StartServers => 1, MaxSpareThreads => 50,
                          MaxRequestWorkers => 200);
    my $srv = Comet::Private->start('move-reap', conf => "$reaped$status\nCometBalance On\n");
    local $Comet::Test::PORT = $srv->port;
    # requests whose bodies never come keep 75 threads busy: the MPM starts
    # children for MinSpareThreads
    my @busy;
    for (1 .. 75) {
        my $c = Comet::Test::Conn->new;
        $c->send_bytes("POST /comet-publish/busy HTTP/1.1\r\nHost: " . Comet::Test::hostport()
                       . "\r\nContent-Length: 10\r\n\r\n");
        push @busy, $c;
    }
    ok wait_until(sub { my %s = spread(); keys %s >= 4 }, 20),
        'a private server grown to four children by busy threads';
    my ($ch, $aux) = (new_channel('reap'), new_channel('reap-aux'));
    $pub = 0;
    my @streams = open_streams($ch, $aux, $N);
    is scalar(@streams), $N, "$N streams spread over them (CometBalance)";
    ok wait_subscribers($ch, $N), '... the channel counts each once';
    publish_next($ch) for 1 .. 3;
    my $mark = $srv->log_mark;
    my $before = () = $srv->workers;
    $_->close for @busy;        # idle threads past MaxSpareThreads: children reaped
    ok wait_until(sub {
        publish_next($ch);
        sleep 0.1;
        my %s = spread();
        return keys(%s) <= 2 && sum(values %s) == $N;
    }, 30), "idle children reaped ($before to 2), the streams held by those left";
    my ($moved, $ended) = moves($srv, $mark);
    ok $moved > 0, "the children reaped moved their streams ($moved)";
    is $ended, 0, '... and ended none';
    publish_next($ch) for 1 .. 2;
    check_streams('idle reaping', \@streams, $pub);
    check_gone('idle reaping', $srv, \@streams, [$ch, $aux]);
    $srv->stop;
}
