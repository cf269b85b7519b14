# SockJS 0.3 on the wire, over every transport, with the built-in backends
# (echo, close): statuses, headers and bytes, as sockjs-protocol-0.3 says and
# as its suite (sockjs-protocol.py) checks them: CORS, the JSESSIONID cookie,
# HTTP/1.1 streams chunked a frame a chunk, responses renewed past
# CometSocketResponseLimit (4096 on /echo, as the suite's test server), a
# receiver's abort ending its session, the errors of /websocket.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;
use Comet::Private ();
use Digest::MD5 qw(md5_hex);
use Encode qw(decode);
use HTTP::Date qw(str2time);
use Time::HiRes qw(time sleep);

plan tests => 162, need_module('comet');

my $NOCACHE = 'no-store, no-cache, no-transform, must-revalidate, max-age=0';
my $JS = 'application/javascript; charset=UTF-8';

sub allow_set {
    my $res = shift;
    # (httpd adds HEAD to GET, and TRACE)
    return join ',', sort grep { $_ ne 'HEAD' && $_ ne 'TRACE' }
        map { s/\s//gr } split /,/, $res->{headers}{allow} // '';
}

# --- greeting -------------------------------------------------------------
{
    my $res = http(GET => '/echo');
    is $res->{status}, 200, 'GET /echo: 200';
    is $res->{body}, "Welcome to SockJS!\n", '... the greeting';
    is $res->{headers}{'content-type'}, 'text/plain; charset=UTF-8', '... text/plain';
    $res = http(GET => '/echo/');
    is "$res->{status} $res->{body}", "200 Welcome to SockJS!\n", 'GET /echo/: the same';
    $res = http(POST => '/echo/', body => 'x');
    is $res->{status}, 405, 'POST /echo/: 405';
    like allow_set($res), qr/\bGET\b/, '... Allow: GET';
    ok !exists http(GET => '/cookie_needed_echo')->{headers}{'set-cookie'},
        '... no cookie, even where CometSocketCookie is On';
    # an empty segment is no SockJS URL, though httpd merges slashes
    my @nf = map { "/echo$_" } qw(/a /a.html // /// /a/a /a/a/ /a/ /a/a/a/);
    my @got = map { "$_ " . http(GET => $_)->{status} } @nf;
    is_deeply \@got, [map { "$_ 404" } @nf], 'other URLs: 404' or diag explain \@got;
}

# --- /info ----------------------------------------------------------------
{
    my $res = http(GET => '/echo/info');
    my $h = $res->{headers};
    is $res->{status}, 200, 'GET /info: 200';
    is $h->{'content-type'}, 'application/json; charset=UTF-8', '... application/json';
    is $h->{'cache-control'}, $NOCACHE, '... not cached';
    is $h->{'access-control-allow-origin'}, '*', '... Access-Control-Allow-Origin: * without Origin';
    ok !exists $h->{'access-control-allow-credentials'}, '... and no Access-Control-Allow-Credentials';
    my $j = $res->{json};
    ok $j && JSON::PP::is_bool($j->{websocket}) && $j->{websocket},
        '... websocket: true (CometSocketWebSocket On, the default; t/89-websocket.t)';
    ok $j && JSON::PP::is_bool($j->{cookie_needed}) && !$j->{cookie_needed}, '... cookie_needed: false';
    is_deeply $j && $j->{origins}, ['*:*'], '... origins: ["*:*"]';
    like $j && $j->{entropy}, qr/^\d+$/, '... entropy: an integer';
    my $j2 = http(GET => '/echo/info')->{json};
    isnt $j2 && $j2->{entropy}, $j->{entropy}, '... another each time';

    $res = http(GET => '/echo/info', headers => [Origin => 'http://app.example:8080']);
    is $res->{headers}{'access-control-allow-origin'}, 'http://app.example:8080',
        'Origin: echoed in Access-Control-Allow-Origin';
    like $res->{headers}{vary} // '', qr/\bOrigin\b/, '... Vary: Origin';
    is $res->{headers}{'access-control-allow-credentials'}, 'true', '... Access-Control-Allow-Credentials: true';
    $res = http(GET => '/echo/info', headers => [Origin => 'null']);
    is $res->{headers}{'access-control-allow-origin'}, 'null', 'Origin: null gets null (a page from file://)';
    $res = http(OPTIONS => '/echo/info', headers => [Origin => 'null', 'Access-Control-Request-Method' => 'POST']);
    is join(' ', $res->{status}, $res->{headers}{'access-control-allow-origin'} // '-',
            $res->{headers}{'access-control-allow-credentials'} // '-', length $res->{body}),
        '204 null true 0', '... a preflight too: 204, null, credentials, no body';

    $res = http(GET => '/cookie_needed_echo/info');
    ok $res->{json} && $res->{json}{cookie_needed}, 'CometSocketCookie On: cookie_needed: true';
    ok !exists $res->{headers}{'set-cookie'}, '... but no cookie from /info (session URLs set it)';

    $res = http(OPTIONS => '/echo/info',
                headers => [Origin => 'http://o.example', 'Access-Control-Request-Headers' => 'X-A, X-B']);
    $h = $res->{headers};
    is $res->{status}, 204, 'OPTIONS /info: 204';
    is $res->{body}, '', '... no body';
    is $h->{'access-control-allow-methods'}, 'OPTIONS, GET', '... Access-Control-Allow-Methods: OPTIONS, GET';
    is $h->{'access-control-max-age'}, '31536000', '... Access-Control-Max-Age: one year';
    is $h->{'cache-control'}, 'public, max-age=31536000', '... Cache-Control: public, one year';
    my $exp = str2time($h->{expires} // '');
    ok $exp && abs($exp - time - 31536000) < 120, "... Expires a year ahead ($h->{expires})";
    is $h->{'access-control-allow-origin'}, 'http://o.example', '... Access-Control-Allow-Origin';
    is $h->{'access-control-allow-headers'}, 'X-A, X-B', '... Access-Control-Allow-Headers as requested';
    $res = http(OPTIONS => '/echo/info', headers => [Origin => 'o', 'Access-Control-Request-Headers' => '']);
    ok !exists $res->{headers}{'access-control-allow-headers'}, '... none when none is asked';

    $res = http(POST => '/echo/info', body => '');
    is $res->{status}, 405, 'POST /info: 405';
    is allow_set($res), 'GET,OPTIONS', '... Allow: GET, OPTIONS';
}

# --- /iframe.html ---------------------------------------------------------
{
    my $res = http(GET => '/echo/iframe.html');
    my $h = $res->{headers};
    is $res->{status}, 200, 'GET /iframe.html: 200';
    is $h->{'content-type'}, 'text/html; charset=UTF-8', '... text/html';
    like $res->{body}, qr{<script src="/sockjs-client/sockjs\.min\.js"></script>},
        '... loads CometSocketClientURL';
    like $res->{body}, qr/SockJS\.bootstrap_iframe\(\);/, '... and bootstraps the iframe';
    is $h->{etag}, '"' . md5_hex($res->{body}) . '"', '... ETag: the MD5 of the page';
    is $h->{'cache-control'}, 'public, max-age=31536000', '... cached a year';
    my $res2 = http(GET => '/echo/iframe.html', headers => ['If-None-Match' => $h->{etag}]);
    is $res2->{status}, 304, 'If-None-Match: 304';
    is $res2->{body}, '', '... no body';
    $res2 = http(GET => '/echo/iframe.html', headers => ['If-None-Match' => '"other"']);
    is $res2->{status}, 200, 'another ETag: 200';
    $res2 = http(GET => '/echo/iframe-1.6.1.html');
    is "$res2->{status} " . ($res2->{headers}{etag} // ''), "200 $h->{etag}",
        '/iframe-<version>.html: the same page';
    is http(GET => '/echo/iframe.htmlx')->{status}, 404, '/iframe.htmlx: 404';
    $res2 = http(POST => '/echo/iframe.html', body => '');
    is $res2->{status}, 405, 'POST /iframe.html: 405';
    my $close = http(GET => '/close/iframe.html');
    is $close->{headers}{etag}, $h->{etag}, 'same client URL elsewhere: same ETag';
    my $default = http(GET => '/sock-small/iframe.html');
    like $default->{body}, qr{<script src="https://cdn\.jsdelivr\.net/npm/sockjs-client\@1/dist/sockjs\.min\.js">},
        'default CometSocketClientURL';
    isnt $default->{headers}{etag}, $h->{etag}, '... another ETag';
}

# --- xhr: polling -----------------------------------------------------------
{
    my $sid = new_session();
    my $res = http(POST => sjs_path('/echo', $sid, 'xhr'));
    my $h = $res->{headers};
    is "$res->{status} $res->{body}", "200 o\n", 'first xhr poll: o';
    is $h->{'content-type'}, $JS, '... application/javascript';
    is $h->{'cache-control'}, $NOCACHE, '... not cached';
    is $h->{'access-control-allow-origin'}, '*', '... CORS';
    ok !exists $h->{'set-cookie'}, '... no cookie (CometSocketCookie Off)';
    $res = http(POST => sjs_path('/echo', $sid, 'xhr_send'), body => '["a","b"]',
                headers => ['Content-Type' => 'text/plain', Origin => 'http://o.example']);
    is $res->{status}, 204, 'xhr_send: 204';
    is $res->{body}, '', '... no body';
    is $res->{headers}{'content-type'}, 'text/plain; charset=UTF-8',
        '... Content-Type: text/plain all the same (Firefox takes none for XML)';
    is join(' ', map { $res->{headers}{$_} // '-' } qw(access-control-allow-origin
            access-control-allow-credentials cache-control)), "http://o.example true $NOCACHE",
        '... CORS with credentials, not cached';
    $res = http(POST => sjs_path('/echo', $sid, 'xhr'));
    is "$res->{status} $res->{body}", qq(200 a["a","b"]\n), 'next poll: a["a","b"]';

    # escaping: each message a JSON string, escaped as the iframe's
    my @m = ("q\"b\\s/", "nl\ncr\r\ttab", "</script>&'", "\xc3\xa9\xe2\x80\xa8");
    my $payload = JSON::PP->new->ascii->encode([map { decode('UTF-8', $_) } @m]);
    http(POST => sjs_path('/echo', $sid, 'xhr_send'), body => $payload);
    $res = http(POST => sjs_path('/echo', $sid, 'xhr'));
    my $want = 'a[' . join(',', map { '"' . escape_js($_) . '"' } @m) . "]\n";
    is $res->{body}, $want, 'messages escaped as JSON strings, <>&\' and U+2028 too';

    # heartbeat on a quiet session
    my $s2 = new_session();
    http(POST => sjs_path('/sock-small', $s2, 'xhr'));
    my $t0 = time;
    $res = http(POST => sjs_path('/sock-small', $s2, 'xhr'), timeout => 10);
    my $dt = time - $t0;
    is $res->{body}, "h\n", 'a poll with nothing to say: h after the heartbeat';
    ok $dt > 0.7 && $dt < 4, sprintf '... after %.2f s (CometSocketHeartbeat 1)', $dt;

    $res = http(OPTIONS => sjs_path('/echo', $sid, 'xhr'));
    is $res->{status}, 204, 'OPTIONS xhr: 204';
    is $res->{headers}{'access-control-allow-methods'}, 'OPTIONS, POST', '... OPTIONS, POST';
    $res = http(GET => sjs_path('/echo', $sid, 'xhr'));
    is $res->{status}, 405, 'GET xhr: 405';
    is allow_set($res), 'OPTIONS,POST', '... Allow: OPTIONS, POST';
}

# --- xhr_send errors ----------------------------------------------------------
{
    my $sid = new_session();
    http(POST => sjs_path('/echo', $sid, 'xhr'));
    my $res = http(POST => sjs_path('/echo', $sid, 'xhr_send'), body => '');
    is "$res->{status} $res->{body}", '500 Payload expected.', 'empty payload: 500 Payload expected.';
    $res = http(POST => sjs_path('/echo', $sid, 'xhr_send'));
    is "$res->{status} $res->{body}", '500 Payload expected.', 'no body at all: the same';
    $res = http(POST => sjs_path('/echo', $sid, 'xhr_send'), body => '["x"');
    is "$res->{status} $res->{body}", '500 Broken JSON encoding.', 'broken JSON: 500 Broken JSON encoding.';
    $res = http(POST => sjs_path('/echo', $sid, 'xhr_send'), body => '"x"');
    is "$res->{status} $res->{body}", '500 Broken JSON encoding.', 'not an array: the same';
    $res = http(POST => sjs_path('/echo', $sid, 'xhr_send'), body => '[1]');
    is "$res->{status} $res->{body}", '500 Broken JSON encoding.', 'not strings: the same';
    $res = http(POST => sjs_path('/echo', new_session(), 'xhr_send'), body => '["x"]');
    is $res->{status}, 404, 'xhr_send to an unknown session: 404';
    $res = http(GET => sjs_path('/echo', $sid, 'xhr_send'));
    is $res->{status}, 405, 'GET xhr_send: 405';
    $res = http(OPTIONS => sjs_path('/echo', $sid, 'xhr_send'));
    is "$res->{status} " . ($res->{headers}{'access-control-allow-methods'} // ''), '204 OPTIONS, POST',
        'OPTIONS xhr_send: 204, OPTIONS, POST';
    # nothing of the failed ones went through
    http(POST => sjs_path('/echo', $sid, 'xhr_send'), body => '["ok"]');
    is http(POST => sjs_path('/echo', $sid, 'xhr'))->{body}, qq(a["ok"]\n),
        'the refused payloads delivered nothing';
}

# --- xhr_streaming ------------------------------------------------------------
# HTTP/1.1: chunked, each frame a chunk of its own (clients such as the
# protocol's suite read a frame per chunk)
{
    my $sid = new_session();
    my $s = sjs_stream('/sock-small', $sid, 'xhr_streaming', headers => [Origin => 'http://o.example']);
    is $s->{status}, 200, 'xhr_streaming: 200';
    is $s->{headers}{'content-type'}, $JS, '... application/javascript';
    is $s->{headers}{'transfer-encoding'}, 'chunked', '... chunked';
    is join(' ', map { $s->{headers}{$_} // '-' } qw(access-control-allow-origin
            access-control-allow-credentials)), 'http://o.example true', '... CORS';
    is $s->bytes(2049, 5), ('h' x 2048) . "\n", '... prelude: 2048 h and a newline';
    is $s->upto("\n", 5), "o\n", '... then o';
    http(POST => sjs_path('/sock-small', $sid, 'xhr_send'), body => '["one"]');
    is $s->upto("\n", 5), qq(a["one"]\n), '... then a frame per message';
    is_deeply $s->{conn}{chunks}, [('h' x 2048) . "\n", "o\n", qq(a["one"]\n)],
        '... each a chunk of its own';
    my $t0 = time;
    my $hb = $s->upto("\n", 5);
    is $hb, "h\n", sprintf '... h after %.1f s of silence', time - $t0;
    # past CometSocketResponseLimit (4K) the response ends; the next one
    # goes on where it stopped
    # (one by one: a batch that came at once goes out whole)
    for my $i (1 .. 12) {
        my $m = sprintf('%03d', $i) . ('z' x 500);
        http(POST => sjs_path('/sock-small', $sid, 'xhr_send'), body => qq(["$m"]));
        sleep 0.1;
    }
    my ($rest, $eof) = $s->rest(5);
    ok $eof && $s->{conn}{last_chunk}, 'past 4K the streaming response ends (its last chunk)';
    my @got = $rest =~ /^a\["(\d{3})z+"\]$/mg;
    cmp_ok scalar(@got), '<', 12, '... before every message (' . scalar(@got) . ' of 12)';
    my $s2 = sjs_stream('/sock-small', $sid, 'xhr_streaming');
    $s2->bytes(2049, 5);
    my $more = '';
    $more .= $s2->upto("\n", 3) // '' for 1 .. 12 - @got;
    push @got, $more =~ /^a\["(\d{3})z+"\]$/mg;
    is "@got", join(' ', map { sprintf '%03d', $_ } 1 .. 12),
        '... the next response carries the rest (no o again, nothing lost or twice)';
    $s2->close;
    my $res = http(GET => sjs_path('/echo', $sid, 'xhr_streaming'));
    is $res->{status}, 405, 'GET xhr_streaming: 405';
}
# the suite's limit: frames of 134 bytes on /echo (4096): the 31st, past
# 4096 counting "o", ends the response, not the 30th
{
    my $sid = new_session();
    my $s = sjs_stream('/echo', $sid, 'xhr_streaming');
    $s->bytes(2049, 5);
    $s->upto("\n", 5);
    my $msg = '"' . ('x' x 128) . '"';
    my ($n, $ended_early) = (0, 0);
    for my $i (1 .. 31) {
        http(POST => sjs_path('/echo', $sid, 'xhr_send'), body => "[$msg]");
        $n++ if ($s->upto("\n", 5) // '') eq "a[$msg]\n";
        $ended_early ||= $i < 31 && $s->{conn}{last_chunk};
    }
    ok $n == 31 && !$ended_early, "CometSocketResponseLimit 4096: 31 frames of 134 bytes ($n)";
    ok $s->closed(5) && $s->{conn}{last_chunk}, '... then the last chunk, and the end';
}
# HTTP/1.0: no chunks, the close ends the body
{
    my $sid = new_session();
    my $s = sjs_stream('/close', $sid, 'xhr_streaming', version => '1.0');
    ok !exists $s->{headers}{'transfer-encoding'} && !exists $s->{headers}{'content-length'},
        'HTTP/1.0 xhr_streaming: neither chunked nor a length';
    my ($rest, $eof) = $s->rest(5);
    is $rest, ('h' x 2048) . qq(\no\nc[3000,"Go away!"]\n), '... the frames as they are';
    ok $eof, '... then the connection closes';
}

# --- eventsource ----------------------------------------------------------
{
    my $sid = new_session();
    my $s = sjs_stream('/echo', $sid, 'eventsource');
    is $s->{status}, 200, 'eventsource: 200';
    is $s->{headers}{'content-type'}, 'text/event-stream', '... text/event-stream (the type alone)';
    is $s->{headers}{'cache-control'}, $NOCACHE, '... not cached';
    is $s->upto("\r\n\r\n", 5), "\r\ndata: o\r\n\r\n", '... CRLF, then data: o';
    http(POST => sjs_path('/echo', $sid, 'xhr_send'), body => qq(["x\\ny"]));
    is $s->upto("\r\n\r\n", 5), qq(data: a["x\\ny"]\r\n\r\n), '... data: a["x\\ny"]';
    is_deeply $s->{conn}{chunks}, ["\r\n", "data: o\r\n\r\n", qq(data: a["x\\ny"]\r\n\r\n)],
        '... each a chunk';
    # one frame past CometSocketResponseLimit (4096) ends the response
    my $big = '"' . ('x' x 4096) . '"';
    http(POST => sjs_path('/echo', $sid, 'xhr_send'), body => "[$big]");
    is $s->upto("\r\n\r\n", 5), "data: a[$big]\r\n\r\n", '... a frame of 4 KiB';
    ok $s->closed(5) && $s->{conn}{last_chunk}, '... and the response ends after it';
    $s->close;
    my $res = http(POST => sjs_path('/echo', $sid, 'eventsource'), body => '');
    is $res->{status}, 405, 'POST eventsource: 405';
    is allow_set($res), 'GET', '... Allow: GET';
}

# --- htmlfile -------------------------------------------------------------
{
    my $sid = new_session();
    my $res = http(GET => sjs_path('/echo', $sid, 'htmlfile'));
    is "$res->{status} $res->{body}", '500 "callback" parameter required', 'htmlfile without c: 500';
    $res = http(GET => sjs_path('/echo', $sid, 'htmlfile') . '?c=alert(1)');
    is "$res->{status} $res->{body}", '500 invalid "callback" parameter', 'htmlfile with c=alert(1): 500';
    $res = http(GET => sjs_path('/echo', $sid, 'htmlfile') . '?c=a%22b');
    is $res->{status}, 500, '... with a quote: 500';
    my $s = sjs_stream('/echo', $sid, 'htmlfile', query => '?c=_jp.a1b2');
    is $s->{status}, 200, 'htmlfile?c=_jp.a1b2: 200';
    is $s->{headers}{'content-type'}, 'text/html; charset=UTF-8', '... text/html';
    my $pre = $s->upto("\r\n\r\n", 5) // '';
    # sockjs-protocol's head exactly, then spaces to 1037 bytes and two CRLF
    my $head = <<'HTML' =~ s/CB/_jp.a1b2/r;
<!doctype html>
<html><head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
</head><body><h2>Don't panic!</h2>
  <script>
    document.domain = document.domain;
    var c = parent.CB;
    c.start();
    function p(d) {c.message(d);};
    window.onload = function() {c.stop();};
  </script>
HTML
    is $pre, $head . (' ' x (1037 - length $head)) . "\r\n\r\n",
        '... the page calls the callback, padded past 1 KiB (' . length($pre) . ')';
    is $s->upto("</script>\r\n", 5), qq(<script>\np("o");\n</script>\r\n), '... p("o")';
    is scalar(@{ $s->{conn}{chunks} }), 2, '... each a chunk';
    http(POST => sjs_path('/echo', $sid, 'xhr_send'), body => qq(["</script>\\"q"]));
    my $frame = 'a["' . escape_js('</script>"q') . '"]';
    is $s->upto("</script>\r\n", 5), "<script>\np(\"" . escape_js($frame) . "\");\n</script>\r\n",
        '... messages: the frame as a JS string (escaped twice, no </script>)';
    my $big = 'x' x 4096;
    http(POST => sjs_path('/echo', $sid, 'xhr_send'), body => qq(["$big"]));
    is $s->upto("</script>\r\n", 5), qq(<script>\np("a[\\"$big\\"]");\n</script>\r\n),
        '... a frame of 4 KiB';
    ok $s->closed(5) && $s->{conn}{last_chunk}, '... ends the response (CometSocketResponseLimit)';
    $s->close;
}

# --- jsonp and jsonp_send -------------------------------------------------
{
    my $sid = new_session();
    my $res = http(GET => sjs_path('/echo', $sid, 'jsonp'));
    is "$res->{status} $res->{body}", '500 "callback" parameter required', 'jsonp without c: 500';
    $res = http(GET => sjs_path('/echo', $sid, 'jsonp') . '?c=x;y');
    is "$res->{status} $res->{body}", '500 invalid "callback" parameter', 'jsonp with c=x;y: 500';
    $res = http(GET => sjs_path('/echo', $sid, 'jsonp') . '?c=cb');
    is "$res->{status} $res->{body}", qq(200 /**/cb("o");\r\n), 'jsonp?c=cb: /**/cb("o");';
    is $res->{headers}{'content-type'}, $JS, '... application/javascript';
    $res = http(POST => sjs_path('/echo', $sid, 'jsonp_send'), body => 'd=%5B%22a%2Fb%20c%22%5D',
                headers => ['Content-Type' => 'application/x-www-form-urlencoded']);
    is "$res->{status} $res->{body}", '200 ok', 'jsonp_send, form d=: 200 ok';
    is $res->{headers}{'content-type'}, 'text/plain; charset=UTF-8', '... text/plain';
    $res = http(POST => sjs_path('/echo', $sid, 'jsonp_send'), body => 'x=1&d=%5B%22%2B%22%5D',
                headers => ['Content-Type' => 'application/x-www-form-urlencoded; charset=UTF-8']);
    is "$res->{status} $res->{body}", '200 ok', '... d= after another field';
    $res = http(POST => sjs_path('/echo', $sid, 'jsonp_send'), body => '["raw"]',
                headers => ['Content-Type' => 'text/plain']);
    is "$res->{status} $res->{body}", '200 ok', 'jsonp_send, raw body: 200 ok';
    $res = http(GET => sjs_path('/echo', $sid, 'jsonp') . '?c=cb');
    is $res->{body}, qq(/**/cb("a[\\"a/b c\\",\\"+\\",\\"raw\\"]");\r\n),
        'next jsonp: the three messages';
    $res = http(POST => sjs_path('/echo', $sid, 'jsonp_send'), body => 'd=',
                headers => ['Content-Type' => 'application/x-www-form-urlencoded']);
    is "$res->{status} $res->{body}", '500 Payload expected.', 'jsonp_send d= empty: 500 Payload expected.';
    $res = http(POST => sjs_path('/echo', $sid, 'jsonp_send'), body => 'e=1',
                headers => ['Content-Type' => 'application/x-www-form-urlencoded']);
    is "$res->{status} $res->{body}", '500 Payload expected.', 'jsonp_send without d: the same';
    $res = http(GET => sjs_path('/echo', $sid, 'jsonp_send'));
    is "$res->{status} " . allow_set($res), '405 POST', 'GET jsonp_send: 405, Allow: POST';
}

# --- one receiver at a time -----------------------------------------------
{
    my $sid = new_session();
    my $s = sjs_stream('/echo', $sid, 'xhr_streaming');
    $s->bytes(2049, 5);
    is $s->upto("\n", 5), "o\n", 'a streaming receiver holds the session';
    my $res = http(POST => sjs_path('/echo', $sid, 'xhr'));
    is $res->{body}, qq(c[2010,"Another connection still open"]\n),
        'a second receiver: c[2010,"Another connection still open"]';
    my $s2 = sjs_stream('/echo', $sid, 'eventsource');
    is $s2->upto("\r\n\r\n", 5) . ($s2->upto("\r\n\r\n", 5) // ''),
        qq(\r\ndata: c[2010,"Another connection still open"]\r\n\r\n), '... over eventsource too';
    ok $s2->closed(5), '... and its response ends';
    my $s3 = sjs_stream('/echo', $sid, 'xhr_streaming');
    ok $s3->closed(5), '... over xhr_streaming:';
    is_deeply $s3->{conn}{chunks}, [('h' x 2048) . "\n", qq(c[2010,"Another connection still open"]\n)],
        '... the prelude, then the close frame, each a chunk, then the last chunk'
        or diag explain $s3->{conn}{chunks};
    http(POST => sjs_path('/echo', $sid, 'xhr_send'), body => '["still"]');
    is $s->upto("\n", 5), qq(a["still"]\n), 'the first receiver still gets the messages';
    $s->close;
}

# --- the close backend ----------------------------------------------------
{
    my $sid = new_session();
    my $res = http(POST => sjs_path('/close', $sid, 'xhr'));
    is $res->{body}, "o\n", 'close backend: the first poll opens';
    my @after = map { http(POST => sjs_path('/close', $sid, 'xhr'))->{body} } 1 .. 2;
    is_deeply \@after, [(qq(c[3000,"Go away!"]\n)) x 2], '... then every poll: c[3000,"Go away!"]';
    my $s = sjs_stream('/close', $sid, 'xhr_streaming');
    $s->bytes(2049, 5);
    is $s->upto("\n", 5), qq(c[3000,"Go away!"]\n), '... a streaming receiver too';
    ok $s->closed(5) && $s->{conn}{last_chunk}, '... which then ends (the last chunk)';
    $s = sjs_stream('/close', new_session(), 'xhr_streaming');
    ok $s->closed(5), 'a new session over xhr_streaming:';
    is_deeply $s->{conn}{chunks}, [('h' x 2048) . "\n", "o\n", qq(c[3000,"Go away!"]\n)],
        '... prelude, o, close frame: a chunk each' or diag explain $s->{conn}{chunks};
    $res = http(GET => sjs_path('/close', $sid, 'jsonp') . '?c=f');
    is $res->{body}, qq(/**/f("c[3000,\\"Go away!\\"]");\r\n), '... and jsonp';
}

# --- URLs that are no session, and any value that is one -------------------
{
    my @bad = ('/echo/a.b/sid/xhr', '/echo/000/a.b/xhr', '/echo/000/sid', '/echo/000',
               '/echo/000//xhr', '/echo/000/sid/xhr/more', '/echo//000/sid/xhr',
               '/echo/000/sid/nope', '/echo/./sid/xhr', '/echo/000/' . ('x' x 127) . '/xhr');
    # (a POST to .../websocket is a 405: t/89-websocket.t)
    my @got = map { my $r = http(POST => $_, body => ''); "$_ $r->{status}" } @bad;
    is_deeply \@got, [map { "$_ 404" } @bad], 'bad session URLs: 404'
        or diag explain \@got;
    my $n = int rand 100000;
    my @any = ("/a/a$n", "/_/_$n", "/1/$n", "/abcdefgh_i-j%20/abcdefg_i-j%20$n", "/0/s%24d$n");
    @got = map { my $r = http(POST => "/echo$_/xhr"); "$_ $r->{status} $r->{body}" } @any;
    is_deeply \@got, [map { "$_ 200 o\n" } @any], 'any server and session value: a session'
        or diag explain \@got;
    # ids outside [A-Za-z0-9-] are named apart in the store: never the
    # session of another id
    http(POST => "/echo/0/a%20b$n/xhr");
    is http(POST => "/echo/0/a_20b$n/xhr_send", body => '["x"]')->{status}, 404,
        '"a b" and "a_20b" are two sessions';
}

# --- the JSESSIONID cookie (CometSocketCookie On) ----------------------------
# sockjs-node's: on every session URL, the client's own, else "dummy"
{
    my $loc = '/cookie_needed_echo';
    my $sid = new_session();
    my $dummy = 'JSESSIONID=dummy; path=/; HttpOnly';
    my @got;
    push @got, 'xhr ' . (http(POST => sjs_path($loc, $sid, 'xhr'))->{headers}{'set-cookie'} // '-');
    push @got, 'xhr_send ' . (http(POST => sjs_path($loc, $sid, 'xhr_send'), body => '["a"]')
                              ->{headers}{'set-cookie'} // '-');
    push @got, 'jsonp_send ' . (http(POST => sjs_path($loc, $sid, 'jsonp_send'), body => 'd=%5B%5D',
                                     headers => ['Content-Type' => 'application/x-www-form-urlencoded'])
                                ->{headers}{'set-cookie'} // '-');
    push @got, 'jsonp ' . (http(GET => sjs_path($loc, $sid, 'jsonp') . '?c=x')->{headers}{'set-cookie'} // '-');
    push @got, 'OPTIONS xhr ' . (http(OPTIONS => sjs_path($loc, $sid, 'xhr'))->{headers}{'set-cookie'} // '-');
    for my $what (qw(xhr_streaming eventsource htmlfile)) {
        my $s = sjs_stream($loc, new_session(), $what, query => '?c=x');
        push @got, "$what " . ($s->{headers}{'set-cookie'} // '-');
        $s->close;
    }
    is_deeply \@got, [map { "$_ $dummy" } 'xhr', 'xhr_send', 'jsonp_send', 'jsonp', 'OPTIONS xhr',
                      qw(xhr_streaming eventsource htmlfile)],
        'no cookie sent: JSESSIONID=dummy on every session URL' or diag explain \@got;
    my $res = http(POST => sjs_path($loc, new_session(), 'xhr'), headers => [Cookie => 'JSESSIONID=abcdef']);
    is "$res->{body}" . ($res->{headers}{'set-cookie'} // ''), "o\nJSESSIONID=abcdef; path=/; HttpOnly",
        'the client\'s own echoed';
    ok !exists http(POST => sjs_path('/echo', new_session(), 'xhr'))->{headers}{'set-cookie'},
        'CometSocketCookie Off: none';
}

# --- a receiver its client drops: the session is interrupted ----------------
# (sockjs-protocol's HandlingClose: messages may have been lost)
{
    my $sid = new_session();
    my $s = sjs_stream('/echo', $sid, 'xhr_streaming');
    $s->bytes(2049, 5);
    is $s->upto("\n", 5), "o\n", 'a streaming receiver';
    $s->close;
    # the server learns of the departure when it reads the FIN (or TLS's
    # close_notify): until then the session is still held (2010, which
    # changes nothing), so what comes too early tries again
    my $released = sub {
        my ($try) = @_;
        my $got;
        for (1 .. 50) {
            $got = $try->();
            last unless defined $got && $got =~ /^c\[2010,/;
            sleep 0.1;
        }
        return $got;
    };
    my $s2;
    my $line = $released->(sub {
        $s2->close if $s2;
        $s2 = sjs_stream('/echo', $sid, 'xhr_streaming');
        $s2->bytes(2049, 5);
        $s2->upto("\n", 5);
    });
    is $line, qq(c[1002,"Connection interrupted"]\n),
        '... dropped by its client: the next one gets c[1002,"Connection interrupted"]';
    ok $s2->closed(5), '... and ends';
    is http(POST => sjs_path('/echo', $sid, 'xhr'))->{body}, qq(c[1002,"Connection interrupted"]\n),
        '... as does every poll';
    # a poll the client drops while it waits
    $sid = new_session();
    http(POST => sjs_path('/echo', $sid, 'xhr'));
    my $poll = sjs_stream('/echo', $sid, 'xhr');
    sleep 0.25;
    is http(POST => sjs_path('/echo', $sid, 'xhr'))->{body}, qq(c[2010,"Another connection still open"]\n),
        'a waiting poll holds the session';
    $poll->close;
    my $body = $released->(sub { http(POST => sjs_path('/echo', $sid, 'xhr'))->{body} });
    is $body, qq(c[1002,"Connection interrupted"]\n),
        '... dropped by its client: the next poll gets c[1002,"Connection interrupted"]';
    # the same for a stream a thread writes (CometStreamMode thread)
    $sid = new_session();
    $s = sjs_stream('/echo-thread', $sid, 'xhr_streaming');
    $s->bytes(2049, 5);
    $s->upto("\n", 5);
    $s->close;
    $body = $released->(sub {   # (until its thread has seen the client go)
        eval { http(POST => sjs_path('/echo-thread', $sid, 'xhr'), timeout => 8)->{body} }
            // "no answer: $@";
    });
    is $body, qq(c[1002,"Connection interrupted"]\n),
        '... and one a thread writes (CometStreamMode thread)';
    # ?resume=1 (socket.js, whose watchdog replaces silent receivers): the
    # session goes on
    $sid = new_session();
    $s = sjs_stream('/echo', $sid, 'xhr_streaming', query => '?resume=1');
    $s->bytes(2049, 5);
    $s->upto("\n", 5);
    $s->close;
    sleep 0.3;                  # (the loop sees it go before the message)
    http(POST => sjs_path('/echo', $sid, 'xhr_send'), body => '["after"]');
    is http(POST => sjs_path('/echo', $sid, 'xhr') . '?resume=1')->{body}, qq(a["after"]\n),
        'a receiver with ?resume=1 dropped: the session goes on';
}

# --- /websocket: what is no handshake (the handshake: t/89-websocket.t) --------
{
    my $sid = new_session();
    my $res = http(GET => sjs_path('/echo', $sid, 'websocket'));
    is "$res->{status} $res->{body}", '400 Can "Upgrade" only to "WebSocket".',
        'GET websocket without Upgrade: 400';
    $res = http(GET => sjs_path('/echo', $sid, 'websocket'),
                headers => [Upgrade => 'WebSocket']);
    is "$res->{status} $res->{body}", '400 "Connection" must be "Upgrade".',
        '... with Upgrade but Connection: close: 400';
    for my $h ([Upgrade => 'WebSocket', Connection => 'Upgrade'], []) {
        $res = http(POST => sjs_path('/echo', $sid, 'websocket'), headers => $h, body => '');
        is join(' ', $res->{status}, $res->{headers}{allow} // '-',
                $res->{headers}{'content-type'} // '-', length $res->{body}), '405 GET - 0',
            'POST websocket' . (@$h ? ' (Upgrade)' : '') . ': 405, Allow: GET, no type, no body';
    }
    $res = http(GET => sjs_path('/echo', $sid, 'websocket'),
                headers => [Upgrade => 'websocket', Connection => 'Upgrade']);
    is $res->{status}, 426, 'a handshake without Sec-WebSocket-Version: 426';
}

# --- methods --------------------------------------------------------------
{
    my $sid = new_session();
    my @cases = ([GET => 'xhr_streaming', 'OPTIONS,POST'], [PUT => 'xhr', 'OPTIONS,POST'],
                 [POST => 'htmlfile', 'GET'], [POST => 'jsonp', 'GET'],
                 [DELETE => 'jsonp_send', 'POST']);
    my @got = map {
        my $r = http($_->[0] => sjs_path('/echo', $sid, $_->[1]));
        "$_->[0] $_->[1]: $r->{status} " . allow_set($r)
    } @cases;
    is_deeply \@got, [map { "$_->[0] $_->[1]: 405 $_->[2]" } @cases], '405 with Allow'
        or diag explain \@got;
}
