# CometMoveStreams across a graceful restart that changes the
# configuration: the streams the old children hand over take the new
# generation's settings of their location (heartbeat, lifetime,
# transports) from then on, and those whose location no longer serves
# streams end with their end frame. A private server (event or worker;
# prefork never moves streams, t/70), ten iframe streams on five
# locations, then the restart with the locations changed.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;
use Comet::Private;
use List::Util qw(sum0);
use Time::HiRes qw(sleep time);

my $mpm = Comet::Private::mpm();
plan skip_all => 'prefork: no child stop is graceful, streams end (t/70)' if $mpm eq 'prefork';
plan tests => 12, need_module('comet');

sub location {
    my ($path, @directives) = @_;
    return join '', "<Location $path>\n    SetHandler comet\n", map({ "    $_\n" } @directives),
        "</Location>\n";
}

my %before = (
    keep => location('/c-keep'),
    hb   => location('/c-hb', 'CometHeartbeat 60s'),
    life => location('/c-life', 'CometMaxLifetime 1h'),
    gone => location('/c-gone'),
    only => location('/c-only'),
);
my %after = (
    %before,
    hb   => location('/c-hb', 'CometHeartbeat 1s'),
    life => location('/c-life', 'CometMaxLifetime 3s'),
    gone => '',
    only => location('/c-only', 'CometTransports sse stream'),
);
sub conf { my $l = shift; join '', map { $l->{$_} } sort keys %$l }

my $srv = Comet::Private->start('move-config', conf => conf(\%before));
local $Comet::Test::PORT = $srv->port;

my $ch = new_channel('move-config');
my %streams;
for my $loc (sort keys %before) {
    $streams{$loc} = [map { subscribe("/c-$loc/$ch") } 1 .. 2];
    $_->prelude for @{ $streams{$loc} };
}
ok wait_subscribers($ch, 10), 'ten iframe streams on five locations';

my $mark = $srv->log_mark;
$srv->{conf_extra} = conf(\%after);
$srv->write_conf;
ok $srv->graceful, 'a graceful restart with the locations changed';

# the old children say how many streams they handed over
my $moved = 0;
my $deadline = time + 20;
while (time < $deadline) {
    $moved = sum0(join("\n", $srv->log_since($mark)) =~ /this child stops: (\d+) streams moved/g);
    last if $moved >= 10;
    sleep 0.2;
}
is $moved, 10, 'the old children handed over all ten';

sub end_of {
    my ($s, $timeout) = @_;
    my $f;
    do { $f = $s->next_frame($timeout) } while $f && $f->{type} eq 'h';
    return $f ? $f->{type} eq 'e' ? "e $f->{reason}" : $f->{raw} : 'nothing';
}
sub closed { my ($bytes, $eof) = $_[0]->rest(3); return $eof && $bytes eq '' }

is_deeply [map { end_of($_, 10) } @{ $streams{gone} }], ['e reconnect', 'e reconnect'],
    'a location removed: its streams end with e("reconnect")';
ok !grep({ !closed($_) } @{ $streams{gone} }), '... and close';
is_deeply [map { end_of($_, 10) } @{ $streams{only} }], ['e reconnect', 'e reconnect'],
    'iframe no longer among the transports of its location: e("reconnect")';
my $t0 = time;
is_deeply [map { end_of($_, 10) } @{ $streams{life} }], ['e reconnect', 'e reconnect'],
    'CometMaxLifetime 1h made 3s: the streams end (counted from their start)';
ok time - $t0 < 8, '... within its 3 seconds';

# a heartbeat within a few seconds: 1s now, where it was 60s
my @beat = map {
    my $f = $_->next_frame(5);
    $f ? $f->{type} : 'nothing';
} @{ $streams{hb} };
is "@beat", 'h h', 'CometHeartbeat 60s made 1s: a heartbeat comes';

my $id = publish($ch, 'after')->{json}{id};
my @next = map { my @m = $_->messages(1, 10); $m[0] && $m[0]{type} eq 'p' ? $m[0]{id} : 'nothing' }
    map { @{ $streams{$_} } } qw(keep hb);
is "@next", join(' ', ($id) x 4), 'the others go on: the next message, no end';
ok wait_subscribers($ch, 4), '... and the channel counts those four';
my @said = grep { /which serves no stream now/ } $srv->log_since($mark);
is scalar(@said), 4, 'the log says which moved streams have no location now (4)';

$_->close for map { @$_ } values %streams;
$srv->stop;
