# The server runs the module just built, with the store and the MPM expected.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;

plan tests => 12, need_module('comet');

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
isnt $st->{this_process}{pid}, getppid() && 0, '... a child';

# The MPM the server was configured for.
my $mpm = Apache::Test::config()->{server}{mpm} || '';
my $want = $ENV{COMET_MPM} || '';
ok !$want || $mpm eq $want, "MPM: $mpm" . ($want ? " (asked: $want)" : '');

# No trace of an installed copy: the module comes from the build tree.
open my $fh, '<', Apache::Test::config()->{vars}{t_conf_file} or die $!;
my ($load) = grep { /^\s*LoadModule\s+comet_module/ } <$fh>;
like $load, qr{/build/[^/]+/\.libs/mod_comet\.so}, 'LoadModule of the build tree';
