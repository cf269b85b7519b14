# Through reverse proxies configured from conf/reverse-proxy.conf (Apache
# mod_proxy_http) and conf/nginx-proxy.conf (nginx), every transport still
# pushes each message at once: within 100 ms of its publication, median and
# max over 20 messages. WebSocket passes through both too (the upgrade, the
# frames both ways, the close handshake, the raw /websocket), its echo as
# quick. script/test starts the proxies in front of the test server and runs
# this file with COMET_PROXY_APACHE and COMET_PROXY_NGINX (ports); without
# them it checks the server directly.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;
use Comet::WS;
use Time::HiRes qw(time sleep);

my %proxies = (direct => server_port());
$proxies{apache} = $ENV{COMET_PROXY_APACHE} if $ENV{COMET_PROXY_APACHE};
$proxies{nginx} = $ENV{COMET_PROXY_NGINX} if $ENV{COMET_PROXY_NGINX};
my @transports = qw(iframe sse stream longpoll xhr_streaming websocket);
my $N = 20;
my $LIMIT = 0.100;

plan tests => keys(%proxies) * (3 * @transports + 8), need_module('comet');

sub median { my @s = sort { $a <=> $b } @_; return @s ? $s[$#s / 2] : 999 }
sub max { my @s = sort { $b <=> $a } @_; return @s ? $s[0] : 999 }

# A WebSocket through $port: {conn, res}, as ws_open; Host names the proxy.
sub ws_through {
    my ($port, $path) = @_;
    return ws_open($path, conn => Comet::Test::Conn->new(port => $port),
                   headers => { Host => "127.0.0.1:$port" });
}

# The next frame that is not a heartbeat, or undef.
sub next_data {
    my ($ws, $timeout) = @_;
    for (;;) {
        my $f = ws_recv($ws, $timeout) or return undef;
        return $f unless $f->{op} == WS_TEXT && $f->{payload} eq 'h';
    }
}

# Open a receiver through $port; returns the stream, a sub that waits for
# the next message (its data, or undef), and for a socket whose messages
# come from its browser, a sub that sends one.
sub receiver {
    my ($port, $t, $chan, $sid) = @_;
    if ($t eq 'websocket') {
        # the echo backend sends each message back: the round trip, both
        # ways through the proxy
        my $ws = ws_through($port, sjs_path('/chat', $sid, 'websocket'));
        die "websocket: status $ws->{res}{status} through port $port\n"
            unless $ws->{res}{status} == 101;
        my $f = next_data($ws, 5);
        die "websocket: no o through port $port\n" unless $f && $f->{payload} eq 'o';
        return ($ws->{conn},
                sub {
                    my $f = next_data($ws, $_[0]) // return undef;
                    return $f->{payload} =~ /^a\["(.*)"\]$/ ? $1 : "frame $f->{op} $f->{payload}";
                },
                sub { ws_send($ws, WS_TEXT, "[\"$_[0]\"]") });
    }
    my $conn = Comet::Test::Conn->new(port => $port);
    # HTTP/1.0: the proxies then pass the body as it comes, not chunked (the
    # frame parsers read raw bytes; browsers de-chunk)
    my @v = (version => '1.0');
    if ($t eq 'xhr_streaming') {
        my $s = sjs_stream('/chat', $sid, 'xhr_streaming', conn => $conn, body => '', @v,
                           headers => ['Content-Type' => 'text/plain']);
        $s->upto("\no\n", 5) or die "xhr_streaming: no o through port $port\n";
        return ($s, sub {
            for (;;) {
                my $l = $s->upto("\n", $_[0]) // return undef;
                return $1 if $l =~ /^a\["(.*)"\]\n$/;
            }
        }, sub { http(POST => sjs_path('/chat', $sid, 'xhr_send'), body => "[\"$_[0]\"]") });
    }
    my $s = subscribe("/comet/$chan?transport=$t", conn => $conn, @v);
    die "$t: status $s->{status} through port $port\n" unless $s->{status} == 200;
    if ($t eq 'iframe') {
        $s->prelude(5) // die "iframe: no prelude through port $port\n";
        return ($s, sub { my $f = $s->next_frame($_[0]); $f && $f->{type} eq 'p' ? $f->{data} : undef });
    }
    if ($t eq 'sse') {
        $s->upto("\n\n", 5) // die "sse: no prelude through port $port\n";
        return ($s, sub {
            for (;;) {
                my $e = $s->upto("\n\n", $_[0]) // return undef;
                return $1 if $e =~ /^data: (.*)$/m && $e !~ /^event: comet\.heartbeat/m;
            }
        });
    }
    # stream, longpoll
    $s->upto("}}\n", 5) // die "$t: no open line through port $port\n";
    return ($s, sub {
        for (;;) {
            my $l = $s->upto("\n", $_[0]) // return undef;
            return $1 if $l =~ /"data": "([^"]*)"/;
        }
    });
}

# One transport through one port: [errors, latencies].
sub measure {
    my ($port, $t) = @_;
    my (@lat, @wrong);
    my $chan = new_channel("px$t");
    my $sid = new_session();
    my ($s, $next, $send);
    my $ok = eval {
        if ($t ne 'longpoll') {
            ($s, $next, $send) = receiver($port, $t, $chan, $sid);
            wait_subscribers($chan, 1, 5) unless $send;
        }
        for my $i (1 .. $N) {
            if ($t eq 'longpoll') {
                # a poll waiting for the next message
                ($s, $next) = receiver($port, $t, $chan, $sid);
                wait_subscribers($chan, 1, 5);
            }
            my $data = "m$i";
            my $t0 = time;
            if ($send) {
                $send->($data);
            }
            else {
                publish($chan, $data);
            }
            my $got = $next->(2);
            push @lat, time - $t0;
            push @wrong, $got // 'nothing' unless defined $got && $got eq $data;
            $s->close if $t eq 'longpoll';
            sleep 0.02;
        }
        1;
    };
    $s->close if $s;
    return [($ok ? '' : $@) . "@wrong", \@lat];
}

for my $name (sort keys %proxies) {
    for my $t (@transports) {
        # a proxy that buffers is late by seconds, every time; a busy machine
        # may be late once: then measure again
        my ($err, $lat);
        for my $try (1, 2) {
            ($err, $lat) = @{ measure($proxies{$name}, $t) };
            last if !$err && max(@$lat) < $LIMIT;
            diag sprintf "$name $t: again (max %.1f ms)", 1000 * max(@$lat) if $try == 1;
        }
        is $err, '', "$name $t: $N messages, each once, in order";
        cmp_ok median(@$lat), '<', $LIMIT, sprintf "$name $t: median latency %.1f ms", 1000 * median(@$lat);
        cmp_ok max(@$lat), '<', $LIMIT, sprintf "$name $t: max latency %.1f ms", 1000 * max(@$lat);
    }
}

# WebSocket through each: the handshake, a message each way, the close
# handshake, the raw /websocket.
for my $name (sort keys %proxies) {
    my $port = $proxies{$name};
    my $ws = ws_through($port, sjs_path('/chat', new_session(), 'websocket'));
    is $ws->{res}{status}, 101, "$name websocket /chat: 101";
    is $ws->{res}{headers}{'sec-websocket-accept'} // '', ws_accept_of($ws->{key}),
        "$name websocket: the backend's Sec-WebSocket-Accept";
    my $f = next_data($ws, 5);
    is $f && $f->{payload}, 'o', "$name websocket: o";
    ws_send($ws, WS_TEXT, '["caf\\u00e9 \\"x\\"","two"]');
    # in one frame or two
    my @got;
    while ("@got" !~ /"two"\]$/ && (my $g = next_data($ws, 5))) {
        push @got, $g->{payload};
    }
    is join(' ', @got) =~ s/\]\s*a\[/,/gr, qq(a["caf\xc3\xa9 \\"x\\"","two"]),
        "$name websocket: two messages up, echoed down, in order, as UTF-8";
    ws_send($ws, WS_CLOSE, pack('n', 1000) . 'bye');
    $f = next_data($ws, 5);
    ok $f && $f->{op} == WS_CLOSE && $f->{code} == 1000,
        "$name websocket: a close from the client: the close frame back (1000)";
    ok !defined ws_recv($ws, 5) && $ws->{conn}{eof}, "$name websocket: ... then the connection ends";

    $ws = ws_through($port, '/chat/websocket');
    is $ws->{res}{status}, 101, "$name raw /chat/websocket: 101";
    ws_send($ws, WS_TEXT, 'Hello world!');
    $f = ws_recv($ws, 5);
    is $f && $f->{payload}, 'Hello world!', "$name raw /chat/websocket: a message comes back as it is";
    $ws->{conn}->close;
}
