# X-Content-Type-Options: nosniff on every answer the module gives: streams
# of every transport, publishers' JSON, the browser classes, string tables,
# SockJS (greeting, info, iframe, every receiver, sends, preflights) and the
# errors it makes (400, 403, 404, 405, 413, 500, 503), once each; JSONP
# answers start with /**/ (no content sniffing, no Flash-era "Rosetta"
# tricks with a chosen callback).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;

my $chan = new_channel('hdr');
my $sid = new_session();
my $sid2 = new_session();
my @get = (
    # subscribers and assets
    ["/comet/$chan", 200],
    ["/comet/$chan?transport=sse", 200],
    ["/comet/$chan?transport=stream", 200],
    ["/comet/$chan?transport=longpoll", 200],
    ['/comet/comet.js', 200],
    ['/comet/socket.js', 200],
    ['/comet/i18n/fr.js', 200],
    ['/comet/i18n.json', 200],
    ['/comet/i18n/xx.js', 404],
    ['/comet/', 404],
    ['/comet/a.b', 400],
    ["/comet/$chan?cb=1x", 400],
    ["/comet-sse-only/$chan?transport=stream", 403],
    # publishers
    ['/comet-publish/', 200],
    ["/comet-publish/" . new_channel('never'), 404],
    ['/comet-publish/a.b', 400],
    # SockJS
    ['/echo', 200],
    ['/echo/info', 200],
    ['/echo/iframe.html', 200],
    ["/echo/000/$sid/eventsource", 200],
    ["/echo/000/$sid2/htmlfile?c=cb", 200],
    ["/echo/000/" . new_session() . "/jsonp?c=cb", 200],
    ["/echo/000/" . new_session() . "/jsonp", 500],
    ['/echo/000/a.b/xhr', 404],
    ['/echo/000/x/websocket', 400],
    ["/echo/000/$sid/xhr", 405],
    ['/sock-auth/info', 401],
);
my @other = (
    [POST => "/comet-publish/$chan", 201, 'x'],
    [POST => "/comet-small-publish/$chan", 413, 'x' x 2000],
    [PATCH => "/comet-publish/$chan", 405, 'x'],
    [POST => "/comet/$chan", 405, 'x'],
    [DELETE => "/comet-publish/$chan", 200, undef],
    [POST => '/echo/000/' . new_session() . '/xhr', 200, undef],
    [POST => "/echo/000/$sid/xhr_send", 204, '["x"]'],
    [POST => "/echo/000/$sid/xhr_send", 500, 'nope'],
    [POST => '/echo/000/' . new_session() . '/xhr_send', 404, '["x"]'],
    [OPTIONS => "/echo/000/$sid/xhr", 204, undef],
    [OPTIONS => '/echo/info', 204, undef],
);

plan tests => 2 * (@get + @other) + 6, need_module('comet');

sub nosniff_once {
    my ($res, $what) = @_;
    my @h = grep { lc $_->[0] eq 'x-content-type-options' } @{ $res->{header_list} };
    ok @h == 1 && $h[0][1] eq 'nosniff', "$what: X-Content-Type-Options: nosniff, once"
        or diag explain [map { $_->[1] } @h];
}

for my $g (@get) {
    my ($path, $want) = @$g;
    my $s = subscribe($path, timeout => 5);
    is $s->{status}, $want, "GET $path: $want";
    nosniff_once($s, '...');
    $s->close;
}
for my $o (@other) {
    my ($m, $path, $want, $body) = @$o;
    my $res = http($m => $path, (defined $body ? (body => $body) : ()));
    is $res->{status}, $want, "$m $path: $want";
    nosniff_once($res, '...');
}

# Require denied (403) and a full store (503) come from httpd's and the
# module's own paths: covered by t/35-access.t and t/36-caps.t.

# JSONP: every answer starts with /**/
{
    my $s = new_session();
    my $r = http(GET => "/echo/000/$s/jsonp?c=my.cb");
    is $r->{body}, qq(/**/my.cb("o");\r\n), 'jsonp: the open frame starts with /**/';
    is $r->{headers}{'content-type'}, 'application/javascript; charset=UTF-8', '... as JavaScript';
    http(POST => "/echo/000/$s/jsonp_send", body => 'd=' . '%5B%22hi%22%5D',
         headers => ['Content-Type' => 'application/x-www-form-urlencoded']);
    $r = http(GET => "/echo/000/$s/jsonp?c=my.cb");
    like $r->{body}, qr{\A/\*\*/my\.cb\("a\[\\"hi\\"\]"\);\r\n\z}, 'jsonp: a message frame starts with /**/';
    nosniff_once($r, '...');
    # heartbeats and close frames go the same way (one function makes them all)
    my $c = new_session();
    $r = http(GET => "/close/000/$c/jsonp?c=cb");
    is $r->{body}, qq(/**/cb("o");\r\n), 'jsonp on /close: o';
    $r = http(GET => "/close/000/$c/jsonp?c=cb");
    like $r->{body}, qr{\A/\*\*/cb\("c\[3000}, '... then the close frame, starting with /**/ too';
}
