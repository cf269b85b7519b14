# Limits, each a directive with a default, each answered 503 with a log line
# when reached: CometMaxChannels (server-wide: a private server of its own,
# so that the cap does not touch the other tests) and CometMaxSubscribers
# (per channel, counted over every child). CometSocketMaxSessions is
# t/84-sock-limits.t's; CometClientBuffer (bytes queued for one client: the
# stream is dropped) t/13-hostile.t's; a full segment t/32-full.t's.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;
use Comet::Private;
use Time::HiRes qw(time sleep);

plan tests => 19, need_module('comet');

my $srv = Comet::Private->start('caps', conf => <<'EOC');
CometMaxChannels 12
<Location /comet-few>
    SetHandler comet
    CometMaxSubscribers 3
</Location>
EOC
ok $srv, 'a private server: CometMaxChannels 12, CometMaxSubscribers 3 on /comet-few';
local $Comet::Test::PORT = $srv->port;

# --- CometMaxChannels ------------------------------------------------------
{
    my $n = store_info()->{channels};
    my @made;
    my $i = 0;
    while ($n + @made < 12) {
        my $c = "cap$i";
        $i++;
        my $r = publish($c, 'x');
        last unless $r->{status} == 201;
        push @made, $c;
    }
    is store_info()->{channels}, 12, '12 channels';
    my $mark = $srv->log_mark;
    my $r = publish('one-too-many', 'x');
    is $r->{status}, 503, 'a 13th channel: publish 503';
    ok $srv->wait_log($mark, qr/CMT00120: \/comet-publish\/one-too-many: CometMaxChannels reached/),
        '... logged: CometMaxChannels reached';
    $mark = $srv->log_mark;
    my $s = subscribe('/comet/one-too-many');
    is $s->{status}, 503, '... subscribe 503';
    ok $srv->wait_log($mark, qr/CMT00120: \/comet\/one-too-many: channel one-too-many: CometMaxSubscribers or CometMaxChannels reached/),
        '... logged';
    $s->close;
    is publish($made[0], 'y')->{status}, 201, 'an existing channel still takes messages';
    $s = subscribe("/comet/$made[1]");
    is $s->{status}, 200, '... and subscribers';
    $s->close;
    is delete_channel($made[0])->{status}, 200, 'one deleted';
    is publish('one-too-many', 'x')->{status}, 201, '... and a new channel is possible again';
    delete_channel($_) for @made, 'one-too-many';
    ok wait_until(sub { store_info()->{channels} == $n }, 10), "all deleted: $n channels, as at first"
        or diag join ' ', store_info()->{channels}, map { "$_:" . (channel_info($_) ? 'there' : '-') }
                                                   @made, 'one-too-many';
}

# --- CometMaxSubscribers: per channel, every child counted ------------------
{
    my @subs;
    my %pids;
    for (1 .. 3) {
        my $s = subscribe('/comet-few/crowd');
        push @subs, $s;
    }
    is join(' ', map { $_->{status} } @subs), '200 200 200', 'three subscribers';
    ok wait_subscribers('crowd', 3), '... counted';
    my $mark = $srv->log_mark;
    # a fourth, through every child we can reach
    my $refused = 0;
    my @conns = pinned_connections(distinct => 2, max => 10);
    for my $conn (@conns) {
        my $s = subscribe('/comet-few/crowd', conn => $conn);
        $refused++ if $s->{status} == 503;
        $pids{ $conn->{pid} }++;
        $s->close;
    }
    is $refused, scalar @conns, 'a fourth: 503 in every child (' . scalar(keys %pids) . ' tried)';
    ok $srv->wait_log($mark, qr/CMT00120: \/comet-few\/crowd: channel crowd: CometMaxSubscribers or CometMaxChannels reached/),
        '... logged';
    (shift @subs)->close;
    ok wait_subscribers('crowd', 2), 'one leaves';
    my $s = subscribe('/comet-few/crowd');
    is $s->{status}, 200, '... and another may come';
    $_->close for @subs, $s;
}

my @p = $srv->problems;
is scalar(@p), 0, 'no crash, no sanitizer report in the private server\'s log' or diag join "\n", @p[0 .. 4];
ok $srv->stop, 'stopped';
