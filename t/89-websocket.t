# WebSocket (RFC 6455) for SockJS sessions: the handshake and its refusals,
# then every frame rule the server must keep (fragments, control frames
# between them, masking, UTF-8, sizes, close codes, clients that vanish),
# on the child's event loop with no worker thread; plain and over HTTPS.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;
use Comet::WS;
use Encode qw(encode_utf8);
use Time::HiRes qw(time sleep);

plan tests => 127, need_module('comet');

sub sid { join '', map { ('a' .. 'z', 0 .. 9)[rand 36] } 1 .. 12 }
sub wspath { ($_[1] // '/echo') . '/000/' . ($_[0] // sid()) . '/websocket' }

# an open SockJS WebSocket, its "o" read
sub sjs_ws {
    my (%o) = @_;
    my $ws = ws_open(wspath($o{sid}, $o{base}), %o);
    die "handshake: $ws->{res}{status}\n" unless $ws->{res}{status} == 101;
    my $f = ws_recv($ws, 5);
    die "no open frame\n" unless $f && $f->{op} == WS_TEXT && $f->{payload} eq 'o';
    return $ws;
}

# the next frame that is not a heartbeat
sub next_data {
    my ($ws, $timeout) = @_;
    for (;;) {
        my $f = ws_recv($ws, $timeout // 5) or return undef;
        return $f unless $f->{op} == WS_TEXT && $f->{payload} eq 'h';
    }
}

# --- the handshake ------------------------------------------------------------
{
    my $key = 'dGhlIHNhbXBsZSBub25jZQ==';
    my $ws = ws_open(wspath(), key => $key);
    my $r = $ws->{res};
    is $r->{status}, 101, 'handshake: 101';
    is $r->{headers}{'sec-websocket-accept'}, 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=',
        '... Sec-WebSocket-Accept of the RFC\'s own example';
    is ws_accept_of($key), 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=', '... (as computed here)';
    is lc $r->{headers}{upgrade}, 'websocket', '... Upgrade: websocket';
    is lc $r->{headers}{connection}, 'upgrade', '... Connection: Upgrade';
    ok !exists $r->{headers}{'content-length'} && !exists $r->{headers}{'transfer-encoding'},
        '... neither Content-Length nor Transfer-Encoding';
    my $f = ws_recv($ws, 5);
    ok $f && $f->{op} == WS_TEXT && $f->{fin} && !$f->{masked} && $f->{payload} eq 'o',
        'the open frame: "o", one unmasked text frame';
    ws_send($ws, WS_TEXT, '["a"]');
    $f = next_data($ws);
    is $f && $f->{payload}, 'a["a"]', 'a message echoed: a["a"]';
    ws_send($ws, WS_TEXT, '["x","y"]');
    my @got;
    while (@got < 2 && (my $g = next_data($ws))) {
        push @got, $g->{payload};
    }
    is join(' ', @got) =~ s/\]\s*a\[/,/gr, 'a["x","y"]', 'two messages in one frame: both, in order';
    ws_send($ws, WS_CLOSE, pack('n', 1000) . 'bye');
    $f = ws_recv($ws, 5);
    ok $f && $f->{op} == WS_CLOSE && $f->{code} == 1000, 'a close from the client: ours answers, 1000';
    ok !defined ws_recv($ws, 5) && $ws->{conn}{eof}, '... then the connection ends';
}

# --- what is refused ------------------------------------------------------------
{
    my $r = http(GET => wspath());
    is $r->{status}, 400, 'GET without Upgrade: 400';
    is $r->{body}, 'Can "Upgrade" only to "WebSocket".', '... saying so';
    $r = http(GET => wspath(), headers => [Upgrade => 'WebSocket', Connection => 'close']);
    is $r->{status}, 400, 'Connection: close: 400';
    is $r->{body}, '"Connection" must be "Upgrade".', '... saying so';
    $r = http(POST => wspath(), body => '', headers => [Upgrade => 'WebSocket', Connection => 'Upgrade']);
    is $r->{status}, 405, 'POST: 405';
    like $r->{headers}{allow} // '', qr/\bGET\b/, '... Allow: GET';
    my $ws = ws_open(wspath(), version => 8);
    is $ws->{res}{status}, 426, 'Sec-WebSocket-Version 8: 426';
    is $ws->{res}{headers}{'sec-websocket-version'}, '13', '... Sec-WebSocket-Version: 13';
    $ws = ws_open(wspath(), key => 'too-short');
    is $ws->{res}{status}, 400, 'a bad Sec-WebSocket-Key: 400';
    $ws = ws_open(wspath(), proto => 'HTTP/1.0');
    is $ws->{res}{status}, 400, 'HTTP/1.0: 400';
    $ws = ws_open(wspath(undef, '/sock-nows'));
    is $ws->{res}{status}, 404, 'CometSocketWebSocket Off: 404';
    is http(GET => '/sock-nows/info')->{json}{websocket}, JSON::PP::false(),
        '... and its /info says "websocket": false';
    is http(GET => '/echo/info')->{json}{websocket}, JSON::PP::true(),
        'elsewhere /info says "websocket": true';
    $ws = ws_open(wspath(undef, '/sock-thread'));
    is $ws->{res}{status}, 501, 'CometStreamMode thread: 501 (the event loop reads the frames)';
    is http(GET => '/sock-thread/info')->{json}{websocket}, JSON::PP::false(),
        '... and its /info says "websocket": false';
}

# --- frames -------------------------------------------------------------------
{
    # a frame sent right behind the handshake, before the answer: read
    # ahead by httpd, handed to the loop with the connection
    my ($req) = ws_request(wspath());
    my $ws = ws_open(wspath(), after => ws_frame(WS_TEXT, '["early"]'));
    is $ws->{res}{status}, 101, 'a frame right behind the handshake: 101';
    my $f = next_data($ws);
    is $f && $f->{payload}, 'o', '... o';
    $f = next_data($ws);
    is $f && $f->{payload}, 'a["early"]', '... and the frame is not lost';

    # fragments, a ping between them
    $ws = sjs_ws();
    ws_send($ws, WS_TEXT, '["fr', fin => 0);
    ws_send($ws, WS_PING, 'are you there');
    ws_send($ws, 0, 'ag', fin => 0);
    ws_send($ws, 0, 'ment"]');
    $f = ws_recv($ws, 5);
    ok $f && $f->{op} == WS_PONG && $f->{payload} eq 'are you there',
        'a ping between fragments: the pong, with its payload';
    $f = next_data($ws);
    is $f && $f->{payload}, 'a["fragment"]', '... and the fragments make one message';

    # empty frames and [] are nothing
    ws_send($ws, WS_TEXT, '');
    ws_send($ws, WS_TEXT, '[]');
    ws_send($ws, WS_TEXT, '["after"]');
    $f = next_data($ws);
    is $f && $f->{payload}, 'a["after"]', 'an empty frame and [] are ignored';

    # UTF-8 both ways, a large message
    my $text = "caf\x{e9} \x{263a} \x{1f600}";
    ws_send($ws, WS_TEXT, encode_utf8(JSON::PP->new->ascii->encode([$text])));
    $f = next_data($ws);
    is $f && $f->{payload}, encode_utf8(JSON::PP->new->encode([$text]) =~ s/^/a/r),
        'a message with \\u escapes and astral characters: back as UTF-8';
    my $big = 'x' . ('0123456789' x 6000);
    ws_send($ws, WS_TEXT, qq(["$big"]));
    $f = next_data($ws, 10);
    is $f && length $f->{payload}, length($big) + 5, 'a 60 KB message: back whole (64-bit length)';
    $ws->{conn}->close;
}

# --- protocol errors: the close code, then the end -------------------------------
for my $case (
    [ 'an unmasked frame', sub { ws_frame(WS_TEXT, '["a"]', mask => 0) }, 1002 ],
    [ 'invalid UTF-8 in a text frame', sub { ws_frame(WS_TEXT, qq(["a\xc0\xaf"])) }, 1007 ],
    [ 'a reserved bit set', sub { ws_frame(WS_TEXT, '["a"]', rsv => 4) }, 1002 ],
    [ 'an unknown opcode', sub { ws_frame(3, 'x') }, 1002 ],
    [ 'a continuation with nothing to continue', sub { ws_frame(0, 'x') }, 1002 ],
    [ 'broken JSON', sub { ws_frame(WS_TEXT, '["a') }, 1007 ],
) {
    my ($name, $bytes, $code) = @$case;
    my $ws = sjs_ws();
    $ws->{conn}->send_bytes($bytes->());
    my $f = next_data($ws);
    ok $f && $f->{op} == WS_CLOSE && (!defined $f->{code} || $f->{code} == $code),
        "$name: a close frame" . ($f && defined $f->{code} ? " ($f->{code})" : '');
    ok !defined ws_recv($ws, 5) && $ws->{conn}{eof}, "... and the connection ends";
}
{
    # /sock-small: CometMaxMessageSize 1K (a frame may hold it escaped: 6K)
    my $ws = sjs_ws(base => '/sock-small');
    ws_send($ws, WS_TEXT, '["' . ('y' x 7000) . '"]');
    my $f = next_data($ws);
    ok $f && $f->{op} == WS_CLOSE && $f->{code} == 1009, 'a frame over the limit: close 1009';
    $ws = sjs_ws(base => '/sock-small');
    ws_send($ws, WS_TEXT, '["' . ('y' x 1500) . '"]');
    $f = next_data($ws);
    ok $f && $f->{op} == WS_CLOSE && $f->{code} == 1009,
        'a message over CometMaxMessageSize (1K): close 1009';
}

# --- /close, raw WebSocket ---------------------------------------------------------
{
    my $ws = sjs_ws(base => '/close');
    my $f = next_data($ws);
    is $f && $f->{payload}, 'c[3000,"Go away!"]', '/close: c[3000,"Go away!"]';
    $f = ws_recv($ws, 5);
    ok $f && $f->{op} == WS_CLOSE && $f->{code} == 3000 && $f->{reason} eq 'Go away!',
        '... then a close frame 3000 "Go away!"';
    ok !defined ws_recv($ws, 5) && $ws->{conn}{eof}, '... and the end';

    $ws = ws_open('/echo/websocket');
    is $ws->{res}{status}, 101, 'raw /echo/websocket: 101';
    my $s = encode_utf8("Hello world!\x{ffff}");
    ws_send($ws, WS_TEXT, $s);
    $f = ws_recv($ws, 5);
    is $f && $f->{payload}, $s, '... a message comes back as it is';
    ws_send($ws, WS_TEXT, '["not json either"');
    $f = ws_recv($ws, 5);
    is $f && $f->{payload}, '["not json either"', '... whatever it holds';
    $ws = ws_open('/close/websocket');
    $f = ws_recv($ws, 5);
    ok $f && $f->{op} == WS_CLOSE && $f->{code} == 3000 && $f->{reason} eq 'Go away!',
        'raw /close/websocket: close frame 3000 "Go away!"';
}

# --- sessions: one per connection, heartbeats, no thread, clients that go ---------
{
    my $sid = sid();
    my $a = sjs_ws(sid => $sid);
    my $b = sjs_ws(sid => $sid);
    ws_send($a, WS_TEXT, '["to a"]');
    ws_send($b, WS_TEXT, '["to b"]');
    is next_data($a)->{payload}, 'a["to a"]', 'the same session id twice at once: the first echoes';
    is next_data($b)->{payload}, 'a["to b"]', '... and the second, each its own';
    $a->{conn}->close;
    $b->{conn}->close;

    my $ws = sjs_ws(base => '/sock-small');
    my $t0 = time;
    my $f = ws_recv($ws, 3);
    ok $f && $f->{op} == WS_TEXT && $f->{payload} eq 'h', 'a heartbeat frame "h" (CometSocketHeartbeat 1)';
    cmp_ok time - $t0, '<', 2.5, '... within its interval';
    $ws->{conn}->close;

    # the sessions of the tests above end first (CometSocketDisconnectDelay 2)
    wait_until(sub { my $c = store_info()->{channels}; sleep 2.5; store_info()->{channels} == $c },
               20);
    my $before = store_info();
    # (the supervisor's count of sessions, which /comet-status shows: the
    # store's channel count moves with others' channels reclaimed meanwhile)
    my $sessions = sub { http(GET => '/comet-status')->{json}{sessions} // -1 };
    wait_until(sub { my $c = $sessions->(); sleep 2.5; $sessions->() == $c }, 20);
    my $sessions_before = $sessions->();
    my @ws = map { sjs_ws() } 1 .. 50;
    my $n = 0;
    wait_until(sub { ($n = $sessions->() - $sessions_before) >= 50 }, 5);
    is $n, 50, '50 WebSockets open, each its own session';
    my $info = store_info();
    is $info->{thread_streams}, 0, '... no worker thread keeps any';
    my $ok = 0;
    for my $i (0 .. $#ws) {
        ws_send($ws[$i], WS_TEXT, qq(["n$i"]));
    }
    for my $i (0 .. $#ws) {
        my $g = next_data($ws[$i]);
        $ok++ if $g && $g->{payload} eq qq(a["n$i"]);
    }
    is $ok, 50, '... each echoes its own';
    # half of them vanish without a close frame (a cut), the rest reset
    for my $i (0 .. $#ws) {
        if ($i % 2) {
            setsockopt($ws[$i]{conn}{sock}, Socket::SOL_SOCKET(), Socket::SO_LINGER(),
                       pack('ii', 1, 0));
        }
        $ws[$i]{conn}->close;
    }
    # the loop lets go of each receiver; its session ends with it, its
    # channels with it
    ok wait_until(sub { store_info()->{channels} <= $before->{channels} }, 20),
        'clients that vanish (cut, reset): their sessions end ('
        . store_info()->{channels} . " channels, $before->{channels} before)";
    my $ws2 = sjs_ws();
    ws_send($ws2, WS_TEXT, '["still here"]');
    is next_data($ws2)->{payload}, 'a["still here"]', '... and a new one works as the first did';
}

# --- channels over WebSocket ---------------------------------------------------------
{
    my $chan = new_channel('ws');
    my $first = publish($chan, 'before')->{json}{id};
    my $ws = ws_open("/comet/$chan");
    is $ws->{res}{status}, 101, 'a channel: GET /comet/<channel> with Upgrade: 101';
    my $f = ws_recv($ws, 5);
    my $open = $f && eval { json($f->{payload}) };
    is $open && $open->{open}{cursors}{$chan}, $first,
        '... its first frame: the open line, where the channel stands';
    my $id = publish($chan, encode_utf8("caf\x{e9} <b>\n"))->{json}{id};
    $f = ws_recv($ws, 5);
    my $m = $f && eval { json($f->{payload}) };
    ok $f && $f->{op} == WS_TEXT && !$f->{masked}, '... a message: a text frame';
    is_deeply $m, { id => $id, channel => $chan, data => encode_utf8("caf\x{e9} <b>\n") },
        '... with the stream transport\'s JSON';
    ws_send($ws, WS_PING, 'p');
    $f = ws_recv($ws, 5);
    ok $f && $f->{op} == WS_PONG && $f->{payload} eq 'p', '... a ping gets its pong';
    ws_send($ws, WS_TEXT, 'may I publish?');
    $f = ws_recv($ws, 5);
    ok $f && $f->{op} == WS_CLOSE && $f->{code} == 1008,
        '... a message from the client where CometWebSocketPublish is Off: close 1008';
    ok !defined ws_recv($ws, 5) && $ws->{conn}{eof}, '... and the end';

    # since=, several channels, transport=websocket
    my $chan2 = new_channel('ws2');
    my $a1 = publish($chan, 'a1')->{json}{id};
    my $b1 = publish($chan2, 'b1')->{json}{id};
    $ws = ws_open("/comet/$chan,$chan2?transport=websocket&since=$chan:$id,$chan2:0");
    is $ws->{res}{status}, 101, 'two channels, since=, ?transport=websocket: 101';
    ws_recv($ws, 5);
    my @got = map { my $g = ws_recv($ws, 5); $g ? json($g->{payload})->{data} : undef } 1 .. 2;
    is_deeply [sort @got], ['a1', 'b1'], '... replays what came after the ids given';
    is delete_channel($chan2)->{status}, 200, 'the channel deleted';
    $f = ws_recv($ws, 5);
    is $f && $f->{payload}, '{"end": "deleted"}', '... the end line';
    $f = ws_recv($ws, 5);
    ok $f && $f->{op} == WS_CLOSE && $f->{code} == 1000 && $f->{reason} eq 'deleted',
        '... then a close frame 1000 "deleted"';

    # refusals: no upgrade, another transport's bits
    my $r = http(GET => "/comet/$chan?transport=websocket");
    is $r->{status}, 400, '?transport=websocket without Upgrade: 400';
    $ws = ws_open("/comet/$chan", method => 'GET', version => 7);
    is $ws->{res}{status}, 426, 'a channel WebSocket of version 7: 426';
    $ws = ws_open("/comet-thread/$chan");
    is $ws->{res}{status}, 501, 'CometStreamMode thread: 501 (the loop must read the frames)';

    # heartbeats: pings (CometHeartbeat 1 at /comet-small)
    $ws = ws_open("/comet-small/$chan");
    ws_recv($ws, 5);
    $f = ws_recv($ws, 3);
    ok $f && $f->{op} == WS_PING, 'a heartbeat: a ping (CometHeartbeat 1)';
    ws_send($ws, WS_PONG, '');
    $ws->{conn}->close;

    # CometWebSocketPublish On: what the client sends is published
    my $chan3 = new_channel('wspub');
    my $sse = subscribe("/comet/$chan3?transport=sse");
    $sse->prelude;
    $ws = ws_open("/comet-wspub/$chan3");
    is $ws->{res}{status}, 101, 'CometWebSocketPublish On: 101';
    ws_recv($ws, 5);
    ws_send($ws, WS_TEXT, encode_utf8("from the socket \x{263a}"));
    $f = ws_recv($ws, 5);
    $m = $f && eval { json($f->{payload}) };
    is $m && $m->{data}, encode_utf8("from the socket \x{263a}"),
        '... the client gets its own message back';
    ok defined $sse->upto('data: ' . encode_utf8("from the socket \x{263a}"), 5),
        '... and so does an SSE subscriber';
    is channel_info($chan3)->{messages}, 1, '... the channel holds it';
    # (the server may close before it has read it all: a write may fail)
    eval { ws_send($ws, WS_TEXT, 'z' x 70000) };
    $f = ws_recv($ws, 5);
    ok $f && $f->{op} == WS_CLOSE && $f->{code} == 1009, '... a message over CometMaxMessageSize: 1009';
    $sse->close;
    delete_channel($_) for $chan, $chan3;
}

# --- the WebSocket draft of 2010 (hixie-76), as the SockJS suite asks -----------------
{
    use Digest::MD5 qw(md5);
    my ($k1, $k2) = ('4 @1  46546xW%0l 1 5', '12998 5 Y3 1  .P00');
    # the key's digits over its spaces, computed here
    my $num = sub { my $k = shift; (my $d = $k) =~ s/\D//g; my $sp = () = $k =~ / /g; $d / $sp };
    my $path = wspath();
    my $conn = Comet::Test::Conn->new;
    my $host = hostport();
    $conn->send_bytes("GET $path HTTP/1.1\r\nHost: $host\r\nConnection: Upgrade\r\n"
                      . "Upgrade: WebSocket\r\nOrigin: http://$host\r\n"
                      . "Sec-WebSocket-Key1: $k1\r\nSec-WebSocket-Key2: $k2\r\n\r\n");
    my $r = $conn->read_response(timeout => 5);
    is "$r->{status} $r->{reason}", '101 WebSocket Protocol Handshake',
        'hixie-76: 101 WebSocket Protocol Handshake, before the last 8 bytes came';
    my $scheme = tls() ? 'wss' : 'ws';
    is $r->{headers}{'sec-websocket-location'}, "$scheme://$host$path", '... its Location';
    is $r->{headers}{'sec-websocket-origin'}, "http://$host", '... its Origin';
    ok !exists $r->{headers}{'content-length'}, '... no Content-Length';
    $conn->send_bytes('aaaaaaaa');
    $conn->read_until(sub { length $_[0] >= 19 }, 5);
    my $want = md5(pack('NN', $num->($k1), $num->($k2)) . 'aaaaaaaa');
    is $conn->take(16), $want, '... then MD5 of the keys and those 8 bytes';
    is $conn->take(3), "\x00o\xff", '... then "o" in a frame of the draft';
    $conn->send_bytes("\x00[\"a\"]\xff");
    $conn->read_until(sub { $_[0] =~ /\xff/ }, 5);
    is $conn->take(length "\x00a[\"a\"]\xff"), "\x00a[\"a\"]\xff", '... a message echoed';
    $conn->send_bytes("\xff\x00");
    $conn->read_until(sub { 0 }, 3);
    ok $conn->{buf} eq "\xff\x00" && $conn->{eof}, '... its close answered, then the end';
}

# --- the other backends: a program (exec:), a Unix socket and TCP servers -------------
{
    my $ws = sjs_ws(base => '/sock-exec');
    ws_send($ws, WS_TEXT, '["lines 3","env COMET_SESSION_ID"]');
    my @got;
    while (@got < 4 && (my $f = next_data($ws))) {
        last unless $f->{op} == WS_TEXT;
        push @got, @{ json($f->{payload} =~ s/^a//r) };
    }
    is_deeply [@got[0 .. 2]], ['line 1', 'line 2', 'line 3'],
        'exec: a program: its lines come back, in order';
    like $got[3] // '', qr/^env COMET_SESSION_ID=\S+-[0-9a-f]+$/,
        '... its COMET_SESSION_ID, the session of this connection';
    ws_send($ws, WS_TEXT, '["exit"]');
    my $f = next_data($ws, 10);
    is $f && $f->{payload}, 'c[3000,"Go away!"]', '... it exits: c[3000,"Go away!"]';
    $f = ws_recv($ws, 5);
    ok $f && $f->{op} == WS_CLOSE && $f->{code} == 3000, '... and the close frame';
    $ws->{conn}->close;
}
{
    # a backend that cannot be started closes the session at once
    my $ws = sjs_ws(base => '/sock-missing');
    my $f = next_data($ws, 10);
    is $f && $f->{payload}, 'c[3000,"Go away!"]',
        'a program that cannot be run: the session closes (c[3000,"Go away!"])';
}

# --- a SockJS WebSocket is its session: when it ends, so does the session -------
{
    my $statedir = Apache::Test::config()->{vars}{t_logs} . '/prog';
    my $notes = sub {
        open my $f, '<', "$statedir/$_[0]" or return '';
        local $/;
        my $t = <$f> // '';
        return join ' ', split /\n/, $t;
    };
    for my $how ('cut', 'close frame') {
        my $ws = sjs_ws(base => '/sock-exec');
        ws_send($ws, WS_TEXT, '["pid"]');
        my $f = next_data($ws);
        my ($pid) = ($f ? $f->{payload} : '') =~ /^a\["pid (\d+)"\]$/;
        ok $pid, "exec: the program of a WebSocket session (pid " . ($pid // '?') . ")";
        my $t0 = time;
        if ($how eq 'cut') {
            $ws->{conn}->close;
        }
        else {
            ws_send($ws, WS_CLOSE, pack('n', 1000));
            $f = ws_recv($ws, 5);
            ok $f && $f->{op} == WS_CLOSE && $f->{code} == 1000, '... the client\'s close frame answered';
            $ws->{conn}->close;
        }
        # CometSocketDisconnectDelay is 2 s here: at once means well before
        ok wait_until(sub { $notes->($pid // 0) =~ /\beof\b/ }, 1.5),
            "... its connection ends ($how): the program gets EOF at once, not after "
            . 'CometSocketDisconnectDelay (' . $notes->($pid // 0) . sprintf(', %.2f s)', time - $t0);
    }
}

# --- a WebSocket client that answers nothing, not even pings, is closed ----------
{
    # channels: CometHeartbeat 1 at /comet-fast: pings once it is silent
    # for 1 s, the end at 2.5 s of silence, while messages flow too
    my $chan = new_channel('wsidle');
    my $silent = ws_open("/comet-fast/$chan");
    my $alive = ws_open("/comet-fast/$chan");
    ws_recv($_, 5) for $silent, $alive;
    my $t0 = time;
    my (%pings, %msgs, $ended);
    while (time - $t0 < 6) {
        publish($chan, 'tick') if int((time - $t0) * 4) % 2 == 0;   # a message now and then
        for my $w ([silent => $silent], [alive => $alive]) {
            my ($name, $ws) = @$w;
            next if $ws->{conn}{eof};
            while (my $f = ws_recv($ws, 0.1)) {
                if ($f->{op} == WS_PING) {
                    $pings{$name}++;
                    ws_send($ws, WS_PONG, $f->{payload}) if $name eq 'alive';
                }
                $msgs{$name}++ if $f->{op} == WS_TEXT;
            }
            $ended //= time - $t0 if $name eq 'silent' && $ws->{conn}{eof};
        }
    }
    ok $pings{silent} && $msgs{silent}, "a silent channel client gets pings among its messages "
        . "($pings{silent} pings, $msgs{silent} messages)";
    ok defined $ended && $ended >= 2 && $ended < 4,
        '... and is closed after 2.5 heartbeats without a word from it (' . ($ended // 'never') . ' s)';
    ok !$alive->{conn}{eof} && $pings{alive} >= 3,
        "... one that answers them stays (6 s, $pings{alive} pings answered)";
    my $id = publish($chan, 'still')->{json}{id};
    my $got;
    while (my $f = ws_recv($alive, 5)) {
        ws_send($alive, WS_PONG, '') if $f->{op} == WS_PING;
        next unless $f->{op} == WS_TEXT;
        $got = json($f->{payload});
        last if $got->{id} && $got->{id} == $id;
    }
    is $got && $got->{data}, 'still', '... and gets what follows';
    $alive->{conn}->close;

    # SockJS (CometSocketHeartbeat 1 at /sock-small): "h" and a ping
    my $ws = sjs_ws(base => '/sock-small');
    my @seen;
    $t0 = time;
    while (my $f = ws_recv($ws, 5)) {
        push @seen, $f->{op} == WS_PING ? 'ping' : $f->{op} == WS_TEXT ? $f->{payload} : "op$f->{op}";
    }
    my $took = time - $t0;
    is_deeply [@seen[0, 1]], ['h', 'ping'], 'SockJS: a heartbeat is "h" and a ping (' . "@seen)";
    ok $ws->{conn}{eof} && $took >= 2 && $took < 4,
        sprintf('... a client that answers none is closed after 2.5 heartbeats (%.2f s)', $took);
}

# --- permessage-deflate (RFC 7692) ------------------------------------------------
{
    my $offer = { 'Sec-WebSocket-Extensions' => 'permessage-deflate; client_max_window_bits' };
    my $answer = 'permessage-deflate; server_no_context_takeover; client_no_context_takeover';
    my $chan = new_channel('wsz');
    my $ws = ws_open("/comet-wspub/$chan", headers => $offer);
    is $ws->{res}{headers}{'sec-websocket-extensions'}, $answer,
        'Chrome\'s permessage-deflate offer: taken, without context takeover either way';
    my $f = ws_recv($ws, 5);
    ok $f && $f->{rsv} == 0 && eval { json($f->{payload}) }->{open}, '... the open line, plain';
    my $long = 'news ' x 40;
    my $id = publish($chan, $long)->{json}{id};
    $f = ws_recv($ws, 5);
    my $plain = $f && $f->{rsv} == 4 ? ws_inflate($f->{payload}) : undef;
    ok $f && $f->{rsv} == 4 && length $f->{payload} < length $long,
        '... a message of ' . length($long) . ' bytes: compressed (RSV1, '
        . ($f ? length $f->{payload} : '?') . ' bytes)';
    is_deeply $plain && json($plain), { id => $id, channel => $chan, data => $long },
        '... which inflates to the stream transport\'s JSON';
    # a short one: compressed only if that makes it shorter
    $id = publish($chan, 'hi')->{json}{id};
    $f = ws_recv($ws, 5);
    $plain = $f && ($f->{rsv} == 4 ? ws_inflate($f->{payload}) : $f->{payload});
    ok $plain && json($plain)->{data} eq 'hi'
       && ($f->{rsv} == 0 || length $f->{payload} < length $plain),
        '... a short one: plain, or compressed only if shorter (' . ($f ? length $f->{payload} : '?')
        . ' bytes, RSV ' . ($f ? $f->{rsv} : '?') . ')';
    # what the client sends, compressed: published as it was written
    my $sse = subscribe("/comet/$chan?transport=sse");
    $sse->prelude;
    my $up = encode_utf8("from the socket \x{263a} ") x 10;
    $ws->{conn}->send_bytes(ws_frame(WS_TEXT, ws_deflate($up), rsv => 4));
    ok defined $sse->upto("data: $up\n", 5),
        '... a compressed message from the client: inflated, published';
    $ws->{conn}->send_bytes(ws_frame(WS_TEXT, "\xff\xff\xff\xff", rsv => 4));
    $f = ws_recv($ws, 5);
    $f = ws_recv($ws, 5) while $f && $f->{op} != WS_CLOSE;
    ok $f && $f->{code} == 1007, '... broken deflate data: close 1007';
    $sse->close;

    # a zip bomb: past CometMaxMessageSize (64K) once inflated
    $ws = ws_open("/comet-wspub/$chan", headers => $offer);
    ws_recv($ws, 5);
    $ws->{conn}->send_bytes(ws_frame(WS_TEXT, ws_deflate('a' x 200_000), rsv => 4));
    $f = ws_recv($ws, 5);
    $f = ws_recv($ws, 5) while $f && $f->{op} != WS_CLOSE;
    ok $f && $f->{code} == 1009, 'a message of 200,000 bytes compressed to a few hundred: 1009';

    # offers not taken
    $ws = ws_open("/comet-wspub/$chan",
                  headers => { 'Sec-WebSocket-Extensions' => 'permessage-deflate; server_max_window_bits=10' });
    ok $ws->{res}{status} == 101 && !exists $ws->{res}{headers}{'sec-websocket-extensions'},
        'an offer for a smaller server window: 101 without the extension';
    ws_recv($ws, 5);
    $ws->{conn}->send_bytes(ws_frame(WS_TEXT, ws_deflate($up), rsv => 4));
    $f = ws_recv($ws, 5);
    ok $f && $f->{op} == WS_CLOSE && $f->{code} == 1002, '... so RSV1 from the client: 1002';
    $ws = ws_open("/comet-wspub-plain/$chan", headers => $offer);
    ok $ws->{res}{status} == 101 && !exists $ws->{res}{headers}{'sec-websocket-extensions'},
        'CometWebSocketCompression Off: no extension';
    ws_recv($ws, 5);
    publish($chan, $long);
    $f = ws_recv($ws, 5);
    ok $f && $f->{rsv} == 0 && json($f->{payload})->{data} eq $long, '... messages plain';
    $ws->{conn}->close;

    # SockJS: the session URL and the raw one
    $ws = ws_open(wspath(), headers => $offer);
    is $ws->{res}{headers}{'sec-websocket-extensions'}, $answer, 'SockJS: taken too';
    $f = ws_recv($ws, 5);
    ok $f && $f->{rsv} == 0 && $f->{payload} eq 'o', '... "o", plain';
    my $msg = '["' . ('echo me ' x 20) . '"]';
    ws_send($ws, WS_TEXT, ws_deflate($msg), rsv => 4);
    $f = next_data($ws);
    ok $f && $f->{rsv} == 4 && ws_inflate($f->{payload}) eq 'a' . $msg,
        '... a compressed message echoed compressed: a[...]';
    ws_send($ws, WS_TEXT, '["x"]');
    $f = next_data($ws);
    ok $f && $f->{rsv} == 0 && $f->{payload} eq 'a["x"]', '... a short one plain';
    $ws->{conn}->close;
    $ws = ws_open('/echo/websocket', headers => $offer);
    is $ws->{res}{headers}{'sec-websocket-extensions'}, $answer, 'raw /websocket: taken';
    ws_send($ws, WS_TEXT, ws_deflate('raw ' x 30), rsv => 4);
    $f = ws_recv($ws, 5);
    ok $f && $f->{rsv} == 4 && ws_inflate($f->{payload}) eq 'raw ' x 30,
        '... its echo compressed, as it was sent';
    $ws->{conn}->close;
}
