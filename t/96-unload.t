# A graceful restart whose configuration no longer loads mod_comet (an
# administrator's a2dismod comet, then a reload): its supervisor, kept
# across restarts, ends by itself with its programs, since no generation
# takes it on (COMET_SUP_ADOPT_WAIT, 10 s); one that does keeps it.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;
use Comet::Private;
use Time::HiRes qw(time sleep);

plan tests => 8, need_module('comet');

my $state = Apache::Test::config()->{vars}{t_logs} . '/unload-src.state';
my $t = Apache::Test::config()->{vars}{t_dir};
my $srv = Comet::Private->start('unload', conf =>
    "CometChannelSource unload-src exec:$t/bin/source unload-src $state --every 3600\n");
ok $srv, 'a private server with a channel source';
my ($sup) = $srv->supervisors;
ok $sup && Comet::Test::pid_alive($sup), 'its supervisor runs (pid ' . ($sup // '?') . ')';
my $src;
ok wait_until(sub {
        ($src) = grep { $_->{cmdline} =~ /\bunload-src\b/ } Comet::Test::proc_children($sup // 0);
        $src }, 10), 'and its source (pid ' . ($src ? $src->{pid} : '?') . ')';

# a graceful restart that keeps the module: the same supervisor, still
# there after the wait
ok $srv->graceful, 'graceful restart, mod_comet still loaded';
sleep 12;
my ($after) = $srv->supervisors;
ok $after && $after == $sup && Comet::Test::pid_alive($sup)
   && (grep { $_->{cmdline} =~ /\bunload-src\b/ } Comet::Test::proc_children($sup)),
    '... 12 s later the same supervisor and source run';

# the module left out
my $mark = $srv->log_mark;
$srv->write_conf(without_comet => 1);
ok $srv->graceful, 'graceful restart without mod_comet (as after a2dismod comet)';
my $gone = wait_until(sub {
    my ($p) = grep { $_->{pid} == $sup && $_->{state} ne 'Z' } $srv->children;
    !$p }, 25);
ok $gone, '... its supervisor ends by itself (within 25 s)';
ok $src && wait_until(sub { !Comet::Test::pid_alive($src->{pid}) }, 5),
    '... and its channel source with it';
$srv->stop;
