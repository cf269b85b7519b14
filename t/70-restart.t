# A graceful restart (SIGUSR1 to the parent, found by its pid file) keeps
# the channels; the streams of the event loop move to the new generation
# (CometMoveStreams, default On; under prefork no stop is graceful: they
# end), those held by a thread end with e("reconnect"), and clients come
# back with since.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;
use Comet::Private;
use Time::HiRes qw(sleep time);

plan tests => 11, need_module('comet');
my $moves = Comet::Private::mpm() ne 'prefork';

my $chan = new_channel('restart');
my @ids = map { publish($chan, "before $_")->{json}{id} } 1 .. 3;
my @streams = map { subscribe("/comet/$chan") } 1 .. 2;
push @streams, subscribe("/comet-thread/$chan");
$_->prelude for @streams;
ok wait_subscribers($chan, 3), '3 streams, one held by a thread';

my $pidfile = Apache::Test::config()->{vars}{t_pid_file};
open my $fh, '<', $pidfile or die "$pidfile: $!";
chomp(my $ppid = <$fh>);
my $mark = log_mark();
ok kill('USR1', $ppid), "graceful restart of $ppid";
ok wait_log($mark, qr/AH00493: SIGUSR1 received|AH00297: SIGUSR1 received|AH00171: Graceful restart requested/, 10),
    '... under way';

my $E = qq(<script>e("reconnect");</script>\n</body></html>\n);
sub end_of {
    my $s = shift;
    my $f;
    do { $f = $s->next_frame(15) } while $f && $f->{type} eq 'h';
    return $f ? $f->{raw} : 'nothing';
}
is end_of($streams[2]), $E, 'the stream held by a thread ends with e("reconnect")';
SKIP: {
    skip 'CometMoveStreams: the streams of the loop go on (below)', 1 if $moves;
    is_deeply [map { end_of($_) } @streams[0, 1]], [$E, $E],
        'prefork: the streams of the event loop end with e("reconnect")';
}

ok wait_log($mark, qr/CMT00103: kept \d+ bytes of channels across the restart/, 10),
    'the channels are kept (log)';
# the new generation answers
my $info;
my $deadline = time + 10;
until ($info = eval { channel_info($chan) } or time > $deadline) { sleep 0.2 }
is $info && $info->{messages}, 3, 'the channel still holds its 3 messages';
is $info && $info->{last_id}, $ids[-1], '... last_id unchanged';

my $s = subscribe("/comet/$chan?since=$ids[0]");
$s->prelude;
my @m = $s->messages(2, 5);
is join(' ', map { $_ ? $_->{id} : 'none' } @m), "@ids[1, 2]", 'since replays across the restart';
wait_subscribers($chan, 1);
my $id = publish($chan, 'after')->{json}{id};
my $f = $s->next_frame(5);
ok $f && $f->{type} eq 'p' && $f->{id} == $id && $id > $ids[-1], '... and new messages come, with larger ids';
SKIP: {
    skip 'prefork: nothing moves', 1 unless $moves;
    my @next = map { my @m = $_->messages(1, 10); $m[0] } @streams[0, 1];
    is join(' ', map { $_ && $_->{type} eq 'p' ? $_->{id} : $_ ? $_->{raw} : 'nothing' } @next),
        "$id $id", 'the streams of the event loop went on in the new generation: no end, the next message';
}
$s->close;
