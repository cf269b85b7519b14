# A graceful restart keeps the supervisor, hence the sessions and their
# programs and the channel sources: same processes before and after, messages
# still flow both ways, no source started twice.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;
use Time::HiRes qw(time sleep);

plan tests => 14, need_module('comet');

my $logs = Apache::Test::config()->{vars}{t_logs};

sub say_ {
    my ($sid, @m) = @_;
    return http(POST => sjs_path('/sock-exec', $sid, 'xhr_send'),
                body => JSON::PP->new->ascii->encode(\@m))->{status};
}
sub poll_until {
    my ($sid, $n) = @_;
    my @got;
    my $deadline = time + 10;
    while (@got < $n && time < $deadline) {
        my $r = eval { http(POST => sjs_path('/sock-exec', $sid, 'xhr'), timeout => 30) } or next;
        push @got, $r->{body} =~ /\Aa(\[.*\])\n\z/s ? @{ json($1) } : $r->{body} =~ /^h?\n?\z/ ? () : ($r->{body});
    }
    return @got;
}
sub tick_pid {
    my $s = subscribe('/comet/src-tick');
    $s->prelude;
    my ($f) = $s->messages(1, 5);
    $s->close;
    return $f && $f->{data} =~ /^src-tick \d+ (\d+)$/ ? $1 : undef;
}
sub starts {
    open my $f, '<', "$logs/$_[0].state" or return 0;
    return scalar grep { /^start / } <$f>;
}

my $sup = supervisor_pid();
ok $sup, "supervisor: $sup";
my $sid = new_session();
http(POST => sjs_path('/sock-exec', $sid, 'xhr'));
say_($sid, 'pid');
my ($pid) = map { /^pid (\d+)$/ ? $1 : () } poll_until($sid, 1);
ok $pid, "a session's program: $pid";
my $tick = tick_pid();
ok $tick, "the src-tick source: $tick";
my $tick_starts = starts('src-tick');

# a poll waiting across the restart keeps the session's receiver
my $waiting = Comet::Test::Conn->new;
$waiting->send_bytes("POST " . sjs_path('/sock-exec', $sid, 'xhr') . " HTTP/1.1\r\nHost: "
                     . hostport() . "\r\nContent-Length: 0\r\n\r\n");
sleep 0.2;
my $ppid = parent_pid();
my $mark = log_mark();
ok kill('USR1', $ppid), "graceful restart of $ppid";
ok wait_log($mark, qr/AH00493: SIGUSR1 received|AH00297: SIGUSR1 received|AH00171: Graceful restart requested/, 10), '... under way';
# the new generation answers
my $deadline = time + 15;
sleep 0.2 until eval { http(GET => '/comet-publish/', timeout => 2)->{status} == 200 } || time > $deadline;
eval { $waiting->read_response(timeout => 20) };
$waiting->close;

is supervisor_pid(), $sup, 'the same supervisor';
ok !grep({ /CMT00203: comet supervisor started/ } log_since($mark)), '... no other started';
say_($sid, 'pid');
my @got = poll_until($sid, 1);
is $got[0], "pid $pid", 'the session goes on, with the same program';
say_($sid, "after restart");
@got = poll_until($sid, 1);
is $got[0], 'echo:after restart', '... messages still flow both ways';
ok pid_alive($pid), '... which never stopped';
is tick_pid(), $tick, 'src-tick: the same process, and its lines still flow';
is starts('src-tick'), $tick_starts, '... not started again';
my @procs = grep { $_->{cmdline} =~ m{/bin/source src-tick } && $_->{state} ne 'Z' } proc_children($sup);
is scalar(@procs), 1, '... exactly one running';
say_($sid, 'exit');
my $end = join '', poll_until($sid, 1);
like $end, qr/c\[3000,"Go away!"\]/, 'the session ends as usual';
