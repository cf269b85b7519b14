# Channel sources (CometChannelSource, t/bin/source): their lines reach the
# subscribers of every child in order; stderr goes to the error log; a
# program that exits is restarted with backoff; ondemand waits for a
# subscriber; a line over 64K is dropped.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;
use Time::HiRes qw(time sleep);

plan tests => 19, need_module('comet');

my $logs = Apache::Test::config()->{vars}{t_logs};
my $sup = supervisor_pid();
ok $sup, "the supervisor runs (pid " . ($sup // 'none') . ")";

sub starts {
    my ($name) = @_;
    open my $f, '<', "$logs/$name.state" or return wantarray ? () : 0;
    my @pids = map { /^start (\d+)$/ ? $1 : () } <$f>;
    return wantarray ? @pids : scalar @pids;
}
sub running {
    my ($name) = @_;
    return map { $_->{pid} } grep { $_->{cmdline} =~ m{/bin/source \Q$name\E } && $_->{state} ne 'Z' }
        proc_children($sup);
}

# --- a steady source, subscribers in several children ---------------------------
{
    my @conns = pinned_connections(distinct => 2, min => 3);
    my @s = map { subscribe('/comet/src-tick', conn => $_) } @conns;
    $_->prelude for @s;
    my %pids = map { $_->{pid} => 1 } @s;
    my @lists = map { [map { $_ && $_->{type} eq 'p' ? $_->{data} : 'none' } $_->messages(6, 8)] } @s;
    $_->close for @s;
    my @first = @{ $lists[0] };
    my ($n0, $pid) = ($first[0] // '') =~ /^src-tick (\d+) (\d+)$/;
    ok $pid, "src-tick prints: $first[0]";
    is "@first", join(' ', map { "src-tick $_ $pid" } $n0 .. $n0 + 5), '... consecutive lines, one process';
    # streams opened one after the other may start one line apart
    my $common = 1;
    for my $l (@lists) {
        my %pos;
        @pos{@first} = 0 .. $#first;
        my @idx = map { $pos{$_} // -1 } @$l;
        my $ok = !grep { $_ < 0 } @idx[0 .. 3];
        $ok &&= $idx[$_] == $idx[0] + $_ for 1 .. 3;
        $common &&= $ok;
    }
    ok $common, 'the same lines, in the same order, in ' . scalar(@s) . ' streams in '
        . scalar(keys %pids) . ' children';
    is join(',', starts('src-tick')), $pid, '... started once (state file), restarts included';
    my ($state, $ppid) = proc_state($pid);
    is $ppid, $sup, '... a child of the supervisor';
    ok grep({ /source src-tick: hello from $pid$/ } log_since(0)), 'its stderr is in the error log, named';
}

# --- a source that keeps exiting ------------------------------------------------
{
    ok wait_until(sub { starts('src-crash') >= 2 }, 10), 'src-crash exits after 3 lines: restarted ('
        . scalar(starts('src-crash')) . ' starts so far)';
    my @log = log_since(0);
    ok grep({ /source src-crash \(pid \d+\) exited with 1/ } @log), '... its exit logged';
    my @delays = map { /source src-crash ended: restart in (\d+) ms/ ? $1 : () } @log;
    ok @delays >= 1, "... restart delays: @delays ms";
    my @down = grep { $delays[$_] < $delays[$_ - 1] } 1 .. $#delays;
    ok !@down && ($delays[0] // 0) == 1000, '... 1 s first, then growing (backoff)';
    my @pids = starts('src-crash');
    is scalar(running('src-crash')), (pid_alive($pids[-1]) ? 1 : 0), '... never two at once';
}

# --- ondemand -----------------------------------------------------------------
{
    is scalar(starts('src-lazy')), 0, 'src-lazy (ondemand): not started without a subscriber';
    is scalar(running('src-lazy')), 0, '... no process';
    my $t0 = time;
    my $s = subscribe('/comet/src-lazy');
    $s->prelude;
    my ($f) = $s->messages(1, 8);
    my $dt = time - $t0;
    like $f && $f->{data}, qr/^src-lazy 1 \d+$/, sprintf 'the first subscriber starts it: its first line after %.1f s', $dt;
    is scalar(starts('src-lazy')), 1, '... once';
    $s->close;
}

# --- a line over 64K -----------------------------------------------------------
{
    my @log = log_since(0);
    ok grep({ /source src-big: a line of 70000 bytes is over CometMaxMessageSize: dropped/ } @log),
        'src-big: a line of 70000 bytes dropped, logged';
    my ($pid) = starts('src-big');
    my $s = subscribe('/comet/src-big?since=0');
    $s->prelude;
    my @m = $s->messages(2, 5);
    is join(' | ', map { $_ && $_->{type} eq 'p' ? $_->{data} : 'none' } @m),
        "src-big after-big $pid | src-big 1 $pid", '... the lines around it published';
    ok !grep({ $_ && length($_->{data}) > 1000 } @m), '... not it';
    $s->close;
}
