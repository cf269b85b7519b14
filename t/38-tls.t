# HTTPS streams on the child's event loop: once its headers are out, a
# stream over mod_ssl is the loop's (its TLS session with it), keeps no
# worker thread, under every MPM; it delivers, ends with close_notify, and
# notices a client that says goodbye. Over TLS 1.3 and 1.2. (The other
# tests run over HTTPS too with COMET_TEST_TLS=1; this one always does, and
# looks at what only TLS has.)
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;
use Net::SSLeay ();
use Time::HiRes qw(time sleep);

plan tests => 35, need_module('comet', 'ssl');

my $port = Comet::Test::tls_port();

# A TLS connection pinned to a child (its pid known), and a stream on it.
sub tls_stream {
    my ($path, %o) = @_;
    my $conn = Comet::Test::Conn->new(tls => 1, port => $port, %o);
    my $res = http(GET => '/comet-publish/', conn => $conn);
    die "GET /comet-publish/ over TLS: $res->{status}\n" unless $res->{status} == 200;
    $conn->{pid} = $res->{json}{this_process}{pid};
    return subscribe($path, conn => $conn);
}

# Did the server say close_notify before its end of the connection?
sub said_goodbye {
    my ($s) = @_;
    my $ssl = $s->{conn}{sock}->_get_ssl_object or return 0;
    return (Net::SSLeay::get_shutdown($ssl) & 2) ? 1 : 0;    # SSL_RECEIVED_SHUTDOWN
}

for my $v (['TLSv1_3', 'TLS 1.3'], ['TLSv1_2', 'TLS 1.2']) {
    my ($version, $name) = @$v;
    my $chan = new_channel('tls');
    my $s = tls_stream("/comet/$chan?transport=sse", tls_version => $version);
    is $s->{status}, 200, "$name: an SSE stream over HTTPS";
    is $s->{conn}{sock}->get_sslversion, $version, "$name: negotiated";
    like $s->upto("\n\n", 5) . $s->upto("\n\n", 5), qr/event: comet\.open/, "$name: its prelude";
    ok wait_subscribers($chan, 1), "$name: subscribed";
    my $fig = child_figures($s->{pid});
    ok $fig && $fig->{subscribers} >= 1 && $fig->{held} == 0,
        "$name: child $s->{pid} counts the stream, and no worker thread keeps it"
        or diag explain $fig;
    my $id = publish($chan, "over $name")->{json}{id};
    is $s->upto("\n\n", 5), "id: $id\ndata: over $name\n\n", "$name: a message, as over HTTP";
    my $mark = log_mark();
    is delete_channel($chan)->{status}, 200, "$name: the channel deleted";
    is $s->upto("\n\n", 5), "event: comet.end\ndata: deleted\n\n", "$name: the end frame";
    ok $s->closed(5), "$name: then the connection ends";
    ok said_goodbye($s), "$name: with close_notify";
    $s->close;
    # The request is logged when the loop takes it; mod_ssl's variables
    # come through the environment (SSLOptions +StdEnvVars, tls.conf.in).
    (my $proto = $version) =~ tr/_/./;
    my $logged = '';
    for (1 .. 50) {
        open my $f, '<', Apache::Test::config()->{vars}{t_logs} . '/tls_access_log' or last;
        ($logged) = grep { m{^GET /comet/\Q$chan\E\?transport=sse } } <$f>;
        last if $logged;
        sleep 0.1;
    }
    like $logged // '', qr/ HTTP\/1\.1 \Q$proto\E [A-Z0-9_-]+$/, "$name: logged with mod_ssl's variables";
}

# A client that says goodbye (close_notify) or just goes: noticed.
{
    my $chan = new_channel('tlsbye');
    my $a = tls_stream("/comet/$chan?transport=stream");
    my $b = tls_stream("/comet/$chan?transport=iframe");
    ok wait_subscribers($chan, 2), 'two TLS streams';
    $a->{conn}{sock}->close(SSL_fast_shutdown => 1);
    $a->{conn}{sock} = undef;
    ok wait_subscribers($chan, 1, 5), 'a client that says close_notify is noticed';
    $b->{conn}{sock}->close(SSL_no_shutdown => 1);
    $b->{conn}{sock} = undef;
    ok wait_subscribers($chan, 0, 5), 'one that just goes as well';
}

# More HTTPS streams than the server has threads (40; prefork: 16
# processes): all open, all fed, and the server answers everything else.
{
    my $chan = new_channel('tlsmany');
    my @s;
    my $opened = 0;
    for (1 .. 60) {
        my $s = eval { subscribe("/comet/$chan?transport=sse",
                                 conn => Comet::Test::Conn->new(tls => 1, port => $port),
                                 timeout => 10) };
        last unless $s && $s->{status} == 200;
        push @s, $s;
    }
    is scalar(@s), 60, '60 HTTPS streams open (more than the 40 threads)';
    ok wait_subscribers($chan, 60, 10), '... all subscribed';
    my $t0 = time;
    my $js = http(GET => '/comet/comet.js', timeout => 5);
    is $js->{status}, 200, '... the server answers a page meanwhile';
    cmp_ok time - $t0, '<', 2, '... at once';
    my $id = publish($chan, 'to all')->{json}{id};
    my $got = grep { ($_->upto("data: to all\n\n", 10) // '') =~ /id: \Q$id\E\ndata: to all\n\n/ } @s;
    is $got, 60, '... and every stream gets a message';
    is store_info()->{thread_streams}, 0, '... with no thread kept for any of them';
    $_->close for @s;
    ok wait_subscribers($chan, 0, 10), 'all gone';
}

# A stream ending by itself (its lifetime) says close_notify too.
{
    my $chan = new_channel('tlslife');
    my $s = tls_stream("/comet-small/$chan?transport=stream");
    like $s->rest(8), qr/\{"end": "reconnect"\}\n\z/, 'at its lifetime (3 s), the end line';
    ok $s->closed(1), '... the connection ends';
    ok said_goodbye($s), '... with close_notify';
    $s->close;
}
