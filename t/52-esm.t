# The browser classes as ES modules (GET <location>/comet.mjs, socket.mjs)
# and their TypeScript declarations (comet.d.ts, socket.d.ts): the same
# files of js/ as comet.js and socket.js, the location's settings and class
# names, an export; valid modules by node's own parser when node is there.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Temp qw(tempdir);

use Apache::Test qw(-withtestmore);
use Comet::Test;

plan tests => 40, need_module('comet');

sub slurp {
    my ($path) = @_;
    open my $fh, '<:raw', "$FindBin::Bin/../$path" or die "$path: $!";
    local $/;
    return <$fh>;
}

my %src = map { $_ => slurp("js/$_") } qw(comet.js socket.js comet.d.ts socket.d.ts);
my $node = grep { -x "$_/node" } split /:/, $ENV{PATH} // '';
my $tmp = tempdir(CLEANUP => 1);

# node --check: the text parses as an ES module ('' when it does)
sub module_error {
    my ($text) = @_;
    my $file = "$tmp/m" . int(rand(1e9)) . '.mjs';
    open my $fh, '>:raw', $file or die "$file: $!";
    print $fh $text;
    close $fh;
    my $out = `node --check '$file' 2>&1`;
    return $? ? $out || "exit $?" : '';
}

my $export = sub {
    my ($name) = @_;
    return "\n})(globalThis);\nconst $name = globalThis.$name;\nexport { $name, $name as default };\n";
};

# --- comet.mjs ---------------------------------------------------------------
my $res = http(GET => '/comet/comet.mjs');
is $res->{status}, 200, 'GET /comet/comet.mjs: 200';
is $res->{headers}{'content-type'}, 'text/javascript; charset=utf-8', '... text/javascript; charset=utf-8';
is $res->{headers}{'content-length'}, length $res->{body}, '... Content-Length';
is $res->{headers}{'x-content-type-options'}, 'nosniff', '... nosniff';
is $res->{headers}{'cache-control'}, 'no-cache', '... Cache-Control: no-cache';
is $res->{headers}{'x-typescript-types'}, 'comet.d.ts', '... X-TypeScript-Types: comet.d.ts (Deno)';
like $res->{headers}{vary} // '', qr/Accept-Language/, '... Vary: Accept-Language (it carries the strings)';
ok index($res->{body}, $src{'comet.js'}) >= 0, '... js/comet.js, byte for byte';
like $res->{body}, qr/\A\/\* mod_comet [^*]+ \*\/\n\(function \(global\) \{\nvar COMET = \{ version: /,
    '... wrapped in a function, with the settings';
like $res->{body}, qr/classId: "Pxxo_Widget_Comet", base: "\/comet", heartbeat: 25000, .*lang: "en", .*, src: import\.meta\.url \};\n/,
    '... the location\'s settings, and the module\'s own URL';
is substr($res->{body}, -length $export->('Pxxo_Widget_Comet')), $export->('Pxxo_Widget_Comet'),
    '... called with globalThis, the class exported by its name and as default';
SKIP: {
    skip 'no node', 1 unless $node;
    is module_error($res->{body}), '', '... an ES module, node --check says';
}
my $etag = $res->{headers}{etag};
my $classic = http(GET => '/comet/comet.js');
like $etag, qr/^"[^"]+"$/, "... ETag $etag";
isnt $etag, $classic->{headers}{etag}, '... not comet.js\'s';
is $classic->{headers}{'content-type'}, 'application/javascript; charset=utf-8',
    'comet.js stays a classic script, as it was';
is substr($classic->{body}, -11), "\n})(this);\n", '... without export';

is http(GET => '/comet/comet.mjs', headers => ['If-None-Match' => $etag])->{status}, 304,
    'If-None-Match: the ETag: 304';
$res = http(HEAD => '/comet/comet.mjs');
is "$res->{status} [$res->{body}]", '200 []', 'HEAD: 200, no body';
is http(POST => '/comet/comet.mjs', body => 'x')->{status}, 405, 'POST: 405';
like http(GET => '/comet/comet.mjs', headers => ['Accept-Language' => 'fr'])->{body},
    qr/lang: "fr", strings: \{[^\n]*"CONNECTED": "Connect\xc3\xa9"/, 'Accept-Language fr: the French table';

# --- socket.mjs --------------------------------------------------------------
$res = http(GET => '/comet/socket.mjs');
is "$res->{status} $res->{headers}{'content-type'}", '200 text/javascript; charset=utf-8',
    'GET /comet/socket.mjs: 200, text/javascript';
ok index($res->{body}, $src{'socket.js'}) >= 0, '... js/socket.js, byte for byte';
is substr($res->{body}, -length $export->('Pxxo_Widget_Socket')), $export->('Pxxo_Widget_Socket'),
    '... exports Pxxo_Widget_Socket';
is $res->{headers}{'x-typescript-types'}, 'socket.d.ts', '... X-TypeScript-Types: socket.d.ts';
SKIP: {
    skip 'no node', 1 unless $node;
    is module_error($res->{body}), '', '... an ES module, node --check says';
}

# --- the declarations --------------------------------------------------------
for my $f (qw(comet.d.ts socket.d.ts)) {
    $res = http(GET => "/comet/$f");
    is "$res->{status} $res->{headers}{'content-type'}", '200 application/typescript; charset=utf-8',
        "GET /comet/$f: 200, application/typescript";
    ok $res->{body} eq $src{$f}, "... js/$f, byte for byte (the default class names)";
}
is http(POST => '/comet/comet.d.ts', body => 'x')->{status}, 405, 'POST comet.d.ts: 405';

# --- CometClassID My_Comet ---------------------------------------------------
$res = http(GET => '/comet-classid/comet.mjs');
is substr($res->{body}, -length $export->('My_Comet')), $export->('My_Comet'),
    'CometClassID My_Comet: comet.mjs exports My_Comet';
like $res->{body}, qr/classId: "My_Comet", base: "\/comet-classid"/, '... with its settings';
$res = http(GET => '/comet-classid/socket.mjs');
is substr($res->{body}, -length $export->('My_Socket')), $export->('My_Socket'),
    '... socket.mjs exports My_Socket';
SKIP: {
    skip 'no node', 1 unless $node;
    is module_error($res->{body}), '', '... an ES module, node --check says';
}
$res = http(GET => '/comet-classid/comet.d.ts');
like $res->{body}, qr/^export declare class My_Comet \{$/m, '... comet.d.ts declares My_Comet';
like $res->{body}, qr/^export default My_Comet;$/m, '... as the default export';
unlike $res->{body}, qr/Pxxo_Widget/, '... and never the default name';
(my $want = $src{'comet.d.ts'}) =~ s/Pxxo_Widget_Comet/My_Comet/g;
ok $res->{body} eq $want, '... js/comet.d.ts with nothing else changed';
$res = http(GET => '/comet-classid/socket.d.ts');
like $res->{body}, qr/^export declare class My_Socket \{$/m, '... socket.d.ts declares My_Socket';
unlike $res->{body}, qr/Pxxo_Widget/, '... and never the default name';
