#!/usr/bin/perl
# Side-by-side table of comet-load RESULT lines: mod_comet, nchan, ratio.
#   perl bench/table.pl results.txt
# Lines look like: RESULT server=comet scen=fan10k key=value ...
# (scen=fan10k/tls: the same scenario with the subscribers over HTTPS;
# fan10k/ws: over WebSocket; echo/ws: SockJS round trips, where the second
# column is sockjs-node, server=sockjs, instead of nchan; <name>/redis: two
# servers of each kind sharing a Redis, published on server 1: the figures
# of server 2's subscribers and Redis' CPU time are added)
# A scenario run several times (script/bench --repeat N) shows the median of
# each measure; counts of lost or duplicated messages add up over all runs.
use strict;
use warnings;

my (%r, @order, %seen);
while (<>) {
    next unless s/^RESULT //;
    my %kv = map { /^([^=]+)=(.*)$/ ? ($1, $2) : () } split ' ';
    my ($srv, $sc) = ($kv{server}, $kv{scen});
    next unless defined $srv && defined $sc;
    push @{ $r{$sc}{$srv} }, \%kv;
    push @order, $sc unless $seen{$sc}++;
}

sub median {
    my @v = sort { $a <=> $b } grep { defined } @_;
    return undef unless @v;
    return @v % 2 ? $v[$#v / 2] : ($v[@v / 2 - 1] + $v[@v / 2]) / 2;
}
sub sum { my $s = 0; $s += $_ for @_; $s }
sub min { my ($m) = sort { $a <=> $b } @_; $m }

# [ label, aggregate over the runs of one server -> value, format ]
# format 's': a string, no ratio
my $M = sub { my $k = shift; sub { median(map { $_->{$k} } @_) } };
# latencies of runs where something arrived ('-' when nothing did, as when
# the server took no publish)
my $L = sub { my $k = shift; sub { median(map { $_->{delivered} ? $_->{$k} : undef } @_) } };
# How evenly the subscribers spread: the busiest server process's
# descriptors over the mean of the processes holding subscribers (those with
# a tenth of the mean at least: not the parent, nor the supervisor)
sub spread {
    my ($fds) = @_;
    my @n = grep { /^\d+$/ } split /,/, $fds // '';
    return undef unless @n;
    my $all = sum(@n) / @n;
    my @held = grep { $_ >= $all / 10 } @n;
    return undef unless @held;
    my $mean = sum(@held) / @held;
    return $mean ? $n[0] / $mean : undef;
}
my @common_head = (
    [ 'runs', sub { scalar @_ }, '%d' ],
    [ 'machine load (1 min) at start', $M->('load1'), '%.2f' ],
);
# what the server's error log said: [error] and worse lines, and Apache's
# message numbers among them (AH00484: out of worker threads)
my @log = (
    [ 'server log error lines (all)', sub { sum(map { $_->{log_errors} // 0 } @_) }, '%d' ],
    [ 'server log codes', sub { my %s; join(',', grep { $_ ne '-' && !$s{$_}++ } map { split /,/, $_->{log_codes} // '-' } @_) || '-' }, 's' ],
);
my @delivery = (
    [ 'subscribers connected (worst)', sub { min(map { $_->{connected} } @_) . '/' . $_[0]{subs} }, 's' ],
    [ 'delivered / expected (all runs)', sub { sum(map { $_->{delivered} } @_) . '/' . sum(map { $_->{expected} } @_) }, 's' ],
    [ 'messages delivered %', sub { my $e = sum(map { $_->{expected} } @_); $e ? 100 * sum(map { $_->{delivered} } @_) / $e : 0 }, '%.3f' ],
    [ 'duplicates (all runs)', sub { sum(map { $_->{dups} } @_) }, '%d' ],
    [ 'streams ended by server (all)', sub { sum(map { $_->{closed} } @_) }, '%d' ],
);
my @fan = (
    @common_head, @delivery,
    [ 'fan-out p50 ms', $L->('lat_p50_ms'), '%.1f' ],
    [ 'fan-out p99 ms', $L->('lat_p99_ms'), '%.1f' ],
    [ 'fan-out p99 ms, each run', sub { join '/', map { $_->{delivered} ? sprintf('%.0f', $_->{lat_p99_ms}) : '-' } @_ }, 's' ],
    [ 'fan-out max ms', $L->('lat_max_ms'), '%.1f' ],
    [ 'publish rate msg/s achieved', $M->('pub_rate'), '%.1f' ],
    [ 'publish rate msg/s offered', $M->('rate'), '%.1f' ],
    [ 'server CPU us per delivery', sub { median(map { $_->{delivered} ? 1e6 * $_->{pub_cpu_s} / $_->{delivered} : undef } @_) }, '%.2f' ],
    [ 'PSS per subscriber KiB', sub { median(map { $_->{pss_per_sub_b} / 1024 } @_) }, '%.2f' ],
    [ 'server PSS with subs MiB', sub { median(map { $_->{pss_subs_kb} / 1024 } @_) }, '%.1f' ],
    [ 'server PSS after subs left MiB', sub { median(map { $_->{pss_after_kb} / 1024 } @_) }, '%.1f' ],
    [ 'most fds in one server process', $M->('srv_maxfd'), '%d' ],
    [ 'busiest process / mean (fds)', sub { median(map { spread($_->{srv_fds}) } @_) }, '%.2f' ],
    [ 'fds per process, first run', sub { $_[0]{srv_fds} // '-' }, 's' ],
    [ 'server threads (all processes)', $M->('srv_threads'), '%d' ],
    [ 'connect time s', $M->('connect_s'), '%.2f' ],
    [ 'publishes failed (all runs)', sub { sum(map { $_->{pub_err} } @_) }, '%d' ],
    @log,
);
my @thr = (
    @common_head,
    [ 'publishes/s (1 keep-alive conn)', $M->('pub_rate'), '%.0f' ],
    [ 'publishes/s, each run', sub { join '/', map { sprintf '%.0f', $_->{pub_rate} } @_ }, 's' ],
    [ 'publish round trip p50 ms', $M->('pub_rtt_p50_ms'), '%.3f' ],
    [ 'publish round trip p99 ms', $M->('pub_rtt_p99_ms'), '%.3f' ],
    [ 'server CPU us per publish', sub { median(map { $_->{pub_ok} ? 1e6 * $_->{pub_cpu_s} / $_->{pub_ok} : undef } @_) }, '%.1f' ],
    @delivery[1 .. 2],
    [ 'fan-out p99 ms', $L->('lat_p99_ms'), '%.1f' ],
    @log,
);
my @idle = (
    @common_head,
    $delivery[0],
    [ 'idle seconds', $M->('idle_s'), '%.0f' ],
    [ 'server CPU while idle s', $M->('idle_cpu_s'), '%.2f' ],
    [ 'server CPU idle % of a core', $M->('idle_cpu_pct'), '%.2f' ],
    [ 'PSS per subscriber KiB', sub { median(map { $_->{pss_per_sub_b} / 1024 } @_) }, '%.2f' ],
    [ 'server PSS with subs MiB', sub { median(map { $_->{pss_subs_kb} / 1024 } @_) }, '%.1f' ],
    [ 'most fds in one server process', $M->('srv_maxfd'), '%d' ],
    [ 'server threads (all processes)', $M->('srv_threads'), '%d' ],
    @log,
);

# SockJS echo over WebSocket: round trips
my @echo = (
    @common_head,
    [ 'against', sub { $_[0]{server} eq 'comet' ? 'mod_comet' : $_[0]{server} eq 'sockjs' ? 'sockjs-node' : $_[0]{server} }, 's' ],
    $delivery[0],
    [ 'round trips/s', $M->('echo_rate'), '%.0f' ],
    [ 'round trips/s, each run', sub { join '/', map { sprintf '%.0f', $_->{echo_rate} } @_ }, 's' ],
    [ 'round trip p50 ms', $L->('lat_p50_ms'), '%.2f' ],
    [ 'round trip p99 ms', $L->('lat_p99_ms'), '%.2f' ],
    [ 'round trip max ms', $L->('lat_max_ms'), '%.1f' ],
    [ 'server CPU us per round trip', sub { median(map { $_->{delivered} ? 1e6 * $_->{pub_cpu_s} / $_->{delivered} : undef } @_) }, '%.1f' ],
    [ 'sessions ended by server (all)', sub { sum(map { $_->{closed} } @_) }, '%d' ],
    [ 'PSS per session KiB', sub { median(map { $_->{pss_per_sub_b} / 1024 } @_) }, '%.2f' ],
    [ 'server PSS with sessions MiB', sub { median(map { $_->{pss_subs_kb} / 1024 } @_) }, '%.1f' ],
    [ 'server threads (all processes)', $M->('srv_threads'), '%d' ],
    @log,
);

# --redis: publish at a fixed rate, Redis' CPU per message (rcpu)
my @rcpu = (
    @common_head,
    @delivery[0 .. 3],
    [ 'publish rate msg/s achieved', $M->('pub_rate'), '%.1f' ],
    [ 'publish rate msg/s offered', $M->('rate'), '%.1f' ],
    [ 'publish round trip p50 ms', $M->('pub_rtt_p50_ms'), '%.3f' ],
    [ 'publish round trip p99 ms', $M->('pub_rtt_p99_ms'), '%.3f' ],
    [ 'fan-out p50 ms', $L->('lat_p50_ms'), '%.2f' ],
    [ 'fan-out p99 ms', $L->('lat_p99_ms'), '%.2f' ],
    [ 'servers CPU us per publish', sub { median(map { $_->{pub_ok} ? 1e6 * $_->{pub_cpu_s} / $_->{pub_ok} : undef } @_) }, '%.1f' ],
    [ 'publishes failed (all runs)', sub { sum(map { $_->{pub_err} } @_) }, '%d' ],
    @log,
);
# --redis: what every Redis scenario adds, before the log rows
my @redis = (
    [ 'server 2: delivered / expected', sub { sum(map { $_->{delivered2} // 0 } @_) . '/' . sum(map { $_->{expected2} // 0 } @_) }, 's' ],
    [ 'server 2: fan-out p50 ms', sub { median(map { $_->{delivered2} ? $_->{lat2_p50_ms} : undef } @_) }, '%.2f' ],
    [ 'server 2: fan-out p99 ms', sub { median(map { $_->{delivered2} ? $_->{lat2_p99_ms} : undef } @_) }, '%.2f' ],
    [ 'Redis CPU us per publish', sub { median(map { $_->{pub_ok} && ($_->{redis_cpu_s} // -1) >= 0 ? 1e6 * $_->{redis_cpu_s} / $_->{pub_ok} : undef } @_) }, '%.1f' ],
    [ 'Redis CPU us per publish, each', sub { join '/', map { $_->{pub_ok} && ($_->{redis_cpu_s} // -1) >= 0 ? sprintf('%.0f', 1e6 * $_->{redis_cpu_s} / $_->{pub_ok}) : '-' } @_ }, 's' ],
    [ 'Redis CPU s while publishing', $M->('redis_cpu_s'), '%.2f' ],
    [ 'Redis PSS after publishing MiB', sub { median(map { ($_->{redis_pss_end_kb} // 0) / 1024 } @_) }, '%.1f' ],
);

my $fmt = "%-11s %-32s %16s %16s %7s\n";
my $line = '-' x 86 . "\n";
printf $fmt, 'scenario', 'measure', 'mod_comet', 'nchan', 'ratio';
print $line;
for my $sc (@order) {
    my $rows = $sc =~ m{^thr(/|$)} ? \@thr : $sc =~ m{^idle(/|$)} ? \@idle
             : $sc =~ m{^echo(/|$)} ? \@echo : $sc =~ m{^rcpu(/|$)} ? \@rcpu : \@fan;
    if ($sc =~ m{^reload}) {
        # --graceful: how many reloads the run went through, first
        $rows = [ @$rows ];
        splice @$rows, 1, 0, [ 'reloads during each run', sub { join '/', map { $_->{reloads} // '-' } @_ }, 's' ];
    }
    if ($sc =~ m{/redis$}) {
        # the log rows stay last
        my @r = @$rows;
        splice @r, -2, 0, @redis;
        $rows = \@r;
    }
    # the second column: nchan, or sockjs-node for the echo scenario
    my ($c, $n) = ($r{$sc}{comet}, $r{$sc}{nchan} // $r{$sc}{sockjs});
    for my $row (@$rows) {
        my ($label, $f, $vf) = @$row;
        my @v = map { defined $_ && @$_ ? $f->(@$_) : undef } ($c, $n);
        my @s = map { !defined $_ ? '-' : $vf eq 's' ? $_ : sprintf($vf, $_) } @v;
        my $ratio = '';
        if ($vf ne 's' && defined $v[0] && defined $v[1] && $label ne 'runs'
            && $label !~ /^(machine|server log|publishes failed|sessions ended)/) {
            $ratio = $v[1] != 0 ? sprintf('%.2f', $v[0] / $v[1]) : ($v[0] == 0 ? '=' : 'inf');
        }
        printf $fmt, $sc, $label, @s, $ratio;
    }
    print $line;
}
print "echo/ws: the second column is sockjs-node, not nchan.\n" if grep { m{^echo(/|$)} } @order;
print "*/redis: two servers of each kind on one Redis (mod_comet: CometRedis; nchan: distributed\n",
      "storage), published on server 1; server figures (CPU, PSS, fds) are both servers'.\n"
    if grep { m{/redis$} } @order;
print "ratio = mod_comet / nchan. Latency, memory, CPU: lower is better; rates: higher.\n";
