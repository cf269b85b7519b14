# Limits of sockets: CometSocketMaxSessions (server-wide, 100 here),
# CometSocketMaxQueue (a backend that never reads), CometMaxMessageSize and
# the 1 MiB payload of xhr_send.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;
use Time::HiRes qw(time sleep);

plan tests => 11, need_module('comet');

# --- CometMaxMessageSize (1K at /sock-small) and the payload --------------
{
    my $sid = new_session();
    http(POST => sjs_path('/sock-small', $sid, 'xhr'));
    my $r = http(POST => sjs_path('/sock-small', $sid, 'xhr_send'), body => '["' . ('x' x 1024) . '"]');
    is $r->{status}, 204, 'a message of 1024 bytes: 204';
    $r = http(POST => sjs_path('/sock-small', $sid, 'xhr_send'), body => '["' . ('y' x 1025) . '"]');
    is $r->{status}, 413, 'one of 1025 bytes: 413';
    $r = http(POST => sjs_path('/sock-small', $sid, 'xhr'));
    is $r->{body}, 'a["' . ('x' x 1024) . "\"]\n", '... only the first came back';
    $r = http(POST => sjs_path('/sock-small', $sid, 'xhr_send'),
              body => '[' . join(',', ('"z"') x (350 * 1024)) . ']');
    is $r->{status}, 413, 'a payload over 1 MiB: 413';
}

# --- CometSocketMaxQueue: a backend that never reads ----------------------
{
    my $sid = new_session();
    my $mark = log_mark();
    http(POST => sjs_path('/sock-noread', $sid, 'xhr'));
    my $m = 'q' x 60000;
    my ($n, $status) = (0, 0);
    while ($n < 60) {
        $status = http(POST => sjs_path('/sock-noread', $sid, 'xhr_send'), body => "[\"$m\"]")->{status};
        last unless $status == 204;
        $n++;
    }
    is $status, 503, "a backend that never reads: 503 after $n messages of 60000 bytes";
    ok $n >= 15 && $n <= 25, '... about 1M queued (CometSocketMaxQueue), plus the pipe';
    ok wait_log($mark, qr/session queue full \(CometSocketMaxQueue\)/, 2), '... logged';
}

# --- CometSocketMaxSessions 100 ------------------------------------------
{
    my $mark = log_mark();
    my (@streams, $refused);
    for (1 .. 130) {
        my $s = eval { sjs_stream('/echo', new_session(), 'eventsource', timeout => 5) };
        last unless $s;
        if ($s->{status} == 503) {
            $refused = $s;
            last;
        }
        push @streams, $s;
    }
    # (over TLS as well: a receiver keeps no worker thread, the server's 40
    # threads, 16 processes under prefork, are not what stops them)
    ok $refused, 'sessions kept open by their receivers: 503 at last, after ' . scalar(@streams);
    cmp_ok scalar(@streams), '<=', 100, '... at most 100 at once';
    ok wait_log($mark, qr/CometSocketMaxSessions \(100\) reached/, 2), '... logged';
    $_->close for @streams;
    # their receivers gone, they end after the disconnect delay (2 s)
    my $ok;
    my $deadline = time + 10;
    while (time < $deadline) {
        my $r = http(POST => sjs_path('/echo', new_session(), 'xhr'));
        last if $ok = $r->{body} eq "o\n";
        sleep 0.5;
    }
    ok $ok, 'once they ended, new sessions open again';
}
