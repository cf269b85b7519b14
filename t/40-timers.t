# Timers: a heartbeat frame after CometHeartbeat of silence, the end of the
# stream with e("reconnect") at CometMaxLifetime; written by the event loop
# and by a worker thread (CometStreamMode thread) alike.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;

my @locations = ('/comet-small', '/comet-thread-small');    # CometHeartbeat 1, CometMaxLifetime 3
plan tests => 9 * 2 * @locations + 1, need_module('comet');

my $chan = new_channel('timers');
my $busy = new_channel('timers-busy');
my (@streams, @names);
for my $loc (@locations) {
    for my $c ($chan, $busy) {
        my $s = subscribe("$loc/$c");
        $s->prelude;
        push @streams, $s;
        push @names, "$loc/" . ($c eq $chan ? 'idle' : 'busy');
    }
}
ok wait_subscribers($chan, 2) && wait_subscribers($busy, 2), 'streams registered';

my $id;
my @got = collect_frames(\@streams, 5,
    at => [[0.5, sub { $id = publish($busy, 'tick')->{json}{id} }]]);

my $H = "<script>h();</script>\n";
my $E = qq(<script>e("reconnect");</script>\n</body></html>\n);
sub show { join ', ', map { sprintf '%.2f %s', $_->[0], $_->[1] ? $_->[1]{type} : 'closed' } @_ }

for my $i (0 .. $#streams) {
    my $name = $names[$i];
    my @f = @{ $got[$i] };
    my $closed = @f && !defined $f[-1][1];
    pop @f if $closed;
    my @h = grep { $_->[1]{type} eq 'h' } @f;
    my @e = grep { $_->[1]{type} eq 'e' } @f;
    my @p = grep { $_->[1]{type} eq 'p' } @f;
    ok !grep({ $_->[1]{type} eq 'junk' } @f), "$name: frames only" or diag show(@f);
    ok @e == 1 && $e[0][1]{raw} eq $E && $f[-1] == $e[0],
        "$name: ends with e(\"reconnect\") and </body></html>" or diag show(@f);
    ok @e && $e[0][0] > 2.7 && $e[0][0] < 3.8, sprintf "$name: ... at CometMaxLifetime (%.2f s)",
        @e ? $e[0][0] : -1;
    ok $closed, "$name: ... and the server closes the connection";
    ok !grep({ $_->[1]{raw} ne $H } @h), "$name: heartbeats are $H" =~ s/\n/\\n/r;
    if ($name =~ /idle/) {
        is scalar(@h), 2, "$name: 2 heartbeats" or diag show(@f);
        ok @h == 2 && $h[0][0] > 0.8 && $h[0][0] < 1.5 && $h[1][0] > 1.8 && $h[1][0] < 2.5,
            "$name: ... after 1 s of silence each" or diag show(@f);
        is scalar(@p), 0, "$name: no message";
        pass "$name: (nothing else)";
    }
    else {
        is scalar(@p), 1, "$name: the message";
        is $p[0] && $p[0][1]{raw}, "<script>p($id,\"tick\",\"$busy\");</script>\n", '... exactly';
        ok @p && $p[0][0] > 0.4 && $p[0][0] < 1, sprintf "$name: ... at 0.5 s (%.2f)", @p ? $p[0][0] : -1;
        # the message restarts the silence: no heartbeat before 1.5 s
        ok @h && $h[0][0] > 1.3, sprintf "$name: first heartbeat 1 s after the message (%.2f)",
            @h ? $h[0][0] : -1;
    }
}
$_->close for @streams;
