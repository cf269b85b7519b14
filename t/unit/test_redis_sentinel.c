/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/* Unit tests of comet_redis.c through Redis Sentinel: a private primary
 * redis-server, its replica and three redis-sentinels, on loopback ports
 * 8577-8583, their files in a temporary directory, started and killed here
 * by pid (also when a test fails: atexit, and PR_SET_PDEATHSIG if we
 * crash). Asserts: commands and subscriptions go to the master the
 * sentinels name, a sentinel that is down or stopped is skipped, a wrong
 * master name and a "master" that is a replica fail clearly, and after a
 * failover (SENTINEL FAILOVER, then the new primary killed) both clients
 * follow the new master (the first time told by +switch-master), the
 * subscriber told READY again.
 * Without redis-server or redis-sentinel it SKIPs; REDIS_SERVER and
 * REDIS_SENTINEL name other binaries. TEST_VERBOSE=1 shows the log. */

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <apr_general.h>
#include <apr_strings.h>

#include "comet_redis.h"
#include "unit.h"

#define MS(n) apr_time_from_msec(n)

/* the ports: three sentinels, the primary, the replica, two with nothing
 * listening, a fake sentinel */
#define P_S1       8577
#define P_S2       8578
#define P_S3       8579
#define P_PRIMARY  8580
#define P_REPLICA  8581
#define P_NONE1    8582
#define P_NONE2    8584
#define P_FAKE     8583

enum { K_PRIMARY = 0, K_REPLICA, K_S1, K_S2, K_S3, K_FAKE, K_MAX };

static apr_pool_t *pool;
static comet_loop_t *loop;
static char tmpdir[64];
static const char *server_bin, *sentinel_bin;
static pid_t pids[K_MAX];            /* processes running, killed at exit */

/*******************************************************************************
 * helpers
 ******************************************************************************/

static char logbuf[65536];
static apr_size_t loglen;

static void on_log(void *baton, comet_log_level_t level, apr_status_t rv, const char *msg)
{
    apr_size_t n = strlen(msg);

    if (loglen + n + 2 < sizeof(logbuf)) {
        memcpy(logbuf + loglen, msg, n);
        loglen += n;
        logbuf[loglen++] = '\n';
        logbuf[loglen] = '\0';
    }
    if (getenv("TEST_VERBOSE")) {
        printf("# log %d: %s (%d)\n", (int)level, msg, rv);
    }
}

static void log_reset(void)
{
    loglen = 0;
    logbuf[0] = '\0';
}

static int logged(const char *s)
{
    return strstr(logbuf, s) != NULL;
}

/* Turn the loop until *flag reaches n or `max` passed. */
static int run_until_n(volatile int *v, int n, apr_interval_time_t max)
{
    apr_time_t end = apr_time_now() + max;

    while (*v < n && apr_time_now() < end) {
        comet_loop_poll(loop, apr_time_now() + MS(20));
        comet_loop_expire(loop, apr_time_now());
    }
    return *v >= n;
}

static void run_for(apr_interval_time_t d)
{
    int never = 0;
    run_until_n(&never, 1, d);
}

static const char *find_bin(const char *env, const char *name)
{
    static const char *dirs[] = { "/usr/bin", "/usr/local/bin", "/usr/sbin", NULL };
    const char *e = getenv(env);
    int i;

    if (e && *e) {
        return access(e, X_OK) == 0 ? e : NULL;
    }
    for (i = 0; dirs[i]; i++) {
        const char *path = apr_psprintf(pool, "%s/%s", dirs[i], name);
        if (access(path, X_OK) == 0) {
            return path;
        }
    }
    return NULL;
}

static int tcp_answers(int port)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0), ok;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    if (fd >= 0) {
        close(fd);
    }
    return ok;
}

/* Run argv as process `k`, until it answers on `port`; its pid or -1. */
static pid_t start_proc(int k, int port, const char **argv)
{
    pid_t pid;
    int i;

    if (tcp_answers(port)) {
        printf("# port %d is taken already\n", port);
        return -1;
    }
    pid = fork();
    if (pid == 0) {
        /* gone with us, even if this test crashes before its atexit */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execv(argv[0], (char **)argv);
        _exit(127);
    }
    if (pid < 0) {
        return -1;
    }
    pids[k] = pid;
    for (i = 0; i < 500; i++) {
        if (tcp_answers(port)) {
            return pid;
        }
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            pids[k] = 0;
            return -1;
        }
        usleep(10000);
    }
    return -1;
}

static pid_t start_server(int k, int port, int replicaof)
{
    const char *argv[32];
    int n = 0;

    argv[n++] = server_bin;
    argv[n++] = "--port"; argv[n++] = apr_itoa(pool, port);
    argv[n++] = "--bind"; argv[n++] = "127.0.0.1";
    argv[n++] = "--save"; argv[n++] = "";
    argv[n++] = "--appendonly"; argv[n++] = "no";
    argv[n++] = "--daemonize"; argv[n++] = "no";
    argv[n++] = "--dir"; argv[n++] = tmpdir;
    argv[n++] = "--dbfilename"; argv[n++] = apr_psprintf(pool, "dump-%d.rdb", port);
    argv[n++] = "--logfile"; argv[n++] = apr_psprintf(pool, "%s/redis-%d.log", tmpdir, port);
    /* a replica in sync at once, not after the default 5 s */
    argv[n++] = "--repl-diskless-sync-delay"; argv[n++] = "0";
    if (replicaof) {
        argv[n++] = "--replicaof"; argv[n++] = "127.0.0.1";
        argv[n++] = apr_itoa(pool, replicaof);
    }
    argv[n] = NULL;
    return start_proc(k, port, argv);
}

static pid_t start_sentinel(int k, int port)
{
    const char *conf = apr_psprintf(pool, "%s/sentinel-%d.conf", tmpdir, port);
    const char *argv[4];
    FILE *f = fopen(conf, "w");

    if (!f) {
        return -1;
    }
    /* fast: down after 1 s, a failover given up after 3 s */
    fprintf(f, "port %d\nbind 127.0.0.1\ndaemonize no\ndir %s\nlogfile %s/sentinel-%d.log\n"
            "sentinel monitor mymaster 127.0.0.1 %d 2\n"
            "sentinel down-after-milliseconds mymaster 1000\n"
            "sentinel failover-timeout mymaster 3000\n"
            "sentinel parallel-syncs mymaster 1\n",
            port, tmpdir, tmpdir, port, P_PRIMARY);
    fclose(f);
    argv[0] = sentinel_bin;
    argv[1] = conf;
    argv[2] = NULL;
    return start_proc(k, port, argv);
}

/* A "sentinel" that answers every question with the replica's address. */
static pid_t start_fake(void)
{
    struct sockaddr_in sa;
    pid_t pid;
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0), i;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(P_FAKE);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 8)) {
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    pid = fork();
    if (pid == 0) {
        static const char answer[] = "*2\r\n$9\r\n127.0.0.1\r\n$4\r\n8581\r\n";
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        for (;;) {
            char buf[512];
            int c = accept(fd, NULL, NULL);
            while (c >= 0 && read(c, buf, sizeof(buf)) > 0) {
                if (write(c, answer, sizeof(answer) - 1) < 0) {
                    break;
                }
            }
            if (c >= 0) {
                close(c);
            }
        }
    }
    close(fd);
    if (pid > 0) {
        pids[K_FAKE] = pid;
        for (i = 0; i < 100 && !tcp_answers(P_FAKE); i++) {
            usleep(10000);
        }
    }
    return pid;
}

static void stop_proc(int k, int sig)
{
    if (pids[k] > 0) {
        kill(pids[k], SIGCONT);
        kill(pids[k], sig);
        waitpid(pids[k], NULL, 0);
        pids[k] = 0;
    }
}

static void at_exit(void)
{
    char cmd[128];
    int k;

    for (k = 0; k < K_MAX; k++) {
        stop_proc(k, SIGKILL);
    }
    if (tmpdir[0]) {
        if (getenv("TEST_KEEP")) {
            printf("# kept %s\n", tmpdir);
            return;
        }
        apr_snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0) {
            /* left behind in /tmp */
        }
    }
}

/* What a command got: a status, a string, or an array's first two
 * elements (ROLE: the role; CONFIG GET: the name, the value). */
typedef struct {
    int called;
    apr_status_t status;
    int type;
    long long integer;
    apr_size_t elements;
    char str[256], a0[64], a1[64], a3[64];
} res_t;

static void on_res(comet_redis_t *r, apr_status_t status, const redisReply *reply, void *baton)
{
    res_t *x = baton;

    x->called++;
    x->status = status;
    x->type = reply ? reply->type : -1;
    x->str[0] = x->a0[0] = x->a1[0] = x->a3[0] = '\0';
    x->elements = 0;
    if (!reply) {
        return;
    }
    x->integer = reply->integer;
    if (reply->str) {
        apr_cpystrn(x->str, reply->str, sizeof(x->str));
    }
    if (reply->type == REDIS_REPLY_ARRAY) {
        x->elements = reply->elements;
        if (reply->elements > 0 && reply->element[0]->str) {
            apr_cpystrn(x->a0, reply->element[0]->str, sizeof(x->a0));
        }
        if (reply->elements > 1 && reply->element[1]->str) {
            apr_cpystrn(x->a1, reply->element[1]->str, sizeof(x->a1));
        }
        if (reply->elements > 3 && reply->element[3]->str) {
            apr_cpystrn(x->a3, reply->element[3]->str, sizeof(x->a3));
        }
    }
}

static comet_redis_opts_t quick_opts(void)
{
    comet_redis_opts_t o;

    memset(&o, 0, sizeof(o));
    o.connect_timeout = MS(500);
    o.retry_min = MS(50);
    o.retry_max = MS(300);
    return o;
}

static comet_redis_t *client(const char *url, comet_redis_opts_t *o)
{
    comet_redis_t *r = NULL;
    comet_redis_opts_t d = quick_opts();

    if (comet_redis_create(&r, pool, loop, url, o ? o : &d, on_log, NULL) != APR_SUCCESS) {
        return NULL;
    }
    return r;
}

static res_t cmd(comet_redis_t *r, const char *fmt, const char *a1, const char *a2)
{
    res_t x;

    memset(&x, 0, sizeof(x));
    if (!r || comet_redis_command(r, MS(2000), on_res, &x, fmt, a1, a2) != APR_SUCCESS) {
        x.status = APR_EINVAL;
        return x;
    }
    run_until_n(&x.called, 1, MS(3000));
    return x;
}

/* One command to a server or a sentinel, on a connection of its own. */
static res_t cmd_at(int port, const char *fmt, const char *a1, const char *a2)
{
    comet_redis_t *r = client(apr_psprintf(pool, "redis://127.0.0.1:%d", port), NULL);
    res_t x = cmd(r, fmt, a1, a2);

    if (r) {
        comet_redis_destroy(r);
    }
    return x;
}

/* Through r: ROLE says master and the server's port is `port`. */
static int on_master(comet_redis_t *r, int port)
{
    res_t role = cmd(r, "ROLE", NULL, NULL), conf;

    if (role.status != APR_SUCCESS || strcmp(role.a0, "master")) {
        return 0;
    }
    conf = cmd(r, "CONFIG GET %s", "port", NULL);
    return conf.status == APR_SUCCESS && atoi(conf.a1) == port;
}

/* Wait up to `max` for r to be on the master at `port`. */
static int until_master(comet_redis_t *r, int port, apr_interval_time_t max)
{
    apr_time_t end = apr_time_now() + max;

    while (apr_time_now() < end) {
        if (on_master(r, port)) {
            return 1;
        }
        run_for(MS(100));
    }
    return 0;
}

static const char *surl(const char *sentinels, const char *name)
{
    return apr_psprintf(pool, "sentinel://%s/%s", sentinels, name);
}

#define S123 "127.0.0.1:8577,127.0.0.1:8578,127.0.0.1:8579"

typedef struct {
    int ready, messages;
    char data[64];
} subrec_t;

static void on_msg(comet_redis_t *r, const comet_redis_msg_t *m, void *baton)
{
    subrec_t *s = baton;

    if (m->event == COMET_REDIS_SUB_READY) {
        s->ready++;
        return;
    }
    s->messages++;
    apr_cpystrn(s->data, m->data, m->len + 1 < sizeof(s->data) ? m->len + 1 : sizeof(s->data));
}

/*******************************************************************************
 * the set-up: a primary, a replica in sync, three sentinels that know both
 * and each other (a failover on a kill needs two of them to agree)
 ******************************************************************************/

static int setup(void)
{
    apr_time_t end;
    int k, ok;
    res_t x;

    if (start_server(K_PRIMARY, P_PRIMARY, 0) < 0
        || start_server(K_REPLICA, P_REPLICA, P_PRIMARY) < 0) {
        OK(0, "setup: a primary redis-server and its replica started (%s)", server_bin);
        return 0;
    }
    end = apr_time_now() + MS(10000);
    do {
        x = cmd_at(P_REPLICA, "ROLE", NULL, NULL);
    } while (strcmp(x.a3, "connected") && apr_time_now() < end && (run_for(MS(50)), 1));
    OK(!strcmp(x.a0, "slave") && !strcmp(x.a3, "connected"),
       "setup: the replica is in sync with the primary");
    for (k = K_S1; k <= K_S3; k++) {
        if (start_sentinel(k, P_S1 + k - K_S1) < 0) {
            OK(0, "setup: redis-sentinel on port %d started (%s)", P_S1 + k - K_S1,
               sentinel_bin);
            return 0;
        }
    }
    /* sentinels find the replica in the primary's INFO, and each other
     * through its hello channel (every 2 s) */
    end = apr_time_now() + MS(15000);
    do {
        ok = 1;
        for (k = 0; k < 3 && ok; k++) {
            x = cmd_at(P_S1 + k, "SENTINEL replicas %s", "mymaster", NULL);
            ok = x.status == APR_SUCCESS && x.elements == 1;
            x = cmd_at(P_S1 + k, "SENTINEL sentinels %s", "mymaster", NULL);
            ok = ok && x.status == APR_SUCCESS && x.elements == 2;
        }
    } while (!ok && apr_time_now() < end && (run_for(MS(200)), 1));
    OK(ok, "setup: three sentinels, each knows the replica and the two others");
    return ok;
}

/*******************************************************************************
 * the tests
 ******************************************************************************/

/* Commands go to the master; a sentinel that is down is skipped. */
static void test_basic(comet_redis_t *r)
{
    res_t x;

    x = cmd(r, "SET %s %s", "k", "through sentinel");
    OK(x.status == APR_SUCCESS && !strcmp(x.str, "OK"), "basic: SET through Sentinel (%d)",
       x.status);
    OK(on_master(r, P_PRIMARY), "basic: the client is on the primary (ROLE master, port %d)",
       P_PRIMARY);
    x = cmd_at(P_REPLICA, "GET %s", "k", NULL);
    IS_STR(x.str, "through sentinel", "basic: the replica has it: it went to the primary");
    IS_STR(comet_redis_display(r), "sentinel://127.0.0.1:8582," S123 "/mymaster"
           " (master 127.0.0.1:8580)", "basic: the display names the master");
    OK(logged("sentinel 127.0.0.1:8582 skipped: Connection refused"),
       "basic: the sentinel that is down was skipped, logged");
    OK(logged("master 'mymaster' is 127.0.0.1:8580"), "basic: the master is logged");
}

/* A sentinel that accepts but does not answer costs the connect time-out. */
static void test_stopped_sentinel(void)
{
    comet_redis_t *r;
    apr_time_t t0;
    res_t x;

    log_reset();
    kill(pids[K_S1], SIGSTOP);
    t0 = apr_time_now();
    r = client(surl("127.0.0.1:8577,127.0.0.1:8578", "mymaster"), NULL);
    x = cmd(r, "PING", NULL, NULL);
    kill(pids[K_S1], SIGCONT);
    OK(x.status == APR_SUCCESS && !strcmp(x.str, "PONG"),
       "stopped sentinel: a command succeeds through the next one (%d)", x.status);
    OK(apr_time_now() - t0 >= MS(450) && apr_time_now() - t0 < MS(1900),
       "stopped sentinel: after about the connect time-out (500 ms): %d ms",
       (int)apr_time_as_msec(apr_time_now() - t0));
    OK(logged("sentinel 127.0.0.1:8577 skipped: no answer in time"),
       "stopped sentinel: skipped, logged");
    comet_redis_destroy(r);
}

static void test_failures(void)
{
    comet_redis_t *r;
    res_t x;

    log_reset();
    r = client(surl(S123, "nosuch"), NULL);
    x = cmd(r, "PING", NULL, NULL);
    OK(x.called == 1 && x.status == APR_ENOENT, "wrong name: the command fails with "
       "APR_ENOENT (%d)", x.status);
    OK(logged("cannot connect: no sentinel knows master 'nosuch' (3 of 3 said so)")
       && logged("sentinel 127.0.0.1:8578 skipped: it does not know master 'nosuch'"),
       "wrong name: logged clearly");
    x = cmd(r, "PING", NULL, NULL);
    OK(x.called == 1 && x.status == APR_ENOENT, "wrong name: while it retries, a command "
       "fails at once with that status");
    comet_redis_destroy(r);

    log_reset();
    r = client(surl("127.0.0.1:8582,127.0.0.1:8584", "mymaster"), NULL);
    x = cmd(r, "PING", NULL, NULL);
    OK(x.called == 1 && x.status == APR_ECONNREFUSED
       && logged("cannot connect: no sentinel answered for master 'mymaster' (2 asked)"),
       "no sentinel up: APR_ECONNREFUSED, logged (%d)", x.status);
    comet_redis_destroy(r);

    log_reset();
    if (start_fake() < 0) {
        OK(0, "a fake sentinel on port %d", P_FAKE);
        return;
    }
    r = client(surl("127.0.0.1:8583", "mymaster"), NULL);
    x = cmd(r, "PING", NULL, NULL);
    OK(x.called == 1 && x.status == APR_EAGAIN, "a replica named as the master: the command "
       "fails with APR_EAGAIN (%d)", x.status);
    OK(logged("(master 127.0.0.1:8581): cannot connect: ROLE says 'slave', not 'master'"),
       "a replica named as the master: ROLE checked, logged");
    OK(!comet_redis_is_up(r), "a replica named as the master: never up");
    comet_redis_destroy(r);
    stop_proc(K_FAKE, SIGKILL);
}

/* After a failover from `from` to `to`, both clients follow, within `max`. */
static void failover(const char *what, comet_redis_t *r, comet_redis_t *pub,
                     subrec_t *rec, int from, int to, apr_interval_time_t max)
{
    apr_time_t t0 = apr_time_now();
    int ready = rec->ready, msgs = rec->messages, ok;
    res_t x;

    ok = until_master(r, to, max);
    OK(ok, "%s: commands reach the new primary (ROLE master, port %d) within %d s: %d ms",
       what, to, (int)apr_time_sec(max), (int)apr_time_as_msec(apr_time_now() - t0));
    OK(strstr(comet_redis_display(r), apr_psprintf(pool, "(master 127.0.0.1:%d)", to)) != NULL,
       "%s: the display names it: %s", what, comet_redis_display(r));
    OK(logged(apr_psprintf(pool, "master 'mymaster' changed: 127.0.0.1:%d, was 127.0.0.1:%d",
                           to, from)), "%s: the change is logged", what);
    run_until_n(&rec->ready, ready + 1, MS(10000));
    OK(rec->ready == ready + 1, "%s: the subscriber got READY again", what);
    until_master(pub, to, MS(5000));
    x = cmd(pub, "PUBLISH %s %s", "news", what);
    run_until_n(&rec->messages, msgs + 1, MS(3000));
    OK(x.integer == 1 && rec->messages == msgs + 1 && !strcmp(rec->data, what),
       "%s: the subscriber gets what is published on the new primary (%d)", what,
       (int)x.integer);
}

static void test_failover(comet_redis_t *r)
{
    comet_redis_opts_t os = quick_opts();
    comet_redis_t *sub, *pub;
    subrec_t rec;
    res_t x;

    memset(&rec, 0, sizeof(rec));
    os.subscriber = 1;
    sub = client(surl(S123, "mymaster"), &os);
    pub = client(surl(S123, "mymaster"), NULL);
    comet_redis_subscribe(sub, 0, "news", on_msg, &rec, NULL);
    run_until_n(&rec.ready, 1, MS(3000));
    x = cmd(pub, "PUBLISH %s %s", "news", "before");
    run_until_n(&rec.messages, 1, MS(3000));
    OK(rec.ready == 1 && x.integer == 1 && rec.messages == 1 && !strcmp(rec.data, "before"),
       "subscribe: through Sentinel, READY, then a message");

    log_reset();
    x = cmd_at(P_S1, "SENTINEL failover %s", "mymaster", NULL);
    OK(x.status == APR_SUCCESS && !strcmp(x.str, "OK"), "SENTINEL failover: OK (%s)", x.str);
    /* the old primary runs on: Sentinel would make it a replica (and kill
     * its clients) only some 10 s later; +switch-master moves us now */
    failover("failover", r, pub, &rec, P_PRIMARY, P_REPLICA, MS(6000));
    OK(logged("Sentinel switched master 'mymaster' to 127.0.0.1:8581: leaving 127.0.0.1:8580"),
       "failover: +switch-master followed, logged");

    /* the old primary is the replica now: kill the new one */
    log_reset();
    stop_proc(K_REPLICA, SIGKILL);
    /* down after 1 s, two sentinels agree, one promotes the replica */
    failover("killed", r, pub, &rec, P_REPLICA, P_PRIMARY, MS(10000));
    comet_redis_destroy(sub);
    comet_redis_destroy(pub);
}

int main(void)
{
    comet_redis_t *r;

    apr_initialize();
    atexit(apr_terminate);
    apr_pool_create(&pool, NULL);
    signal(SIGPIPE, SIG_IGN);
    comet_loop_create(&loop, NULL, NULL);

    server_bin = find_bin("REDIS_SERVER", "redis-server");
    sentinel_bin = find_bin("REDIS_SENTINEL", "redis-sentinel");
    if (!server_bin || !sentinel_bin) {
        /* 77: automake's SKIP */
        printf("# SKIP: no redis-server or redis-sentinel\n1..0\n");
        return 77;
    }
    apr_cpystrn(tmpdir, "/tmp/comet-sentinel-XXXXXX", sizeof(tmpdir));
    if (!mkdtemp(tmpdir)) {
        OK(0, "a temporary directory");
        return UNIT_DONE();
    }
    atexit(at_exit);
    if (!setup()) {
        return UNIT_DONE();
    }
    log_reset();
    r = client(surl("127.0.0.1:8582," S123, "mymaster"), NULL);
    test_basic(r);
    test_stopped_sentinel();
    test_failures();
    test_failover(r);
    comet_redis_destroy(r);
    comet_loop_destroy(loop);
    apr_pool_destroy(pool);
    return UNIT_DONE();
}
