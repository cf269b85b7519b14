# Faults under load, on a private server (its children are killed, then it
# is stopped):
#  - SIGKILL a child while publishers hammer the server (now and then one
#    holds the store's lock): the others do not wedge; every message a
#    publisher was told 201 is in the channel; every live child publishes
#    and delivers; the store's repairs stay few, its slots match the live
#    children, its memory returns to where it was;
#  - a graceful restart under load: a subscriber that resumes with
#    since=<last id it saw> gets every acknowledged message, once, in order;
#    no slot leaks (processes back to the number of live children);
#  - graceful-stop under load: the streams end cleanly with what they had,
#    without a hole; the server and all its processes go; no crash.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;
use Comet::Private;
use POSIX ();
use Time::HiRes qw(time sleep);

plan tests => 20, need_module('comet');

my $srv = Comet::Private->start('faults', conf => <<'EOC');
<Location /pub>
    SetHandler comet-publish
    CometMessageBuffer 5000
    Require local
</Location>
EOC
ok $srv, 'a private server (' . Comet::Private::mpm() . ')';
local $Comet::Test::PORT = $srv->port;
my $dir = $srv->dir;

# publishers($chan, $n, $seconds, $max): $n processes publishing "<k>:<seq>"
# over keep-alive connections for $seconds (at most $max messages each);
# each writes the ids it got a 201 for to $dir/acked-<chan>-<k>.
sub publishers {
    my ($chan, $n, $secs, $max) = @_;
    my @pids;
    for my $k (1 .. $n) {
        my $pid = fork // die "fork: $!\n";
        if (!$pid) {
            open my $out, '>', "$dir/acked-$chan-$k" or POSIX::_exit(1);
            $out->autoflush(1);
            my $conn;
            my $end = time + $secs;
            my $seq = 0;
            while (time < $end && $seq < $max) {
                $conn ||= eval { Comet::Test::Conn->new };
                if (!$conn) {
                    sleep 0.05;
                    next;
                }
                my $r = eval { http(POST => "/pub/$chan", body => "$k:$seq", conn => $conn,
                                    timeout => 5) };
                if ($r && $r->{status} == 201) {
                    print $out "$r->{json}{id}\n";
                    $seq++;
                }
                else {
                    $conn = undef;      # the child died or the server stops: a new one
                    sleep 0.02;
                }
            }
            POSIX::_exit(0);
        }
        push @pids, $pid;
    }
    return @pids;
}

sub acked {
    my ($chan) = @_;
    my @ids;
    for my $f (glob "$dir/acked-$chan-*") {
        open my $fh, '<', $f or next;
        chomp(my @l = <$fh>);
        push @ids, grep { /^\d+$/ } @l;
    }
    return sort { $a <=> $b } @ids;
}

# A subscriber that resumes: follow($st) reads for $secs (or until
# $st->{until} is seen), reconnecting with since=<last id seen> whenever its
# stream ends or breaks. $st: {chan, ids => [], last, streams}.
sub follow {
    my ($st, $secs, %o) = @_;
    my $end = time + $secs;
    while (time < $end) {
        last if $o{until} && ($st->{last} // 0) >= $o{until};
        if (!$st->{s}) {
            my $since = $st->{last} // 0;
            my $s = eval { subscribe("/comet/$st->{chan}?since=$since", timeout => 3) };
            if (!$s || $s->{status} != 200 || !$s->prelude(3)) {
                return 0 if $o{once};
                sleep 0.1;
                next;
            }
            $st->{s} = $s;
            $st->{streams}++;
        }
        my $f = $st->{s}->next_frame(0.2);
        if ($f && $f->{type} eq 'p') {
            $st->{dup}++ if $st->{seen}{ $f->{id} }++;
            $st->{disorder}++ if defined $st->{last} && $f->{id} <= $st->{last};
            push @{ $st->{ids} }, $f->{id};
            $st->{last} = $f->{id};
        }
        elsif ($f && $f->{type} eq 'e') {
            $st->{ends}{ $f->{reason} }++;
            $st->{s}->close;
            $st->{s} = undef;
            return 1 if $o{once};
        }
        elsif (($f && $f->{type} eq 'junk') || (!$f && $st->{s}{conn}{eof})) {
            $st->{broken}++;
            $st->{s}->close;
            $st->{s} = undef;
            return 1 if $o{once};
        }
    }
    return 1;
}

sub missing {
    my ($st, @acked) = @_;
    return grep { !$st->{seen}{$_} } @acked;
}

# The store's slots: one per live child, and one for the supervisor.
sub live_slots {
    my @w = $srv->workers;
    my @sup = grep { pid_alive($_) } $srv->supervisors;
    return scalar(@w) + scalar(@sup);
}
sub slots_match {
    my $p = eval { store_info()->{processes} } // -1;
    return $p == live_slots();
}
sub slots_text {
    my $p = eval { store_info()->{processes} } // -1;
    return "processes $p, live children and supervisor " . live_slots();
}

my $st0 = store_info();
my $mem0 = $st0->{memory_used};

# --- SIGKILL children while publishers hammer --------------------------------
{
    my $chan = 'kill';
    my $sub = { chan => $chan };
    follow($sub, 0.5);
    my @pub = publishers($chan, 3, 6, 1500);
    my @killed;
    my $t0 = time;
    for my $at (1.0, 2.5, 4.0) {
        follow($sub, $t0 + $at - time);
        my @w = $srv->workers;
        # not the one our subscriber reads from, when there is a choice
        my @pick = grep { !$sub->{s} || !defined $sub->{s}{pid} || $_->{pid} != $sub->{s}{pid} } @w;
        my $victim = (@pick ? $pick[ int rand @pick ] : $w[0]) or next;
        kill 'KILL', $victim->{pid};
        push @killed, $victim->{pid};
    }
    follow($sub, 1) while grep { waitpid($_, POSIX::WNOHANG()) == 0 } @pub;
    my @acked = acked($chan);
    ok @killed == 3, 'three children SIGKILLed under load (' . join(' ', @killed) . '), '
        . scalar(@acked) . ' messages acknowledged';
    ok @acked > 100, '... publishing went on meanwhile';
    follow($sub, 20, until => $acked[-1]);
    my @miss = missing($sub, @acked);
    is scalar(@miss), 0, 'the subscriber (resuming with since) got every acknowledged message'
        . " ($sub->{streams} streams)";
    ok !$sub->{dup} && !$sub->{disorder}, '... once each, in order';
    is channel_info($chan)->{messages}, scalar(@acked), '... and the channel holds them all';
    $sub->{s}->close if $sub->{s};

    # every live child publishes and delivers
    my @w = map { $_->{pid} } $srv->workers;
    my $probe = 'after-kill';
    # a stream in each child, then a publisher in each child
    my %sconn = map { $_->{pid} => $_ } pinned_connections(distinct => scalar(@w), max => 30);
    my %streams = map { $_ => subscribe("/comet/$probe", conn => $sconn{$_}) } keys %sconn;
    my @streams = values %streams;
    $_->prelude for @streams;
    wait_subscribers($probe, scalar @streams);
    my %by = map { $_->{pid} => $_ } pinned_connections(distinct => scalar(@w), max => 30);
    my ($ok, @why) = (1);
    for my $pid (keys %by) {
        my $r = eval { http(POST => "/pub/$probe", body => "via $pid", conn => $by{$pid}) };
        next if $r && $r->{status} == 201;
        $ok = 0;
        push @why, "POST in $pid: " . ($r ? $r->{status} : $@);
    }
    my $all = 1;
    for my $spid (sort keys %sconn) {
        my $s = $streams{$spid};
        my @m = $s->messages(scalar keys %by, 10);
        my %got = map { $_ && $_->{data} =~ /^via (\d+)$/ ? ($1 => 1) : () } @m;
        next if keys %got == keys %by;
        $all = 0;
        my $last = $m[-1];
        push @why, "stream in $spid got " . join(',', sort keys %got) . ' then '
            . (!$last ? 'nothing' : $last->{type} eq 'p' ? 'no more' : "a frame '$last->{type}'");
    }
    ok $ok && $all, 'every live child publishes (' . join(' ', sort keys %by)
        . '), and streams in each (' . join(' ', sort keys %sconn) . ') get it all'
        . (@why ? ': ' . join('; ', @why) : '');
    $_->close for @streams;
    %by = %sconn = ();

    my $st = store_info();
    ok $st->{repairs} <= 3, "repairs: $st->{repairs} (at most one per kill)";
    ok wait_until(sub { slots_match() }, 15), 'slots: the store counts the live processes: '
        . slots_text();
    delete_channel($_) for $chan, $probe;
    # (a restart leaves a message or two of the supervisors to each other in
    # their channel, for a minute: the list of channel sources the new
    # generation sends is some 6 blocks of 128 bytes, the test server's
    # sources being four)
    ok wait_until(sub { store_info()->{memory_used} <= $mem0 + 2048 }, 20),
        "memory in use back to $mem0 (" . store_info()->{memory_used} . ', channels: '
        . store_info()->{channels} . ')'
        or diag explain store_info();
}

# --- a graceful restart under load -------------------------------------------
{
    my $chan = 'graceful';
    my $sub = { chan => $chan };
    follow($sub, 0.5);
    my @pub = publishers($chan, 2, 5, 1500);
    my $t0 = time;
    follow($sub, 1.5);
    ok $srv->graceful, 'graceful restart under load';
    follow($sub, 1) while grep { waitpid($_, POSIX::WNOHANG()) == 0 } @pub;
    my @acked = acked($chan);
    follow($sub, 20, until => $acked[-1]);
    my @miss = missing($sub, @acked);
    is scalar(@miss), 0, scalar(@acked) . ' acknowledged, every one delivered to the resuming '
        . "subscriber ($sub->{streams} streams, ends: "
        . join(',', map { "$_=$sub->{ends}{$_}" } sort keys %{ $sub->{ends} || {} }) . ')';
    ok !$sub->{dup} && !$sub->{disorder}, '... once each, in order';
    $sub->{s}->close if $sub->{s};
    ok wait_until(sub { slots_match() }, 20), 'no slot leaked: ' . slots_text();
    delete_channel($chan);
    # (a restart leaves a message or two of the supervisors to each other in
    # their channel, for a minute: the list of channel sources the new
    # generation sends is some 6 blocks of 128 bytes, the test server's
    # sources being four)
    ok wait_until(sub { store_info()->{memory_used} <= $mem0 + 2048 }, 20),
        "memory in use back to $mem0 (" . store_info()->{memory_used} . ', channels: '
        . store_info()->{channels} . ')'
        or diag explain store_info();
}

# --- graceful-stop under load -----------------------------------------------------
{
    my $chan = 'stop';
    my $sub = { chan => $chan };
    follow($sub, 0.5);
    my @pub = publishers($chan, 2, 6, 3000);
    follow($sub, 1.5);
    my $ppid = $srv->pid;
    my @procs = map { $_->{pid} } $srv->children;
    my $stopped;
    {
        # graceful-stop returns at once; read meanwhile
        $srv->run_httpd('graceful-stop');
        my $end = time + 30;
        while (time < $end && pid_alive($ppid)) {
            follow($sub, 0.2, once => 1) if $sub->{s} || !defined $sub->{gone};
            $sub->{gone} = 1 unless $sub->{s};
        }
        $stopped = !pid_alive($ppid);
    }
    waitpid $_, 0 for @pub;
    ok $stopped, 'graceful-stop under load: the server stopped';
    my @left = grep { pid_alive($_) } @procs;
    is scalar(@left), 0, '... and every process of it (children, supervisor) is gone';
    my @acked = acked($chan);
    my $last = $sub->{last} // 0;
    my @hole = grep { $_ <= $last && !$sub->{seen}{$_} } @acked;
    is scalar(@hole), 0, 'the stream ended without a hole: every acknowledged message up to the '
        . 'last it got (' . scalar(@{ $sub->{ids} || [] }) . ' of ' . scalar(@acked) . ')';
    ok !$sub->{broken} || $sub->{ends}, '... ended by the server ('
        . join(',', map { "$_=$sub->{ends}{$_}" } sort keys %{ $sub->{ends} || {} })
        . ($sub->{broken} ? ", $sub->{broken} cut" : '') . ')';
}

my @p = $srv->problems;
is scalar(@p), 0, 'no crash, no sanitizer report in the private server\'s log' or diag join "\n", @p[0 .. 4];
