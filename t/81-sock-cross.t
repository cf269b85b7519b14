# A session crosses children: its polls, sends and streams land in different
# processes (each connection pinned: its child learnt from GET
# /comet-publish/ first); messages keep their order, none is lost between
# two polls, none comes twice.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;
use Time::HiRes qw(time sleep);

plan tests => 8, need_module('comet');

my $prefork = (Apache::Test::config()->{server}{mpm} // '') eq 'prefork';

# A new connection and the child that serves it. While earlier ones stay
# open, a prefork server hands it to another child; event spreads them too.
sub fresh {
    my $c = Comet::Test::Conn->new;
    my $r = http(GET => '/comet-publish/', conn => $c, timeout => 10);
    $c->{pid} = $r->{json}{this_process}{pid};
    return $c;
}

# A connection to a child not among @pids (as long as 30 tries find one; the
# others are kept open meanwhile: prefork then hands out another child).
sub fresh_not {
    my (@pids) = @_;
    my @tried;
    for (1 .. 30) {
        my $c = fresh();
        return $c unless grep { $_ == $c->{pid} } @pids;
        push @tried, $c;
    }
    return shift @tried;
}

my $sid = new_session();
my $n = 0;
my (%poll_pids, %send_pids, @errors, @want_all, @got_all, $crossed, $last_poll);
my $c0 = fresh();
my $res = http(POST => sjs_path('/echo', $sid, 'xhr'), conn => $c0);
is $res->{body}, "o\n", "session opened in child $c0->{pid}";

# rounds: two sends and a poll, on connections open at once
for my $round (0 .. 9) {
    my @sent;
    my @open;
    for my $k (0, 1) {
        my $conn = fresh_not(map { $_->{pid} } @open);
        push @open, $conn;
        my @m = map { 'r' . $round . 'm' . $n++ } 1 .. 3;
        my $r = http(POST => sjs_path('/echo', $sid, 'xhr_send'), conn => $conn,
                     body => '[' . join(',', map { "\"$_\"" } @m) . ']');
        push @errors, "send $round/$k: $r->{status}" unless $r->{status} == 204;
        $send_pids{ $conn->{pid} }++;
        push @sent, @m;
    }
    push @want_all, @sent;
    my @got;
    my $deadline = time + 5;
    while (@got < @sent && time < $deadline) {
        # polls alternate between children
        my $pc = fresh_not($last_poll // ());
        $last_poll = $pc->{pid};
        $poll_pids{ $pc->{pid} }++;
        $crossed++ if grep { $_->{pid} != $pc->{pid} } @open;
        my $r = http(POST => sjs_path('/echo', $sid, 'xhr'), conn => $pc, timeout => 10);
        if ($r->{body} =~ /\Aa(\[.*\])\n\z/s) {
            push @got, @{ json($1) };
        }
        elsif ($r->{body} ne "h\n") {
            push @errors, "poll $round: $r->{body}";
            last;
        }
    }
    $_->close for @open;
    push @got_all, @got;
}
is "@errors", '', 'every send 204, every poll a[...]';
cmp_ok scalar(keys %send_pids), '>=', 2, 'sent from ' . join(', ', sort keys %send_pids);
cmp_ok scalar(keys %poll_pids), '>=', 2, 'polled in ' . join(', ', sort keys %poll_pids);
ok $crossed, ($crossed // 0) . " polls in a child that had not sent what they got";
is "@got_all", "@want_all", scalar(@want_all) . ' messages, in order, once each, across children';

# a stream held in one child, sends from the others
{
    my $sid2 = new_session();
    my $s = sjs_stream('/echo', $sid2, 'xhr_streaming', conn => fresh());
    $s->bytes(2049, 5);
    my %pids;
    my @m = map { "s$_" } 1 .. 30;
    my @window;
    $s->upto("\n", 5);
    for my $i (0 .. $#m) {
        my $conn = fresh();
        $pids{ $conn->{pid} }++;
        http(POST => sjs_path('/echo', $sid2, 'xhr_send'), conn => $conn, body => qq(["$m[$i]"]));
        push @window, $conn;
        shift(@window)->close if @window > 2;
    }
    $_->close for @window;
    my @got;
    while (@got < @m) {
        my $line = $s->upto("\n", 5) // last;
        next if $line eq "h\n";
        push @got, $line =~ /\Aa\["([^"]*)"\]\n\z/ ? $1 : "junk:$line";
    }
    is "@got", "@m", '30 messages sent from ' . scalar(keys %pids) . ' children to a stream arrive in order';
    $s->close;
}

# nothing lost between two polls: messages sent while no receiver is there
{
    my $sid3 = new_session();
    http(POST => sjs_path('/echo', $sid3, 'xhr'));
    my @m = map { "gap$_" } 1 .. 20;
    my @window;
    for my $i (0 .. $#m) {
        my $conn = fresh();
        http(POST => sjs_path('/echo', $sid3, 'xhr_send'), conn => $conn, body => qq(["$m[$i]"]));
        push @window, $conn;
        shift(@window)->close if @window > 2;
    }
    $_->close for @window;
    sleep 0.3;
    my @got;
    for (1 .. 5) {
        my $r = http(POST => sjs_path('/echo', $sid3, 'xhr'), timeout => 10);
        push @got, @{ json($1) } if $r->{body} =~ /\Aa(\[.*\])\n\z/s;
        last if @got >= @m;
    }
    is "@got", "@m", 'messages sent between two polls all come with the next ones';
}
