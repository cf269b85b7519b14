# The two ways a stream is written: by the child's event loop (the default,
# "auto"), or by the request's worker thread (CometStreamMode thread). Same
# bytes on the wire; the figures of each child tell which one holds a stream.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;

plan tests => 10, need_module('comet');

my $chan = new_channel('modes');

my ($ca) = pinned_connections(distinct => 1, min => 1);
my ($ct) = pinned_connections(distinct => 1, min => 1);
my $auto = subscribe("/comet/$chan", conn => $ca);
my $thread = subscribe("/comet-thread/$chan", conn => $ct);
is $thread->{head} =~ s/^Date: .*\r\n//mr, $auto->{head} =~ s/^Date: .*\r\n//mr,
    'same status line and headers (but Date)';
my $pa = $auto->prelude;
my $pt = $thread->prelude;
is $pt, $pa, 'same prelude';
ok wait_subscribers($chan, 2), 'both registered';

my @msgs = ('plain', '</script><!--', "\xe2\x80\xa8\xff\0", 'x' x 20000);
my @ids = map { publish($chan, $_)->{json}{id} } @msgs;
my @fa = $auto->messages(scalar @msgs, 5);
my @ft = $thread->messages(scalar @msgs, 5);
is join('', map { $_ ? $_->{raw} : 'none' } @ft), join('', map { $_ ? $_->{raw} : 'none' } @fa),
    'same message frames';
is join('', map { $_ ? $_->{raw} : 'none' } @fa),
    join('', map { frame_bytes($ids[$_], $msgs[$_], $chan) } 0 .. $#msgs), '... as modelled';

# who holds what
my %want;
$want{ $auto->{pid} }{subs}++;
$want{ $thread->{pid} }{subs}++;
$want{ $thread->{pid} }{held}++;
my $threaded = (Apache::Test::config()->{server}{mpm} // '') ne 'prefork';
SKIP: {
    # a prefork child holding a stream answers nothing else
    skip 'prefork: the child holding a thread-mode stream is busy', 1 unless $threaded;
    my $fig_t = child_figures($thread->{pid});
    ok $fig_t && $fig_t->{held} >= 1, "thread mode: child $thread->{pid} counts a held stream"
        or diag explain $fig_t;
}
{
    # over TLS too: the loop takes mod_ssl's session with the socket
    my $fig_a = child_figures($auto->{pid});
    is $fig_a && $fig_a->{subscribers}, $want{ $auto->{pid} }{subs}, "auto mode: child $auto->{pid} counts its streams";
    is $fig_a && $fig_a->{held}, $want{ $auto->{pid} }{held} // 0,
        '... and the event loop writes the auto one, not a worker thread'
        or diag 'see "CMT00130: output filter ... rewrites the stream" or CMT00134 in t/logs/error_log';
}

# both notice a client that leaves
$auto->close;
ok wait_subscribers($chan, 1), 'auto: the client left, the stream is dropped';
$thread->close;
ok wait_subscribers($chan, 0, 5), 'thread: the client left, the stream is dropped';
