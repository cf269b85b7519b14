# A full store: publishing gets 507 and an error-log line; deleting a channel
# frees its memory and publishing works again.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;

plan tests => 17, need_module('comet');

my $chan = new_channel('full');
my $other = new_channel('full-other');
my $big = '/comet-big-publish';    # CometMaxMessageSize 2M, CometMessageBuffer 1000

my $st = store_info();
my $max = $st->{memory_max};
ok $max > 0 && $max <= 4 * 1024 * 1024, "memory_max: $max";

# a stream on the channel sees everything accepted
my $s = subscribe("/comet-unlimited/$chan");    # CometStreamLimit 0
$s->prelude;
wait_subscribers($chan, 1);

my $mark = log_mark();
my $msg = 'F' x (256 * 1024);
my ($n, $res, @ids) = (0);
my $conn = Comet::Test::Conn->new;
while ($n < 40) {
    $res = publish($chan, $msg, location => $big, conn => $conn);
    last unless $res->{status} == 201;
    push @ids, $res->{json}{id};
    $n++;
}
cmp_ok $n, '>=', 8, "$n messages of 256K accepted first";
is $res->{status}, 507, 'then 507 Insufficient Storage';
my $line = wait_log($mark, qr/\[comet:error\].*CMT00120: \Q$big\E\/\Q$chan\E: the channel store is full/);
ok $line, 'error log: "the channel store is full" (error level)';
like $line // '', qr/No space left on device/, '... with the cause';
like $line // '', qr/raise CometSharedMemory/, '... and what to do';

# fill what is left with smaller messages
my $total = $n;
for my $size (16 * 1024, 1024, 64) {
    for (1 .. 1000) {
        $res = publish($chan, 'f' x $size, location => $big, conn => $conn);
        last unless $res->{status} == 201;
        push @ids, $res->{json}{id};
        $total++;
    }
}
$st = store_info(conn => $conn);
cmp_ok $st->{memory_used}, '>', $max - 4096, "full: memory_used $st->{memory_used} of $max";
is publish($other, 'tiny', conn => $conn)->{status}, 507,
    'another channel cannot publish either: 507';
my $info = channel_info($chan, conn => $conn);
is $info->{messages}, $total, "the channel holds the $total messages";

# A stream opened now cannot be registered: the client must be told.
{
    my $late = subscribe('/comet/' . new_channel('full-late'));
    my $ok = $late->{status} != 200;
    if (!$ok) {
        $late->prelude(5);
        my $f = $late->next_frame(5);
        $ok = $f && $f->{type} eq 'e';
    }
    ok $ok, 'a stream opened while the store is full: an error status, or an end frame';
    $late->close;
}

my @m = $s->messages($total, 10);
is join(' ', map { $_ ? $_->{id} : 'none' } @m), "@ids",
    "the stream got the $total accepted messages, in order";

# deleting frees the memory
$res = delete_channel($chan, conn => $conn);
is $res->{status}, 200, 'DELETE: 200';
is $res->{json}{subscribers}, 1, '... it had 1 subscriber';
$st = store_info(conn => $conn);
cmp_ok $st->{memory_used}, '<', 64 * 1024, "memory_used after DELETE: $st->{memory_used}";
is publish($other, 'small', conn => $conn)->{status}, 201, 'publishing works again: 201';
$res = publish($chan, $msg, location => $big, conn => $conn);
is $res->{status}, 201, '... also 256K to the deleted channel: 201';
cmp_ok $res->{json}{id}, '>', $ids[-1], '... with a larger id';

$conn->close;
$s->close;
delete_channel($chan);
delete_channel($other);
