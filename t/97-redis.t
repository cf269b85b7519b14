# Several servers, one set of channels (CometRedis): two private Apaches on
# one private redis-server. A message published on either reaches the
# subscribers of both, once, in order, under Redis' ids; replay and figures
# come from Redis; Redis stopped, killed or restarted: publishes get 503
# with the Redis address in the log, streams stay, and every server catches
# up once it is back.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;
use Comet::Private;
use Comet::Redis;
use Comet::WS;
use POSIX ();
use Time::HiRes qw(time sleep);

plan skip_all => 'redis-server is not installed'
    unless -x '/usr/bin/redis-server';
plan tests => 62, need_module('comet');

my $redis = Comet::Redis->start('97') or BAIL_OUT("private redis: $@");
my $conf = 'CometRedis ' . $redis->url . "\nCometHeartbeat 1\n"
         . "<Location /comet-wspub>\n    SetHandler comet\n    CometWebSocketPublish On\n</Location>\n"
         . "<Location /echo-r>\n    SetHandler comet-socket\n    CometSocketBackend echo\n</Location>\n";
my $A = Comet::Private->start('redis-a', conf => $conf);
my $B = Comet::Private->start('redis-b', conf => $conf);
ok $A && $B, 'two private servers (' . Comet::Private::mpm() . ') on one Redis';

sub on {
    my ($srv, $code) = @_;
    local $Comet::Test::PORT = $srv->port;
    return $code->();
}
sub pub_on {
    my ($srv, $chan, $data) = @_;
    return on($srv, sub { publish($chan, $data) });
}
# An ndjson stream (transport=stream) on a server, its prelude read.
sub stream_on {
    my ($srv, $chan, $query) = @_;
    my $s = on($srv, sub { subscribe("/comet/$chan?transport=stream" . ($query // '')) });
    $s->upto("\n", 5) for 1 .. 2;            # padding, then {"open": ...}
    return $s;
}
# The next $n messages of an ndjson stream as "id:data", heartbeats skipped.
sub lines {
    my ($s, $n, $timeout) = @_;
    my $deadline = time + ($timeout // 5);
    my @got;
    while (@got < $n && time < $deadline) {
        my $l = $s->upto("\n", $deadline - time) // last;
        next unless $l =~ /"id"/;
        my $m = eval { json($l) } or do { push @got, "junk:$l"; last };
        push @got, "$m->{id}:$m->{data}";
    }
    return @got;
}
sub wait_subs_on {
    my ($srv, $chan, $n) = @_;
    return on($srv, sub { wait_subscribers($chan, $n) });
}
sub sup_following {
    my ($srv, $mark) = @_;
    return $srv->wait_log($mark // 0, qr/following the channels of every server/, 10);
}

ok sup_following($A) && sup_following($B), "each server's supervisor follows Redis";

# --- across servers ----------------------------------------------------------
my $ch = new_channel('redis');
{
    my $sa = stream_on($A, $ch);
    my $sb = stream_on($B, $ch);
    ok wait_subs_on($A, $ch, 1) && wait_subs_on($B, $ch, 1), 'a subscriber on each server';
    my $n;
    ok wait_until(sub { $n = (on($A, sub { channel_info($ch) }) // {})->{subscribers}; ($n // 0) == 2 }, 8),
        'GET on A counts the subscribers of both servers (' . ($n // 'none') . ')';
    my $r = pub_on($A, $ch, 'from A');
    is $r->{status}, 201, 'publish on A: 201 once Redis has it';
    my $id = $r->{json}{id} // 0;
    ok $id > 1e15 && $id < 2**53, "... an id from Redis' clock, exact in JavaScript ($id)";
    is $r->{json}{servers}, 2, '... both servers told';
    is_deeply [lines($sb, 1)], ["$id:from A"], "B's subscriber gets it, same id";
    is_deeply [lines($sa, 1)], ["$id:from A"], "A's own subscriber too";
    my $r2 = pub_on($B, $ch, 'from B');
    ok $r2->{json}{id} > $id, 'publish on B: a higher id';
    is_deeply [lines($sa, 1), lines($sb, 1)], ["$r2->{json}{id}:from B", "$r2->{json}{id}:from B"],
        '... both subscribers get it';

    # concurrent publishers on both servers: one order, everywhere
    my @kids;
    for my $srv ($A, $B) {
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            my $bad = 0;
            for my $i (1 .. 50) {
                my $res = eval { pub_on($srv, $ch, "$srv->{name} $i") };
                $bad++ unless $res && $res->{status} == 201;
            }
            POSIX::_exit($bad ? 1 : 0);
        }
        push @kids, $pid;
    }
    my $fails = 0;
    for (@kids) { waitpid $_, 0; $fails++ if $? }
    is $fails, 0, '100 concurrent publishes, 50 on each server: all 201';
    my @ga = lines($sa, 100, 15);
    my @gb = lines($sb, 100, 15);
    is scalar(@ga), 100, "A's subscriber gets the 100";
    is_deeply \@gb, \@ga, "... B's the same, in the same order";
    my @ids = map { /^(\d+):/ ? $1 : 0 } @ga;
    ok !grep({ $ids[$_] <= $ids[$_ - 1] } 1 .. $#ids), '... ids strictly increasing';
    my %seen;
    my @each = map { /^\d+:(redis-\w) (\d+)$/ ? "$1 $2" : () } @ga;
    my $inorder = 1;
    for my $srvname ('redis-a', 'redis-b') {
        my @n = map { /^$srvname (\d+)$/ ? $1 : () } @each;
        $inorder = 0 unless "@n" eq join ' ', 1 .. 50;
    }
    ok $inorder, "... each publisher's 50 in its own order";

    my $info = on($B, sub { channel_info($ch) });
    ok $info && $info->{last_id} == $ids[-1] && $info->{messages} == 100,
        "GET on B: Redis' figures (last_id, messages = CometMessageBuffer 100)";
    $sa->close;
    $sb->close;
}

# --- every transport on B, every publish on A -------------------------------------
for my $tr (qw(iframe sse longpoll websocket)) {
    my $tc = new_channel("tr$tr");
    my $word = "across-$tr-" . int(rand 1e6);
    my ($got, $ws, $s);
    if ($tr eq 'websocket') {
        $ws = on($B, sub { ws_open("/comet/$tc") });
        ws_recv($ws, 5);                          # the open frame
    }
    else {
        $s = on($B, sub { subscribe("/comet/$tc?transport=$tr") });
    }
    wait_subs_on($B, $tc, 1);
    my $id = pub_on($A, $tc, $word)->{json}{id};
    if ($ws) {
        my $f = ws_recv($ws, 5);
        $got = $f && $f->{payload} =~ /\Q$word\E/ && $f->{payload} =~ /\b$id\b/;
        $ws->{conn}->close;
    }
    else {
        my $bytes = $s->upto($word, 5);
        $got = defined $bytes && $bytes =~ /\b$id\b/;
        $s->close;
    }
    ok $got, "transport $tr on B gets a message published on A, with its id";
}

# --- a large message: copied only where the channel is ---------------------------
{
    my $big = join '', map { chr(65 + $_ % 26) } 1 .. 20000;
    my $lc = new_channel('large');
    my $s = stream_on($B, $lc);
    ok wait_subs_on($B, $lc, 1), 'a subscriber on B';
    my $nobody = new_channel('large-nobody');
    my $before = on($B, sub { store_info() })->{channels};
    my $id = pub_on($A, $lc, $big)->{json}{id};
    pub_on($A, $nobody, $big);
    my ($got) = lines($s, 1);
    is $got, "$id:$big", 'a 20,000-byte message (over the 16 KiB inline limit) reaches B intact';
    sleep 0.5;
    is on($B, sub { store_info() })->{channels}, $before,
        "... one to a channel B does not have is not copied there";
    $s->close;
}

# --- CometWebSocketPublish: what a WebSocket client sends, to every server ------
{
    my $wc = new_channel('wspub');
    my $sa = stream_on($A, $wc);
    ok wait_subs_on($A, $wc, 1), 'a subscriber on A';
    my $ws = on($B, sub { ws_open("/comet-wspub/$wc") });
    is $ws->{res}{status}, 101, 'a WebSocket on B (CometWebSocketPublish On)';
    ws_recv($ws, 5);
    ws_send($ws, WS_TEXT, 'from a socket on B');
    my ($got) = lines($sa, 1);
    ok $got && $got =~ /^\d+:from a socket on B$/, "... what it sends reaches A's subscriber";
    $ws->{conn}->close;
    $sa->close;
}

# --- a SockJS session another server holds: lost, said with a close frame -------
{
    my $sid = new_session();
    my $o = on($A, sub { http(POST => sjs_path('/echo-r', $sid, 'xhr'))->{body} });
    is $o, "o\n", 'a SockJS session opened on A';
    sleep 0.3;                                  # (A's supervisor notes it in Redis)
    my $r = on($B, sub { http(POST => sjs_path('/echo-r', $sid, 'xhr')) });
    is $r->{body}, qq(c[1001,"Session lost: its server went away"]\n),
        '... its client sent to B (as when A dies behind a balancer): a close frame';
    my $st = on($B, sub { sjs_stream('/echo-r', $sid, 'xhr_streaming') });
    $st->bytes(2049, 5);
    is $st->upto("\n", 5), qq(c[1001,"Session lost: its server went away"]\n),
        '... over xhr_streaming too, after the prelude';
    $st->close;
    is on($B, sub { http(POST => sjs_path('/echo-r', new_session(), 'xhr'))->{body} }), "o\n",
        'a new session on B opens as ever';
}

# --- replay from Redis: a server that never saw the channel --------------------
{
    my $rc = new_channel('replay');
    my @ids = map { pub_on($A, $rc, "r$_")->{json}{id} } 1 .. 5;
    # B, started anew, has nothing of it in memory
    $B->stop;
    $B = Comet::Private->start('redis-b', conf => $conf);
    ok sup_following($B), 'B restarted (its shared memory new)';
    my $s = stream_on($B, $rc, "&since=$ids[1]");
    is_deeply [lines($s, 3)], ["$ids[2]:r3", "$ids[3]:r4", "$ids[4]:r5"],
        "since= on B: what followed, brought from Redis";
    $s->close;
}

# --- DELETE spans the servers --------------------------------------------------
{
    my $dc = new_channel('del');
    pub_on($A, $dc, 'x');
    my $s = stream_on($B, $dc);
    ok wait_subs_on($B, $dc, 1), 'a subscriber on B';
    is on($A, sub { delete_channel($dc) })->{status}, 200, 'DELETE on A';
    ok $s->closed(5), "... B's stream ends";
    is on($B, sub { http(GET => "/comet-publish/$dc")->{status} }), 404, '... B answers 404 for it';
}

# --- Redis down and back -------------------------------------------------------
{
    my $fc = new_channel('fail');
    my $s = stream_on($B, $fc);
    ok wait_subs_on($B, $fc, 1), 'a subscriber on B';
    my $before = pub_on($A, $fc, 'before')->{json}{id};
    is_deeply [lines($s, 1)], ["$before:before"], '... gets a message';
    my $mark = $A->log_mark;
    ok $redis->stop, 'Redis stopped';
    my $t0 = time;
    my $r = pub_on($A, $fc, 'while down');
    is $r->{status}, 503, 'a publish while Redis is down: 503';
    ok time - $t0 < 3, '... within the time-out (' . sprintf('%.2f s', time - $t0) . ')';
    my $sock = $redis->socket;
    ok $A->wait_log($mark, qr/Redis at unix:\Q$sock\E/, 5), '... the log names Redis';
    # the stream stays, heartbeats flowing (CometHeartbeat 1)
    sleep 2.5;
    ok !$s->closed(0.1), "B's stream stays open while Redis is down";
    ok $redis->run, 'Redis started again';
    my $after;
    ok wait_until(sub { my $x = pub_on($A, $fc, 'after'); $after = $x->{json}{id} if $x->{status} == 201;
                        $after }, 10), 'publishes work again';
    is_deeply [lines($s, 1, 10)], ["$after:after"],
        '... B gets what follows, not "before" again';

    # killed under load: what Redis acknowledged is delivered once it is back
    my $mark_b = $B->log_mark;
    my $acked = Comet::Private::t_dir() . '/logs/redis-97-acked';
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open my $fh, '>', $acked or POSIX::_exit(2);
        $fh->autoflush(1);
        my $end = time + 5;
        for (my $i = 1; time < $end; $i++) {
            my $r = eval { pub_on($A, $fc, "k$i") };
            print $fh $r && $r->{status} == 201 ? "$r->{json}{id} k$i\n"
                                                : "no k$i " . ($r ? $r->{status} : 'error') . "\n";
            # ~40 a second: what B's supervisor (back within a second of
            # Redis) reads must still be in the stream (CometMessageBuffer 100)
            sleep 0.02;
        }
        POSIX::_exit(0);
    }
    sleep 1.5;
    ok $redis->stop(kill => 1), 'Redis killed (-9) under a publisher\'s load';
    sleep 0.5;
    $redis->run;
    waitpid $pid, 0;
    ok $B->wait_log($mark_b, qr/following again: catching up/, 15), "B's supervisor follows again";
    open my $fh, '<', $acked or die "$acked: $!";
    my (@want, @no);
    while (<$fh>) { if (/^(\d+) (k\d+)$/) { push @want, "$1:$2" } else { push @no, $_ } }
    close $fh;
    # a 503 is not a refusal: the one in flight when Redis died may be there
    my %want = map { $_ => 1 } @want;
    my %maybe = map { (split ' ', $_)[1] => 1 } @no;
    my (@got, @extra);
    my $deadline = time + 10;
    while (@got < @want && time < $deadline) {
        my ($g) = lines($s, 1, $deadline - time);
        last unless defined $g;
        if ($want{$g}) { push @got, $g } else { push @extra, $g }
    }
    ok @want > 20 && @no && !grep({ !/ 503$/ } @no),
        scalar(@want) . ' publishes answered 201, ' . scalar(@no) . ' 503 (while Redis was away)';
    is_deeply \@got, \@want, "... B's subscriber has every acknowledged message, once, in order";
    ok !grep({ !/^\d+:(k\d+)$/ || !$maybe{$1} } @extra),
        '... and nothing else but what was answered 503 (' . scalar(@extra) . ')';
    $s->close;
}

# --- CometRedis changed by a graceful restart ------------------------------------
{
    my $gc = new_channel('graceful');
    my $mark = $B->log_mark;
    $B->{conf_extra} = "CometHeartbeat 1\n";
    $B->write_conf;
    ok $B->graceful && $B->wait_log($mark, qr/no longer following Redis/, 10),
        "B restarted gracefully without CometRedis: its supervisor stops following";
    my $s = stream_on($B, $gc);
    ok wait_subs_on($B, $gc, 1), 'a subscriber on B';
    pub_on($A, $gc, 'not for B');
    my $local = pub_on($B, $gc, 'B alone');
    is_deeply [lines($s, 1)], ["$local->{json}{id}:B alone"],
        "... B is on its own: A's message does not come, B's own does";
    $s->close;
    $mark = $B->log_mark;
    $B->{conf_extra} = $conf;
    $B->write_conf;
    ok $B->graceful && $B->wait_log($mark, qr/following the channels of every server/, 10),
        'CometRedis back by a graceful restart: followed again';
    $s = stream_on($B, $gc);
    wait_subs_on($B, $gc, 1);
    my $id = pub_on($A, $gc, 'for B again')->{json}{id};
    is_deeply [lines($s, 1)], ["$id:for B again"], "... A's messages reach B again";
    $s->close;
}

# --- a channel source runs on one server of the group at a time -------------
{
    $A->stop;
    $B->stop;
    my $t = Comet::Private::t_dir();
    my $state = "$t/logs/redis-97-lease.state";
    unlink $state;
    my $src = "CometChannelSource leased exec:$t/bin/source leased $state --every 0.2\n";
    my $C = Comet::Private->start('redis-c', conf => $conf . $src);
    my $D = Comet::Private->start('redis-d', conf => $conf . $src);
    my $running = sub {
        my ($srv) = @_;
        my ($sup) = $srv->supervisors;
        return $sup ? scalar grep { $_->{cmdline} =~ /\bleased\b/ && $_->{state} ne 'Z' }
                                 Comet::Test::proc_children($sup) : 0;
    };
    ok wait_until(sub { $running->($C) + $running->($D) == 1 }, 15),
        'two servers with the same CometChannelSource: its program runs on one only';
    sleep 3;
    is $running->($C) + $running->($D), 1, '... still one, 3 s later (the lease renewed)';
    my ($holder, $other) = $running->($C) ? ($C, $D) : ($D, $C);
    my $sc = stream_on($holder, 'leased');
    my $so = stream_on($other, 'leased');
    my @h = lines($sc, 5);
    my @o = lines($so, 5);
    ok @h == 5 && @o == 5 && $h[0] =~ /^\d+:leased \d+ \d+$/,
        "its lines reach the subscribers of both servers";
    my ($pid1) = $h[0] =~ /:leased \d+ (\d+)$/;
    $sc->close;
    $holder->stop;
    my $t0 = time;
    ok wait_until(sub { $running->($other) == 1 }, 15),
        '... its server stopped: the other one takes it over ('
        . sprintf('%.1f s', time - $t0) . ')';
    # (what the first program printed before it stopped comes first)
    my $pid2;
    my $deadline = time + 10;
    while (!$pid2 && time < $deadline) {
        my ($l) = lines($so, 1, $deadline - time);
        last unless defined $l;
        $pid2 = $1 if $l =~ /:leased \d+ (\d+)$/ && $1 != $pid1;
    }
    ok $pid2, "... and its lines go on (from pid " . ($pid2 // '?') . ')';
    $so->close;
    $other->stop;
}

$redis->stop;
