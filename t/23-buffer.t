# What a channel keeps for replay: the last CometMessageBuffer messages, for
# at most CometMessageTTL.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;
use Time::HiRes qw(sleep);

plan tests => 12, need_module('comet');

sub got { map { $_ && $_->{type} eq 'p' ? "$_->{id}:$_->{data}" : 'none' } @_ }

# --- CometMessageBuffer 5 -------------------------------------------------
my $chan = new_channel('buffer');
my (@ids, @data);
for my $i (1 .. 8) {
    my $res = publish($chan, "b$i", location => '/comet-small-publish');
    push @ids, $res->{json}{id};
    push @data, "b$i";
}
my $info = channel_info($chan);
is $info->{messages}, 5, '8 published, CometMessageBuffer 5: 5 kept';
is $info->{first_id}, $ids[3], '... first_id: the 4th message';
is $info->{last_id}, $ids[7], '... last_id: the 8th';
is $info->{bytes}, 10, '... bytes of the 5 kept';

my $s = subscribe("/comet/$chan?since=0");
$s->prelude;
my @want = map { "$ids[$_]:$data[$_]" } 3 .. 7;
is_deeply [got($s->messages(5, 5))], \@want, 'since=0: the 5 kept, in order';
is $s->next_frame(0.3), undef, '... nothing older';
$s->close;

$s = subscribe("/comet/$chan?since=$ids[0]");
$s->prelude;
is_deeply [got($s->messages(5, 5))], \@want, 'since=<a trimmed id>: what is left after it';
$s->close;

# the limit is the publishing location's: another location keeps 100
publish($chan, "b$_") for 9 .. 12;
is channel_info($chan)->{messages}, 9, 'then 4 through /comet-publish (buffer 100): 9 kept';
delete_channel($chan);

# --- CometMessageTTL 1 ----------------------------------------------------
$chan = new_channel('ttl');
my @tids = map { publish($chan, "t$_", location => '/comet-ttl-publish')->{json}{id} } 1 .. 3;
is channel_info($chan)->{messages}, 3, 'CometMessageTTL 1: 3 messages kept at first';
sleep 2.2;
$s = subscribe("/comet/$chan?since=0");
$s->prelude;
is $s->next_frame(0.5), undef, '... none replayed 2 s later';
$s->close;
$info = channel_info($chan);
is $info ? $info->{messages} : 0, 0, '... none counted';
is $info ? $info->{last_id} : $tids[-1], $tids[-1], '... last_id stays';
delete_channel($chan);
