# Through reverse proxies configured from conf/reverse-proxy.conf (Apache
# mod_proxy_http) and conf/nginx-proxy.conf (nginx), every transport still
# pushes each message at once: within 100 ms of its publication, median and
# max over 20 messages. script/test starts the proxies in front of the test
# server and runs this file with COMET_PROXY_APACHE and COMET_PROXY_NGINX
# (ports); without them it checks the server directly.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;
use Time::HiRes qw(time sleep);

my %proxies = (direct => server_port());
$proxies{apache} = $ENV{COMET_PROXY_APACHE} if $ENV{COMET_PROXY_APACHE};
$proxies{nginx} = $ENV{COMET_PROXY_NGINX} if $ENV{COMET_PROXY_NGINX};
my @transports = qw(iframe sse stream longpoll xhr_streaming);
my $N = 20;
my $LIMIT = 0.100;

plan tests => 3 * keys(%proxies) * @transports, need_module('comet');

sub median { my @s = sort { $a <=> $b } @_; return @s ? $s[$#s / 2] : 999 }
sub max { my @s = sort { $b <=> $a } @_; return @s ? $s[0] : 999 }

# Open a receiver through $port; returns a sub that waits for the next
# message (its data, or undef) and the stream.
sub receiver {
    my ($port, $t, $chan, $sid) = @_;
    my $conn = Comet::Test::Conn->new(port => $port);
    # HTTP/1.0: the proxies then pass the body as it comes, not chunked (the
    # frame parsers read raw bytes; browsers de-chunk)
    my @v = (version => '1.0');
    if ($t eq 'xhr_streaming') {
        my $s = sjs_stream('/chat', $sid, 'xhr_streaming', conn => $conn, body => '', @v,
                           headers => ['Content-Type' => 'text/plain']);
        $s->upto("\no\n", 5) or die "xhr_streaming: no o through port $port\n";
        return ($s, sub {
            for (;;) {
                my $l = $s->upto("\n", $_[0]) // return undef;
                return $1 if $l =~ /^a\["(.*)"\]\n$/;
            }
        });
    }
    my $s = subscribe("/comet/$chan?transport=$t", conn => $conn, @v);
    die "$t: status $s->{status} through port $port\n" unless $s->{status} == 200;
    if ($t eq 'iframe') {
        $s->prelude(5) // die "iframe: no prelude through port $port\n";
        return ($s, sub { my $f = $s->next_frame($_[0]); $f && $f->{type} eq 'p' ? $f->{data} : undef });
    }
    if ($t eq 'sse') {
        $s->upto("\n\n", 5) // die "sse: no prelude through port $port\n";
        return ($s, sub {
            for (;;) {
                my $e = $s->upto("\n\n", $_[0]) // return undef;
                return $1 if $e =~ /^data: (.*)$/m && $e !~ /^event: comet\.heartbeat/m;
            }
        });
    }
    # stream, longpoll
    $s->upto("}}\n", 5) // die "$t: no open line through port $port\n";
    return ($s, sub {
        for (;;) {
            my $l = $s->upto("\n", $_[0]) // return undef;
            return $1 if $l =~ /"data": "([^"]*)"/;
        }
    });
}

# One transport through one port: [errors, latencies].
sub measure {
    my ($port, $t) = @_;
    my (@lat, @wrong);
    my $chan = new_channel("px$t");
    my $sid = new_session();
    my ($s, $next);
    my $ok = eval {
        if ($t ne 'longpoll') {
            ($s, $next) = receiver($port, $t, $chan, $sid);
            wait_subscribers($chan, 1, 5) if $t ne 'xhr_streaming';
        }
        for my $i (1 .. $N) {
            if ($t eq 'longpoll') {
                # a poll waiting for the next message
                ($s, $next) = receiver($port, $t, $chan, $sid);
                wait_subscribers($chan, 1, 5);
            }
            my $data = "m$i";
            my $t0 = time;
            if ($t eq 'xhr_streaming') {
                http(POST => sjs_path('/chat', $sid, 'xhr_send'), body => "[\"$data\"]");
            }
            else {
                publish($chan, $data);
            }
            my $got = $next->(2);
            push @lat, time - $t0;
            push @wrong, $got // 'nothing' unless defined $got && $got eq $data;
            $s->close if $t eq 'longpoll';
            sleep 0.02;
        }
        1;
    };
    $s->close if $s;
    return [($ok ? '' : $@) . "@wrong", \@lat];
}

for my $name (sort keys %proxies) {
    for my $t (@transports) {
        # a proxy that buffers is late by seconds, every time; a busy machine
        # may be late once: then measure again
        my ($err, $lat);
        for my $try (1, 2) {
            ($err, $lat) = @{ measure($proxies{$name}, $t) };
            last if !$err && max(@$lat) < $LIMIT;
            diag sprintf "$name $t: again (max %.1f ms)", 1000 * max(@$lat) if $try == 1;
        }
        is $err, '', "$name $t: $N messages, each once, in order";
        cmp_ok median(@$lat), '<', $LIMIT, sprintf "$name $t: median latency %.1f ms", 1000 * median(@$lat);
        cmp_ok max(@$lat), '<', $LIMIT, sprintf "$name $t: max latency %.1f ms", 1000 * max(@$lat);
    }
}
