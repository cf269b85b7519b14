#!/usr/bin/perl
# Side-by-side table of comet-load RESULT lines: mod_comet, nchan, ratio.
#   perl bench/table.pl results.txt
# Lines look like: RESULT server=comet scen=fan10k key=value ...
use strict;
use warnings;

my (%r, @order, %seen);
while (<>) {
    next unless s/^RESULT //;
    my %kv = map { /^([^=]+)=(.*)$/ ? ($1, $2) : () } split ' ';
    my ($srv, $sc) = ($kv{server}, $kv{scen});
    next unless defined $srv && defined $sc;
    $r{$sc}{$srv} = \%kv;
    push @order, $sc unless $seen{$sc}++;
}

# metric label, how to compute it from a result, format, "lower is better"
my @fan = (
    [ 'subscribers connected', sub { $_[0]{connected} . '/' . $_[0]{subs} }, 's' ],
    [ 'messages delivered %', sub { $_[0]{expected} ? 100 * $_[0]{delivered} / $_[0]{expected} : 0 }, '%.2f' ],
    [ 'delivered / expected', sub { "$_[0]{delivered}/$_[0]{expected}" }, 's' ],
    [ 'duplicates', sub { $_[0]{dups} }, '%d' ],
    [ 'streams ended by server', sub { $_[0]{closed} }, '%d' ],
    [ 'fan-out p50 ms', sub { $_[0]{lat_p50_ms} }, '%.1f' ],
    [ 'fan-out p99 ms', sub { $_[0]{lat_p99_ms} }, '%.1f' ],
    [ 'fan-out max ms', sub { $_[0]{lat_max_ms} }, '%.1f' ],
    [ 'publish rate msg/s', sub { $_[0]{pub_rate} }, '%.0f' ],
    [ 'server CPU publishing s', sub { $_[0]{pub_cpu_s} }, '%.2f' ],
    [ 'PSS per subscriber KiB', sub { $_[0]{pss_per_sub_b} / 1024 }, '%.1f' ],
    [ 'server PSS with subs MiB', sub { $_[0]{pss_subs_kb} / 1024 }, '%.1f' ],
    [ 'server PSS after subs left MiB', sub { $_[0]{pss_after_kb} / 1024 }, '%.1f' ],
    [ 'connect time s', sub { $_[0]{connect_s} }, '%.2f' ],
);
my @thr = (
    [ 'publishes/s (1 conn)', sub { $_[0]{pub_rate} }, '%.0f' ],
    [ 'publish round trip p50 ms', sub { $_[0]{pub_rtt_p50_ms} }, '%.3f' ],
    [ 'publish round trip p99 ms', sub { $_[0]{pub_rtt_p99_ms} }, '%.3f' ],
    [ 'messages delivered %', sub { $_[0]{expected} ? 100 * $_[0]{delivered} / $_[0]{expected} : 0 }, '%.2f' ],
    [ 'delivered / expected', sub { "$_[0]{delivered}/$_[0]{expected}" }, 's' ],
    [ 'fan-out p99 ms', sub { $_[0]{lat_p99_ms} }, '%.1f' ],
    [ 'server CPU publishing s', sub { $_[0]{pub_cpu_s} }, '%.2f' ],
);
my @idle = (
    [ 'subscribers connected', sub { $_[0]{connected} . '/' . $_[0]{subs} }, 's' ],
    [ 'idle seconds', sub { $_[0]{idle_s} }, '%.0f' ],
    [ 'server CPU idle % of a core', sub { $_[0]{idle_cpu_pct} }, '%.2f' ],
    [ 'PSS per subscriber KiB', sub { $_[0]{pss_per_sub_b} / 1024 }, '%.1f' ],
    [ 'server PSS with subs MiB', sub { $_[0]{pss_subs_kb} / 1024 }, '%.1f' ],
    [ 'most fds in one process', sub { $_[0]{srv_maxfd} }, '%d' ],
);

my $fmt = "%-9s %-31s %15s %15s %8s\n";
printf $fmt, 'scenario', 'metric', 'mod_comet', 'nchan', 'ratio';
print '-' x 82, "\n";
for my $sc (@order) {
    my $rows = $sc eq 'thr' ? \@thr : $sc eq 'idle' ? \@idle : \@fan;
    my ($c, $n) = ($r{$sc}{comet}, $r{$sc}{nchan});
    for my $row (@$rows) {
        my ($label, $f, $vf) = @$row;
        my @v = map { defined $_ ? $f->($_) : undef } ($c, $n);
        my @s = map { !defined $_ ? '-' : $vf eq 's' ? $_ : sprintf($vf, $_) } @v;
        my $ratio = '';
        if ($vf ne 's' && defined $v[0] && defined $v[1]) {
            $ratio = $v[1] != 0 ? sprintf('%.2f', $v[0] / $v[1]) : ($v[0] == 0 ? '=' : 'inf');
        }
        printf $fmt, $sc, $label, @s, $ratio;
    }
    print '-' x 82, "\n";
}
print "ratio = mod_comet / nchan. Latency, memory, CPU: lower is better; rates: higher.\n";
