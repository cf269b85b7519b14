package Comet::Test;

# Helpers of the mod_comet Apache::Test suite: a small HTTP/1.1 client on raw
# sockets (exact bytes, keep-alive connections pinned to one child), streaming
# subscribers read incrementally with timeouts, parsers of the iframe frames,
# an independent model of the escaping, and error-log helpers.
#
# COMET_TEST_TLS=1: every helper talks HTTPS to the test server's TLS virtual
# host (t/conf/tls.conf.in), which has the same locations: the same .t files
# then test the streams over mod_ssl.

use strict;
use warnings;

use Exporter 'import';
use Errno ();
use IO::Select ();
use IO::Socket::INET ();
use JSON::PP ();
use Time::HiRes qw(time sleep);
use Apache::Test ();

our @EXPORT = qw(
    hostport server_port tls new_channel
    http publish channel_info store_info delete_channel
    subscribe pinned_connections child_figures collect_frames
    wait_subscribers expected_prelude_head escape_js frame_bytes json
    log_mark log_since wait_log
    new_session sjs_path sjs_stream parent_pid supervisor_pid proc_children proc_state
    fd_count pid_alive wait_until
    DEFAULT_CB
);

use constant DEFAULT_CB => 'Pxxo_Widget_Comet.dispatch';
use constant TIMEOUT    => 10;

my $json = JSON::PP->new->canonical;

# a server that answers before reading the whole request (413) closes early
$SIG{PIPE} = 'IGNORE';

sub json { $json->decode($_[0]) }

sub config { Apache::Test::config() }

# Another server than the test server (Comet::Private), for a while:
# local $Comet::Test::PORT = $srv->port; every helper then talks to it
# (in plain HTTP: those servers have no TLS).
# local $Comet::Test::LOCAL_ADDR = '127.0.0.2': connect from that address.
our ($PORT, $LOCAL_ADDR);

# Over TLS (COMET_TEST_TLS=1), to the TLS virtual host of the test server.
my $TLS = $ENV{COMET_TEST_TLS} ? 1 : 0;
if ($TLS) {
    require IO::Socket::SSL;
}

# Do the helpers speak TLS to the server they talk to now?
sub tls { $TLS && !defined $PORT }

# One client context for every connection: a new one per connection would
# load the system's CA store each time (some 20 ms), for nothing: the test
# certificate is self-signed, and not verified.
my $tls_context;
sub tls_context {
    $tls_context //= IO::Socket::SSL::SSL_Context->new(
        SSL_verify_mode => IO::Socket::SSL::SSL_VERIFY_NONE())
        or die "TLS context: $IO::Socket::SSL::SSL_ERROR\n";
    return $tls_context;
}

sub tls_port {
    my $port = config()->{vars}{mod_ssl_port}
        or die "COMET_TEST_TLS: the test server has no TLS port (is mod_ssl loaded? t/TEST -clean)\n";
    return $port;
}

sub server_port { $PORT // ($TLS ? tls_port() : config()->{vars}{port}) }

sub hostport { '127.0.0.1:' . server_port() }

# A channel name of this test run: never seen by an earlier run or test.
# Whatever happens to the test, the channel is deleted at its end, so that
# no test leaves a full store behind.
my $seq = 0;
my @created;
my $creator = $$;
sub new_channel {
    my $prefix = shift || 'c';
    $seq++;
    my $chan = sprintf '%s-%d-%d-%d', $prefix, $$, int(time * 1000) % 100000000, $seq;
    push @created, $chan;
    return $chan;
}

END {
    if ($$ == $creator) {
        local $?;
        for my $chan (@created) {
            eval { http(DELETE => "/comet-publish/$chan", timeout => 2) };
        }
    }
}

###############################################################################
# connections
###############################################################################

package Comet::Test::Conn;

use Time::HiRes qw(time);

# Comet::Test::Conn->new(port => P): to another server (a proxy) than
# the test server, in plain HTTP unless tls => 1 (tls_version => 'TLSv1_2'
# to ask for one).
sub new {
    my ($class, %o) = @_;
    my $tls = $o{tls} // (Comet::Test::tls()
                          && (!$o{port} || $o{port} == Comet::Test::server_port()));
    my $self = bless { port => $o{port}, tls => $tls, tls_version => $o{tls_version} }, $class;
    $self->open;
    return $self;
}

sub open {
    my $self = shift;
    my $port = $self->{port} || Comet::Test::server_port();
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                     Proto => 'tcp', Timeout => 5,
                                     ($Comet::Test::LOCAL_ADDR
                                      ? (LocalAddr => $Comet::Test::LOCAL_ADDR) : ()))
        or die "connect to 127.0.0.1:$port: $!\n";
    $sock->autoflush(1);
    binmode $sock;
    if ($self->{tls}) {
        require IO::Socket::SSL;
        # an address sends no SNI: the port alone names the virtual host
        my $ctx = $self->{tls_version}
            ? IO::Socket::SSL::SSL_Context->new(SSL_verify_mode => IO::Socket::SSL::SSL_VERIFY_NONE(),
                                                SSL_version => $self->{tls_version})
            : Comet::Test::tls_context();
        IO::Socket::SSL->start_SSL($sock, SSL_reuse_ctx => $ctx, SSL_hostname => '', Timeout => 5)
            or die "TLS handshake with 127.0.0.1:$port: $IO::Socket::SSL::SSL_ERROR\n";
        # reads and writes wait in select, with our timeouts, never in
        # SSL_read: a record that came in part must not block a reader
        $sock->blocking(0);
    }
    @$self{qw(sock buf eof closing pid chunked raw)} = ($sock, '', 0, 0, undef, 0, '');
}

# Is the TLS layer waiting for the socket (SSL_WANT_READ or _WRITE) after a
# non-blocking call that did nothing? 'r' or 'w', else ''.
sub tls_wants {
    my $self = shift;
    return '' unless $self->{tls} && ($!{EAGAIN} || $!{EWOULDBLOCK});
    return $IO::Socket::SSL::SSL_ERROR == IO::Socket::SSL::SSL_WANT_WRITE() ? 'w' : 'r';
}

# Wait up to $timeout seconds for the socket: 'r' readable, 'w' writable.
sub wait_sock {
    my ($self, $what, $timeout) = @_;
    my $sel = IO::Select->new($self->{sock});
    return $what eq 'w' ? $sel->can_write($timeout) : $sel->can_read($timeout);
}

# Decrypted bytes IO::Socket::SSL holds: the kernel has them no more, so
# select() does not see them.
sub tls_pending {
    my $self = shift;
    return $self->{tls} && $self->{sock} ? $self->{sock}->pending : 0;
}

sub send_bytes {
    my ($self, $bytes) = @_;
    my $off = 0;
    while ($off < length $bytes) {
        my $n = syswrite $self->{sock}, $bytes, length($bytes) - $off, $off;
        if (!defined $n) {
            # TLS (non-blocking): as a blocking write would, wait for the
            # socket, then the same write again, as OpenSSL wants
            my $want = $self->tls_wants or die "write: $!\n";
            $self->wait_sock($want, 60) or die "write: no progress within 60s\n";
            next;
        }
        $off += $n;
    }
}

# Read what is there, waiting at most $timeout seconds: 1 if bytes came,
# 0 on timeout, undef at end of stream.
sub read_more {
    my ($self, $timeout) = @_;
    return undef if $self->{eof};
    my $deadline = time + $timeout;
    for (;;) {
        if (!$self->tls_pending) {
            my $left = $deadline - time;
            return 0 unless $self->wait_sock('r', $left > 0 ? $left : 0);
        }
        my $n = sysread $self->{sock}, my $chunk, 65536;
        if (!defined $n && (my $want = $self->tls_wants)) {
            # TLS: no application data yet (a record in part, a session
            # ticket); what it waits for, until the deadline
            my $left = $deadline - time;
            return 0 if $left <= 0;
            $self->wait_sock($want, $left) if $want eq 'w';
            next;
        }
        if (!$n) {
            $self->{eof} = 1;
            return undef;
        }
        $self->got($chunk);
        # TLS: the rest of a record, so that select() tells the truth again
        while ($self->tls_pending) {
            my $m = sysread $self->{sock}, $chunk, 65536;
            last unless $m;
            $self->got($chunk);
        }
        return 1;
    }
}

# Bytes from the socket: into the buffer, or through the chunked decoding
# of a stream's body (dechunk).
sub got {
    my ($self, $bytes) = @_;
    if ($self->{chunked}) {
        $self->{raw} .= $bytes;
        $self->dechunk;
    }
    else {
        $self->{buf} .= $bytes;
    }
}

# From now on the body is chunked (subscribe does it for a stream whose
# response says so): the buffer gets the data of each complete chunk,
# ->{chunks} the data of each one apart (the SockJS tests check that each
# frame is a chunk of its own), ->{last_chunk} is set by the zero-length one.
sub dechunk {
    my $self = shift;
    if (!$self->{chunked}) {
        @$self{qw(chunked raw chunks last_chunk)} = (1, $self->{buf}, [], 0);
        $self->{buf} = '';
    }
    while (!$self->{last_chunk} && $self->{raw} =~ /\A([0-9a-fA-F]+)[^\r\n]*\r\n/) {
        my ($n, $hl) = (hex $1, length $&);
        last if length($self->{raw}) < $hl + $n + 2;
        my $data = substr $self->{raw}, $hl, $n;
        substr($self->{raw}, 0, $hl + $n + 2, '');
        if ($n == 0) {
            $self->{last_chunk} = 1;
            last;
        }
        push @{ $self->{chunks} }, $data;
        $self->{buf} .= $data;
    }
}

# Read until $cond->($buf) is true; true if it became so before the deadline.
sub read_until {
    my ($self, $cond, $timeout) = @_;
    my $deadline = time + ($timeout // Comet::Test::TIMEOUT);
    until ($cond->($self->{buf})) {
        my $left = $deadline - time;
        return 0 if $left <= 0;
        my $r = $self->read_more($left);
        return $cond->($self->{buf}) ? 1 : 0 unless defined $r;
    }
    return 1;
}

# Take $n bytes off the front of the buffer.
sub take {
    my ($self, $n) = @_;
    return substr $self->{buf}, 0, $n, '';
}

# The response to a request just sent: {status, reason, proto, head,
# headers (lower-case names, repeated ones joined by ", "), body}.
sub read_response {
    my ($self, %o) = @_;
    my $timeout = $o{timeout} // Comet::Test::TIMEOUT;
    $self->read_until(sub { $_[0] =~ /\r\n\r\n/ }, $timeout)
        or die "no response head within ${timeout}s (got: "
               . substr($self->{buf}, 0, 200) . ")\n";
    my $end = index($self->{buf}, "\r\n\r\n");
    my $head = $self->take($end + 4);
    my $res = parse_head($head);
    my $h = $res->{headers};
    if ($o{method} && $o{method} eq 'HEAD'
        || $res->{status} =~ /^(1|204|304)/) {
        $res->{body} = '';
    }
    elsif (($h->{'transfer-encoding'} // '') =~ /chunked/i) {
        my $body = '';
        for (;;) {
            $self->read_until(sub { $_[0] =~ /\r\n/ }, $timeout) or die "chunk size\n";
            $self->{buf} =~ s/^([0-9a-fA-F]+)[^\r]*\r\n// or die "bad chunk\n";
            my $n = hex $1;
            $self->read_until(sub { length $_[0] >= $n + 2 }, $timeout) or die "chunk\n";
            $body .= $self->take($n);
            $self->take(2);
            if ($n == 0) {
                last;
            }
        }
        $res->{body} = $body;
    }
    elsif (defined $h->{'content-length'}) {
        my $n = $h->{'content-length'};
        $self->read_until(sub { length $_[0] >= $n }, $timeout)
            or die "body: $n bytes expected\n";
        $res->{body} = $self->take($n);
    }
    else {
        $self->read_until(sub { 0 }, $timeout);
        $res->{body} = $self->take(length $self->{buf});
    }
    return $res;
}

sub parse_head {
    my ($head) = @_;
    my ($status_line, @lines) = split /\r\n/, $head;
    my ($proto, $status, $reason) = $status_line =~ m{^(HTTP/\d\.\d) (\d{3}) ?(.*)$}
        or die "bad status line: $status_line\n";
    my (%h, @list);
    for (@lines) {
        my ($k, $v) = /^([^:]+):\s*(.*)$/ or next;
        push @list, [$k, $v];
        $k = lc $k;
        $h{$k} = exists $h{$k} ? "$h{$k}, $v" : $v;
    }
    return { proto => $proto, status => $status, reason => $reason,
             head => $head, headers => \%h, header_list => \@list };
}

sub close {
    my $self = shift;
    CORE::close($self->{sock}) if $self->{sock};
    $self->{sock} = undef;
}

sub DESTROY { $_[0]->close }

package Comet::Test;

# Send one request: http(METHOD, PATH, body => BYTES, headers => [k, v, ...],
# conn => CONN (keep it open), chunked => 1, version => '1.0').
# Without a conn the request says "Connection: close".
sub http {
    my ($method, $path, %o) = @_;
    my $conn = $o{conn} || Comet::Test::Conn->new;
    # the server ended the keep-alive connection (MaxKeepAliveRequests):
    # go on with a new one, which may reach another child
    $conn->open if $conn->{closing} || $conn->{eof};
    my $version = $o{version} || '1.1';
    my @hdr = @{ $o{headers} || [] };
    my $req = "$method $path HTTP/$version\r\n";
    $req .= "Host: " . hostport() . "\r\n" unless $o{no_host};
    $req .= "Connection: close\r\n" unless $o{conn} || $o{keepalive};
    while (my ($k, $v) = splice @hdr, 0, 2) {
        $req .= "$k: $v\r\n";
    }
    my $body = $o{body};
    if (defined $body && $o{chunked}) {
        $req .= "Transfer-Encoding: chunked\r\n\r\n";
        for (my $i = 0; $i < length $body; $i += 4000) {
            my $part = substr $body, $i, 4000;
            $req .= sprintf("%x\r\n", length $part) . $part . "\r\n";
        }
        $req .= "0\r\n\r\n";
    }
    elsif (defined $body) {
        $req .= "Content-Length: " . length($body) . "\r\n\r\n" . $body;
    }
    else {
        $req .= "\r\n";
    }
    $conn->send_bytes($req);
    my $res = $conn->read_response(method => $method, timeout => $o{timeout});
    $res->{conn} = $conn;
    $conn->{closing} = 1 if ($res->{headers}{connection} // '') =~ /close/i;
    if (($res->{headers}{'content-type'} // '') =~ m{^application/json}) {
        $res->{json} = eval { json($res->{body}) };
    }
    return $res;
}

# POST a message: the response, with ->{json}.
sub publish {
    my ($chan, $data, %o) = @_;
    my $loc = delete $o{location} || '/comet-publish';
    return http(POST => "$loc/$chan", body => $data, %o);
}

sub channel_info {
    my ($chan, %o) = @_;
    my $res = http(GET => "/comet-publish/$chan", %o);
    return $res->{status} == 200 ? $res->{json} : undef;
}

sub store_info {
    my %o = @_;
    return http(GET => '/comet-publish/', %o)->{json};
}

sub delete_channel {
    my ($chan, %o) = @_;
    return http(DELETE => "/comet-publish/$chan", %o);
}

# Wait until the channel counts $n subscribers (a stream is registered with
# the store shortly after its prelude went out).
sub wait_subscribers {
    my ($chan, $n, $timeout) = @_;
    my $deadline = time + ($timeout // TIMEOUT);
    my $got = -1;
    while (time < $deadline) {
        my $info = channel_info($chan);
        $got = $info ? $info->{subscribers} : 0;
        return 1 if $got == $n;
        sleep 0.02;
    }
    warn "# $chan: $got subscribers, $n expected\n";
    return 0;
}

# Keep-alive connections with the pid of the child that serves each,
# learnt from GET /comet-publish/: what is sent on one of them afterwards
# is handled by that child. Opens connections until `distinct` different
# children are seen or `max` connections are open; returns them all.
sub pinned_connections {
    my (%o) = @_;
    my $want = $o{distinct} || 2;
    my $max = $o{max} || 40;
    my (@conns, %pids);
    while (@conns < $max) {
        # every child may be busy (prefork children holding streams, or the
        # connections kept open here): make do with what we have (over TLS
        # the handshake already waits for a child)
        my $conn = eval { Comet::Test::Conn->new };
        my $res = $conn && eval { http(GET => '/comet-publish/', conn => $conn, timeout => 3) };
        if (!$res) {
            die $@ unless @conns;
            $conn->close if $conn;
            last;
        }
        die "GET /comet-publish/: $res->{status}\n" unless $res->{status} == 200;
        $conn->{pid} = $res->{json}{this_process}{pid};
        $pids{ $conn->{pid} }++;
        push @conns, $conn;
        last if keys %pids >= $want && @conns >= ($o{min} || 0);
    }
    return @conns;
}

# this_process of a given child (undef if it cannot be reached: a busy
# prefork child): asks through new connections, kept open meanwhile so that
# prefork hands each to another child.
sub child_figures {
    my ($pid) = @_;
    # an event child may take no new connection for a while (its listener
    # paused): try a few times, with fresh connections
    for my $try (1 .. 3) {
        my @keep;
        while (@keep < 40) {
            # every child busy: no answer, over TLS not even to the handshake
            my $conn = eval { Comet::Test::Conn->new };
            my $res = $conn && eval { http(GET => '/comet-publish/', conn => $conn, timeout => 3) };
            last unless $res && $res->{status} == 200;
            return $res->{json}{this_process} if $res->{json}{this_process}{pid} == $pid;
            push @keep, $conn;
        }
        @keep = ();
        sleep 0.5;
    }
    return undef;
}

###############################################################################
# streams
###############################################################################

# Open a stream: subscribe(PATH, conn => CONN, version => '1.0',
# headers => [...], method => 'POST', body => BYTES). Returns a Comet::Test::Stream whose ->{status} and
# ->{headers} are those of the response; the body is read on demand.
sub subscribe {
    my ($path, %o) = @_;
    my $conn = $o{conn} || Comet::Test::Conn->new;
    my $version = $o{version} || '1.1';
    my $method = $o{method} || 'GET';
    my $req = "$method $path HTTP/$version\r\nHost: " . hostport() . "\r\n";
    my @hdr = @{ $o{headers} || [] };
    while (my ($k, $v) = splice @hdr, 0, 2) {
        $req .= "$k: $v\r\n";
    }
    $req .= "Content-Length: " . length($o{body}) . "\r\n" if defined $o{body};
    $conn->send_bytes("$req\r\n" . ($o{body} // ''));
    my $timeout = $o{timeout} // TIMEOUT;
    $conn->read_until(sub { $_[0] =~ /\r\n\r\n/ }, $timeout)
        or die "$path: no response head within ${timeout}s\n";
    my $head = $conn->take(index($conn->{buf}, "\r\n\r\n") + 4);
    my $self = Comet::Test::Conn::parse_head($head);
    $self->{conn} = $conn;
    $self->{path} = $path;
    $self->{pid} = $conn->{pid};
    bless $self, 'Comet::Test::Stream';
    if ($self->{status} == 200 && ($self->{headers}{'transfer-encoding'} // '') =~ /chunked/i) {
        $conn->dechunk;
    }
    if ($self->{status} != 200) {
        # an error page: read it whole
        my $n = $self->{headers}{'content-length'};
        if (defined $n) {
            $conn->read_until(sub { length $_[0] >= $n }, $timeout);
        }
        $self->{body} = $conn->take(length $conn->{buf});
    }
    return $self;
}

# Read several streams at once for $duration seconds (or until all are
# closed), noting when each frame arrived: returns, per stream, a list of
# [seconds since the start, frame]; a closed stream ends with [t, undef].
# `at` runs code at given times: at => [[0.5, sub { ... }], ...].
sub collect_frames {
    my ($streams, $duration, %o) = @_;
    my $t0 = time;
    my @at = sort { $a->[0] <=> $b->[0] } @{ $o{at} || [] };
    my @out = map { [] } @$streams;
    my @open = (1) x @$streams;
    while (grep { $_ } @open) {
        my $now = time - $t0;
        last if $now >= $duration;
        while (@at && $at[0][0] <= $now) {
            (shift @at)->[1]->();
        }
        my $wait = $duration - $now;
        $wait = $at[0][0] - $now if @at && $at[0][0] - $now < $wait;
        # bytes TLS has decrypted already are ready without select
        my @ready = map { $streams->[$_]{conn}{sock} }
                    grep { $open[$_] && $streams->[$_]{conn}->tls_pending } 0 .. $#$streams;
        $wait = 0 if @ready;
        my $sel = IO::Select->new(map { $streams->[$_]{conn}{sock} } grep { $open[$_] } 0 .. $#$streams);
        push @ready, $sel->can_read($wait > 0 ? $wait : 0);
        for my $i (grep { $open[$_] } 0 .. $#$streams) {
            my $s = $streams->[$i];
            next unless grep { $_ == $s->{conn}{sock} } @ready;
            my $r = $s->{conn}->read_more(0);
            my $t = time - $t0;
            while (length $s->{conn}{buf}) {
                my $f = $s->next_frame(0) or last;
                push @{ $out[$i] }, [$t, $f];
            }
            if (!defined $r) {
                push @{ $out[$i] }, [$t, undef];
                $open[$i] = 0;
            }
        }
    }
    return @out;
}

package Comet::Test::Stream;

use Time::HiRes qw(time);

# The prelude: everything up to the end of its padding comment.
sub prelude {
    my ($self, $timeout) = @_;
    my $c = $self->{conn};
    $c->read_until(sub { $_[0] =~ / -->\n/ }, $timeout) or return undef;
    my $end = index($c->{buf}, " -->\n") + 5;
    return $self->{prelude} = $c->take($end);
}

# The next frame, within $timeout seconds: {type => 'p', id, data, chan,
# raw} (data and chan as on the wire, escaped), {type => 'h', raw},
# {type => 'e', reason, raw}, {type => 'junk', raw} for bytes that are no
# frame, or undef (timeout; ->{eof} tells whether the server closed).
#
# A message frame ends at the first "</script>\n": its data cannot hold one,
# "<" being escaped. (No regex over the data: messages are large.)
sub next_frame {
    my ($self, $timeout) = @_;
    my $c = $self->{conn};
    my $complete = sub {
        my $b = shift;
        return 0 unless length $b;
        my $start = substr $b, 0, 10;
        return 1 unless grep { index($_, $start) == 0 } '<script>p(', '<script>h(', '<script>e(';
        my $end = index $b, "</script>\n";
        return 0 if $end < 0;
        return 1 unless $start eq '<script>e(';
        return index($b, "</html>\n", $end) >= 0 ? 1 : 0;
    };
    unless ($c->read_until($complete, $timeout // Comet::Test::TIMEOUT)) {
        $self->{eof} = $c->{eof};
        # the server closed in the middle of something
        return { type => 'junk', raw => $c->take(length $c->{buf}) }
            if $c->{eof} && length $c->{buf};
        return undef;
    }
    my $b = $c->{buf};
    my $start = substr $b, 0, 10;
    my $end = index $b, "</script>\n";
    if ($start eq '<script>p(' && $end > 0) {
        my $raw = $c->take($end + 10);
        if ($raw =~ /\A<script>p\((\d+),"(.*)","([A-Za-z0-9_-]+)"\);<\/script>\n\z/s) {
            my ($id, $data, $chan) = ($1, $2, $3);
            # a well-formed string body: escapes, and no bare quote or backslash
            (my $bare = $data) =~ s/\\(?:u[0-9a-f]{4}|["\\\/bfnrt])//g;
            return { type => 'p', id => $id, data => $data, chan => $chan, raw => $raw }
                if $bare !~ /["\\]/;
        }
        return { type => 'junk', raw => $raw };
    }
    if ($start eq '<script>h(' && $end > 0) {
        my $raw = $c->take($end + 10);
        return { type => $raw eq "<script>h();</script>\n" ? 'h' : 'junk', raw => $raw };
    }
    if ($start eq '<script>e(' && $end > 0) {
        my $raw = $c->take(index($b, "</html>\n", $end) + 8);
        return { type => 'e', reason => $1, raw => $raw }
            if $raw =~ m{\A<script>e\("([a-z]+)"\);</script>\n</body></html>\n\z};
        return { type => 'junk', raw => $raw };
    }
    return { type => 'junk', raw => $c->take(length $b) };
}

# The next $n messages, heartbeats skipped; stops early at a timeout, an
# end frame or junk (the last element is then that frame, or undef).
sub messages {
    my ($self, $n, $timeout) = @_;
    my $deadline = time + ($timeout // Comet::Test::TIMEOUT);
    my @m;
    while (@m < $n) {
        my $f = $self->next_frame($deadline - time);
        if (!$f || $f->{type} ne 'p' && $f->{type} ne 'h') {
            push @m, $f;
            last;
        }
        push @m, $f if $f->{type} eq 'p';
    }
    return @m;
}

# Whatever arrives until the server closes (or the timeout): the bytes, and
# whether the connection was closed.
sub rest {
    my ($self, $timeout) = @_;
    my $c = $self->{conn};
    $c->read_until(sub { 0 }, $timeout // Comet::Test::TIMEOUT);
    return wantarray ? ($c->take(length $c->{buf}), $c->{eof}) : $c->take(length $c->{buf});
}

# Bytes already received and not consumed.
sub pending { $_[0]{conn}{buf} }

# The bytes up to and including the next $end (a string), within $timeout
# seconds; undef if it did not come (->{conn}{eof}: the server closed).
sub upto {
    my ($self, $end, $timeout) = @_;
    my $c = $self->{conn};
    $c->read_until(sub { index($_[0], $end) >= 0 }, $timeout // Comet::Test::TIMEOUT)
        or return undef;
    return $c->take(index($c->{buf}, $end) + length $end);
}

# Exactly $n bytes, or undef.
sub bytes {
    my ($self, $n, $timeout) = @_;
    my $c = $self->{conn};
    $c->read_until(sub { length $_[0] >= $n }, $timeout // Comet::Test::TIMEOUT)
        or return undef;
    return $c->take($n);
}

# Has the server closed the connection (after what is pending)? Waits up to
# $timeout seconds for it.
sub closed {
    my ($self, $timeout) = @_;
    my $c = $self->{conn};
    $c->read_until(sub { 0 }, $timeout // Comet::Test::TIMEOUT) unless $c->{eof};
    return $c->{eof} ? 1 : 0;
}

sub close { $_[0]{conn}->close }

package Comet::Test;

###############################################################################
# the wire format, modelled independently of the C code
###############################################################################

# What every prelude starts with, up to the padding comment.
# $cursors: [[channel, id], ...], where each channel stood when the stream
# opened: passed as JSON text through JSON.parse.
sub expected_prelude_head {
    my ($cb, $heartbeat_ms, $cursors) = @_;
    my $open = $heartbeat_ms;
    if ($cursors) {
        my $json = '{' . join(',', map { "\"$_->[0]\":$_->[1]" } @$cursors) . '}';
        (my $quoted = $json) =~ s/"/\\"/g;
        $open .= qq(, JSON.parse("$quoted"));
    }
    return "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
         . "<meta name=\"robots\" content=\"noindex\"><title>mod_comet</title></head>"
         . "<body>\n<script>\nvar f = null;\ntry { f = parent.$cb; } catch (x) {}\n"
         . "function p(i, d, c) { if (f) f(\"m\", i, d, c); }\n"
         . "function h() { if (f) f(\"h\"); }\n"
         . "function e(r) { if (f) f(\"e\", r); }\n"
         . "if (f) f(\"o\", $open);\n</script>\n<!-- ";
}

# The inside of a JS string literal for these bytes, as the module must write
# it: JSON escapes, < > & ' as \u00XX, other controls as \u00XX (but \n \r
# \t), U+2028/2029 and the other invisible ranges as \uXXXX, each byte of
# invalid UTF-8 as \ufffd; valid UTF-8 passes as is.
sub escape_js {
    my ($bytes) = @_;
    my $out = '';
    my $i = 0;
    my $len = length $bytes;
    while ($i < $len) {
        my $c = ord substr $bytes, $i, 1;
        if ($c < 0x80) {
            my $ch = chr $c;
            if    ($ch eq '"')  { $out .= '\\"' }
            elsif ($ch eq '\\') { $out .= '\\\\' }
            elsif ($ch eq "\n") { $out .= '\\n' }
            elsif ($ch eq "\r") { $out .= '\\r' }
            elsif ($ch eq "\t") { $out .= '\\t' }
            elsif ($c < 0x20 || $c == 0x7f || $ch =~ /[<>&']/) {
                $out .= sprintf '\\u%04x', $c;
            }
            else { $out .= $ch }
            $i++;
            next;
        }
        my ($n, $cp) = utf8_seq($bytes, $i);
        if (!$n) {
            $out .= '\\ufffd';
            $i++;
        }
        elsif (($cp >= 0x200c && $cp <= 0x200f) || ($cp >= 0x2028 && $cp <= 0x202f)
               || ($cp >= 0x2060 && $cp <= 0x206f) || ($cp >= 0xfff0 && $cp <= 0xffff)) {
            $out .= sprintf '\\u%04x', $cp;
            $i += $n;
        }
        else {
            $out .= substr $bytes, $i, $n;
            $i += $n;
        }
    }
    return $out;
}

# Length and code point of the well-formed UTF-8 sequence at $i (no overlong
# forms, no surrogates, nothing past U+10FFFF), or 0.
sub utf8_seq {
    my ($s, $i) = @_;
    my @b = map { ord } split //, substr $s, $i, 4;
    my $c = $b[0];
    my $cont = sub { my $k = shift; defined $b[$k] && ($b[$k] & 0xc0) == 0x80 };
    if ($c >= 0xc2 && $c <= 0xdf) {
        return (0) unless $cont->(1);
        return (2, (($c & 0x1f) << 6) | ($b[1] & 0x3f));
    }
    if ($c >= 0xe0 && $c <= 0xef) {
        return (0) unless $cont->(1) && $cont->(2);
        my $v = (($c & 0x0f) << 12) | (($b[1] & 0x3f) << 6) | ($b[2] & 0x3f);
        return (0) if $v < 0x800 || ($v >= 0xd800 && $v <= 0xdfff);
        return (3, $v);
    }
    if ($c >= 0xf0 && $c <= 0xf4) {
        return (0) unless $cont->(1) && $cont->(2) && $cont->(3);
        my $v = (($c & 0x07) << 18) | (($b[1] & 0x3f) << 12) | (($b[2] & 0x3f) << 6)
              | ($b[3] & 0x3f);
        return (0) if $v < 0x10000 || $v > 0x10ffff;
        return (4, $v);
    }
    return (0);
}

# One message frame, exactly.
sub frame_bytes {
    my ($id, $data, $chan) = @_;
    return "<script>p($id,\"" . escape_js($data) . "\",\"" . escape_js($chan)
         . "\");</script>\n";
}

###############################################################################
# sockets (SockJS)
###############################################################################

# A session id of this run ([a-z0-9], as sockjs-client makes them).
my $sseq = 0;
sub new_session {
    $sseq++;
    return sprintf 's%d%d%d%04d', $$, int(time * 1000) % 100000000, $sseq,
                   int(rand 10000);
}

# /<location>/<server>/<session>/<what>
sub sjs_path {
    my ($loc, $sid, $what) = @_;
    return "$loc/000/$sid/$what";
}

# A streaming receiver (xhr_streaming is a POST, the others GETs).
sub sjs_stream {
    my ($loc, $sid, $what, %o) = @_;
    my $q = $o{query} // '';
    return subscribe(sjs_path($loc, $sid, $what) . $q,
                     method => $what =~ /^xhr/ ? 'POST' : 'GET', %o);
}

###############################################################################
# processes (/proc)
###############################################################################

# The server's parent process, from its pid file.
sub parent_pid {
    my $pidfile = config()->{vars}{t_pid_file};
    open my $fh, '<', $pidfile or return undef;
    chomp(my $pid = <$fh> // '');
    return $pid =~ /^\d+$/ ? $pid : undef;
}

# [state, ppid, name] of a process, or ().
sub proc_state {
    my ($pid) = @_;
    open my $f, '<', "/proc/$pid/stat" or return ();
    my $st = <$f> // return ();
    return $st =~ /^\d+ \((.*)\) (\S) (\d+) /s ? ($2, $3, $1) : ();
}

sub pid_alive {
    my ($pid) = @_;
    my ($state) = proc_state($pid);
    return defined $state && $state ne 'Z' && $state ne 'X';
}

# Children of a process: [{pid, state, cmdline}, ...].
sub proc_children {
    my ($ppid) = @_;
    my @out;
    for my $d (glob '/proc/[0-9]*') {
        my ($pid) = $d =~ /(\d+)$/;
        my ($state, $pp) = proc_state($pid);
        next unless defined $pp && $pp == $ppid;
        my $cmd = '';
        if (open my $f, '<', "$d/cmdline") {
            local $/;
            $cmd = <$f> // '';
            $cmd =~ s/\0/ /g;
            $cmd =~ s/ \z//;
        }
        push @out, { pid => $pid, state => $state, cmdline => $cmd };
    }
    return @out;
}

# The supervisor: the pid the error log last gave it (CMT00203), if that
# process is a live child of the server's parent.
sub supervisor_pid {
    my $ppid = parent_pid() or return undef;
    my @hits = grep { /CMT00203: comet supervisor started \(pid \d+\)/ } log_since(0);
    for my $line (reverse @hits) {
        my ($pid) = $line =~ /\(pid (\d+)\)/;
        my ($state, $pp) = proc_state($pid);
        return $pid if defined $pp && $pp == $ppid && $state ne 'Z';
    }
    return undef;
}

# Open descriptors of a process (ours: same user).
sub fd_count {
    my ($pid) = @_;
    opendir my $d, "/proc/$pid/fd" or return undef;
    return scalar grep { !/^\./ } readdir $d;
}

# Poll $cond every 50 ms until true or $timeout seconds: its last value.
sub wait_until {
    my ($cond, $timeout) = @_;
    my $deadline = time + ($timeout // TIMEOUT);
    my $v;
    until (($v = $cond->()) || time > $deadline) {
        sleep 0.05;
    }
    return $v;
}

###############################################################################
# the error log
###############################################################################

sub error_log_path { config()->{vars}{t_logs} . '/error_log' }

# Where the error log ends now.
sub log_mark { -s error_log_path() || 0 }

# The lines written since a mark.
sub log_since {
    my ($mark) = @_;
    open my $fh, '<', error_log_path() or return ();
    seek $fh, $mark, 0;
    local $/;
    my $text = <$fh> // '';
    return split /\n/, $text;
}

# Wait for a line matching $re after $mark; the line, or undef.
sub wait_log {
    my ($mark, $re, $timeout) = @_;
    my $deadline = time + ($timeout // 5);
    do {
        my @hit = grep { $_ =~ $re } log_since($mark);
        return $hit[0] if @hit;
        sleep 0.05;
    } while (time < $deadline);
    return undef;
}

1;
