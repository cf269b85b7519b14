# Replay with since=<id>: a client that reconnects gets exactly what it
# missed; since=0 gets everything buffered.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;
use POSIX ();
use Time::HiRes ();

plan tests => 16, need_module('comet');

my $chan = new_channel('since');
my (@ids, @data);
sub pub {
    my $d = shift;
    my $res = publish($chan, $d);
    push @ids, $res->{json}{id};
    push @data, $d;
    return $res->{json}{id};
}
sub want { map { "$ids[$_]:" . escape_js($data[$_]) } @_ }
sub got { map { $_ && $_->{type} eq 'p' ? "$_->{id}:$_->{data}" : 'none' } @_ }

pub("before $_") for 1 .. 5;

# no since: only what comes next
{
    my $s = subscribe("/comet/$chan");
    $s->prelude;
    wait_subscribers($chan, 1);
    is $s->next_frame(0.5), undef, 'no since: nothing of the past';
    pub('live 1');
    is_deeply [got($s->messages(1, 5))], [want(5)], '... then the next message';
    $s->close;
    wait_subscribers($chan, 0);
}

# since=0: everything buffered, then live
{
    my $s = subscribe("/comet/$chan?since=0");
    $s->prelude;
    is_deeply [got($s->messages(6, 5))], [want(0 .. 5)], 'since=0: the 6 buffered messages, in order';
    is $s->next_frame(0.3), undef, '... and nothing more';
    wait_subscribers($chan, 1);
    pub('live 2');
    is_deeply [got($s->messages(1, 5))], [want(6)], '... then live ones';
    $s->close;
    wait_subscribers($chan, 0);
}

# reconnect with the last id seen: exactly what was missed
{
    my $s = subscribe("/comet/$chan?since=$ids[2]");
    $s->prelude;
    is_deeply [got($s->messages(4, 5))], [want(3 .. 6)], "since=<3rd id>: the 4 later messages";
    is $s->next_frame(0.3), undef, '... no duplicate';
    wait_subscribers($chan, 1);
    my $last_seen = $ids[-1];
    $s->close;
    wait_subscribers($chan, 0);

    # missed while away
    pub("missed $_") for 1 .. 3;
    $s = subscribe("/comet/$chan?since=$last_seen");
    $s->prelude;
    is_deeply [got($s->messages(3, 5))], [want(7 .. 9)], 'reconnect with the last id: the 3 missed messages';
    is $s->next_frame(0.3), undef, '... nothing seen before';
    wait_subscribers($chan, 1);
    pub('live 3');
    is_deeply [got($s->messages(1, 5))], [want(10)], '... then live ones, once';
    is $s->next_frame(0.3), undef, '... no duplicate';
    $s->close;
    wait_subscribers($chan, 0);
}

# since the newest id: nothing to replay; a future id: still live messages
{
    my $s = subscribe("/comet/$chan?since=$ids[-1]");
    $s->prelude;
    is $s->next_frame(0.5), undef, 'since=<newest id>: nothing replayed';
    $s->close;
    wait_subscribers($chan, 0);

    $s = subscribe("/comet/$chan?since=" . ($ids[-1] + 10 ** 12));
    $s->prelude;
    wait_subscribers($chan, 1);
    is $s->next_frame(0.3), undef, 'since=<an id from the future>: nothing replayed';
    pub('live 4');
    is_deeply [got($s->messages(1, 5))], [want(11)], '... the next message still arrives';
    $s->close;
}

# Reconnecting while a publisher keeps going: the messages received over
# all the streams are every message, once, in order.
{
    my $live = new_channel('since-live');
    my $total = 300;
    my $s = subscribe("/comet/$live");
    $s->prelude;
    wait_subscribers($live, 1);
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if (!$pid) {
        my $conn = Comet::Test::Conn->new;
        for my $n (1 .. $total) {
            publish($live, "n=$n", conn => $conn);
            Time::HiRes::sleep(0.002);
        }
        POSIX::_exit(0);
    }
    my (@got, $last);
    my $reconnects = 0;
    while (@got < $total) {
        my $f = $s->next_frame(5);
        last unless $f && $f->{type} eq 'p';
        push @got, $f->{data} =~ /^n=(\d+)$/ ? $1 : "?$f->{data}";
        $last = $f->{id};
        # every 37 messages, leave and come back with the last id seen
        if (@got % 37 == 0) {
            $s->close;
            $s = subscribe("/comet/$live?since=$last");
            $s->prelude or last;
            $reconnects++;
        }
    }
    waitpid $pid, 0;
    is scalar(@got), $total, "$total messages received over " . ($reconnects + 1) . ' streams';
    my @bad = grep { $got[$_] ne $_ + 1 } 0 .. $#got;
    is "@bad[0 .. ($#bad < 4 ? $#bad : 4)]", '', '... each once, in order, none lost'
        or diag "first wrong positions: @bad[0 .. ($#bad < 9 ? $#bad : 9)]; got: @got[0 .. 20] ...";
    $s->close;
    delete_channel($live);
}

delete_channel($chan);
