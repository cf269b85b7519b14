# Monitoring: mod_comet's section of /server-status, its ?auto lines, the
# comet-status handler in JSON and in Prometheus' text format. On a private
# server (no channel source ticking, no other test publishing) so that every
# counter can be checked to the unit: subscribers, messages and bytes
# published and delivered, per child and in all, streams dropped for
# slowness, SockJS sessions, backends, sources. Then the same outputs on the
# test server, where other tests left their figures.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;
use Comet::Private;
use List::Util qw(sum0);
use Time::HiRes qw(time sleep);

plan tests => 77, need_module('comet'), need_module('status');

my $t = Apache::Test::config()->{vars}{t_dir};
my $srv = Comet::Private->start('status', conf => <<"EOC");
<Location /comet-status>
    SetHandler comet-status
    Require local
</Location>
<Location /server-status>
    SetHandler server-status
    Require local
</Location>
<Location /sock-exec>
    SetHandler comet-socket
    CometSocketBackend exec:$t/bin/lines $t/logs/private-status
</Location>
<Location /comet-slowreader>
    SetHandler comet
    CometStreamLimit 0
    CometClientBuffer 256K
</Location>
<Location /comet-slow-publish>
    SetHandler comet-publish
    CometMessageBuffer 4
    Require local
</Location>
CometChannelSource st-src exec:$t/bin/source st-src $t/logs/private-status/st-src.state --every 3600
EOC
ok $srv, 'a private server with comet-status, server-status, an exec backend, a source';
local $Comet::Test::PORT = $srv->port;

# --- the four outputs, parsed -------------------------------------------------

sub status_json {
    my $r = http(GET => '/comet-status');
    return $r->{status} == 200 ? $r->{json} : undef;
}

# ?auto: {key => value}, and {slot => {pid, figures...}} from CometChild<slot>.
sub status_auto {
    my $r = http(GET => '/server-status?auto');
    my (%kv, %child);
    for my $line (split /\n/, $r->{body}) {
        next unless $line =~ /\A([A-Za-z0-9]+): (.*)\z/;
        my ($k, $v) = ($1, $2);
        if ($k =~ /\ACometChild(\d+)\z/) {
            $child{$1} = { map { split /=/, $_, 2 } split / /, $v };
        }
        $kv{$k} = $v;
    }
    return (\%kv, \%child, $r);
}

# The mod_comet section of the HTML page: {label => n}, and the rows of its
# table as {Child, PID, Subscribers, ...}.
sub status_html {
    my ($q) = @_;
    my $r = http(GET => '/server-status' . ($q // ''));
    my ($sec) = $r->{body} =~ m{(<h2><a id="comet">mod_comet</a>.*?)(?:<hr|</body>|\z)}s;
    return ({}, [], $r) unless $sec;
    my %dt = $sec =~ m{<dt>([^<:]+): (\d+)</dt>}g;
    my @head = $sec =~ m{<th>([^<]+)</th>}g;
    my @rows;
    while ($sec =~ m{<tr>((?:<td>\d+</td>)+)</tr>}g) {
        my @v = $1 =~ m{<td>(\d+)</td>}g;
        my %row;
        @row{@head} = @v;
        push @rows, \%row;
    }
    return (\%dt, \@rows, $r, $sec);
}

# Prometheus' text format (0.0.4), checked line by line: returns
# ({family => {type, help}}, [[name, {labels}, value]], [bad lines]).
sub parse_prom {
    my ($text) = @_;
    my (%fam, @samples, @bad, %seen);
    my $name_re = qr/[a-zA-Z_:][a-zA-Z0-9_:]*/;
    my $value_re = qr/[-+]?(?:[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|Inf|NaN)/;
    for my $line (split /\n/, $text, -1) {
        if ($line eq '') {
            next;
        }
        elsif ($line =~ /\A# HELP ($name_re) (.+)\z/) {
            my ($n, $help) = ($1, $2);
            push @bad, "second HELP: $line" if defined $fam{$n}{help};
            $fam{$n}{help} = $help;
        }
        elsif ($line =~ /\A# TYPE ($name_re) (counter|gauge|histogram|summary|untyped)\z/) {
            my ($n, $type) = ($1, $2);
            push @bad, "second TYPE: $line" if defined $fam{$n}{type};
            push @bad, "TYPE after its samples: $line" if $fam{$n}{samples};
            push @bad, "a counter's name ends in _total: $line" if $type eq 'counter' && $n !~ /_total\z/;
            $fam{$n}{type} = $type;
        }
        elsif ($line =~ /\A#/) {
            next;
        }
        elsif ($line =~ /\A($name_re)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*)?\})? ($value_re)(?: -?[0-9]+)?\z/) {
            my ($n, $l, $v) = ($1, $2 // '', $3);
            my %labels = $l =~ /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
            push @bad, "no TYPE before: $line" unless $fam{$n}{type};
            push @bad, "a series twice: $line" if $seen{"$n\{$l\}"}++;
            $fam{$n}{samples}++;
            push @samples, [$n, \%labels, $v];
        }
        else {
            push @bad, "not the exposition format: $line";
        }
    }
    push @bad, "no final newline" unless $text =~ /\n\z/;
    return (\%fam, \@samples, \@bad);
}

sub prom_value {
    my ($samples, $name, %labels) = @_;
    my @v = map { $_->[2] } grep {
        my $s = $_;
        $s->[0] eq $name && !grep { ($s->[1]{$_} // '') ne $labels{$_} } keys %labels
    } @$samples;
    return @v == 1 ? $v[0] : undef;
}

sub children_sum {
    my ($j, $k) = @_;
    return sum0(map { $_->{$k} } @{ $j->{children} });
}

# --- at rest ---------------------------------------------------------------------

# the source publishes its first line at once, then once an hour
ok wait_until(sub { my $i = channel_info('st-src'); $i && $i->{messages} >= 1 }, 10),
    'the channel source published its first line';
my $j0;
ok wait_until(sub { $j0 = status_json(); $j0 && $j0->{sources} == 1 }, 10),
    'comet-status: JSON, 1 channel source running';
my @workers = sort { $a <=> $b } map { $_->{pid} } $srv->workers;
is_deeply [sort { $a <=> $b } map { $_->{pid} } @{ $j0->{children} }], \@workers,
    "... one entry per child, their pids (@workers)";
my ($sup) = grep { Comet::Test::pid_alive($_) } $srv->supervisors;
is $j0->{supervisor}{pid}, $sup, "... the supervisor's pid ($sup), apart from the children";
is_deeply [@$j0{qw(subscribers thread_streams sessions backends)}], [0, 0, 0, 0],
    '... no subscriber, no session, no backend';
ok $j0->{shm_total} > 3_000_000 && $j0->{shm_total} <= 4 * 1024 * 1024
   && $j0->{shm_used} > 0 && $j0->{shm_used} < $j0->{shm_total},
   "... shared memory: $j0->{shm_used} of $j0->{shm_total} bytes (CometSharedMemory 4M)";
is $j0->{processes}, @workers + 1, '... processes: the children and the supervisor';
ok $j0->{channels} >= 1 && $j0->{channels} <= $j0->{channels_max}, "... channels: $j0->{channels}";

# --- subscribers, publishes, deliveries --------------------------------------------
my $chan = 'status-a';
my @subs = map { subscribe("/comet/$chan") } 1 .. 3;
$_->prelude for @subs;
ok wait_subscribers($chan, 3), 'three streams on one channel';
my $j1;
ok wait_until(sub { $j1 = status_json(); $j1->{subscribers} == 3 }, 10),
    'comet-status: 3 subscribers';
is children_sum($j1, 'subscribers'), 3, '... the children\'s add up to 3';
is children_sum($j1, 'channels'), scalar(grep { $_->{subscribers} } @{ $j1->{children} }),
    '... each child holding some follows one channel';

my ($m1, $m2) = ('x' x 10, 'y' x 25);
is publish($chan, $m1)->{status}, 201, 'published 10 bytes';
is publish($chan, $m2)->{status}, 201, 'published 25 bytes';
my @got = map { [map { $_ && $_->{data} } $_->messages(2, 10)] } @subs;
is_deeply \@got, [([$m1, $m2]) x 3], '... each stream got both';
my $j2;
ok wait_until(sub { $j2 = status_json(); $j2->{deliveries} == $j0->{deliveries} + 6 }, 10),
    'deliveries: +6 (2 messages, 3 streams)';
is $j2->{message_bytes_delivered} - $j0->{message_bytes_delivered}, 3 * 35,
    'bytes delivered: +105';
is $j2->{messages_published} - $j0->{messages_published}, 2, 'messages published: +2';
is $j2->{message_bytes_published} - $j0->{message_bytes_published}, 35, 'bytes published: +35';
is children_sum($j2, 'deliveries') - children_sum($j0, 'deliveries'), 6,
    '... the children\'s deliveries: +6';
is children_sum($j2, 'message_bytes_delivered') - children_sum($j0, 'message_bytes_delivered'),
    105, '... the children\'s bytes: +105';
is $j2->{streams_dropped_slow}, $j0->{streams_dropped_slow}, 'nothing dropped';

# --- ?auto: the same figures --------------------------------------------------------
{
    my ($kv, $child, $r) = status_auto();
    is $r->{status}, 200, '/server-status?auto';
    like $r->{body}, qr/^Total Accesses: \d+$/m, '... mod_status\' own lines';
    my %want = (CometSubscribers => 3, CometDeliveries => $j2->{deliveries},
                CometMessageBytesDelivered => $j2->{message_bytes_delivered},
                CometMessagesPublished => $j2->{messages_published},
                CometMessageBytesPublished => $j2->{message_bytes_published},
                CometStreamsDroppedSlow => $j2->{streams_dropped_slow},
                CometShmTotal => $j2->{shm_total}, CometSources => 1, CometBackends => 0,
                CometSessions => 0, CometChannels => $j2->{channels},
                CometSupervisorPid => $sup);
    is_deeply { map { $_ => $kv->{$_} } keys %want }, \%want, '... the mod_comet lines';
    ok defined $kv->{CometShmUsed} && $kv->{CometShmUsed} =~ /\A\d+\z/, '... CometShmUsed';
    is_deeply [sort { $a <=> $b } map { $_->{pid} } values %$child], \@workers,
        '... a CometChild<n> line per child, with its pid';
    is sum0(map { $_->{subscribers} } values %$child), $kv->{CometSubscribers},
        '... their subscribers add up to CometSubscribers';
    is sum0(map { $_->{deliveries} } values %$child), children_sum($j2, 'deliveries'),
        '... their deliveries are the JSON\'s';
}

# --- the HTML page ------------------------------------------------------------------
{
    my ($dt, $rows, $r, $sec) = status_html();
    is $r->{status}, 200, '/server-status';
    ok $sec, '... has a mod_comet section';
    is $dt->{Subscribers}, 3, '... Subscribers: 3';
    is $dt->{Deliveries}, $j2->{deliveries}, '... Deliveries';
    is $dt->{'Bytes delivered'}, $j2->{message_bytes_delivered}, '... Bytes delivered';
    is $dt->{'Messages published'}, $j2->{messages_published}, '... Messages published';
    is $dt->{'Bytes published'}, $j2->{message_bytes_published}, '... Bytes published';
    is $dt->{'Streams dropped for slowness'}, $j2->{streams_dropped_slow}, '... Streams dropped';
    is $dt->{'Shared memory for messages (bytes)'}, $j2->{shm_total}, '... shared memory total';
    is_deeply [@$dt{'SockJS sessions', 'Backends running', 'Channel sources running'}], [0, 0, 1],
        '... sessions, backends, sources';
    is_deeply [sort { $a <=> $b } map { $_->{PID} } @$rows], \@workers, '... a row per child';
    is sum0(map { $_->{Subscribers} } @$rows), 3, '... their subscribers add up to 3';
    my ($dt2, undef, $r2, $sec2) = status_html('?notable');
    like $sec2 // '', qr/<p>Child \d+ \(pid $workers[0]\): Subscribers \d+,/,
        '?notable: a line per child instead of the table';
}

# --- Prometheus -----------------------------------------------------------------------
{
    my $r = http(GET => '/comet-status', headers => [Accept => 'text/plain;version=0.0.4;q=0.3,*/*;q=0.2']);
    is $r->{status}, 200, 'Accept: text/plain: 200';
    like $r->{headers}{'content-type'}, qr{\Atext/plain; version=0\.0\.4}, '... the exposition format';
    like $r->{headers}{vary} // '', qr/Accept/, '... Vary: Accept';
    my ($fam, $s, $bad) = parse_prom($r->{body});
    is_deeply $bad, [], '... every line parses (HELP, TYPE, samples)';
    my %types = map { $_ => $fam->{$_}{type} } keys %$fam;
    is_deeply { map { $_ => $types{$_} } qw(comet_channels comet_subscribers
        comet_messages_published_total comet_message_bytes_published_total
        comet_deliveries_total comet_message_bytes_delivered_total
        comet_streams_dropped_slow_total comet_shm_used_bytes comet_shm_size_bytes
        comet_sessions comet_backends comet_sources comet_child_deliveries_total) },
        { comet_channels => 'gauge', comet_subscribers => 'gauge',
          comet_messages_published_total => 'counter',
          comet_message_bytes_published_total => 'counter',
          comet_deliveries_total => 'counter', comet_message_bytes_delivered_total => 'counter',
          comet_streams_dropped_slow_total => 'counter', comet_shm_used_bytes => 'gauge',
          comet_shm_size_bytes => 'gauge', comet_sessions => 'gauge', comet_backends => 'gauge',
          comet_sources => 'gauge', comet_child_deliveries_total => 'counter' },
        '... the families and their types';
    ok !(grep { !defined $fam->{$_}{help} } keys %$fam), '... each with its HELP';
    is prom_value($s, 'comet_deliveries_total'), $j2->{deliveries}, '... comet_deliveries_total';
    is prom_value($s, 'comet_message_bytes_delivered_total'), $j2->{message_bytes_delivered},
        '... comet_message_bytes_delivered_total';
    is prom_value($s, 'comet_messages_published_total'), $j2->{messages_published},
        '... comet_messages_published_total';
    is prom_value($s, 'comet_shm_size_bytes'), $j2->{shm_total}, '... comet_shm_size_bytes';
    is prom_value($s, 'comet_sources'), 1, '... comet_sources 1';
    my @per = grep { $_->[0] eq 'comet_subscribers' } @$s;
    is_deeply [sort { $a <=> $b } map { $_->[1]{pid} } @per], \@workers,
        '... comet_subscribers{child,pid}: one series per child';
    is sum0(map { $_->[2] } @per), 3, '... adding up to the 3 streams';
    for my $c (@{ $j2->{children} }) {
        my $v = prom_value($s, 'comet_child_deliveries_total', child => $c->{child}, pid => $c->{pid});
        $c->{prom} = $v;
    }
    is_deeply [map { $_->{prom} } @{ $j2->{children} }], [map { $_->{deliveries} } @{ $j2->{children} }],
        '... comet_child_deliveries_total per child: the JSON\'s';
    my $r2 = http(GET => '/comet-status?format=prometheus');
    like $r2->{headers}{'content-type'}, qr{\Atext/plain}, '?format=prometheus: the text format too';
    is_deeply +(parse_prom($r2->{body}))[2], [], '... which parses';
    my $r3 = http(GET => '/comet-status', headers => [Accept => 'application/json']);
    like $r3->{headers}{'content-type'}, qr{\Aapplication/json}, 'Accept: application/json: JSON';
    is http(GET => '/comet-status?format=xml')->{status}, 400, '?format=xml: 400';
    is http(POST => '/comet-status', body => 'x')->{status}, 405, 'POST: 405';
}

$_->close for @subs;
ok wait_until(sub { status_json()->{subscribers} == 0 }, 10), 'streams closed: 0 subscribers';

# --- a SockJS session and its backend ---------------------------------------------------
{
    my $sid = new_session();
    is http(POST => sjs_path('/sock-exec', $sid, 'xhr'))->{body}, "o\n", 'a session with an exec backend';
    my $j;
    ok wait_until(sub { $j = status_json(); $j->{sessions} == 1 && $j->{backends} == 1 }, 10),
        'comet-status: 1 session, 1 backend running';
    my ($kv) = status_auto();
    is_deeply [@$kv{qw(CometSessions CometBackends)}], [1, 1], '?auto: the same';
    http(POST => sjs_path('/sock-exec', $sid, 'xhr_send'), body => '["exit"]');
    ok wait_until(sub { status_json()->{backends} == 0 }, 10), 'its program exits: 0 backends';
}

# --- a stream dropped for slowness ---------------------------------------------------------
{
    my $c = 'status-slow';
    my $lazy = subscribe("/comet-slowreader/$c");
    ok wait_subscribers($c, 1), 'a subscriber that never reads (CometClientBuffer 256K)';
    my $before = status_json();
    my $chunk = 'z' x 32768;
    my $n = 0;
    while ($n < 600 && status_json()->{streams_dropped_slow} == $before->{streams_dropped_slow}) {
        last unless publish($c, $chunk, location => '/comet-slow-publish')->{status} == 201;
        $n++;
    }
    my $after = status_json();
    is $after->{streams_dropped_slow} - $before->{streams_dropped_slow}, 1,
        "streams dropped for slowness: +1 (after $n messages of 32K)";
    is children_sum($after, 'streams_dropped_slow') - children_sum($before, 'streams_dropped_slow'), 1,
        '... counted in its child';
    my $r = http(GET => '/comet-status?format=prometheus');
    is prom_value((parse_prom($r->{body}))[1], 'comet_streams_dropped_slow_total'),
        $after->{streams_dropped_slow}, '... comet_streams_dropped_slow_total';
    $lazy->close;
}
ok !$srv->problems, 'no crash in the private server\'s log';
$srv->stop;

# --- the test server: its <Location /comet-status>, mod_status' page ----------------------------
local $Comet::Test::PORT = undef;
{
    my $c = new_channel('status');
    my @s = map { subscribe("/comet/$c") } 1 .. 2;
    $_->prelude for @s;
    ok wait_subscribers($c, 2), 'the test server: two streams';
    # the store counts a stream as its handler subscribes, the child's loop
    # once it has taken the connection: a moment later
    my $j;
    ok wait_until(sub { $j = status_json(); $j && $j->{subscribers} >= 2 }, 10),
        'its comet-status answers: ' . scalar(@{ $j->{children} // [] }) . " children, $j->{subscribers} subscribers";
    is children_sum($j, 'subscribers'), $j->{subscribers}, '... the children\'s add up to that';
    my ($kv, $child) = status_auto();
    is sum0(map { $_->{subscribers} } values %$child), $kv->{CometSubscribers},
        '/server-status?auto: CometChild lines add up to CometSubscribers';
    my $r = http(GET => '/comet-status', headers => [Accept => 'text/plain']);
    is_deeply +(parse_prom($r->{body}))[2], [], 'its Prometheus output parses';
    $_->close for @s;
}
