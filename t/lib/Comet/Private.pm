package Comet::Private;

# A private httpd for the tests that would disturb the shared test server:
# killing its children, graceful-stop, server-wide limits. It loads the same
# modules as the test server (the LoadModule lines of t/conf/httpd.conf: the
# same MPM and the mod_comet just built), listens on 127.0.0.1 on a free
# port of 8529-8560, and keeps its pid file, error log and runtime files in
# t/logs/private-<name>/. Under script/test --sanitize it runs with the
# sanitizers' environment (COMET_SANITIZE_ENV), and ->problems tells of any
# report in its error log.
#
#   my $srv = Comet::Private->start('faults', conf => "CometMaxChannels 10\n");
#   local $Comet::Test::PORT = $srv->port;     # the helpers talk to it
#   ... $srv->children, $srv->graceful, $srv->graceful_stop, $srv->stop
#
# wrap => 'unshare --user --map-root-user' starts httpd under that command
# (as root of a user namespace: User and Group then apply, and fail).
# Comet::Private->configtest('name', conf => ...) runs httpd -t on such a
# configuration without starting it: {status, out, conf}.

use strict;
use warnings;

use File::Path qw(make_path remove_tree);
use IO::Socket::INET ();
use Time::HiRes qw(time sleep);
use Apache::Test ();
use Comet::Test ();

my @live;

sub t_dir { Apache::Test::config()->{vars}{t_dir} }

# The MPM and the modules of the test server.
sub modules {
    my $conf = t_dir() . '/conf/httpd.conf';
    open my $fh, '<', $conf or die "$conf: $!\n";
    my (%seen, @lines);
    while (<$fh>) {
        next unless /^\s*LoadModule\s+(\S+)\s+(.*?)\s*$/;
        next if $seen{$1}++;
        push @lines, "LoadModule $1 $2";
    }
    return @lines;
}

sub mpm {
    my ($m) = grep { /LoadModule mpm_(\w+)_module/ } modules();
    return $m =~ /mpm_(\w+)_module/ ? $1 : 'event';
}

sub free_port {
    my $from = (Apache::Test::config()->{vars}{port} || 8529) + 1;
    for my $p ($from .. 8560, 8529 .. $from - 1) {
        my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $p,
                                      Listen => 1, ReuseAddr => 1) or next;
        close $s;
        return $p;
    }
    die "no free port in 8529-8560\n";
}

sub start {
    my ($class, $name, %o) = @_;
    my $dir = t_dir() . "/logs/private-$name";
    remove_tree($dir);
    make_path($dir);
    my $self = bless { name => $name, dir => $dir, conf_extra => $o{conf} // '',
                       wrap => $o{wrap} // '' }, $class;
    for my $try (1 .. 3) {
        $self->{port} = free_port();
        $self->write_conf;
        return $self if $self->run_httpd('start') && $self->wait_up;
        $self->stop;
    }
    die "private server $name did not start: see $dir/error_log\n";
}

# without_comet => 1: the same server without mod_comet (its LoadModule
# and its directives left out), as after a2dismod comet.
sub write_conf {
    my ($self, %o) = @_;
    my ($dir, $port, $t) = ($self->{dir}, $self->{port}, t_dir());
    my $mpm = mpm();
    my @modules = grep { !$o{without_comet} || !/\bcomet_module\b/ } modules();
    my $comet = $o{without_comet} ? '' : "CometSharedMemory 4M\n$self->{conf_extra}\n";
    my $loglevel = $o{without_comet} ? 'info' : 'info comet:debug';
    open my $fh, '>', "$dir/httpd.conf" or die "$dir/httpd.conf: $!\n";
    print $fh join("\n", @modules), "\n", <<"EOC";
ServerRoot "$t"
ServerName 127.0.0.1:$port
Listen 127.0.0.1:$port
PidFile "$dir/httpd.pid"
ErrorLog "$dir/error_log"
DefaultRuntimeDir "$dir"
DocumentRoot "$dir"
TypesConfig "$t/conf/mime.types"
LogLevel $loglevel
KeepAlive On
<IfModule mpm_event_module>
    ServerLimit 4
    StartServers 2
    ThreadsPerChild 10
    ThreadLimit 10
    MinSpareThreads 20
    MaxSpareThreads 40
    MaxRequestWorkers 40
    MaxConnectionsPerChild 0
</IfModule>
<IfModule mpm_prefork_module>
    ServerLimit 16
    StartServers 4
    MinSpareServers 4
    MaxSpareServers 16
    MaxRequestWorkers 16
    MaxConnectionsPerChild 0
</IfModule>
<Location /comet>
    SetHandler comet
</Location>
<Location /comet-publish>
    SetHandler comet-publish
    Require local
</Location>
$comet
EOC
    close $fh or die "$dir/httpd.conf: $!\n";
}

sub env_prefix {
    my $e = $ENV{COMET_SANITIZE_ENV} // '';
    return $e =~ /\S/ ? "env $e " : '';
}

sub httpd_bin { -x '/usr/sbin/apache2' ? '/usr/sbin/apache2' : 'httpd' }

# httpd -t on a private configuration (not started): {status, out, conf}.
sub configtest {
    my ($class, $name, %o) = @_;
    my $dir = t_dir() . "/logs/private-$name";
    remove_tree($dir);
    make_path($dir);
    my $self = bless { name => $name, dir => $dir, conf_extra => $o{conf} // '',
                       port => free_port() }, $class;
    $self->write_conf;
    my $wrap = $o{wrap} ? "$o{wrap} " : '';
    my $out = `${\ env_prefix()}$wrap${\ httpd_bin()} -t -f $dir/httpd.conf 2>&1`;
    return { status => $? >> 8, out => $out, conf => "$dir/httpd.conf" };
}

# httpd -k start|graceful|graceful-stop|stop: true if httpd said yes.
sub run_httpd {
    my ($self, $what) = @_;
    my $httpd = httpd_bin();
    my $wrap = $what eq 'start' && $self->{wrap} ? "$self->{wrap} " : '';
    my $cmd = env_prefix() . "$wrap$httpd -f $self->{dir}/httpd.conf -k $what";
    my $out = `$cmd 2>&1`;
    $self->{last_out} = $out;
    if ($?) {
        warn "# $cmd: $out";
        return 0;
    }
    push @live, $self if $what eq 'start';
    return 1;
}

sub wait_up {
    my $self = shift;
    my $want = mpm() eq 'prefork' ? 4 : 2;
    my $deadline = time + 20;
    while (time < $deadline) {
        if (my $pid = $self->pid) {
            my $n = grep { Comet::Test::pid_alive($_->{pid}) } $self->children;
            local $Comet::Test::PORT = $self->{port};
            my $st = eval { Comet::Test::http(GET => '/comet-publish/', timeout => 3) };
            return 1 if $n >= $want && $st && $st->{status} == 200;
        }
        sleep 0.1;
    }
    return 0;
}

sub port { $_[0]{port} }
sub dir { $_[0]{dir} }
sub error_log { "$_[0]{dir}/error_log" }

sub pid {
    my $self = shift;
    open my $fh, '<', "$self->{dir}/httpd.pid" or return undef;
    chomp(my $pid = <$fh> // '');
    return $pid =~ /^\d+$/ && Comet::Test::pid_alive($pid) ? $pid : undef;
}

# The parent's children (the workers and the supervisor): [{pid, state, cmdline}]
sub children {
    my $self = shift;
    my $pid = $self->{ppid} = $self->pid // $self->{ppid} or return ();
    return Comet::Test::proc_children($pid);
}

# Workers only: children whose command line is the parent's, less the
# supervisor (named by the log).
sub workers {
    my $self = shift;
    my %sup = map { $_ => 1 } $self->supervisors;
    return grep { !$sup{ $_->{pid} } && $_->{state} ne 'Z' } $self->children;
}

sub supervisors {
    my $self = shift;
    open my $fh, '<', $self->error_log or return ();
    my %pids;
    while (<$fh>) {
        $pids{$1} = 1 if /CMT00203: comet supervisor started \(pid (\d+)\)/;
    }
    return keys %pids;
}

sub log_mark { -s $_[0]->error_log || 0 }

sub log_since {
    my ($self, $mark) = @_;
    open my $fh, '<', $self->error_log or return ();
    seek $fh, $mark, 0;
    local $/;
    return split /\n/, (<$fh> // '');
}

sub wait_log {
    my ($self, $mark, $re, $timeout) = @_;
    my $deadline = time + ($timeout // 5);
    do {
        my @hit = grep { $_ =~ $re } $self->log_since($mark);
        return $hit[0] if @hit;
        sleep 0.05;
    } while (time < $deadline);
    return undef;
}

# Crashes and sanitizer reports in the error log.
sub problems {
    my $self = shift;
    return grep { /AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:|AH00060|heap-buffer|use-after-free/ }
        $self->log_since(0);
}

sub graceful { $_[0]->run_httpd('graceful') }

# graceful-stop: httpd -k graceful-stop returns at once; wait for the parent.
sub graceful_stop {
    my ($self, $timeout) = @_;
    my $pid = $self->pid or return 0;
    $self->run_httpd('graceful-stop') or return 0;
    my $deadline = time + ($timeout // 30);
    sleep 0.1 while Comet::Test::pid_alive($pid) && time < $deadline;
    return !Comet::Test::pid_alive($pid);
}

# Stop it (SIGTERM, then SIGKILL to the whole group after 10 s).
sub stop {
    my $self = shift;
    my $pid = $self->pid;
    @live = grep { $_ != $self } @live;
    return 1 unless $pid;
    my @kids = map { $_->{pid} } Comet::Test::proc_children($pid);
    kill 'TERM', $pid;
    my $deadline = time + 10;
    sleep 0.1 while Comet::Test::pid_alive($pid) && time < $deadline;
    if (Comet::Test::pid_alive($pid)) {
        kill 'KILL', $pid, @kids;
    }
    # the children and the programs they ran end with it
    $deadline = time + 10;
    sleep 0.1 while grep({ Comet::Test::pid_alive($_) } @kids) && time < $deadline;
    return !Comet::Test::pid_alive($pid);
}

END {
    local $?;
    $_->stop for @live;
}

1;
