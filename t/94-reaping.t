# Apache's process management and streams: a child the MPM stops (idle
# children reaped past MaxSpareThreads / MaxSpareServers, or
# MaxConnectionsPerChild reached) ends its streams, but for the plain HTTP
# ones under event and worker, which move (t/73-move.t). At start-up the module
# says so once, in one warning (CMT00440) naming the settings and what to
# set; a configuration where no child is reaped gets none. Private servers
# of the test server's MPM.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;
use Comet::Private;

plan tests => 14, need_module('comet');

my $mpm = Comet::Private::mpm();

# Settings where no child is stopped: spare capacity as large as
# MaxRequestWorkers, children kept forever. (Comet::Private's own, and
# worker's, which it leaves to httpd's defaults.)
my $safe = <<'EOC';
<IfModule mpm_worker_module>
    ServerLimit 4
    StartServers 2
    ThreadsPerChild 10
    ThreadLimit 10
    MinSpareThreads 20
    MaxSpareThreads 40
    MaxRequestWorkers 40
    MaxConnectionsPerChild 0
</IfModule>
EOC

sub warnings_of {
    my ($srv, $mark) = @_;
    return grep { /CMT00440/ } $srv->log_since($mark // 0);
}

# --- a configuration where children are reaped --------------------------------
{
    my $reaping = $safe . <<'EOC';
<IfModule mpm_event_module>
    MaxSpareThreads 30
    MaxConnectionsPerChild 5000
</IfModule>
<IfModule mpm_worker_module>
    MaxSpareThreads 30
    MaxConnectionsPerChild 5000
</IfModule>
<IfModule mpm_prefork_module>
    MaxSpareServers 8
    MaxConnectionsPerChild 5000
</IfModule>
EOC
    my $srv = Comet::Private->start('reap', conf => $reaping);
    ok $srv, "a private $mpm server with MaxConnectionsPerChild 5000 and spare capacity below MaxRequestWorkers";
    my @w = warnings_of($srv);
    is scalar(@w), 1, 'one CMT00440 warning at start-up' or diag explain \@w;
    my $w = $w[0] // '';
    like $w, qr/\[comet:warn\]/, '... at level warn';
    like $w, $mpm eq 'prefork'
        ? qr/CMT00440: prefork MPM: a child holding streams can be stopped, which ends its streams \(their clients reconnect\)/
        : qr/CMT00440: \Q$mpm\E MPM: a child holding streams can be stopped, which ends its HTTPS, WebSocket and SockJS streams \(their clients reconnect; plain HTTP streams move to live children\)/,
        '... saying what happens';
    if ($mpm eq 'prefork') {
        like $w, qr/MaxSpareServers 8 is below MaxRequestWorkers 16, so idle children are stopped/,
            '... naming MaxSpareServers and MaxRequestWorkers, with their values';
        like $w, qr/Set MaxSpareServers 16 and MaxConnectionsPerChild 0 \(README: Tuning\)/,
            '... and what to set';
    }
    else {
        like $w, qr/MaxSpareThreads 30 is below MaxRequestWorkers 40, so idle children are stopped/,
            '... naming MaxSpareThreads and MaxRequestWorkers, with their values';
        like $w, qr/Set MaxSpareThreads 40 and MaxConnectionsPerChild 0 \(README: Tuning\)/,
            '... and what to set';
    }
    like $w, qr/MaxConnectionsPerChild 5000 stops a child after 5000 connections/,
        '... naming MaxConnectionsPerChild';

    # a graceful restart with the same settings says nothing new
    my $mark = $srv->log_mark;
    ok $srv->graceful, 'graceful restart, same settings';
    ok $srv->wait_log($mark, qr/AH00489|resuming normal operations/, 10), '... done';
    is scalar(warnings_of($srv, $mark)), 0, '... no second warning';
    $srv->stop;
}

# --- only MaxConnectionsPerChild ------------------------------------------------
{
    my $srv = Comet::Private->start('reap-conns', conf => $safe . "MaxConnectionsPerChild 100\n");
    my @w = warnings_of($srv);
    is scalar(@w), 1, 'spare capacity right, MaxConnectionsPerChild 100: one warning';
    like $w[0] // '', qr/: MaxConnectionsPerChild 100 stops a child after 100 connections\. Set MaxConnectionsPerChild 0 \(README: Tuning\)$/,
        '... about MaxConnectionsPerChild only';
    $srv->stop;
}

# --- a configuration where no child is reaped ------------------------------------
{
    my $srv = Comet::Private->start('noreap', conf => $safe);
    ok $srv, "a private $mpm server where no child is reaped";
    is scalar(warnings_of($srv)), 0, '... no CMT00440 warning';
    $srv->stop;
}
