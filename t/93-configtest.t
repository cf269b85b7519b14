# Mistakes caught when the configuration is read: `httpd -t` (apachectl
# configtest) on small private configurations fails, exit status 1, naming
# the file, the line and what to give instead: a bad size or duration, an
# unknown backend, a channel a source cannot use (httpd's own "Syntax error
# on line N of FILE"), a program that does not exist or that the user httpd
# runs programs as may not run (CMT00430: "FILE line N"), a User that httpd
# started as root cannot become (CMT00431, as root of a user namespace).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;
use Comet::Private;

plan tests => 61, need_module('comet');

my $t = Comet::Private::t_dir();

sub line_of {
    my ($conf, $re) = @_;
    open my $fh, '<', $conf or die "$conf: $!";
    while (<$fh>) {
        return $. if $_ =~ $re;
    }
    return -1;
}

# httpd -t on `conf`: exit status 1 and, for a directive's own error, httpd's
# "Syntax error on line N of FILE" with N the directive's line.
sub refused {
    my ($name, $conf, $re, $msg, $what) = @_;
    my $r = Comet::Private->configtest($name, conf => $conf);
    is $r->{status}, 1, "$what: httpd -t fails (exit status 1)" or diag $r->{out};
    my $line = line_of($r->{conf}, $re);
    like $r->{out}, qr/Syntax error on line \Q$line\E of \Q$r->{conf}\E:/,
        "... at the file and line of the directive ($line)";
    like $r->{out}, $msg, '... saying what to give' or diag $r->{out};
    return $r;
}

# --- sizes, durations, numbers -----------------------------------------------
refused('ct-size', "CometClientBuffer 10Q\n", qr/^CometClientBuffer 10Q/,
        qr/CometClientBuffer: '10Q' is not a size it takes: give one such as 64K or 1M, from 4096 to \d+ bytes/,
        'a bad size');
refused('ct-small', "<Location /comet>\n    CometClientBuffer 1K\n</Location>\n",
        qr/CometClientBuffer 1K/,
        qr/CometClientBuffer: '1K' is not a size it takes: give one such as 64K or 1M, from 4096/,
        'a size below the least');
refused('ct-dur', "CometHeartbeat soon\n", qr/^CometHeartbeat soon/,
        qr/CometHeartbeat: 'soon' is not a duration it takes: give one such as 30, 30s, 500ms, 5mi or 1h \(0: none\)/,
        'a bad duration');
refused('ct-dur0', "CometSocketDisconnectDelay 0\n", qr/^CometSocketDisconnectDelay 0/,
        qr/CometSocketDisconnectDelay: '0' is not a duration it takes: .* \(more than 0\)/,
        'a duration that must not be 0');
refused('ct-redis', "CometRedis http://127.0.0.1:6379\n", qr/^CometRedis http/,
        qr{CometRedis: .*\(give redis://\[user:password\@\]host\[:port\]\[/db\], unix:/path/to/redis.sock or sentinel://host:port},
        'a Redis URL of another scheme');
refused('ct-redis-port', "CometRedis redis://127.0.0.1:99999\n", qr/^CometRedis redis/,
        qr{CometRedis: .*port}i, 'a Redis URL with a bad port');
refused('ct-count', "CometMessageBuffer many\n", qr/^CometMessageBuffer many/,
        qr/CometMessageBuffer: 'many' is not a number it takes: give one from 1 to 1000000/,
        'a bad count');

# --- backends ----------------------------------------------------------------
refused('ct-scheme', "<Location /chat>\n    SetHandler comet-socket\n"
                     . "    CometSocketBackend http://127.0.0.1:9000/chat\n</Location>\n",
        qr/CometSocketBackend http:/,
        qr/CometSocketBackend: 'http:\/\/127\.0\.0\.1:9000\/chat' is not a backend: give echo, close, exec:<program> \[args\], unix:<absolute path> or tcp:<host>:<port>/,
        'an unknown backend scheme');
refused('ct-port', "<Location /chat>\n    SetHandler comet-socket\n"
                   . "    CometSocketBackend tcp:127.0.0.1:99999\n</Location>\n",
        qr/CometSocketBackend tcp:/,
        qr/CometSocketBackend: tcp:127\.0\.0\.1:99999: give tcp:<host>:<port>, a host and a port from 1 to 65535/,
        'a TCP backend without a valid port');
refused('ct-relative', "<Location /chat>\n    SetHandler comet-socket\n"
                       . "    CometSocketBackend exec:chat-backend --fast\n</Location>\n",
        qr/CometSocketBackend exec:/,
        qr/CometSocketBackend: exec:chat-backend: give the program's absolute path, e\.g\. exec:\/usr\/local\/bin\/chat-backend/,
        'a program without its path');
# a route with a dot: mod_proxy_balancer would read the route after it
refused('ct-route', "CometSocketRoute web.1\n", qr/^CometSocketRoute web\.1/,
        qr/CometSocketRoute: 'web\.1' is not a route: give the route= of this server's BalancerMember, 1 to 128 of A-Z a-z 0-9 _ - \(e\.g\. web1\)/,
        'a balancer route with a dot');

# --- channel sources ---------------------------------------------------------
refused('ct-chan', "CometChannelSource news.fr exec:$t/bin/source\n",
        qr/^CometChannelSource news\.fr/,
        qr/CometChannelSource: 'news\.fr' is not a channel a source can publish to: give a channel id first, 1 to 128 of A-Z a-z 0-9 _ - \(e\.g\. news_fr\)/,
        'a channel a source cannot use');
refused('ct-args', "CometChannelSource many exec:$t/bin/source" . (' x' x 40) . "\n",
        qr/^CometChannelSource many/,
        qr/CometChannelSource many: at most 32 words \(the program and its arguments\), not 41/,
        'a source with more arguments than the supervisor takes');

# --- programs, against the user that runs them --------------------------------
{
    my $dir = "$t/logs/private-ct-prog-files";
    system 'rm', '-rf', $dir;
    mkdir $dir or die "$dir: $!";
    open my $fh, '>', "$dir/noexec" or die;
    print $fh "#!/bin/sh\necho\n";
    close $fh;
    chmod 0644, "$dir/noexec";
    my $conf = <<"EOC";
<Location /chat>
    SetHandler comet-socket
    CometSocketBackend exec:$t/bin/no-such-program --fast
</Location>
<Location /chat2>
    SetHandler comet-socket
    CometSocketBackend exec:$dir/noexec
</Location>
<Location /chat3>
    SetHandler comet-socket
    CometSocketBackend exec:$dir
</Location>
<Location /chat4>
    SetHandler comet-socket
    CometSocketBackend exec:$t/bin/lines
</Location>
CometChannelSource clock ondemand exec:$dir/clock --every 1s
EOC
    my $r = Comet::Private->configtest('ct-prog', conf => $conf);
    my $c = $r->{conf};
    is $r->{status}, 1, 'programs that cannot run: httpd -t fails (exit status 1)' or diag $r->{out};
    my $l = line_of($c, qr/no-such-program/);
    like $r->{out}, qr/^CMT00430: \Q$c\E line $l: CometSocketBackend exec:\Q$t\E\/bin\/no-such-program: \Q$t\E\/bin\/no-such-program does not exist: give the absolute path of an installed program$/m,
        "a program that does not exist: the file, line $l, what to give";
    $l = line_of($c, qr/noexec/);
    my $me = getpwuid($>);
    like $r->{out}, qr/^CMT00430: \Q$c\E line $l: CometSocketBackend exec:\Q$dir\E\/noexec: the user httpd runs as, \Q$me\E \(uid $>, group [^)]*\) may not run \Q$dir\E\/noexec: give it execute permission for them \(e\.g\. chmod 755 \Q$dir\E\/noexec\)/m,
        "a file without execute permission: the file, line $l, who may not run it, what to do";
    $l = line_of($c, qr/exec:\Q$dir\E$/);
    like $r->{out}, qr/^CMT00430: \Q$c\E line $l: CometSocketBackend exec:\Q$dir\E: \Q$dir\E is a directory: give the program inside it$/m,
        "a directory: line $l";
    $l = line_of($c, qr/CometChannelSource clock/);
    like $r->{out}, qr/^CMT00430: \Q$c\E line $l: CometChannelSource exec:\Q$dir\E\/clock: \Q$dir\E\/clock does not exist/m,
        "a channel source's program: line $l";
    unlike $r->{out}, qr/bin\/lines/, 'the program that can run is not named';
    is scalar(() = $r->{out} =~ /CMT00430/g), 4, 'one line per program that cannot run';
    unlike $r->{out}, qr/Syntax OK/, 'no "Syntax OK"';

    # the same made right
    chmod 0755, "$dir/noexec";
    $conf =~ s/no-such-program/lines/;
    $conf =~ s/exec:\Q$dir\E\n/exec:$dir\/noexec\n/;
    $conf =~ s/\Q$dir\E\/clock/$t\/bin\/source/;
    $r = Comet::Private->configtest('ct-prog', conf => $conf);
    is $r->{status}, 0, 'the same, each program made runnable: httpd -t passes' or diag $r->{out};
    like $r->{out}, qr/Syntax OK/, '... "Syntax OK"';
    unlike $r->{out}, qr/CMT00430/, '... and no CMT00430';

    # a directory above the program that the user may not search
    mkdir "$dir/locked";
    system 'cp', "$t/bin/noread", "$dir/locked/prog";
    chmod 0700, "$dir/locked/prog";
    chmod 0600, "$dir/locked";
    $r = Comet::Private->configtest('ct-prog', conf => "CometChannelSource tick exec:$dir/locked/prog\n");
    chmod 0700, "$dir/locked";
    $l = line_of($r->{conf}, qr/CometChannelSource tick/);
    SKIP: {
        skip 'run as root: every directory is searchable', 2 if $> == 0;
        is $r->{status}, 1, 'a program in a directory its user may not search: httpd -t fails';
        like $r->{out}, qr/^CMT00430: \Q$r->{conf}\E line $l: CometChannelSource exec:\Q$dir\E\/locked\/prog: the user httpd runs as, \Q$me\E .* may not run \Q$dir\E\/locked\/prog: .* let them search every directory above it/m,
            "... named, line $l" or diag $r->{out};
    }
}

# --- the configuration as the test server has it passes ------------------------
{
    my $r = Comet::Private->configtest('ct-good', conf => <<"EOC");
CometChannelSource tick exec:$t/bin/source tick $t/logs/private-ct-good/tick.state --every 1
<Location /chat>
    SetHandler comet-socket
    CometSocketBackend tcp:127.0.0.1:9000
</Location>
<Location /chat2>
    SetHandler comet-socket
    CometSocketBackend unix:$t/logs/echo.sock
</Location>
EOC
    is $r->{status}, 0, 'a right configuration with programs and servers: httpd -t passes'
        or diag $r->{out};
    is $r->{out}, "Syntax OK\n", '... saying only "Syntax OK"';
}

# --- httpd started as root, with a User it cannot become ----------------------------
# As root of a user namespace where only the test user is mapped, httpd is
# "root" and User #-1 (httpd's default, Debian's binary without a User line)
# names no account: the programs cannot be checked nor run.
SKIP: {
    my $ns = 'unshare --user --map-root-user';
    skip 'no unprivileged user namespaces here', 7
        unless `$ns id -u 2>/dev/null` =~ /^0$/m;
    my $r = Comet::Private->configtest('ct-user', wrap => $ns, conf => <<"EOC");
<Location /chat>
    SetHandler comet-socket
    CometSocketBackend exec:$t/bin/lines
</Location>
EOC
    my $l = line_of($r->{conf}, qr/bin\/lines/);
    is $r->{status}, 1, 'root that cannot become User #-1, with an exec: backend: httpd -t fails';
    like $r->{out}, qr/^CMT00431: \Q$r->{conf}\E line $l: CometSocketBackend exec:\Q$t\E\/bin\/lines: httpd runs as root and would run this program as its User #-1 \(uid 4294967295\) and Group \S+ \(gid 4294967295\), but cannot switch to them \(no account has that uid\): set User and Group to an account that exists, e.g. User www-data and Group www-data/m,
        "... CMT00431: the file, line $l, the User, what to set" or diag $r->{out};
    is scalar(() = $r->{out} =~ /CMT0043/g), 1, '... one line';

    # without programs, nothing to refuse: the supervisor's own start says it
    $r = Comet::Private->configtest('ct-user', wrap => $ns, conf => <<"EOC");
<Location /chat>
    SetHandler comet-socket
    CometSocketBackend echo
</Location>
EOC
    is $r->{status}, 0, 'the same without exec: programs: httpd -t passes' or diag $r->{out};
    is $r->{out}, "Syntax OK\n", '... saying only "Syntax OK"';

    # a User that exists but that this "root" cannot become (not mapped)
    skip 'no user nobody', 2 unless getpwnam('nobody');
    $r = Comet::Private->configtest('ct-user', wrap => $ns, conf => <<"EOC");
User nobody
CometChannelSource tick exec:$t/bin/source
EOC
    is $r->{status}, 1, 'root that cannot switch to User nobody: httpd -t fails';
    like $r->{out}, qr/CMT00431: \Q$r->{conf}\E line \d+: CometChannelSource exec:\Q$t\E\/bin\/source: httpd runs as root and would run this program as its User nobody \(uid \d+\) and Group \S+ \(gid \d+\), but cannot switch to them \((?:setgid|initgroups|setuid) failed\)/,
        '... CMT00431 names the step that failed' or diag $r->{out};
}
