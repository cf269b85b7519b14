# The server runs the module just built, with the store and the MPM expected.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;

plan tests => 16, need_module('comet');

my $res = http(GET => '/comet-publish/');
is $res->{status}, 200, 'GET /comet-publish/: 200';
like $res->{headers}{'content-type'}, qr{^application/json}, '... JSON';
my $st = $res->{json};
ok $st, '... that parses' or diag $res->{body};
is $st->{store}, 'shm', 'shared-memory store';
like $st->{version}, qr/^\d+\.\d+/, "version $st->{version}";
cmp_ok $st->{memory_max}, '>', 3 * 1024 * 1024, 'CometSharedMemory 4M: about 4M of message memory';
cmp_ok $st->{memory_max}, '<=', 4 * 1024 * 1024, '... not more';
cmp_ok $st->{processes}, '>=', 2, "$st->{processes} children hold a subscriber slot";
like $st->{this_process}{pid}, qr/^\d+$/, 'this_process.pid';
{
    open my $pf, '<', Apache::Test::config()->{vars}{t_pid_file} or die $!;
    chomp(my $parent = <$pf>);
    isnt $st->{this_process}{pid}, $parent, "... a child, not the parent ($parent)";
}

# The MPM the server was configured for.
my $mpm = Apache::Test::config()->{server}{mpm} || '';
my $want = $ENV{COMET_MPM} || '';
ok !$want || $mpm eq $want, "MPM: $mpm" . ($want ? " (asked: $want)" : '');

# No trace of an installed copy: the module comes from the build tree.
open my $fh, '<', Apache::Test::config()->{vars}{t_conf_file} or die $!;
my ($load) = grep { /^\s*LoadModule\s+comet_module/ } <$fh>;
like $load, qr{/build/[^/]+/\.libs/mod_comet\.so}, 'LoadModule of the build tree';

# Static files from t/htdocs, where the browser tests' pages live.
$res = http(GET => '/index.html');
is $res->{status}, 200, 'GET /index.html (t/htdocs): 200';
like $res->{headers}{'content-type'}, qr{^text/html}, '... text/html';
{
    my $dir = Apache::Test::config()->{vars}{documentroot};
    like $dir, qr{/t/htdocs$}, "DocumentRoot $dir";
    my $file = "$dir/comet-test-$$.js";
    open my $js, '>', $file or die "$file: $!";
    print $js "var x = 1;\n";
    close $js;
    $res = http(GET => "/comet-test-$$.js");
    unlink $file;
    like $res->{headers}{'content-type'} // '', qr{^application/javascript}, '.js: application/javascript';
}
