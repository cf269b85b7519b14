# A supervisor that cannot switch to httpd's User and Group (seen with
# Debian's binary and no User line: it died and was started again every
# second, one alert a second, while every session failed silently) says it
# once (CMT00441: what fails, what to set) and is tried again after 1, 2,
# 4... seconds; a SockJS session opened meanwhile is closed at once with
# c[3000,"Go away!"], logged. httpd runs as root of a user namespace where
# only the test user is mapped: User #-1, httpd's default, names no account.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;
use Comet::Private;
use Time::HiRes qw(time sleep);

plan tests => 14, need_module('comet');

my $ns = 'unshare --user --map-root-user';
SKIP: {
    skip 'no unprivileged user namespaces here', 14
        unless `$ns id -u 2>/dev/null` =~ /^0$/m;

    my $srv = Comet::Private->start('supuser', wrap => $ns, conf => <<'EOC');
<Location /chat>
    SetHandler comet-socket
    CometSocketBackend echo
</Location>
EOC
    ok $srv, 'a private server as root of a user namespace, no User line (User #-1)';
    local $Comet::Test::PORT = $srv->port;
    my $t0 = time;

    # the client sees an error, not silence
    my $sid = new_session();
    my $open = http(POST => sjs_path('/chat', $sid, 'xhr'));
    my $next = http(POST => sjs_path('/chat', $sid, 'xhr'));
    is $open->{body} . $next->{body}, "o\nc[3000,\"Go away!\"]\n",
        'a session: o, then c[3000,"Go away!"] (no supervisor to start its backend)';
    ok $srv->wait_log(0, qr/CMT00211: session \Q$sid\E closed: no comet supervisor is running/),
        '... logged: no comet supervisor is running';

    # watch it for 7 s: without back-off, 7 starts and 7 alerts
    sleep 0.1 while time < $t0 + 7;
    my @log = $srv->log_since(0);
    my @said = grep { /CMT00441/ } @log;
    is scalar(@said), 1, 'one CMT00441 line in 7 s' or diag explain \@said;
    like $said[0] // '', qr/\[comet:error\].*CMT00441: the comet supervisor cannot switch to httpd's User #-1 \(uid 4294967295\) and Group \(gid 4294967295\): SockJS sessions are closed at once \(c\[3000\]\) and channel sources do not run\. Set User and Group to an account that exists, e\.g\. User www-data and Group www-data/,
        '... an error: what fails, what it costs, what to set';
    like $said[0] // '', qr/Trying again in 1 s, then less and less often while it fails \(up to every 5 minutes\)/,
        '... and when it is tried again';
    my @errors = grep { /\[comet:(?:error|crit|alert|emerg)\]/ && !/CMT00211/ } @log;
    is scalar(@errors), 1, 'no other error line of the module (sessions\' aside)'
        or diag explain \@errors;
    my @delays = map { /to begin in (\d+) s/ ? $1 : () } grep { /CMT00203/ } @log;
    is "@delays[0 .. 1]", '1 2', 'the next starts wait 1 s, then 2 s' or diag "@delays";
    my @tries = grep { /CMT00201/ } @log;
    cmp_ok scalar(@tries), '>=', 2, scalar(@tries) . ' tries to switch user in 7 s: it is tried again';
    cmp_ok scalar(@tries), '<=', 4, '... not every second (at most 4: at 0, ~1, ~3, ~7 s)';
    my @alerts = grep { /AH02155/ } @log;
    my $kids = () = $srv->workers;
    cmp_ok scalar(@alerts), '<=', 4 + $kids + 2, scalar(@alerts) . " of unixd's alert lines (its own, per process) in 7 s";

    # a restart tries again at once (the User may have been fixed)
    my $mark = $srv->log_mark;
    ok $srv->graceful, 'graceful restart';
    ok $srv->wait_log($mark, qr/CMT00203: comet supervisor started \(pid \d+\)$/, 10),
        '... a supervisor starts at once, without waiting';

    my @sups = $srv->supervisors;
    $srv->stop;
    ok !grep({ Comet::Test::pid_alive($_) } @sups),
        'httpd stopped: no supervisor left, waiting or not';
}
