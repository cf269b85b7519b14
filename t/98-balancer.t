# SockJS sessions sticky to their server behind mod_proxy_balancer: two
# private mod_comet servers (CometSocketRoute web1 and web2, CometSocketCookie
# On, the echo backend) behind a private front Apache made of
# conf/balancer.conf (its backend addresses replaced), every request through
# the front:
#  - xhr polling and xhr_streaming sessions: each backend's JSESSIONID names
#    its route; every send and poll of a session, sent with that cookie,
#    reaches the backend that opened it (the cookie it sets again, its
#    access log) and the echo comes back; the sessions spread over both;
#  - a SockJS WebSocket through the balancer echoes, sent with a cookie it
#    reaches that cookie's backend;
#  - one backend stopped: its streams and WebSockets end; its sessions' next
#    requests reach the other backend, which does not know them: a poll gets
#    a new session's "o", a send 404, each with the new route's cookie; the
#    other backend's sessions go on; a new session sticks to the survivor.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Comet::Test;
use Comet::Private;
use Comet::WS;
use Time::HiRes qw(time sleep);

my $MODULES = '/usr/lib/apache2/modules';
my @missing = grep { !-e "$MODULES/mod_$_.so" }
              qw(proxy proxy_http proxy_balancer lbmethod_byrequests slotmem_shm headers env);
plan skip_all => 'no ' . join(', ', map { "mod_$_" } @missing) . " in $MODULES" if @missing;
plan tests => 28, need_module('comet');

# The front: conf/balancer.conf as an administrator would use it, under the
# test server's MPM, the system's modules; not mod_comet.
package Front {
    our @ISA = ('Comet::Private');
    # [address in conf/balancer.conf, port of the backend]...
    our @backends;

    sub write_conf {
        my $self = shift;
        my ($dir, $port, $mpm) = ($self->{dir}, $self->{port}, Comet::Private::mpm());
        open my $in, '<', "$FindBin::Bin/../conf/balancer.conf" or die "conf/balancer.conf: $!\n";
        my $balancer = do { local $/; <$in> };
        for my $b (@backends) {
            $balancer =~ s/\Q$b->[0]\E/127.0.0.1:$b->[1]/g;
        }
        open my $fh, '>', "$dir/httpd.conf" or die "$dir/httpd.conf: $!\n";
        print $fh <<"EOC", $balancer;
ServerRoot "/usr/lib/apache2"
LoadModule mpm_${mpm}_module modules/mod_mpm_${mpm}.so
LoadModule authz_core_module modules/mod_authz_core.so
LoadModule headers_module modules/mod_headers.so
LoadModule env_module modules/mod_env.so
Listen 127.0.0.1:$port
ServerName 127.0.0.1:$port
PidFile "$dir/httpd.pid"
ErrorLog "$dir/error_log"
DefaultRuntimeDir "$dir"
DocumentRoot "$dir"
LogLevel warn proxy_balancer:debug
<IfModule mpm_event_module>
    ServerLimit 4
    StartServers 2
    ThreadsPerChild 25
    MinSpareThreads 25
    MaxSpareThreads 75
    MaxRequestWorkers 100
</IfModule>
<IfModule mpm_prefork_module>
    StartServers 4
    MinSpareServers 4
    MaxRequestWorkers 40
</IfModule>
EOC
        close $fh or die "$dir/httpd.conf: $!\n";
    }

    # up when /info answers through it
    sub wait_up {
        my $self = shift;
        my $deadline = Time::HiRes::time() + 20;
        while (Time::HiRes::time() < $deadline) {
            local $Comet::Test::PORT = $self->{port};
            my $r = $self->pid && eval { Comet::Test::http(GET => '/chat/info', timeout => 3) };
            return 1 if $r && $r->{status} == 200;
            Time::HiRes::sleep(0.1);
        }
        return 0;
    }

}

my %backend;
for my $route (qw(web1 web2)) {
    my $dir = Comet::Private::t_dir() . "/logs/private-bal-$route";
    $backend{$route} = Comet::Private->start("bal-$route", conf => <<"EOC");
CometSocketRoute $route
<Location /chat>
    SetHandler comet-socket
    CometSocketBackend echo
    CometSocketCookie On
</Location>
LogFormat "%m %U %>s" bal
CustomLog "$dir/access_log" bal
EOC
}
@Front::backends = (['backend-a.example:8080', $backend{web1}->port],
                     ['backend-b.example:8080', $backend{web2}->port]);
my $front = Front->start('bal-front');
ok $front && $backend{web1} && $backend{web2},
   'two mod_comet servers (routes web1, web2) behind a front made of conf/balancer.conf ('
   . Comet::Private::mpm() . ')';
local $Comet::Test::PORT = $front->port;

# The route in a response's JSESSIONID (undef: none): which backend
# answered, each setting its own. (Not a header of mod_headers: its output
# filter would keep streams on a thread and refuse WebSocket, 501.)
sub cookie_route {
    return ($_[0]{headers}{'set-cookie'} // '') =~ /^JSESSIONID=dummy\.(\w+); path=\/; HttpOnly$/
           ? $1 : undef;
}
sub served { cookie_route($_[0]) // '(none)' }
sub jar { (Cookie => "JSESSIONID=dummy.$_[0]") }

# The lines of a backend's access log that name a session.
sub log_lines {
    my ($route, $sid) = @_;
    open my $fh, '<', $backend{$route}->dir . '/access_log' or return ();
    return grep { m{/chat/000/\Q$sid\E/} } <$fh>;
}

# xhr_send of one message with the session's cookie: the response.
sub send_msg {
    my ($sid, $route, $msg) = @_;
    return http(POST => sjs_path('/chat', $sid, 'xhr_send'), body => qq(["$msg"]),
                headers => ['Content-Type' => 'text/plain', jar($route)]);
}

sub poll {
    my ($sid, @cookie) = @_;
    return http(POST => sjs_path('/chat', $sid, 'xhr'), body => '',
                headers => ['Content-Type' => 'text/plain', @cookie]);
}

# --- xhr polling: 8 sessions, 3 rounds of send + poll each, interleaved ---------
my (%route, @bad);
for (1 .. 8) {
    my $sid = new_session();
    my $r = poll($sid);
    my $route = cookie_route($r);
    push @bad, "$sid: open: $r->{status} '$r->{body}', cookie '"
               . ($r->{headers}{'set-cookie'} // '') . "', from " . served($r)
        unless $r->{status} == 200 && $r->{body} eq "o\n" && defined $route
               && served($r) eq $route;
    $route{$sid} = $route // 'none';
}
is "@bad", '', 'xhr: 8 sessions opened through the front, each answered "o" with '
             . 'JSESSIONID=dummy.<route> of the backend that answered';
@bad = ();
my @echo_bad;
for my $round (1 .. 3) {
    for my $sid (sort keys %route) {
        my $route = $route{$sid};
        my $s = send_msg($sid, $route, "$sid-$round");
        push @bad, "$sid send $round: $s->{status} from " . served($s)
            unless $s->{status} == 204 && served($s) eq $route;
        my $p = poll($sid, jar($route));
        push @bad, "$sid poll $round: $p->{status} from " . served($p)
            unless $p->{status} == 200 && served($p) eq $route;
        push @echo_bad, "$sid $round: '$p->{body}'" unless $p->{body} eq qq(a["$sid-$round"]\n);
    }
}
is "@bad", '', 'xhr: every send (204) and poll (200) of each session reached the backend '
             . 'of its cookie\'s route, which set the same cookie again';
is "@echo_bad", '', '... and every poll brought that session\'s message back (its echo)';
my %count;
$count{$_}++ for values %route;
ok $count{web1} && $count{web2}, "xhr: sessions on both backends (web1: "
                                 . ($count{web1} // 0) . ', web2: ' . ($count{web2} // 0) . ')';
@bad = ();
for my $sid (sort keys %route) {
    my $other = $route{$sid} eq 'web1' ? 'web2' : 'web1';
    my ($own, $elsewhere) = (scalar(log_lines($route{$sid}, $sid)), scalar(log_lines($other, $sid)));
    push @bad, "$sid: $own on $route{$sid}, $elsewhere on $other" unless $own == 7 && !$elsewhere;
}
is "@bad", '', 'xhr: each backend\'s access log has all 7 requests of its sessions, none of '
             . 'the other\'s';

# --- xhr_streaming: 6 receivers, 3 sends each -----------------------------------
my @streams;
@bad = ();
for (1 .. 6) {
    my $sid = new_session();
    # HTTP/1.0: the front passes the body as it comes, not chunked
    my $s = sjs_stream('/chat', $sid, 'xhr_streaming', body => '', version => '1.0',
                       headers => ['Content-Type' => 'text/plain']);
    my $route = cookie_route($s);
    push @bad, "$sid: $s->{status}, from " . served($s)
        unless $s->{status} == 200 && defined $route && served($s) eq $route
               && defined $s->upto("\no\n", 5);
    push @streams, { sid => $sid, s => $s, route => $route // 'none' };
}
is "@bad", '', 'xhr_streaming: 6 receivers opened through the front, each with its '
             . 'backend\'s route in JSESSIONID, "o" after the prelude';
@bad = ();
@echo_bad = ();
for my $round (1 .. 3) {
    for my $st (@streams) {
        my $r = send_msg($st->{sid}, $st->{route}, "$st->{sid}-s$round");
        push @bad, "$st->{sid} send $round: $r->{status} from " . served($r)
            unless $r->{status} == 204 && served($r) eq $st->{route};
    }
    for my $st (@streams) {
        my $l = $st->{s}->upto("\n", 5) // 'nothing';
        push @echo_bad, "$st->{sid} $round: '$l'" unless $l eq qq(a["$st->{sid}-s$round"]\n);
    }
}
is "@bad", '', 'xhr_streaming: every xhr_send (204) went to the backend holding the receiver';
is "@echo_bad", '', '... and each message came back on its own stream';
%count = ();
$count{ $_->{route} }++ for @streams;
ok $count{web1} && $count{web2}, "xhr_streaming: sessions on both backends (web1: "
                                 . ($count{web1} // 0) . ', web2: ' . ($count{web2} // 0) . ')';
$_->{s}->close for @streams;
@bad = ();
for my $st (@streams) {
    my $other = $st->{route} eq 'web1' ? 'web2' : 'web1';
    my $n = () = log_lines($other, $st->{sid});
    push @bad, "$st->{sid}: $n on $other" if $n;
}
is "@bad", '', 'xhr_streaming: no request of a session in the other backend\'s access log';

# --- WebSocket through the balancer -------------------------------------------------
# The next frame that is not a heartbeat, or undef.
sub next_data {
    my ($ws, $timeout) = @_;
    for (;;) {
        my $f = ws_recv($ws, $timeout) or return undef;
        return $f unless $f->{op} == WS_TEXT && $f->{payload} eq 'h';
    }
}

sub ws_session {
    my ($sid, @cookie) = @_;
    my $ws = ws_open(sjs_path('/chat', $sid, 'websocket'), headers => { @cookie });
    my $o = $ws->{res}{status} == 101 ? next_data($ws, 5) : undef;
    $ws->{opened} = $o && $o->{op} == WS_TEXT && $o->{payload} eq 'o';
    return $ws;
}

{
    my $sid = new_session();
    my $ws = ws_session($sid);
    is $ws->{res}{status}, 101, 'websocket: 101 through the balancer';
    ok $ws->{opened}, '... "o"';
    ws_send($ws, WS_TEXT, '["through the balancer"]');
    my $f = next_data($ws, 5);
    is $f && $f->{payload}, 'a["through the balancer"]', '... a message echoed';
    ws_send($ws, WS_CLOSE, pack('n', 1000));
    $ws->{conn}->close;
    # with a cookie: the cookie's backend
    @bad = ();
    for my $route (qw(web1 web2 web1 web2)) {
        my $wsid = new_session();
        my $w = ws_session($wsid, jar($route));
        ws_send($w, WS_TEXT, qq(["$wsid"]));
        my $e = next_data($w, 5);
        push @bad, "$wsid: " . ($e ? $e->{payload} : 'nothing')
            unless $w->{opened} && $e && $e->{payload} eq qq(a["$wsid"]);
        $w->{conn}->close;
        my $other = $route eq 'web1' ? 'web2' : 'web1';
        wait_until(sub { log_lines($route, $wsid) }, 5);
        push @bad, "$wsid: not logged by $route"
            unless log_lines($route, $wsid) == 1 && !log_lines($other, $wsid);
    }
    is "@bad", '', 'websocket: with JSESSIONID=dummy.<route>, each of 4 sessions reached that '
                 . 'route\'s backend (its access log) and echoed';
}

# --- a backend stops ----------------------------------------------------------
# Sessions on both, a receiver and a WebSocket on web1.
my (@on1, @on2);
for (1 .. 16) {
    my $sid = new_session();
    my $r = poll($sid);
    my $route = cookie_route($r) // next;
    push @{ $route eq 'web1' ? \@on1 : \@on2 }, $sid;
    last if @on1 >= 3 && @on2 >= 1;
}
my $rsid = new_session();
my $rcv = sjs_stream('/chat', $rsid, 'xhr_streaming', body => '', version => '1.0',
                     headers => ['Content-Type' => 'text/plain', jar('web1')]);
$rcv->upto("\no\n", 5);
my $ws1 = ws_session(new_session(), jar('web1'));
ok @on1 >= 3 && @on2 >= 1 && served($rcv) eq 'web1' && $ws1->{opened},
   'before the stop: 3 polling sessions, a receiver and a WebSocket on web1, a session on web2';

ok $backend{web1}->stop, 'web1 stopped';
my ($rest, $eof) = $rcv->rest(10);
ok $eof, 'its xhr_streaming receiver ends (the connection closes'
         . (length $rest ? ", after '" . join('\\n', split /\n/, $rest) . "'" : '') . ')';
my $wend;
for (;;) {
    my $f = ws_recv($ws1, 10) or last;
    $wend = $f, last if $f->{op} == WS_CLOSE;
}
ok $wend || $ws1->{conn}{eof}, 'its WebSocket ends ('
   . ($wend ? "close frame $wend->{code}" : 'the connection closes') . ')';
# as a client does (the front's tunnel waits for the client's half too)
$rcv->close;
$ws1->{conn}->close;

# the first request for web1 finds it down: the balancer marks it in error
# and tries web2
my ($s1, $s2, $s3) = @on1;
my $send = send_msg($s1, 'web1', 'lost');
is $send->{status} . ' ' . served($send), '404 web2',
   'an xhr_send of a session web1 held: 404 (no such session) with JSESSIONID=dummy.web2: '
   . 'the client now sticks to web2';
is join('', log_lines('web2', $s1)), "POST /chat/000/$s1/xhr_send 404\n",
   '... web2 answered it (its access log)';
my $p = poll($s2, jar('web1'));
is $p->{status} . ' ' . served($p) . ' ' . $p->{body}, "200 web2 o\n",
   'a poll of another session web1 held: a new session\'s "o", JSESSIONID=dummy.web2 '
   . '(sockjs-client: 1006 "Server lost session")';
is join('', log_lines('web2', $s2)), "POST /chat/000/$s2/xhr 200\n", '... from web2 (its access log)';
$p = poll($s3, jar('web1'));
is served($p) . ' ' . $p->{body}, "web2 o\n", '... a third one too';

# the survivor's own sessions go on
@bad = ();
for my $sid (@on2) {
    my $s = send_msg($sid, 'web2', "$sid-after");
    my $q = poll($sid, jar('web2'));
    push @bad, "$sid: $s->{status} $q->{status} '$q->{body}'"
        unless $s->{status} == 204 && $q->{body} eq qq(a["$sid-after"]\n);
}
is "@bad", '', 'web2\'s sessions still send and echo';

# what a client's code does on that close: a new session, with the cookie it
# has (web1's, or web2's once it got one): web2, then stuck there
@bad = ();
for my $old (qw(web1 web2)) {
    my $sid = new_session();
    my $o = poll($sid, jar($old));
    my $route = cookie_route($o) // 'none';
    my $s = send_msg($sid, $route, 'again');
    my $q = poll($sid, jar($route));
    push @bad, "with $old: $o->{status} '$o->{body}' $route, " . served($s) . ' ' . served($q)
               . " '$q->{body}'"
        unless $o->{body} eq "o\n" && $route eq 'web2' && served($s) eq 'web2'
               && $q->{body} eq qq(a["again"]\n);
}
is "@bad", '', 'a new session, with web1\'s cookie or web2\'s, opens on web2, sticks and echoes';

my @front_problems = grep { /AH00060|segfault/i } $front->log_since(0);
is "@front_problems", '', 'the front logged no crash';
# web2 first: the front's threads still relay streams whose client left
# (it finds out at the next heartbeat), until their backend ends them
ok $backend{web2}->stop && $front->stop, 'web2 and the front stop';
