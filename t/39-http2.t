# Streams over HTTP/2 (mod_http2, `Protocols h2 http/1.1` on a TLS virtual
# host of the test server): SSE and the stream transport get every message
# promptly, nothing held back by h2's buffering; such a stream keeps a
# worker thread, counted against CometMaxThreadStreams, and gives it back
# when it ends. The client is curl (HTTP/2 through nghttp2). Not under
# prefork, where mod_http2 does not run.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;
use IO::Select;
use POSIX ();
use Time::HiRes qw(time sleep);

my $port = Apache::Test::config()->{vars}{mod_http2_ssl_port};
my $mpm = Apache::Test::config()->{server}{mpm} // '';
plan skip_all => 'no HTTP/2 virtual host (mod_http2 and mod_ssl, t/conf/tls.conf.in)' unless $port;
plan skip_all => 'mod_http2 does not run under prefork' if $mpm eq 'prefork';
plan skip_all => 'no curl' unless -x '/usr/bin/curl';
plan tests => 16, need_module('comet');

my $logs = Apache::Test::config()->{vars}{t_logs};

# A stream over h2 by curl: its output read as it comes, its -v on a file.
sub h2_stream {
    my ($path, $name) = @_;
    my $err = "$logs/h2-$name.err";
    my $pid = open(my $out, '-|') // die "fork: $!\n";
    if (!$pid) {
        open STDERR, '>', $err or POSIX::_exit(2);
        exec '/usr/bin/curl', '-sSvkN', '--http2', '--max-time', '30',
             "https://127.0.0.1:$port$path";
        POSIX::_exit(127);
    }
    return { pid => $pid, out => $out, buf => '', err => $err };
}

# Read until $re matches what came; the time it took, or undef.
sub h2_wait {
    my ($s, $re, $timeout) = @_;
    my $t0 = time;
    my $sel = IO::Select->new($s->{out});
    while (time - $t0 < $timeout) {
        return time - $t0 if $s->{buf} =~ $re;
        next unless $sel->can_read(0.1);
        my $n = sysread $s->{out}, $s->{buf}, 65536, length $s->{buf};
        last unless $n;
    }
    return $s->{buf} =~ $re ? time - $t0 : undef;
}

sub h2_stop {
    my ($s) = @_;
    kill 'TERM', $s->{pid};
    close $s->{out};
}

sub h2_used {
    my ($s) = @_;
    open my $fh, '<', $s->{err} or return 0;
    return scalar grep { /using HTTP\/2/ } <$fh>;
}

for my $t (['sse', qr/event: comet\.open/, sub { "id: $_[0]\ndata: $_[1]\n\n" }],
           ['stream', qr/\{"open": /, sub { "{\"id\": $_[0], \"channel\": \"$_[2]\", \"data\": \"$_[1]\"}\n" }]) {
    my ($transport, $open, $frame) = @$t;
    my $chan = new_channel("h2$transport");
    my $s = h2_stream("/comet/$chan?transport=$transport", $transport);
    ok defined h2_wait($s, $open, 10), "$transport over h2: the stream opens";
    ok h2_used($s), "$transport: curl and the server speak HTTP/2";
    ok wait_subscribers($chan, 1), "$transport: subscribed";
    cmp_ok store_info()->{thread_streams}, '>=', 1, "$transport: it keeps a worker thread, counted";
    my @late;
    for my $i (1 .. 3) {
        my $id = publish($chan, "h2 $i")->{json}{id};
        my $took = h2_wait($s, qr/\Q${\ $frame->($id, "h2 $i", $chan)}\E/, 5);
        push @late, $i unless defined $took && $took < 2;
    }
    is "@late", '', "$transport: three messages, each within 2 s of its publish";
    h2_stop($s);
    ok wait_subscribers($chan, 0, 10), "$transport: the client gone, the stream ends";
    ok wait_until(sub { store_info()->{thread_streams} == 0 }, 10), "$transport: ... and gives its thread back";
    delete_channel($chan);
}

# a stream over h2 takes a place of CometMaxThreadStreams: refused past it
# (t/37-thread-guard.t tests the limit itself; here that h2 is counted)
{
    my $chan = new_channel('h2count');
    my $before = store_info()->{thread_streams};
    my @s = map { h2_stream("/comet/$chan?transport=sse", "count$_") } 1 .. 2;
    ok !grep({ !defined h2_wait($_, qr/event: comet\.open/, 10) } @s), 'two h2 streams';
    is store_info()->{thread_streams} - $before, 2, '... count two threads';
    h2_stop($_) for @s;
}
