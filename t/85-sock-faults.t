# Backends that misbehave (t/bin/misbehave): one that crashes, one that
# hangs, one that floods its stdout, one that never reads its stdin
# (t/bin/noread). Each time the session ends cleanly with the close frame or
# when its client goes, the program is reaped (no zombie), the supervisor
# gives back its descriptors and the store its memory, and other sessions
# are served meanwhile.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;
use JSON::PP ();
use Time::HiRes qw(time sleep);

plan tests => 24, need_module('comet');

my $GO_AWAY = qq(c[3000,"Go away!"]\n);
my $sup = supervisor_pid();
ok $sup, 'the supervisor runs';

sub sup_fds {
    my @src = grep { $_->{cmdline} =~ m{/bin/source } && $_->{state} ne 'Z' } proc_children($sup);
    my $n = fd_count($sup);
    return defined $n ? $n - 3 * @src : -1;
}
sub steady_fds {
    my $v;
    wait_until(sub { my $a = sup_fds(); sleep 0.3; my $b = sup_fds(); $v = $a if $a == $b; $a == $b }, 5);
    return $v;
}
sub poll {
    my ($loc, $sid, $t) = @_;
    my $r = eval { http(POST => sjs_path($loc, $sid, 'xhr'), timeout => $t // 30) };
    return $r ? $r->{body} : '';
}
sub say_ {
    my ($loc, $sid, @m) = @_;
    return http(POST => sjs_path($loc, $sid, 'xhr_send'), body => JSON::PP->new->encode(\@m))->{status};
}
# the program's pid from its "ready <pid>"
sub ready {
    my ($loc, $sid) = @_;
    my $got = '';
    my $deadline = time + 10;
    while ($got !~ /ready (\d+)/ && time < $deadline) {
        $got .= poll($loc, $sid, 10);
    }
    return $got =~ /ready (\d+)/ ? $1 : undef;
}
sub zombies {
    return grep { $_->{state} eq 'Z' } proc_children($sup);
}
# a bystander: a new echo session must work meanwhile (a new one each
# time: one without a receiver for 2 s ends)
sub bystander_ok {
    my $echo = new_session();
    poll('/sock-exec', $echo);
    my $tag = 'still-' . int(rand 1e6);
    say_('/sock-exec', $echo, $tag);
    my $got = '';
    my $deadline = time + 10;
    $got .= poll('/sock-exec', $echo, 10) while $got !~ /\Q$tag\E/ && time < $deadline;
    return $got =~ /echo:\Q$tag\E/;
}

my $fds0 = steady_fds();
my $mem0 = store_info()->{memory_used};

# --- crash: SIGSEGV at the first message --------------------------------------
{
    my $sid = new_session();
    is poll('/sock-crash', $sid), "o\n", 'crash: a session';
    my $pid = ready('/sock-crash', $sid);
    ok $pid, "... its program runs (pid $pid)";
    my $mark = log_mark();
    is say_('/sock-crash', $sid, 'boom'), 204, '... a message: 204';
    my $got = '';
    my $deadline = time + 10;
    $got .= poll('/sock-crash', $sid, 10) while $got !~ /c\[/ && time < $deadline;
    is $got, $GO_AWAY, '... it dies of SIGSEGV: the session closes (c[3000,"Go away!"])';
    ok wait_log($mark, qr/\(pid $pid\) killed by signal 11/), '... logged: killed by signal 11';
    ok wait_until(sub { !pid_alive($pid) && !zombies() }, 5), '... reaped: no zombie';
    is say_('/sock-crash', $sid, 'more'), 404, '... sending to it now: 404';
    ok bystander_ok(), '... another session served meanwhile';
}

# --- hang: neither reads nor writes; its client goes ---------------------------
{
    my $sid = new_session();
    poll('/sock-hang', $sid);
    my $pid = ready('/sock-hang', $sid);
    ok $pid, "hang: its program runs (pid $pid)";
    say_('/sock-hang', $sid, 'anyone there?') for 1 .. 3;
    ok bystander_ok(), '... another session served while it hangs';
    # no receiver for 2 s: EOF on its stdin, which it does not read; 1 s
    # later SIGTERM, which ends it
    my $t0 = time;
    ok wait_until(sub { !pid_alive($pid) }, 15), sprintf('... its client gone, it is ended (%.1f s)', time - $t0);
    ok wait_until(sub { !zombies() }, 5), '... reaped: no zombie';
}

# --- flood: lines as fast as it can -------------------------------------------------
{
    my $sid = new_session();
    poll('/sock-flood', $sid);
    my $pid = ready('/sock-flood', $sid);
    ok $pid, "flood: its program runs (pid $pid)";
    my ($bytes, $polls) = (0, 0);
    my $until = time + 5;
    while ($bytes < 20_000 && time < $until) {
        $bytes += length poll('/sock-flood', $sid, 10);
        $polls++;
    }
    ok $bytes >= 20_000, "... its lines reach the browser ($bytes bytes in $polls polls)";
    # nobody reads now: the supervisor stops reading it past CometSocketMaxQueue
    sleep 1.5;
    my $m1 = store_info()->{memory_used};
    sleep 1;
    my $m2 = store_info()->{memory_used};
    ok $m2 - $mem0 < 3 * 1024 * 1024 && $m2 - $m1 < 512 * 1024,
        sprintf('... unread, what it floods is held back: %d KiB in use, +%d KiB in 1 s',
                ($m2 - $mem0) / 1024, ($m2 - $m1) / 1024);
    ok bystander_ok(), '... another session served meanwhile';
    ok wait_until(sub { !pid_alive($pid) }, 15), '... its client gone, it is ended';
    ok wait_until(sub { !zombies() }, 5), '... reaped: no zombie';
}

# --- noread: never reads its stdin ---------------------------------------------------
{
    my $sid = new_session();
    poll('/sock-noread', $sid);
    my $st = say_('/sock-noread', $sid, 'x' x 1000);
    is $st, 204, 'noread: a message queued: 204';
    ok bystander_ok(), '... another session served meanwhile';
}

# after all of it: no descriptor, no memory, no process left
{
    ok wait_until(sub { my $n = sup_fds(); $n <= $fds0 }, 20),
        "the supervisor's descriptors back to $fds0 (" . sup_fds() . ')';
    ok wait_until(sub { store_info()->{memory_used} <= $mem0 + 64 * 1024 }, 20),
        "the store's memory back to $mem0 (" . store_info()->{memory_used} . ')';
    my @progs = grep { $_->{cmdline} =~ m{/bin/(misbehave|noread)} && $_->{state} ne 'Z' }
        proc_children($sup);
    ok wait_until(sub { !grep { pid_alive($_->{pid}) } @progs }, 15), 'no misbehaving program left';
}
