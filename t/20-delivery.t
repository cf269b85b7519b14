# Delivery: fast, complete, in order, to every subscriber.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;
use Time::HiRes qw(time sleep);
use POSIX ();

plan tests => 14, need_module('comet');

my $chan = new_channel('deliver');

# --- latency --------------------------------------------------------------
{
    my $s = subscribe("/comet/$chan");
    $s->prelude;
    ok wait_subscribers($chan, 1), 'one subscriber';
    my @lat;
    for my $i (1 .. 10) {
        my $t0 = time;
        my $id = publish($chan, "ping $i")->{json}{id};
        my $f = $s->next_frame(2);
        push @lat, time - $t0;
        last unless $f && $f->{type} eq 'p' && $f->{id} == $id;
    }
    my ($max) = sort { $b <=> $a } @lat;
    is scalar(@lat), 10, 'ten messages, each received';
    cmp_ok $max, '<', 1, sprintf 'each within 1 s of its publication (slowest: %.0f ms)', $max * 1000;
    $s->close;
    wait_subscribers($chan, 0);
}

# --- order, several subscribers, the subscriber count ---------------------
{
    my @subs = map { subscribe("/comet/$chan") } 1 .. 5;
    $_->prelude for @subs;
    ok wait_subscribers($chan, 5), 'five subscribers';

    my $res = publish($chan, 'count');
    is $res->{json}{subscribers}, 5, 'publish reports 5 subscribers';
    my @ids = ($res->{json}{id});
    my @data = ('count');
    my $conn = Comet::Test::Conn->new;
    for my $i (1 .. 199) {
        my $d = "message $i " . ('*' x ($i % 37));
        my $r = publish($chan, $d, conn => $conn);
        push @ids, $r->{json}{id};
        push @data, $d;
    }
    $conn->close;
    my $all_ok = 1;
    for my $n (0 .. $#subs) {
        my @m = $subs[$n]->messages(200, 10);
        my @got = map { $_ && $_->{type} eq 'p' ? "$_->{id}:$_->{data}" : 'none' } @m;
        my @want = map { "$ids[$_]:" . escape_js($data[$_]) } 0 .. $#ids;
        $all_ok &&= is_deeply \@got, \@want, "subscriber $n: 200 messages, each once, in order";
    }
    $_->close for @subs;
    ok wait_subscribers($chan, 0), 'subscribers gone';
}

# --- a subscriber that leaves does not disturb the others -----------------
{
    my @subs = map { subscribe("/comet/$chan") } 1 .. 3;
    $_->prelude for @subs;
    wait_subscribers($chan, 3);
    $subs[1]->close;
    ok wait_subscribers($chan, 2), 'one of three left: 2 subscribers';
    my $id = publish($chan, 'after')->{json}{id};
    my @f = map { $_->next_frame(3) } @subs[0, 2];
    ok +(2 == grep { $_ && $_->{type} eq 'p' && $_->{id} == $id } @f), '... the others get the next message';
    $_->close for @subs[0, 2];
}

# A client that got the prelude (f("o")) expects the messages published from
# then on, without waiting for anything else.
{
    # The window is short: 4 clients at once try for 4 s, or until one of
    # them loses a message.
    my ($procs, $seconds) = (4, 4);
    my $flag = Apache::Test::config()->{vars}{t_logs} . "/race-$$";
    unlink $flag;
    my @kids;
    for my $k (1 .. $procs) {
        pipe my $r, my $w or die "pipe: $!";
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            close $r;
            my ($missed, $tries) = (0, 0);
            my $c = new_channel("race$k");
            my $conn = Comet::Test::Conn->new;
            my $end = time + $seconds;
            while (!$missed && time < $end && !-e $flag) {
                $tries++;
                my $s = subscribe("/comet/$c");
                $s->prelude;
                my $id = publish($c, "right away $tries", conn => $conn)->{json}{id};
                my $f = $s->next_frame(1);
                $missed++ unless $f && $f->{type} eq 'p' && $f->{id} == $id;
                $s->close;
            }
            if ($missed) {
                open my $fh, '>', $flag;
            }
            delete_channel($c);
            print $w "$missed $tries\n";
            close $w;
            POSIX::_exit(0);
        }
        close $w;
        push @kids, [$pid, $r];
    }
    my ($missed, $tries) = (0, 0);
    for (@kids) {
        my ($pid, $r) = @$_;
        my ($m, $t) = split ' ', (<$r> // '0 0');
        $missed += $m;
        $tries += $t;
        waitpid $pid, 0;
    }
    unlink $flag;
    is $missed, 0, "a message published right after the prelude arrives ($tries tries)";
}

delete_channel($chan);
