# The browser class served by the module: GET <location>/comet.js.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;

plan tests => 22, need_module('comet');

my $js = do {
    open my $fh, '<:raw', "$FindBin::Bin/../js/comet.js" or die "js/comet.js: $!";
    local $/;
    <$fh>;
};

my $res = http(GET => '/comet/comet.js');
is $res->{status}, 200, 'GET /comet/comet.js: 200';
is $res->{headers}{'content-type'}, 'application/javascript; charset=utf-8',
    '... application/javascript; charset=utf-8';
is $res->{headers}{'content-length'}, length $res->{body}, '... Content-Length';
is $res->{headers}{'x-content-type-options'}, 'nosniff', '... nosniff';
is $res->{headers}{'cache-control'}, 'no-cache', '... Cache-Control: no-cache';
my $etag = $res->{headers}{etag};
like $etag, qr/^"[^"]+"$/, "... ETag $etag";
like $res->{body}, qr/classId: "Pxxo_Widget_Comet"/, '... the default class id';
like $res->{body}, qr/heartbeat: 25000\b/, '... the heartbeat of the location';
ok index($res->{body}, $js) >= 0, '... js/comet.js, byte for byte';
like $res->{body}, qr/\A\/\* mod_comet [^*]+ \*\/\n\(function \(global\) \{\n/, '... wrapped in a function';
like $res->{body}, qr/\n\}\)\(this\);\n\z/, '... called at once';
{
    like $res->{body}, qr/base: "\/comet"/, '... the base of its location';
}

$res = http(GET => '/comet/comet.js', headers => ['If-None-Match' => $etag]);
is $res->{status}, 304, 'If-None-Match: the ETag: 304';
$res = http(HEAD => '/comet/comet.js');
is $res->{status}, 200, 'HEAD: 200';
is $res->{body}, '', '... no body';
$res = http(POST => '/comet/comet.js', body => 'x');
is $res->{status}, 405, 'POST: 405';

# CometClassID
$res = http(GET => '/comet-classid/comet.js');
is $res->{status}, 200, 'CometClassID My_Comet: GET comet.js: 200';
like $res->{body}, qr/classId: "My_Comet"/, '... classId: "My_Comet"';
unlike $res->{body}, qr/classId: "Pxxo_Widget_Comet"/, '... not the default';
like $res->{body}, qr/base: "\/comet-classid"/, '... base: "/comet-classid"';
isnt $res->{headers}{etag}, $etag, '... another ETag';
my $s = subscribe('/comet-classid/' . new_channel('classid'));
like $s->prelude // '', qr/try \{ f = parent\.My_Comet\.dispatch; \}/,
    '... streams call My_Comet.dispatch by default';
$s->close;
