# A private redis-server for the tests of several servers (CometRedis): its
# unix socket, data and log in t/logs/redis-<name>/, stopped by its pid.
package Comet::Redis;
use strict;
use warnings;
use File::Path qw(make_path remove_tree);
use Time::HiRes qw(sleep time);
use Apache::Test ();

sub t_dir { Apache::Test::config()->{vars}{t_dir} }

sub bin { -x '/usr/bin/redis-server' ? '/usr/bin/redis-server' : 'redis-server' }

# Comet::Redis->start($name): a running server, or undef with $@ set.
# Options: port => P (also on 127.0.0.1:P), replicaof => "host port",
# sentinel => { port => P, master => "host port", name => N, quorum => Q }
# (a redis-sentinel instead, on 127.0.0.1:P only).
sub start {
    my ($class, $name, %o) = @_;
    my $dir = t_dir() . "/logs/redis-$name";
    remove_tree($dir);
    make_path($dir);
    my $self = bless { name => $name, dir => $dir, %o }, $class;
    return $self->run ? $self : undef;
}

sub socket { "$_[0]{dir}/redis.sock" }
sub url { 'unix:' . $_[0]->socket }
sub port { $_[0]{port} // $_[0]{sentinel}{port} }
sub pidfile { "$_[0]{dir}/redis.pid" }
sub log { "$_[0]{dir}/redis.log" }

# Start (again): every write on disk before it is answered (appendfsync
# always), so that what Redis acknowledged survives a kill -9.
sub run {
    my $self = shift;
    return $self->run_sentinel if $self->{sentinel};
    unlink $self->socket;
    my @net = $self->{port} ? ('--port', $self->{port}, '--bind', '127.0.0.1')
                            : ('--port', '0');
    my @rep = $self->{replicaof} ? ('--replicaof', split ' ', $self->{replicaof}) : ();
    my $rc = system(bin(), @net, @rep, '--unixsocket', $self->socket,
                    '--unixsocketperm', '770', '--daemonize', 'yes',
                    '--pidfile', $self->pidfile, '--logfile', $self->log,
                    '--dir', $self->{dir}, '--save', '', '--appendonly', 'yes',
                    '--appendfsync', 'always');
    if ($rc != 0) {
        $@ = "redis-server did not start (exit $rc): see " . $self->log;
        return 0;
    }
    for (1 .. 100) {
        return 1 if -S $self->socket && $self->pid;
        sleep 0.05;
    }
    $@ = "redis-server did not open its socket: see " . $self->log;
    return 0;
}

# A sentinel: its configuration file is its own to rewrite.
sub run_sentinel {
    my $self = shift;
    my $o = $self->{sentinel};
    my $conf = "$self->{dir}/sentinel.conf";
    unless (-e $conf) {
        open my $fh, '>', $conf or do { $@ = "$conf: $!"; return 0 };
        print $fh "port $o->{port}\nbind 127.0.0.1\ndaemonize yes\n",
            "pidfile " . $self->pidfile . "\nlogfile " . $self->log . "\ndir $self->{dir}\n",
            "sentinel monitor $o->{name} $o->{master} " . ($o->{quorum} // 2) . "\n",
            "sentinel down-after-milliseconds $o->{name} 1000\n",
            "sentinel failover-timeout $o->{name} 5000\n";
        close $fh;
    }
    my $bin = -x '/usr/bin/redis-sentinel' ? '/usr/bin/redis-sentinel' : 'redis-sentinel';
    my $rc = system($bin, $conf);
    if ($rc != 0) {
        $@ = "redis-sentinel did not start (exit $rc): see " . $self->log;
        return 0;
    }
    for (1 .. 100) {
        return 1 if $self->pid && $self->cli('PING') eq 'PONG';
        sleep 0.05;
    }
    $@ = "redis-sentinel did not answer: see " . $self->log;
    return 0;
}

sub pid {
    my $self = shift;
    open my $fh, '<', $self->pidfile or return undef;
    my $pid = <$fh>;
    return $pid && $pid =~ /^(\d+)/ ? $1 : undef;
}

sub alive {
    my $pid = $_[0]->pid;
    return $pid && kill 0, $pid;
}

# Stop: SIGTERM (or SIGKILL with kill => 1), then wait for it to go.
sub stop {
    my ($self, %o) = @_;
    my $pid = $self->pid or return 1;
    kill $o{kill} ? 'KILL' : 'TERM', $pid;
    for (1 .. 100) {
        last unless kill 0, $pid;
        waitpid $pid, 1;
        sleep 0.05;
    }
    unlink $self->pidfile if $o{kill};
    return !kill 0, $pid;
}

# A command through redis-cli (for a test's checks): its output, trimmed.
sub cli {
    my ($self, @args) = @_;
    my @to = $self->{sentinel} ? ('-h', '127.0.0.1', '-p', $self->port) : ('-s', $self->socket);
    open my $fh, '-|', 'redis-cli', @to, @args or return undef;
    local $/;
    my $out = <$fh>;
    close $fh;
    $out //= '';
    $out =~ s/\s+\z//;
    return $out;
}

sub DESTROY { }

1;
