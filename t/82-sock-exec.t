# The exec backend (t/bin/lines): one process per session, owned by the
# supervisor; stdin lines <-> messages, a CGI environment, the session ends
# with the program and the program with the session (stdin EOF, SIGTERM,
# SIGKILL); no zombie, no descriptor left in the supervisor.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;
use MIME::Base64 qw(encode_base64);
use Time::HiRes qw(time sleep);

plan tests => 40, need_module('comet');

my $statedir = Apache::Test::config()->{vars}{t_logs} . '/prog';
my $GO_AWAY = qq(c[3000,"Go away!"]\n);

my $sup = supervisor_pid();
ok $sup, 'the supervisor runs (pid ' . ($sup // 'none') . ')';

# The supervisor's descriptors, less those of the channel sources running
# now (3 pipes each): what sessions must give back.
sub sup_fds {
    my @src = grep { $_->{cmdline} =~ m{/bin/source } && $_->{state} ne 'Z' } proc_children($sup);
    my $n = fd_count($sup);
    return defined $n ? $n - 3 * @src : -1;
}
my $fds0;
wait_until(sub { my $a = sup_fds(); sleep 0.3; my $b = sup_fds(); $fds0 = $a if $a == $b; $a == $b }, 5);

# say(LOC, SID, messages...): xhr_send; poll(LOC, SID): the messages of one
# poll (or the raw body if it is no a[...] frame).
sub say_ {
    my ($loc, $sid, @m) = @_;
    my $body = JSON::PP->new->ascii->encode(\@m);
    return http(POST => sjs_path($loc, $sid, 'xhr_send'), body => $body, @{ $main::hdr || [] })->{status};
}
sub poll {
    my ($loc, $sid) = @_;
    my $r = http(POST => sjs_path($loc, $sid, 'xhr'), timeout => 40, @{ $main::hdr || [] });
    return $r->{body} =~ /\Aa(\[.*\])\n\z/s ? @{ JSON::PP->new->utf8->decode($1) } : ($r->{body});
}
# Ask and wait for the answers (heartbeats skipped).
sub ask {
    my ($loc, $sid, $n, @m) = @_;
    say_($loc, $sid, @m);
    my @got;
    my $deadline = time + 10;
    while (@got < $n && time < $deadline) {
        push @got, grep { $_ ne "h\n" } poll($loc, $sid);
    }
    return @got;
}
sub notes {
    my ($pid) = @_;
    open my $f, '<', "$statedir/$pid" or return '';
    local $/;
    my $t = <$f> // '';
    $t =~ s/\n/ /g;
    $t =~ s/ \z//;
    return $t;
}

# --- a session and its process ----------------------------------------------
my $sid = new_session();
is http(POST => sjs_path('/sock-exec', $sid, 'xhr'))->{body}, "o\n", 'session opened: o';
my ($pidline) = ask('/sock-exec', $sid, 1, 'pid');
my ($pid) = ($pidline // '') =~ /^pid (\d+)$/;
ok $pid, "the program answers: $pidline";
my ($state, $ppid) = proc_state($pid // 0);
is $ppid, $sup, '... a child of the supervisor';
is notes($pid), 'start', '... started once';

my %env = map { my ($v) = ask('/sock-exec', $sid, 1, "env $_"); ($_ => ($v // '') =~ s/^env \Q$_\E=//r) }
    qw(COMET_SESSION_ID REMOTE_ADDR REQUEST_METHOD SCRIPT_NAME GATEWAY_INTERFACE SERVER_PORT
       REMOTE_USER AUTH_TYPE HTTP_AUTHORIZATION PATH COMET_VERSION);
is $env{COMET_SESSION_ID}, $sid, 'COMET_SESSION_ID';
is $env{REMOTE_ADDR}, '127.0.0.1', 'REMOTE_ADDR';
is $env{GATEWAY_INTERFACE}, 'CGI/1.1', 'GATEWAY_INTERFACE';
is $env{REQUEST_METHOD}, 'POST', 'REQUEST_METHOD (of the request that opened it)';
like $env{SCRIPT_NAME}, qr{^/sock-exec\b}, "SCRIPT_NAME ($env{SCRIPT_NAME})";
is $env{SERVER_PORT}, server_port(), 'SERVER_PORT';
is $env{REMOTE_USER}, '(unset)', 'no REMOTE_USER without authentication';
like $env{PATH}, qr{/usr/bin}, "PATH ($env{PATH})";
like $env{COMET_VERSION}, qr/^\d/, "COMET_VERSION ($env{COMET_VERSION})";

# escaping: \ newline CR escaped on the line, the line comes back as is
my @got = ask('/sock-exec', $sid, 1, "a\\b\nc\rd");
is $got[0], 'echo:a\\\\b\\nc\\rd', 'stdin: \\ newline CR escaped as \\\\ \\n \\r';
@got = ask('/sock-exec', $sid, 1, 'crlf');
is $got[0], 'crlf', 'a line ended by CRLF: no CR in the message';
@got = ask('/sock-exec', $sid, 1, "\x{e9}t\x{e9} \"q\" </script> \x{2028}");
is $got[0], "echo:\x{e9}t\x{e9} \"q\" </script> \x{2028}", 'UTF-8 and quotes both ways';
@got = ask('/sock-exec', $sid, 200, 'lines 200');
is join(',', @got), join(',', map { "line $_" } 1 .. 200), '200 lines: 200 messages, in order';

my $mark = log_mark();
@got = ask('/sock-exec', $sid, 1, 'err something on stderr');
ok wait_log($mark, qr/session \Q$sid\E: something on stderr/, 5), 'stderr: to the error log, with the session';

# --- the program exits: the session closes --------------------------------
say_('/sock-exec', $sid, 'exit');
my $last = join '', map { poll('/sock-exec', $sid) } 1 .. 2;
like $last, qr/\Q$GO_AWAY\E\z/, 'the program exits: c[3000,"Go away!"]';
is http(POST => sjs_path('/sock-exec', $sid, 'xhr'))->{body}, $GO_AWAY, '... on every later poll';
is http(POST => sjs_path('/sock-exec', $sid, 'xhr_send'), body => '["x"]')->{status}, 404,
    '... and sending to it: 404';
ok wait_until(sub { !pid_alive($pid) }, 5), '... the process is gone';
is notes($pid), 'start exit', '... as it said';

# --- the browser goes: stdin EOF ------------------------------------------
my $sid2 = new_session();
http(POST => sjs_path('/sock-exec', $sid2, 'xhr'));
my ($p2) = map { /^pid (\d+)$/ ? $1 : () } ask('/sock-exec', $sid2, 1, 'pid');
my $t0 = time;
ok wait_until(sub { !pid_alive($p2 // 0) }, 8), 'no receiver for CometSocketDisconnectDelay: the program ends';
my $dt = time - $t0;
ok $dt > 1.5 && $dt < 6, sprintf '... after %.1f s (2 s delay)', $dt;
is notes($p2), 'start eof', '... on stdin EOF, no signal needed';

# --- a program that ignores EOF and SIGTERM ---------------------------------
my $sid3 = new_session();
$mark = log_mark();
http(POST => sjs_path('/sock-stubborn', $sid3, 'xhr'));
my ($p3) = map { /^pid (\d+)$/ ? $1 : () } ask('/sock-stubborn', $sid3, 1, 'pid');
ok $p3, "stubborn program: pid $p3";
$t0 = time;
ok wait_until(sub { !pid_alive($p3 // 0) }, 12), '... ended all the same';
$dt = time - $t0;
ok $dt > 3 && $dt < 9, sprintf '... after %.1f s (2 s delay, EOF, 1 s, SIGTERM, 1 s, SIGKILL)', $dt;
is notes($p3), 'start eof term-ignored', '... which got EOF, then SIGTERM';
ok wait_log($mark, qr/session \Q$sid3\E ignored SIGTERM: SIGKILL/, 2), '... then SIGKILL (log)';

# --- REMOTE_USER behind Basic authentication --------------------------------
{
    my $sid4 = new_session();
    my $res = http(POST => sjs_path('/sock-auth', $sid4, 'xhr'));
    is $res->{status}, 401, 'Basic authentication: 401 without credentials';
    local $main::hdr = [headers => [Authorization => 'Basic ' . encode_base64('alice:s3cret', '')]];
    is http(POST => sjs_path('/sock-auth', $sid4, 'xhr'), @$main::hdr)->{body}, "o\n", '... opens with them';
    my %e = map { my ($v) = ask('/sock-auth', $sid4, 1, "env $_"); ($_ => ($v // '') =~ s/^env \Q$_\E=//r) }
        qw(REMOTE_USER AUTH_TYPE HTTP_AUTHORIZATION);
    is $e{REMOTE_USER}, 'alice', 'REMOTE_USER';
    is $e{AUTH_TYPE}, 'Basic', 'AUTH_TYPE';
    is $e{HTTP_AUTHORIZATION}, '(unset)', 'the password is not passed on (no HTTP_AUTHORIZATION)';
    say_('/sock-auth', $sid4, 'exit');
}

# --- a program that cannot run ----------------------------------------------
{
    my $sid5 = new_session();
    my $body = join '', map { http(POST => sjs_path('/sock-missing', $sid5, 'xhr'))->{body} } 1 .. 2;
    is $body, "o\n$GO_AWAY", 'a program that cannot be run: o, then c[3000,"Go away!"]';
}

# --- nothing left behind ----------------------------------------------------
# every session of this file is over after the disconnect delay
ok wait_until(sub { !grep { $_->{state} eq 'Z' } proc_children($sup) }, 5),
    'no zombie among the supervisor\'s children'
    or diag explain [proc_children($sup)];
my $fds;
ok wait_until(sub { ($fds = sup_fds()) == $fds0 }, 8),
    "the supervisor's descriptors are back to $fds0" or diag "now $fds";
