# SockJS 0.3 on the wire, over every transport, with the built-in backends
# (echo, close): statuses, headers and bytes, as sockjs-protocol-0.3 says.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;
use Digest::MD5 qw(md5_hex);
use Encode qw(decode);
use HTTP::Date qw(str2time);
use Time::HiRes qw(time sleep);

plan tests => 120, need_module('comet');

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
}

# --- /info ----------------------------------------------------------------
{
    my $res = http(GET => '/echo/info');
    my $h = $res->{headers};
    is $res->{status}, 200, 'GET /info: 200';
    is $h->{'content-type'}, 'application/json; charset=UTF-8', '... application/json';
    is $h->{'cache-control'}, $NOCACHE, '... not cached';
    is $h->{'access-control-allow-origin'}, '*', '... Access-Control-Allow-Origin: * without Origin';
    is $h->{'access-control-allow-credentials'}, 'true', '... Access-Control-Allow-Credentials';
    my $j = $res->{json};
    ok $j && JSON::PP::is_bool($j->{websocket}) && $j->{websocket},
        '... websocket: true (t/89-websocket.t: where it is not offered)';
    ok $j && JSON::PP::is_bool($j->{cookie_needed}) && !$j->{cookie_needed}, '... cookie_needed: false';
    is_deeply $j && $j->{origins}, ['*:*'], '... origins: ["*:*"]';
    like $j && $j->{entropy}, qr/^\d+$/, '... entropy: an integer';
    my $j2 = http(GET => '/echo/info')->{json};
    isnt $j2 && $j2->{entropy}, $j->{entropy}, '... another each time';

    $res = http(GET => '/echo/info', headers => [Origin => 'http://app.example:8080']);
    is $res->{headers}{'access-control-allow-origin'}, 'http://app.example:8080',
        'Origin: echoed in Access-Control-Allow-Origin';
    like $res->{headers}{vary} // '', qr/\bOrigin\b/, '... Vary: Origin';
    $res = http(GET => '/echo/info', headers => [Origin => 'null']);
    is $res->{headers}{'access-control-allow-origin'}, '*', 'Origin: null gets *';

    $res = http(GET => '/cookie_needed_echo/info');
    ok $res->{json} && $res->{json}{cookie_needed}, 'CometSocketCookie On: cookie_needed: true';
    like $res->{headers}{'set-cookie'} // '', qr{^JSESSIONID=[0-9a-f]{32}; path=/; HttpOnly$},
        '... Set-Cookie: a JSESSIONID of 128 random bits';
    $res = http(GET => '/cookie_needed_echo/info', headers => [Cookie => 'a=b; JSESSIONID=abc123']);
    is $res->{headers}{'set-cookie'}, 'JSESSIONID=abc123; path=/; HttpOnly', '... the client\'s JSESSIONID kept';

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
    $res = http(POST => sjs_path('/echo', $sid, 'xhr_send'), body => '["a","b"]',
                headers => ['Content-Type' => 'text/plain']);
    is $res->{status}, 204, 'xhr_send: 204';
    is $res->{body}, '', '... no body';
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
{
    my $sid = new_session();
    my $s = sjs_stream('/sock-small', $sid, 'xhr_streaming');
    is $s->{status}, 200, 'xhr_streaming: 200';
    is $s->{headers}{'content-type'}, $JS, '... application/javascript';
    is $s->bytes(2049, 5), ('h' x 2048) . "\n", '... prelude: 2048 h and a newline';
    is $s->upto("\n", 5), "o\n", '... then o';
    http(POST => sjs_path('/sock-small', $sid, 'xhr_send'), body => '["one","two"]');
    is $s->upto("\n", 5) . $s->upto("\n", 5), qq(a["one"]\na["two"]\n), '... then one frame per message';
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
    ok $eof, 'past 4K the streaming response ends';
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

# --- eventsource ----------------------------------------------------------
{
    my $sid = new_session();
    my $s = sjs_stream('/echo', $sid, 'eventsource');
    is $s->{status}, 200, 'eventsource: 200';
    is $s->{headers}{'content-type'}, 'text/event-stream; charset=UTF-8', '... text/event-stream';
    is $s->{headers}{'cache-control'}, $NOCACHE, '... not cached';
    is $s->upto("\r\n\r\n", 5), "\r\ndata: o\r\n\r\n", '... CRLF, then data: o';
    http(POST => sjs_path('/echo', $sid, 'xhr_send'), body => qq(["x\\ny"]));
    is $s->upto("\r\n\r\n", 5), qq(data: a["x\\ny"]\r\n\r\n), '... data: a["x\\ny"]';
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
    like $pre, qr/\A<!doctype html>\n.*var c = parent\._jp\.a1b2;\n    c\.start\(\);\n/s,
        '... the page calls the callback';
    cmp_ok length($pre), '>', 1024, '... past 1 KiB before anything (' . length($pre) . ')';
    is $s->upto("</script>\r\n", 5), qq(<script>\np("o");\n</script>\r\n), '... p("o")';
    http(POST => sjs_path('/echo', $sid, 'xhr_send'), body => qq(["</script>\\"q"]));
    my $frame = 'a["' . escape_js('</script>"q') . '"]';
    is $s->upto("</script>\r\n", 5), "<script>\np(\"" . escape_js($frame) . "\");\n</script>\r\n",
        '... messages: the frame as a JS string (escaped twice, no </script>)';
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
    ok $s->closed(5), '... which then ends';
    $res = http(GET => sjs_path('/close', $sid, 'jsonp') . '?c=f');
    is $res->{body}, qq(/**/f("c[3000,\\"Go away!\\"]");\r\n), '... and jsonp';
}

# --- URLs that are no session -----------------------------------------------
{
    my @bad = ('/echo/a.b/sid/xhr', '/echo/000/a.b/xhr', '/echo/000/sid', '/echo/000',
               '/echo/000//xhr', '/echo/000/sid/xhr/more',
               '/echo/000/sid/nope', '/echo/000/s%24d/xhr');
    my @got = map { my $r = http(POST => $_, body => ''); "$_ $r->{status}" } @bad;
    is_deeply \@got, [map { "$_ 404" } @bad], 'bad session URLs: 404'
        or diag explain \@got;
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
