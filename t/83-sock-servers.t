# Sessions backed by a server: CometSocketBackend unix:<path> and
# tcp:<host>:<port>. The test runs a line-echo server ("<kind>:<line>"; "bye"
# closes the connection) and checks lines both ways, the close, and that a
# session without a browser ends its connection.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;
use IO::Socket::UNIX ();
use IO::Socket::INET ();
use IO::Select ();
use POSIX ();
use Time::HiRes qw(time sleep);

plan tests => 17, need_module('comet');

my $cfg = Apache::Test::config();
my $sock_path = "$cfg->{vars}{t_logs}/echo.sock";
my $GO_AWAY = qq(c[3000,"Go away!"]\n);
my $events = "$cfg->{vars}{t_logs}/echo-server.events";

# the TCP port Apache::Test chose for /sock-tcp
my $tcp_port;
{
    open my $f, '<', "$cfg->{vars}{t_conf}/extra.conf" or die "extra.conf: $!";
    while (<$f>) {
        $tcp_port = $1 if /CometSocketBackend tcp:127\.0\.0\.1:(\d+)/;
    }
}

# A line-echo server in a child process: one connection at a time is
# enough here, but serve them all (select loop). Notes "accept" and "eof"
# in $events.
sub start_server {
    my ($kind, $listener) = @_;
    my $pid = fork // die "fork: $!";
    return $pid if $pid;
    $SIG{TERM} = sub { POSIX::_exit(0) };
    my $sel = IO::Select->new($listener);
    my %buf;
    my $note = sub { open my $f, '>>', $events or return; print $f "$kind @_\n"; close $f };
    for (;;) {
        for my $fh ($sel->can_read(1)) {
            if ($fh == $listener) {
                my $c = $listener->accept or next;
                $sel->add($c);
                $note->('accept');
                next;
            }
            my $n = sysread $fh, my $chunk, 65536;
            if (!$n) {
                $note->('eof');
                $sel->remove($fh);
                close $fh;
                next;
            }
            $buf{$fh} .= $chunk;
            while ($buf{$fh} =~ s/\A([^\n]*)\n//) {
                my $line = $1;
                if ($line eq 'bye') {
                    $note->('bye');
                    $sel->remove($fh);
                    close $fh;
                    last;
                }
                syswrite $fh, "$kind:$line\n";
            }
        }
    }
}

sub events {
    open my $f, '<', $events or return '';
    local $/;
    return join ' ', split /\n/, <$f> // '';
}

sub say_ {
    my ($loc, $sid, @m) = @_;
    return http(POST => sjs_path($loc, $sid, 'xhr_send'),
                body => JSON::PP->new->ascii->encode(\@m))->{status};
}
sub poll_until {
    my ($loc, $sid, $n) = @_;
    my @got;
    my $deadline = time + 8;
    while (@got < $n && time < $deadline) {
        my $b = http(POST => sjs_path($loc, $sid, 'xhr'), timeout => 40)->{body};
        push @got, $b =~ /\Aa(\[.*\])\n\z/s ? @{ json($1) } : $b eq "h\n" ? () : ($b);
    }
    return @got;
}

# --- nobody listens yet -----------------------------------------------------
unlink $sock_path, $events;
{
    my $sid = new_session();
    my $body = join '', map { http(POST => sjs_path('/sock-unix', $sid, 'xhr'))->{body} } 1 .. 2;
    is $body, "o\n$GO_AWAY", 'unix: no server: o, then c[3000,"Go away!"]';
}

my @servers;
for my $kind ('unix', 'tcp') {
    my $loc = "/sock-$kind";
    SKIP: {
        my $listener = $kind eq 'unix'
            ? IO::Socket::UNIX->new(Local => $sock_path, Listen => 16)
            : $tcp_port && IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $tcp_port,
                                                 Listen => 16, ReuseAddr => 1);
        skip "$kind: cannot listen: $!", 8 unless $listener;
        push @servers, start_server($kind, $listener);
        close $listener;
        unlink $events;

        my $sid = new_session();
        is http(POST => sjs_path($loc, $sid, 'xhr'))->{body}, "o\n", "$kind: session opened";
        ok wait_until(sub { events() eq "$kind accept" }, 5), "$kind: one connection to the server";
        say_($loc, $sid, 'hello', "a\\b\nc\rd");
        my @got = poll_until($loc, $sid, 2);
        is_deeply \@got, ["$kind:hello", "$kind:a\\\\b\\nc\\rd"], "$kind: lines both ways, escaped";
        say_($loc, $sid, map { "m$_" } 1 .. 50);
        @got = poll_until($loc, $sid, 50);
        is join(',', @got), join(',', map { "$kind:m$_" } 1 .. 50), "$kind: 50 messages in order";
        say_($loc, $sid, 'bye');
        is join('', poll_until($loc, $sid, 1)), $GO_AWAY, "$kind: the server closes: c[3000,\"Go away!\"]";
        is http(POST => sjs_path($loc, $sid, 'xhr'))->{body}, $GO_AWAY, "$kind: ... every poll after";

        # a browser that goes: the connection ends
        unlink $events;
        my $sid2 = new_session();
        http(POST => sjs_path($loc, $sid2, 'xhr'));
        ok wait_until(sub { events() eq "$kind accept" }, 5), "$kind: another session, another connection";
        my $t0 = time;
        ok wait_until(sub { events() eq "$kind accept $kind eof" }, 8),
            sprintf "$kind: no receiver for 2 s: the server reads EOF (%.1f s)", time - $t0;
    }
}

kill 'TERM', @servers;
waitpid $_, 0 for @servers;
unlink $sock_path;
