# Hostile input: each gets a defined status and a log line, and the server
# goes on serving. Malformed and oversize ids, session ids and callbacks;
# path traversal and odd encodings in every URL the module owns (assets and
# string tables included); publish bodies over the limit, empty, chunked,
# truncated, invalid UTF-8; SockJS payloads that are no JSON, nested deeply,
# huge; methods a handler does not take (405 and Allow); a client that sends
# its headers byte by byte and stalls; a subscriber that never reads.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;
use Time::HiRes qw(time sleep);

plan tests => 155, need_module('comet');

my $access_log = Apache::Test::config()->{vars}{t_logs} . '/access_log';
sub access_has {
    my ($line) = @_;
    my $deadline = time + 3;
    do {
        if (open my $f, '<', $access_log) {
            local $/;
            my $t = <$f> // '';
            return 1 if index($t, $line) >= 0;
        }
        sleep 0.05;
    } while (time < $deadline);
    return 0;
}

# the server still answers, at once
sub serving {
    my ($what) = @_;
    my $t0 = time;
    my $res = eval { http(GET => '/comet-publish/', timeout => 5) };
    ok $res && $res->{status} == 200 && time - $t0 < 3, "... and the server still serves ($what)";
}

# status, the module's log line (CMT00120 or CMT00210 with the URI), serving
sub refused {
    my ($method, $path, $status, $why, %o) = @_;
    my $mark = log_mark();
    my $res = http($method => $path, %o);
    my $show = length $path > 60 ? substr($path, 0, 50) . '...' : $path;
    is $res->{status}, $status, "$method $show: $status";
    (my $uri = $path) =~ s/\?.*//;
    ok wait_log($mark, qr/CMT00(?:120|210): .*\Q$why\E/), "... logged: $why";
    return $res;
}

# --- ids, session ids, callbacks -------------------------------------------
my $chan = new_channel('hostile');
refused(GET => '/comet/' . ('a' x 129), 400, 'invalid channel id');
# past 4K httpd itself refuses to map the path (403, AH00127 File name too long)
{
    my $mark = log_mark();
    is http(GET => '/comet/' . ('a' x 5000))->{status}, 403, 'GET /comet/<5000 bytes>: 403 (httpd)';
    ok wait_log($mark, qr/AH00127: Cannot map GET \/comet\/aaaa/), '... logged: AH00127';
}
refused(POST => '/comet-publish/a%C0%AEb', 400, 'invalid channel id', body => 'x');
refused(GET => "/comet/$chan?cb=" . ('a' x 129), 400, 'cb: a JavaScript name');
refused(GET => "/comet/$chan?cb=a%22%29%3Balert(1)%2F%2F", 400, 'cb: a JavaScript name');
refused(GET => "/comet/$chan?since=" . ('9' x 300), 400, 'since: a message id');
refused(POST => '/echo/000/' . ('s' x 127) . '/xhr', 404, 'not a SockJS URL');
refused(POST => '/echo/000/a.b/xhr', 404, 'not a SockJS URL');
# (any other byte is a session id: SockJS leaves the choice to the client)
for my $sid ('a%3Ab', 'a%20b', '%3Cscript%3E', 'a%C0%AEb') {
    my $res = http(POST => "/echo/000/$sid" . int(rand 1e6) . '/xhr');
    is "$res->{status} $res->{body}", "200 o\n", "POST /echo/000/$sid.../xhr: a session";
}
refused(POST => '/echo/' . ('9' x 200) . '/sess/xhr', 404, 'not a SockJS URL');
refused(GET => '/echo/000/' . new_session() . '/jsonp?c=alert(1)', 500, 'invalid callback parameter');
refused(GET => '/echo/000/' . new_session() . '/htmlfile?c=' . ('x' x 200), 500,
        'invalid callback parameter');
refused(GET => '/echo/000/' . new_session() . '/jsonp', 500, 'callback parameter missing');
serving('ids');

# --- path traversal and odd encodings in every URL of the module -----------
# httpd resolves dot segments before the module sees the path, refuses
# encoded slashes and NULs itself (404); whatever is left must be a channel
# id, an asset, a string table or a SockJS URL: nothing else is served, and
# no file ever.
{
    my @paths = (
        ['/comet/..%2f..%2fetc%2fpasswd', 404],
        ['/comet/%2e%2e/%2e%2e/etc/passwd', 400],      # not resolved: not a channel id
        ['/comet/comet.js%00.html', 404],
        ['/comet/comet.js/..%2f..%2fetc%2fpasswd', 404],
        ['/comet/i18n/..%2f..%2f..%2fetc%2fpasswd.js', 404],
        ['/comet/i18n/%2e%2e.js', 404],
        ['/comet/i18n/fr%00.js', 404],
        ['/comet/i18n/fr/../../comet.js', 200],       # resolved to /comet/comet.js
        ['/comet/i18n/' . ('f' x 3000) . '.js', 404],
        ['/comet/i18n/' . ('f' x 5000) . '.js', 403],    # httpd: AH00127
        ['/comet/i18n.json%3B', 404],
        ['/comet/%252e%252e', 400],
        ['/comet/%C0%AE%C0%AE', 400],
        ['/comet/comet.js;jsessionid=1', 400],
        ['/comet/%EF%BC%8E%EF%BC%8E', 400],              # fullwidth dots
        ['/comet-publish/..%5c..%5cwin.ini', 400],
        ['/echo/iframe.html/..%2f..%2fetc%2fpasswd', 404],
        ['/echo/iframe%2ehtml', 200],                   # %2e decodes to a dot: the page
        ['/echo/iframe.html.bak', 404],
        ['/echo/iframe-../x.html', 404],
        ['/echo/info%00', 404],
        ['/echo/000/..%2f/xhr', 404],
        ['/echo/000/sess/xhr/..%2f..', 404],
        ['/echo/000/sess/websocket', 400],            # no Upgrade
    );
    for my $p (@paths) {
        my ($path, $want) = @$p;
        my $res = http(GET => $path);
        my $show = length $path > 60 ? substr($path, 0, 50) . '...' : $path;
        is $res->{status}, $want, "GET $show: $want";
        ok $res->{body} !~ /root:|\[extensions\]|<\?php/, '... no file served';
    }
    serving('traversal');
}

# --- publish bodies ----------------------------------------------------------
{
    my $mark = log_mark();
    is publish($chan, 'x' x 65537)->{status}, 413, 'publish 64K + 1: 413';
    ok wait_log($mark, qr/CMT00120: \/comet-publish\/\Q$chan\E: message larger than CometMaxMessageSize/),
        '... logged';
    is publish($chan, 'x' x 70000, chunked => 1)->{status}, 413, 'chunked, no length, over 64K: 413';

    my $s = subscribe("/comet/$chan");
    $s->prelude;
    wait_subscribers($chan, 1);
    my $res = publish($chan, '');
    is $res->{status}, 201, 'an empty body: 201 (an empty message)';
    my ($m) = $s->messages(1, 5);
    is $m && $m->{data}, '', '... delivered empty';

    $res = publish($chan, "chunked body", chunked => 1);
    is $res->{status}, 201, 'chunked, no Content-Length: 201';
    ($m) = $s->messages(1, 5);
    is $m && $m->{data}, 'chunked body', '... delivered whole';

    my $bad = "ok \xff\xfe \xc0\xaf \xed\xa0\x80 \xf4\x90\x80\x80 end";
    $res = publish($chan, $bad);
    is $res->{status}, 201, 'invalid UTF-8: 201 (the bytes are data)';
    ($m) = $s->messages(1, 5);
    is $m && $m->{data}, escape_js($bad), '... delivered with U+FFFD for each bad byte';

    # a body that stops in the middle: the client closes its side
    my $info0 = channel_info($chan);
    $mark = log_mark();
    my $conn = Comet::Test::Conn->new;
    $conn->send_bytes("POST /comet-publish/$chan HTTP/1.1\r\nHost: " . hostport()
                      . "\r\nContent-Length: 100\r\n\r\n" . ('y' x 40));
    shutdown $conn->{sock}, 1;
    my $r = eval { $conn->read_response(timeout => 10) };
    is $r && $r->{status}, 400, 'a body cut after 40 of 100 bytes: 400';
    ok wait_log($mark, qr/CMT00120: \/comet-publish\/\Q$chan\E: cannot read the message body/),
        '... logged: cannot read the message body';
    # a body that stalls: mod_reqtimeout's body timeout (4 s here)
    $mark = log_mark();
    $conn = Comet::Test::Conn->new;
    my $t0 = time;
    $conn->send_bytes("POST /comet-publish/$chan HTTP/1.1\r\nHost: " . hostport()
                      . "\r\nContent-Length: 100\r\n\r\n" . ('y' x 40));
    $r = eval { $conn->read_response(timeout => 20) };
    ok $r && $r->{status} =~ /^(400|408)$/, 'a body that stalls: ' . ($r ? $r->{status} : 'none')
        . sprintf(' after %.1f s', time - $t0);
    ok wait_log($mark, qr/AH01382|cannot read the message body/), '... logged';
    my $info1 = channel_info($chan);
    is $info1->{messages}, $info0->{messages}, '... nothing of either was stored';
    is $s->next_frame(0.5), undef, '... nor delivered';
    $s->close;
    serving('bodies');
}

# --- SockJS payloads --------------------------------------------------------
{
    my $sid = new_session();
    is http(POST => sjs_path('/sock-exec', $sid, 'xhr'))->{body}, "o\n", 'a session';
    refused(POST => sjs_path('/sock-exec', $sid, 'xhr_send'), 500, 'not a JSON array of strings',
            body => 'hello');
    refused(POST => sjs_path('/sock-exec', $sid, 'xhr_send'), 500, 'not a JSON array of strings',
            body => '[' x 100_000 . ']' x 100_000);
    refused(POST => sjs_path('/sock-exec', $sid, 'xhr_send'), 500, 'not a JSON array of strings',
            body => '[{"a":' x 1000 . '1' . '}]' x 1000);
    refused(POST => sjs_path('/sock-exec', $sid, 'xhr_send'), 500, 'not a JSON array of strings',
            body => '["ok", "\ud800 fine", 1]');
    refused(POST => sjs_path('/sock-exec', $sid, 'xhr_send'), 500, 'empty payload', body => '');
    refused(POST => sjs_path('/sock-exec', $sid, 'xhr_send'), 413, 'payload over 1 MiB',
            body => '["' . ('x' x (1 << 20)) . '"]');
    refused(POST => sjs_path('/sock-exec', $sid, 'xhr_send'), 413, 'message over CometMaxMessageSize',
            body => '["' . ('x' x 70_000) . '"]');
    refused(POST => sjs_path('/sock-exec', $sid, 'jsonp_send'), 500, 'empty payload',
            body => 'e=1', headers => ['Content-Type' => 'application/x-www-form-urlencoded']);
    refused(POST => sjs_path('/sock-exec', $sid, 'jsonp_send'), 500, 'not a JSON array of strings',
            body => 'd=%5B%22x', headers => ['Content-Type' => 'application/x-www-form-urlencoded']);
    # none of it reached the program; the session still works
    is http(POST => sjs_path('/sock-exec', $sid, 'xhr_send'), body => '["after"]')->{status}, 204,
        'then a good payload: 204';
    my $got = '';
    my $deadline = time + 10;
    while ($got !~ /echo:after/ && time < $deadline) {
        $got .= http(POST => sjs_path('/sock-exec', $sid, 'xhr'), timeout => 30)->{body};
    }
    like $got, qr/\Aa\["echo:after"\]\n/, '... and only it reaches the program';
    serving('payloads');
}

# --- methods ----------------------------------------------------------------
{
    my $sid = new_session();
    my @cases = (
        [POST => "/comet/$chan", 'GET'],
        [DELETE => '/comet/comet.js', 'GET'],
        [PUT => '/comet/i18n/fr.js', 'GET'],
        [POST => '/comet/i18n.json', 'GET'],
        [PATCH => "/comet-publish/$chan", 'DELETE,GET,POST,PUT'],
        [POST => '/comet-publish/', 'GET'],
        [POST => '/echo', 'GET'],
        [POST => '/echo/info', 'GET,OPTIONS'],
        [POST => '/echo/iframe.html', 'GET'],
        [GET => "/echo/000/$sid/xhr", 'OPTIONS,POST'],
        [GET => "/echo/000/$sid/xhr_send", 'OPTIONS,POST'],
        [GET => "/echo/000/$sid/jsonp_send", 'POST'],
        [POST => "/echo/000/$sid/eventsource", 'GET'],
        [PUT => "/echo/000/$sid/htmlfile", 'GET'],
    );
    for my $c (@cases) {
        my ($m, $path, $allow) = @$c;
        my $res = http($m => $path, ($m =~ /^(POST|PUT|PATCH)$/ ? (body => 'x') : ()));
        my $got = join ',', sort grep { $_ ne 'HEAD' && $_ ne 'TRACE' }
            map { s/\s//gr } split /,/, $res->{headers}{allow} // '';
        is "$res->{status} $got", "405 $allow", "$m $path: 405, Allow: $allow";
        ok access_has(qq("$m $path HTTP/1.1" 405)), '... in the access log';
    }
    serving('methods');
}

# --- a client that sends its headers byte by byte, then stalls ---------------
{
    my $mark = log_mark();
    my $slow = Comet::Test::Conn->new;
    my $req = "GET /comet/$chan HTTP/1.1\r\nHost: " . hostport() . "\r\nX-Slow: ";
    my $t0 = time;
    for my $b (split //, $req) {
        $slow->send_bytes($b);
        sleep 0.05;
    }
    # meanwhile others are served
    my $t1 = time;
    my $res = http(GET => '/comet-publish/');
    ok $res->{status} == 200 && time - $t1 < 2, 'while a client sends byte by byte, others are served';
    # then it stalls: cut after the header timeout (4-8 s here)
    my $r = eval { $slow->read_response(timeout => 20) };
    my $closed = $r ? $r->{status} : ($slow->{eof} ? 'closed' : 'nothing');
    ok $closed eq '408' || $closed eq 'closed', "... it stalls: $closed after "
        . sprintf('%.1f s', time - $t0);
    ok wait_log($mark, qr/AH01382: Request header read timeout/), '... logged (AH01382)';
    serving('slow client');
}

# --- a subscriber that never reads ---------------------------------------------
{
    my $c = new_channel('noread');
    # once the kernel's buffers are full (a few MB on loopback), what the
    # server sends piles up in its queue
    my $lazy = subscribe("/comet-slowreader/$c");
    is $lazy->{status}, 200, 'a subscriber that will never read (CometClientBuffer 256K)';
    my $good = subscribe("/comet-unlimited/$c");
    $good->prelude;
    wait_subscribers($c, 2);
    my $mark = log_mark();
    my $chunk = 'z' x 32768;
    my ($sent, $got, $dropped) = (0, 0, 0);
    my $t0 = time;
    while ($sent < 500 && time - $t0 < 90) {
        my $res = publish($c, sprintf('%06d', $sent) . $chunk, location => '/comet-slow-publish');
        last unless $res->{status} == 201;
        $sent++;
        my ($m) = $good->messages(1, 5);
        $got++ if $m && $m->{type} eq 'p' && substr($m->{data}, 0, 6) eq sprintf('%06d', $sent - 1);
        if (!$dropped && grep { /dropping (?:held )?subscriber .*reads too slowly/ } log_since($mark)) {
            $dropped = $sent;
            last if $sent >= 40;
        }
        last if $dropped && $sent >= $dropped + 20;
    }
    ok $dropped, "the subscriber that does not read is dropped (after $dropped messages of 32K)";
    is $got, $sent, "... the one that reads got all $sent, in order";
    ok wait_subscribers($c, 1), '... the channel counts one subscriber again';
    my ($rest, $eof) = $lazy->rest(10);
    ok $eof, '... its connection was closed (' . length($rest) . ' bytes had reached it)';
    $good->close;
    delete_channel($c);
    serving('slow reader');
}

delete_channel($chan);
