# CometRedis sentinel://: two private Apaches find their Redis through
# three private sentinels watching a primary and its replica. A failover
# (SENTINEL FAILOVER) while a publisher keeps publishing: publishes answer
# 503 for the moment it takes, then 201 on the new primary, and a subscriber
# on the other server gets every message that was answered 201, once, in
# order, and every one of them is in the new primary.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;
use Comet::Private;
use Comet::Redis;
use POSIX ();
use Time::HiRes qw(time sleep);

plan skip_all => 'redis-server or redis-sentinel is not installed'
    unless -x '/usr/bin/redis-server' && -x '/usr/bin/redis-sentinel';
plan tests => 14, need_module('comet');

# ports 8585-8589 (t/unit/test_redis_sentinel has 8577-8584)
my ($P, $R, @S) = (8585, 8586, 8587, 8588, 8589);
my $primary = Comet::Redis->start('99p', port => $P) or BAIL_OUT("primary: $@");
my $replica = Comet::Redis->start('99r', port => $R, replicaof => "127.0.0.1 $P")
    or BAIL_OUT("replica: $@");
my @sentinels = map {
    Comet::Redis->start("99s$_", sentinel => { port => $_, master => "127.0.0.1 $P",
                                               name => 'cm99' }) or BAIL_OUT("sentinel: $@")
} @S;
ok wait_until(sub { $replica->cli('INFO', 'replication') =~ /master_link_status:up/ }, 10),
    'a primary, its replica and three sentinels';
ok wait_until(sub { ($sentinels[0]->cli('SENTINEL', 'replicas', 'cm99') // '') =~ /$R/ }, 10),
    '... the sentinels know the replica';

my $url = 'sentinel://' . join(',', map { "127.0.0.1:$_" } @S) . '/cm99';
# a buffer that keeps every message of the run, to look for each in Redis
my $conf = "CometRedis $url\nCometHeartbeat 1\nCometMessageBuffer 1000\n";
my $A = Comet::Private->start('rs-a', conf => $conf);
my $B = Comet::Private->start('rs-b', conf => $conf);
ok $A->wait_log(0, qr/following the channels of every server/, 10)
   && $B->wait_log(0, qr/following the channels of every server/, 10),
    "two servers on $url";

sub on {
    my ($srv, $code) = @_;
    local $Comet::Test::PORT = $srv->port;
    return $code->();
}

my $ch = new_channel('sentinel');
my $s = on($B, sub { subscribe("/comet/$ch?transport=stream") });
$s->upto("\n", 5) for 1 .. 2;
ok on($B, sub { wait_subscribers($ch, 1) }), 'a subscriber on B';
my $first = on($A, sub { publish($ch, 'm0') });
is $first->{status}, 201, 'a publish on A reaches the primary';

# a publisher on A for 8 s, 25 a second, noting what was answered 201
my $acked = Comet::Private::t_dir() . '/logs/redis-99-acked';
my $pid = fork // die "fork: $!";
if (!$pid) {
    open my $fh, '>', $acked or POSIX::_exit(2);
    $fh->autoflush(1);
    my $end = time + 8;
    my $i = 0;
    while (time < $end) {
        $i++;
        my $r = eval { on($A, sub { publish($ch, "m$i", timeout => 5) }) };
        print $fh $r && $r->{status} == 201 ? "$r->{json}{id} m$i\n" : "no m$i " . ($r ? $r->{status} : 'error') . "\n";
        sleep 0.04;
    }
    POSIX::_exit(0);
}
sleep 2;
my $t0 = time;
is $sentinels[0]->cli('SENTINEL', 'failover', 'cm99'), 'OK', 'SENTINEL FAILOVER under load';
ok wait_until(sub { ($sentinels[1]->cli('SENTINEL', 'get-master-addr-by-name', 'cm99') // '') =~ /\b$R\b/ }, 15),
    '... the replica is the primary now (' . sprintf('%.1f s', time - $t0) . ')';
waitpid $pid, 0;

open my $fh, '<', $acked or die "$acked: $!";
my (@ok, @no);
while (<$fh>) {
    if (/^(\d+) (m\d+)$/) { push @ok, [$1, $2] } else { push @no, $_ }
}
close $fh;
diag scalar(@ok) . ' publishes answered 201, ' . scalar(@no) . ' not (' .
    join(', ', map { (split ' ', $_)[2] } @no[0 .. ($#no < 4 ? $#no : 4)]) . ')';
ok @ok >= 50, 'publishes answered 201 all along but for a moment (' . scalar(@ok) . ')';
ok !grep({ !/ 503$/ } @no), '... the others 503, none failing otherwise';
my $after = $ok[-1][0] // 0;
ok $after && $replica->cli('XREVRANGE', "comet:{$ch}:s", '+', '-', 'COUNT', 1) =~ /^\Q$after\E-0/,
    '... the last ones went to the new primary';
# the old primary, demoted, takes the new one's data: only what a replica
# had is left (a publish acknowledged on the old primary alone is gone)
my %kept = map { /^(\d+)-0$/ ? ($1 => 1) : () }
    split /\n/, $replica->cli('XRANGE', "comet:{$ch}:s", '-', '+');
my @gone = grep { !$kept{$_->[0]} } @ok;
ok !@gone, 'every publish answered 201 is in the new primary (' . scalar(@gone) . ' not: '
    . join(' ', map { $_->[1] } @gone[0 .. ($#gone < 9 ? $#gone : 9)]) . ')';

# B's subscriber: every acknowledged message once, in order; a publish
# answered 503 may or may not have gone through (a 503 is not a refusal)
my %maybe = map { (split ' ', $_)[1] => 1 } @no;
my @want = ("$first->{json}{id}:m0", map { "$_->[0]:$_->[1]" } @ok);
my %want = map { $_ => 1 } @want;
my (@got, @extra);
my $deadline = time + 15;
while (@got < @want && time < $deadline) {
    my $l = $s->upto("\n", $deadline - time) // last;
    next unless $l =~ /"id"/;
    my $m = eval { json($l) } or last;
    my $g = "$m->{id}:$m->{data}";
    if ($want{$g}) { push @got, $g } else { push @extra, $g }
}
is scalar(@got), scalar(@want), "B's subscriber got " . scalar(@got) . ' of the ' . scalar(@want)
    . ' acknowledged';
is_deeply \@got, \@want, '... each once, in order';
ok !grep({ !/^\d+:(m\d+)$/ || !$maybe{$1} } @extra),
    '... and nothing else but what was answered 503 (' . scalar(@extra) . ')';
$s->close;

$A->stop;
$B->stop;
$_->stop for @sentinels, $replica, $primary;
