# DELETE ends the channel's streams, in every child and both stream modes,
# with e("deleted").
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;

plan tests => 10, need_module('comet');

my $chan = new_channel('delete');
my $keep = new_channel('delete-keep');
my $E = qq(<script>e("deleted");</script>\n</body></html>\n);

# streams spread over the children, in both modes
my @conns = pinned_connections(distinct => 2, min => 6, max => 60);
my %pids;
$pids{ $_->{pid} }++ for @conns;
my @streams;
for my $i (0 .. $#conns) {
    my $loc = $i % 2 ? '/comet-thread' : '/comet';
    my $s = subscribe("$loc/$chan", conn => $conns[$i]);
    $s->prelude;
    push @streams, $s;
}
my $other = subscribe("/comet/$keep");
$other->prelude;
my $n = @streams;
ok wait_subscribers($chan, $n) && wait_subscribers($keep, 1),
    "$n streams in " . scalar(keys %pids) . ' children, half of them held by a thread';
my $id = publish($chan, 'before')->{json}{id};
# (a message published just before the DELETE may or may not reach a stream
# whose child learns of both at once: wait for it first)
my @first = map { $_->next_frame(5) } @streams;
is scalar(grep { $_ && $_->{type} eq 'p' && $_->{id} == $id } @first), $n,
    'every stream got the message published before';

my $res = delete_channel($chan);
is $res->{status}, 200, 'DELETE: 200';
is $res->{body}, qq({"channel": "$chan", "deleted": true, "subscribers": $n}\n),
    "... reports the $n subscribers";

my (@bad, @open);
for my $s (@streams) {
    my @f;
    while (my $f = $s->next_frame(5)) {
        push @f, $f;
        last if $f->{type} ne 'p' && $f->{type} ne 'h';
    }
    my ($rest, $closed) = $s->rest(3);
    push @bad, "$s->{path} in $s->{pid}: " . join('', map { $_->{raw} } @f)
        unless @f == 1 && $f[0]{raw} eq $E;
    push @open, "$s->{path} in $s->{pid}" unless $closed && $rest eq '';
}
is scalar(@bad), 0, 'then every stream got e("deleted") and </body></html>'
    or diag join "\n", @bad;
is scalar(@open), 0, '... and was closed by the server' or diag join "\n", @open;
is http(GET => "/comet-publish/$chan")->{status}, 404, 'the channel is gone';

# the other channel's stream goes on
$id = publish($keep, 'still here')->{json}{id};
my $f = $other->next_frame(5);
is $f && $f->{raw}, "<script>p($id,\"still here\",\"$keep\");</script>\n",
    'a stream of another channel goes on';

# a stream on two channels, one of them deleted
my $a = new_channel('delete-a');
my $s = subscribe("/comet/$a,$keep");
$s->prelude;
wait_subscribers($a, 1);
delete_channel($a);
my @f;
while (my $g = $s->next_frame(5)) {
    push @f, $g;
    last if $g->{type} ne 'h';
}
is $f[-1] && $f[-1]{raw}, $E, 'a stream on two channels, one deleted: e("deleted")';
ok wait_subscribers($keep, 1), '... and it leaves the other channel';
$s->close;
$other->close;
