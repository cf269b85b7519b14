# Messages cross processes: publishers and subscribers in different children
# (told apart by this_process.pid of GET /comet-publish/ on the same
# keep-alive connection), every subscriber gets every message once, in order.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;
use Time::HiRes ();

plan tests => 8, need_module('comet');

my $chan = new_channel('xproc');
my $N = 8;      # subscribers
my $M = 40;     # messages

# Subscribers: keep-alive connections whose child is known, at least two
# children among them. An open connection keeps a prefork child busy, so
# the next one goes to another child; with event, connections spread by
# chance, so open more until two children are seen.
my @sconns = pinned_connections(distinct => 2, min => $N, max => 60);
my %spids;
$spids{ $_->{pid} }++ for @sconns;
cmp_ok scalar(keys %spids), '>=', 2,
    'subscriber connections reach ' . scalar(keys %spids) . ' children: '
    . join(', ', map { "$_ ($spids{$_})" } sort keys %spids);
# (where CometBalance leaves them: in the child of their connection)
my @subs = map { subscribe("/comet-pinned/$chan", conn => $_) } @sconns;
is scalar(grep { $_->{status} == 200 && $_->prelude } @subs), scalar(@subs),
    scalar(@subs) . ' streams open';
ok wait_subscribers($chan, scalar @subs), '... all registered with the channel';

# Publishers: fresh connections, also spread.
my @pconns = pinned_connections(distinct => 2, min => 4, max => 60);
my %ppids;
my (@ids, @data);
for my $i (0 .. $M - 1) {
    my $conn = $pconns[$i % @pconns];
    my $pid = $conn->{pid};
    my $d = "m$i from $pid";
    my $res = publish($chan, $d, conn => $conn);
    last unless $res->{status} == 201;
    # the connection may have been renewed (MaxKeepAliveRequests): only count
    # the children we know
    $ppids{$pid}++ unless $conn->{closing};
    push @ids, $res->{json}{id};
    push @data, $d;
}
$_->close for @pconns;    # (a prefork child serves nothing else meanwhile)
is scalar(@ids), $M, "$M messages published";
cmp_ok scalar(keys %ppids), '>=', 2,
    'published from ' . scalar(keys %ppids) . ' children: '
    . join(', ', map { "$_ ($ppids{$_})" } sort keys %ppids);
my @bad = grep { $ids[$_] <= $ids[$_ - 1] } 1 .. $#ids;
is "@bad", '', 'ids strictly increasing across children';

my @want = map { "$ids[$_]:" . escape_js($data[$_]) } 0 .. $#ids;
my @wrong;
my @got_all = map {
    [map { $_ && $_->{type} eq 'p' ? "$_->{id}:$_->{data}" : 'none' } $_->messages($M, 10)]
} @subs;
# nothing more may follow (no duplicate)
Time::HiRes::sleep(0.3);
for my $i (0 .. $#subs) {
    my $s = $subs[$i];
    my @got = @{ $got_all[$i] };
    my $extra = $s->next_frame(0.01);
    push @got, "extra:$extra->{raw}" if $extra && $extra->{type} ne 'h';
    push @wrong, "child $s->{pid}: got " . scalar(@got) . " [@got[0 .. ($#got < 2 ? $#got : 2)] ...]"
        unless "@got" eq "@want";
}
is scalar(@wrong), 0, 'every subscriber, in every child, got every message once, in order'
    or diag join "\n", @wrong;

# the children's own figures agree: each stream counted where it lives
my @miss;
for my $pid (sort keys %spids) {
    my $fig = child_figures($pid);
    push @miss, "$pid: " . ($fig ? $fig->{subscribers} : 'unreachable') . " for $spids{$pid}"
        unless $fig && $fig->{subscribers} == $spids{$pid};
}
is "@miss", '', 'this_process.subscribers of each child counts its streams';

$_->close for @subs;
delete_channel($chan);
