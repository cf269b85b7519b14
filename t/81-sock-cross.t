# A session crosses children: its polls, sends and streams land in different
# processes (connections pinned by this_process.pid); messages keep their
# order, none is lost between two polls, none comes twice.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;
use Time::HiRes qw(time sleep);

plan tests => 9, need_module('comet');

my $prefork = (Apache::Test::config()->{server}{mpm} // '') eq 'prefork';
my $want = $prefork ? 4 : 2;

# Connections kept alive for sends, at least $want children among them.
my @send = pinned_connections(distinct => $want, min => $want, max => 40);
my %by_pid;
push @{ $by_pid{ $_->{pid} } }, $_ for @send;
my @pids = sort keys %by_pid;
cmp_ok scalar(@pids), '>=', $want, "send connections reach " . scalar(@pids) . " children";

# A connection to child $pid for one poll (polls close their connection).
sub conn_to {
    my ($pid) = @_;
    my @keep;
    for (1 .. 40) {
        my $c = Comet::Test::Conn->new;
        my $res = eval { http(GET => '/comet-publish/', conn => $c, timeout => 3) };
        last unless $res && $res->{status} == 200;
        if ($res->{json}{this_process}{pid} == $pid) {
            $c->{pid} = $pid;
            return $c;
        }
        push @keep, $c;
    }
    return undef;
}

my $sid = new_session();
my $n = 0;
my (%poll_pids, %send_pids, @errors);
my $c0 = conn_to($pids[0]);
my $res = http(POST => sjs_path('/echo', $sid, 'xhr'), conn => $c0 || undef);
is $res->{body}, "o\n", "session opened in child $pids[0]";

# rounds: sends from two children, then a poll in a third
my @want_all;
my @got_all;
for my $round (0 .. 7) {
    my @sent;
    for my $k (0, 1) {
        my $pid = $pids[($round + $k + 1) % @pids];
        my $conn = $by_pid{$pid}[0];
        my @m = map { 'r' . $round . 'm' . $n++ } 1 .. 3;
        my $r = http(POST => sjs_path('/echo', $sid, 'xhr_send'), conn => $conn,
                     body => '[' . join(',', map { "\"$_\"" } @m) . ']');
        push @errors, "send $round/$k: $r->{status}" unless $r->{status} == 204;
        $send_pids{$pid}++ unless $conn->{closing};
        push @sent, @m;
    }
    push @want_all, @sent;
    my $ppid = $pids[($round + 3) % @pids];
    my $pc = conn_to($ppid);
    $poll_pids{$ppid}++ if $pc;
    # one poll may not carry everything if the echo is slower: poll again
    my @got;
    my $deadline = time + 5;
    while (@got < @sent && time < $deadline) {
        my $r = http(POST => sjs_path('/echo', $sid, 'xhr'), conn => $pc || undef, timeout => 10);
        $pc = undef;
        if ($r->{body} =~ /\Aa(\[.*\])\n\z/s) {
            push @got, @{ json($1) };
        }
        elsif ($r->{body} ne "h\n") {
            push @errors, "poll $round: $r->{body}";
            last;
        }
    }
    push @got_all, @got;
}
is "@errors", '', 'every send 204, every poll a[...]';
cmp_ok scalar(keys %send_pids), '>=', 2, 'sent from ' . join(', ', sort keys %send_pids);
cmp_ok scalar(keys %poll_pids), '>=', 2, 'polled in ' . join(', ', sort keys %poll_pids);
is "@got_all", "@want_all", scalar(@want_all) . ' messages, in order, once each, across children';

# a stream held in one child, sends from the others
{
    my $sid2 = new_session();
    my $sc = conn_to($pids[-1]);
    my $s = sjs_stream('/echo', $sid2, 'xhr_streaming', conn => $sc || undef);
    $s->bytes(2049, 5);
    is $s->upto("\n", 5), "o\n", "streaming receiver in child $pids[-1]";
    my @m = map { "s$_" } 1 .. 30;
    for my $i (0 .. $#m) {
        my $conn = $by_pid{ $pids[$i % @pids] }[0];
        http(POST => sjs_path('/echo', $sid2, 'xhr_send'), conn => $conn, body => qq(["$m[$i]"]));
    }
    my @got;
    while (@got < @m) {
        my $line = $s->upto("\n", 5) // last;
        next if $line eq "h\n";
        push @got, $line =~ /\Aa\["([^"]*)"\]\n\z/ ? $1 : "junk:$line";
    }
    is "@got", "@m", '30 messages sent from ' . scalar(@pids) . ' children arrive in order';
    $s->close;
}

# nothing lost between two polls: messages sent while no receiver is there
{
    my $sid3 = new_session();
    http(POST => sjs_path('/echo', $sid3, 'xhr'));
    my @m = map { "gap$_" } 1 .. 20;
    for my $i (0 .. $#m) {
        http(POST => sjs_path('/echo', $sid3, 'xhr_send'), conn => $by_pid{ $pids[$i % @pids] }[0],
             body => qq(["$m[$i]"]));
    }
    sleep 0.3;
    my @got;
    for (1 .. 5) {
        my $r = http(POST => sjs_path('/echo', $sid3, 'xhr'), timeout => 10);
        push @got, @{ json($1) } if $r->{body} =~ /\Aa(\[.*\])\n\z/s;
        last if @got >= @m;
    }
    is "@got", "@m", 'messages sent between two polls all come with the next ones';
}
$_->close for @send;
