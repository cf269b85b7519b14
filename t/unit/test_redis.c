/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/* Unit tests of comet_redis.c: URL parsing, then the client against private
 * redis-servers (unix sockets in a temporary directory, no TCP port, no
 * data on disk) started and killed here by pid: commands, a pipeline,
 * subscriptions, AUTH, SELECT, a time-out on a stopped server, a restart.
 * Without a redis-server binary only the URL tests run (SKIP said);
 * REDIS_SERVER names another binary. */

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <apr_general.h>
#include <apr_strings.h>

#include "comet_redis.h"
#include "unit.h"

#define MS(n) apr_time_from_msec(n)

static apr_pool_t *pool;
static comet_loop_t *loop;
static char tmpdir[64];
static const char *redis_bin;
static pid_t pids[4];                /* servers running, killed at exit */

/*******************************************************************************
 * helpers
 ******************************************************************************/

static char lastlog[1024];
static int nlogs;

static void on_log(void *baton, comet_log_level_t level, apr_status_t rv, const char *msg)
{
    nlogs++;
    apr_cpystrn(lastlog, msg, sizeof(lastlog));
    if (getenv("TEST_VERBOSE")) {
        printf("# log %d: %s (%d)\n", (int)level, msg, rv);
    }
}

/* Turn the loop until *flag is nonzero or `max` passed. */
static int run_until(volatile int *flag, apr_interval_time_t max)
{
    apr_time_t end = apr_time_now() + max;

    while (!*flag && apr_time_now() < end) {
        apr_time_t step = apr_time_now() + MS(20);
        comet_loop_poll(loop, step < end ? step : end);
        comet_loop_expire(loop, apr_time_now());
    }
    return *flag;
}

/* Turn the loop until *v reaches n or `max` passed. */
static int run_until_n(volatile int *v, int n, apr_interval_time_t max)
{
    apr_time_t end = apr_time_now() + max;

    while (*v < n && apr_time_now() < end) {
        comet_loop_poll(loop, apr_time_now() + MS(20));
        comet_loop_expire(loop, apr_time_now());
    }
    return *v >= n;
}

/* Turn the loop for `d` whatever happens. */
static void run_for(apr_interval_time_t d)
{
    int never = 0;
    run_until(&never, d);
}

static const char *find_redis(void)
{
    static const char *dirs[] = { "/usr/bin", "/usr/local/bin", "/usr/sbin", NULL };
    static char path[256];
    const char *env = getenv("REDIS_SERVER");
    int i;

    /* REDIS_SERVER=/path/to/redis-server, or =none to see the SKIP */
    if (env && *env) {
        return access(env, X_OK) == 0 ? env : NULL;
    }

    for (i = 0; dirs[i]; i++) {
        apr_snprintf(path, sizeof(path), "%s/redis-server", dirs[i]);
        if (access(path, X_OK) == 0) {
            return path;
        }
    }
    return NULL;
}

static int sock_answers(const char *path)
{
    struct sockaddr_un sa;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0), ok;

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    apr_cpystrn(sa.sun_path, path, sizeof(sa.sun_path));
    ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    if (fd >= 0) {
        close(fd);
    }
    return ok;
}

/* Start a redis-server on <tmpdir>/<name>.sock; its pid, or -1. */
static pid_t start_redis(int slot, const char *name, const char *password)
{
    char sock[128], logf[128];
    pid_t pid;
    int i;

    apr_snprintf(sock, sizeof(sock), "%s/%s.sock", tmpdir, name);
    apr_snprintf(logf, sizeof(logf), "%s/%s.log", tmpdir, name);
    unlink(sock);
    pid = fork();
    if (pid == 0) {
        const char *argv[20];
        int n = 0;
        argv[n++] = redis_bin;
        argv[n++] = "--port"; argv[n++] = "0";
        argv[n++] = "--unixsocket"; argv[n++] = sock;
        argv[n++] = "--save"; argv[n++] = "";
        argv[n++] = "--appendonly"; argv[n++] = "no";
        argv[n++] = "--daemonize"; argv[n++] = "no";
        argv[n++] = "--dir"; argv[n++] = tmpdir;
        argv[n++] = "--logfile"; argv[n++] = logf;
        if (password) {
            argv[n++] = "--requirepass"; argv[n++] = password;
        }
        argv[n] = NULL;
        /* gone with us, even if this test crashes before its atexit */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execv(redis_bin, (char **)argv);
        _exit(127);
    }
    if (pid < 0) {
        return -1;
    }
    pids[slot] = pid;
    for (i = 0; i < 500; i++) {
        if (sock_answers(sock)) {
            return pid;
        }
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            pids[slot] = 0;
            return -1;
        }
        usleep(10000);
    }
    return -1;
}

static void stop_redis(int slot, int sig)
{
    if (pids[slot] > 0) {
        kill(pids[slot], SIGCONT);
        kill(pids[slot], sig);
        waitpid(pids[slot], NULL, 0);
        pids[slot] = 0;
    }
}

static void at_exit(void)
{
    int i;
    char cmd[128];

    for (i = 0; i < 4; i++) {
        stop_redis(i, SIGKILL);
    }
    if (tmpdir[0]) {
        apr_snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0) {
            /* left behind in /tmp */
        }
    }
}

static const char *url_of(const char *name, const char *pre, const char *post)
{
    return apr_psprintf(pool, "unix:%s%s%s/%s.sock%s", pre ? "//" : "", pre ? pre : "",
                        tmpdir, name, post ? post : "");
}

/* What a command got. */
typedef struct {
    int called;
    apr_status_t status;
    int type;
    long long integer;
    char str[256];
} res_t;

static void on_res(comet_redis_t *r, apr_status_t status, const redisReply *reply, void *baton)
{
    res_t *x = baton;

    x->called++;
    x->status = status;
    x->type = reply ? reply->type : -1;
    x->str[0] = '\0';
    if (reply) {
        x->integer = reply->integer;
        if (reply->str) {
            apr_cpystrn(x->str, reply->str, sizeof(x->str));
        }
    }
}

static comet_redis_opts_t quick_opts(void)
{
    comet_redis_opts_t o;

    memset(&o, 0, sizeof(o));
    o.connect_timeout = MS(500);
    o.retry_min = MS(50);
    o.retry_max = MS(400);
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

/* Run one command to its end. */
static res_t cmd(comet_redis_t *r, const char *fmt, const char *a1, const char *a2)
{
    res_t x;

    memset(&x, 0, sizeof(x));
    if (comet_redis_command(r, MS(2000), on_res, &x, fmt, a1, a2) != APR_SUCCESS) {
        x.status = APR_EINVAL;
        return x;
    }
    run_until(&x.called, MS(3000));
    return x;
}

/*******************************************************************************
 * URLs
 ******************************************************************************/

static void test_urls(void)
{
    comet_redis_url_t u;
    const char *err;
    comet_redis_t *r = NULL;
    static const char *bad[] = {
        "", "http://h", "redis://", "redis://h:0", "redis://h:70000", "redis://h:12x",
        "redis://h/x", "redis://h/1/2", "redis://:@h", "redis://p%zz@h", "redis://p%4@h",
        "redis://[::1", "redis://h h", "unix:relative.sock", "unix:", "unix:/",
        "unix://host/tmp/r.sock", "unix:/tmp/r.sock?db=x", "unix:/tmp/r.sock?pw=1",
        "sentinel://h:1", "sentinel://h:1/", "sentinel://h:1,/m", "sentinel://,h/m",
        "sentinel://h:1,,h2/m", "sentinel://h,h2:0/m", "sentinel://h/m/x", NULL
    };
    int i, allbad = 1;

    OK(comet_redis_url_parse(pool, "redis://127.0.0.1:6380/2", &u, &err) == APR_SUCCESS
       && u.kind == COMET_REDIS_TCP && !strcmp(u.host, "127.0.0.1") && u.port == 6380
       && u.db == 2 && !u.user && !u.password, "url: redis://host:port/db");
    OK(comet_redis_url_parse(pool, "redis://localhost", &u, &err) == APR_SUCCESS
       && u.port == 6379 && u.db == 0 && !strcmp(u.host, "localhost"),
       "url: the port defaults to 6379, the database to 0");
    OK(comet_redis_url_parse(pool, "redis://u%40x:p%3Ass@h:1/0", &u, &err) == APR_SUCCESS
       && !strcmp(u.user, "u@x") && !strcmp(u.password, "p:ss") && u.port == 1,
       "url: user:password with %%-escapes");
    OK(comet_redis_url_parse(pool, "redis://secret@h", &u, &err) == APR_SUCCESS
       && !u.user && !strcmp(u.password, "secret"), "url: a userinfo without ':' is a password");
    OK(comet_redis_url_parse(pool, "redis://:secret@h:7000", &u, &err) == APR_SUCCESS
       && !u.user && !strcmp(u.password, "secret") && u.port == 7000,
       "url: ':password@' (no user)");
    OK(comet_redis_url_parse(pool, "redis://a:b@c@h", &u, &err) == APR_SUCCESS
       && !strcmp(u.password, "b@c") && !strcmp(u.host, "h"),
       "url: a raw '@' in the password (the last '@' ends the userinfo)");
    OK(comet_redis_url_parse(pool, "redis://[::1]:6390/3", &u, &err) == APR_SUCCESS
       && !strcmp(u.host, "::1") && u.port == 6390 && u.db == 3, "url: an [IPv6] host");
    IS_STR(comet_redis_url_parse(pool, "redis://user:pw@h:1/5", &u, &err) == APR_SUCCESS
           ? u.display : NULL, "redis://user@h:1/5", "url: the display form has no password");
    OK(comet_redis_url_parse(pool, "unix:/run/redis/redis.sock", &u, &err) == APR_SUCCESS
       && u.kind == COMET_REDIS_UNIX && !strcmp(u.path, "/run/redis/redis.sock") && !u.db,
       "url: unix:/path");
    OK(comet_redis_url_parse(pool, "unix:///tmp/r.sock?db=4", &u, &err) == APR_SUCCESS
       && !strcmp(u.path, "/tmp/r.sock") && u.db == 4, "url: unix:///path?db=N");
    OK(comet_redis_url_parse(pool, "unix://default:pw@/tmp/r.sock", &u, &err) == APR_SUCCESS
       && !strcmp(u.user, "default") && !strcmp(u.password, "pw")
       && !strcmp(u.path, "/tmp/r.sock"), "url: unix://user:password@/path");
    IS_STR(u.display, "unix:/tmp/r.sock", "url: unix display form without the password");
    OK(comet_redis_url_parse(pool, "sentinel://10.0.0.1/mymaster", &u, &err) == APR_SUCCESS
       && u.kind == COMET_REDIS_SENTINEL && u.port == 26379 && !strcmp(u.master, "mymaster"),
       "url: sentinel://host/<name> (port 26379)");

    for (i = 0; bad[i]; i++) {
        err = NULL;
        if (comet_redis_url_parse(pool, bad[i], &u, &err) != APR_EINVAL || !err || !*err) {
            printf("#   accepted: '%s'\n", bad[i]);
            allbad = 0;
        }
    }
    OK(allbad, "url: %d bad URLs refused, each with a reason", i);
    err = NULL;
    comet_redis_url_parse(pool, "redis://h:99999", &u, &err);
    IS_STR(err, "the port is not a number from 1 to 65535", "url: the reason names the mistake");

    OK(comet_redis_url_parse(pool, "sentinel://u:pw@10.0.0.1,[::1]:26380,s3:5000/mm/2", &u,
                             &err) == APR_SUCCESS
       && u.nsentinels == 3 && !strcmp(u.sentinels[0].host, "10.0.0.1")
       && u.sentinels[0].port == 26379 && !strcmp(u.sentinels[1].host, "::1")
       && u.sentinels[1].port == 26380 && !strcmp(u.sentinels[2].host, "s3")
       && u.sentinels[2].port == 5000 && !strcmp(u.host, "10.0.0.1") && u.port == 26379
       && !strcmp(u.master, "mm") && u.db == 2 && !strcmp(u.user, "u")
       && !strcmp(u.password, "pw"), "url: several sentinels, the master's user, password, db");
    IS_STR(u.display, "sentinel://u@10.0.0.1:26379,[::1]:26380,s3:5000/mm/2",
           "url: the display form lists every sentinel, no password");
    err = NULL;
    comet_redis_url_parse(pool, "sentinel://a:1,b:99999/m", &u, &err);
    IS_STR(err, "sentinel 2 of 2: the port is not a number from 1 to 65535",
           "url: the reason names the sentinel");

    nlogs = 0;
    OK(comet_redis_create(&r, pool, loop, "redis://h:0", NULL, on_log, NULL) == APR_EINVAL
       && strstr(lastlog, "bad URL: the port"), "create: a bad URL is APR_EINVAL, logged");
}

/*******************************************************************************
 * the client
 ******************************************************************************/

/* SET/GET, commands given before the connection is up, binary argv. */
static void test_basic(void)
{
    comet_redis_t *r = client(url_of("main", NULL, NULL), NULL);
    res_t a, b, c;
    const char *argv[3] = { "SET", "bin", "a\0b" };
    apr_size_t argl[3] = { 3, 3, 3 };
    int up = 0;

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    OK(r && !comet_redis_is_up(r), "connect: created, not up yet");
    OK(comet_redis_command(r, MS(2000), on_res, &a, "SET %s %s", "greeting", "hello") == 0
       && comet_redis_command(r, MS(2000), on_res, &b, "GET %s", "greeting") == 0,
       "connect: two commands given while connecting are accepted");
    run_until(&b.called, MS(3000));
    OK(a.called == 1 && a.status == APR_SUCCESS && a.type == REDIS_REPLY_STATUS
       && !strcmp(a.str, "OK"), "SET answered OK (%d)", a.status);
    OK(b.called == 1 && b.status == APR_SUCCESS && !strcmp(b.str, "hello"),
       "GET answered what SET stored: '%s'", b.str);
    up = comet_redis_is_up(r) && comet_redis_connects(r) == 1;
    OK(up, "connect: up, one connection");

    memset(&c, 0, sizeof(c));
    comet_redis_command_argv(r, MS(2000), on_res, &c, 3, argv, argl);
    run_until(&c.called, MS(3000));
    c = cmd(r, "STRLEN %s", "bin", NULL);
    OK(c.status == APR_SUCCESS && c.integer == 3, "argv: a value with a NUL byte kept whole");

    c = cmd(r, "NOSUCHCOMMAND", NULL, NULL);
    OK(c.status == APR_EGENERAL && c.type == REDIS_REPLY_ERROR && strstr(c.str, "unknown"),
       "an error reply: APR_EGENERAL with Redis' words ('%s')", c.str);
    OK(comet_redis_subscribe(r, 0, "x", (comet_redis_msg_fn *)1, NULL, NULL) == APR_EINVAL,
       "a command client refuses subscriptions");
    comet_redis_destroy(r);
}

typedef struct {
    int n, in_order, last;
} pipe_t;

static void on_incr(comet_redis_t *r, apr_status_t status, const redisReply *reply, void *baton)
{
    pipe_t *p = baton;

    if (status != APR_SUCCESS || !reply || reply->integer != p->n + 1) {
        p->in_order = 0;
    }
    p->n++;
    p->last = p->n == 1000;
}

static void test_pipeline(void)
{
    comet_redis_t *r = client(url_of("main", NULL, NULL), NULL);
    pipe_t p = { 0, 1, 0 };
    res_t x;
    int i, given = 0;

    x = cmd(r, "DEL %s", "counter", NULL);
    for (i = 0; i < 1000; i++) {
        given += comet_redis_command(r, MS(5000), on_incr, &p, "INCR %s", "counter") == 0;
    }
    run_until(&p.last, MS(10000));
    OK(given == 1000 && p.n == 1000 && p.in_order,
       "pipeline: 1000 INCR answered 1..1000 in order (%d answers)", p.n);
    x = cmd(r, "GET %s", "counter", NULL);
    IS_STR(x.str, "1000", "pipeline: the counter is 1000");
    comet_redis_destroy(r);
}

typedef struct {
    int ready, messages;
    char channel[64], pattern[64], data[64];
} subrec_t;

static void on_msg(comet_redis_t *r, const comet_redis_msg_t *m, void *baton)
{
    subrec_t *s = baton;

    if (m->event == COMET_REDIS_SUB_READY) {
        s->ready++;
        return;
    }
    s->messages++;
    apr_cpystrn(s->channel, m->channel, sizeof(s->channel));
    apr_cpystrn(s->pattern, m->pattern ? m->pattern : "", sizeof(s->pattern));
    apr_cpystrn(s->data, m->data, m->len + 1 < sizeof(s->data) ? m->len + 1 : sizeof(s->data));
}

static void test_subscribe(void)
{
    comet_redis_opts_t o = quick_opts();
    comet_redis_t *pub = client(url_of("main", NULL, NULL), NULL), *sub;
    comet_redis_sub_t *h1 = NULL;
    subrec_t plain, pat;
    res_t x;
    int both;

    o.subscriber = 1;
    sub = client(url_of("main", NULL, NULL), &o);
    memset(&plain, 0, sizeof(plain));
    memset(&pat, 0, sizeof(pat));
    OK(comet_redis_subscribe(sub, 0, "news", on_msg, &plain, &h1) == APR_SUCCESS
       && comet_redis_subscribe(sub, 1, "ch:*", on_msg, &pat, NULL) == APR_SUCCESS,
       "subscribe: SUBSCRIBE and PSUBSCRIBE given while connecting");
    OK(comet_redis_subscribe(sub, 0, "news", on_msg, &plain, NULL) == APR_EEXIST,
       "subscribe: the same channel twice is APR_EEXIST");
    OK(comet_redis_command(sub, MS(100), on_res, &x, "PING") == APR_EINVAL,
       "subscribe: a subscriber client refuses commands");
    both = 0;
    while (!both && run_until(&plain.ready, MS(3000)) && run_until(&pat.ready, MS(3000))) {
        both = 1;
    }
    OK(plain.ready == 1 && pat.ready == 1, "subscribe: both confirmed by Redis (READY)");

    x = cmd(pub, "PUBLISH %s %s", "news", "hello");
    OK(x.status == APR_SUCCESS && x.integer == 1, "publish: one subscriber received it");
    run_until(&plain.messages, MS(3000));
    OK(plain.messages == 1 && !strcmp(plain.channel, "news") && !strcmp(plain.data, "hello")
       && !plain.pattern[0], "subscribe: the message from another client ('%s' on '%s')",
       plain.data, plain.channel);
    x = cmd(pub, "PUBLISH %s %s", "ch:42", "pattern works");
    run_until(&pat.messages, MS(3000));
    OK(pat.messages == 1 && !strcmp(pat.pattern, "ch:*") && !strcmp(pat.channel, "ch:42")
       && !strcmp(pat.data, "pattern works"), "psubscribe: the message with its pattern");

    comet_redis_unsubscribe(sub, h1);
    run_for(MS(100));
    x = cmd(pub, "PUBLISH %s %s", "news", "nobody");
    run_for(MS(100));
    OK(x.integer == 0 && plain.messages == 1, "unsubscribe: Redis counts no subscriber, "
       "nothing delivered");
    comet_redis_destroy(sub);
    comet_redis_destroy(pub);
}

static void test_auth(void)
{
    comet_redis_t *r;
    res_t x;

    if (start_redis(1, "auth", "s3cret") < 0) {
        OK(0, "auth: a redis-server with --requirepass started");
        return;
    }
    r = client(url_of("auth", ":s3cret@", NULL), NULL);
    x = cmd(r, "SET %s %s", "k", "v");
    OK(x.status == APR_SUCCESS && !strcmp(x.str, "OK"), "auth: the password lets SET through");
    comet_redis_destroy(r);

    r = client(url_of("auth", "default:s3cret@", NULL), NULL);
    x = cmd(r, "GET %s", "k", NULL);
    OK(x.status == APR_SUCCESS && !strcmp(x.str, "v"), "auth: user:password (AUTH default ...)");
    comet_redis_destroy(r);

    nlogs = 0;
    r = client(url_of("auth", ":wrong@", NULL), NULL);
    x = cmd(r, "GET %s", "k", NULL);
    OK(x.status == APR_EACCES && x.called == 1, "auth: a wrong password fails the command "
       "with APR_EACCES (%d)", x.status);
    OK(strstr(lastlog, "AUTH refused") && strstr(lastlog, "WRONGPASS")
       && strstr(lastlog, "auth.sock") && !strstr(lastlog, "wrong"),
       "auth: the log names the server, says AUTH refused with Redis' words, "
       "hides the password: %s", lastlog);
    x = cmd(r, "GET %s", "k", NULL);
    OK(x.called == 1 && x.status == APR_EACCES,
       "auth: while it retries, a command fails at once with that status");
    comet_redis_destroy(r);

    r = client(url_of("auth", NULL, NULL), NULL);
    x = cmd(r, "GET %s", "k", NULL);
    OK(x.status == APR_EACCES && strstr(lastlog, "NOAUTH"),
       "auth: no password for a server that wants one: APR_EACCES, NOAUTH logged");
    comet_redis_destroy(r);
    stop_redis(1, SIGTERM);
}

static void test_select(void)
{
    comet_redis_t *r3 = client(url_of("main", NULL, "?db=3"), NULL);
    comet_redis_t *r0 = client(url_of("main", NULL, NULL), NULL);
    comet_redis_t *bad;
    res_t x;

    x = cmd(r3, "SET %s %s", "dbkey", "in3");
    OK(x.status == APR_SUCCESS, "select: SET on ?db=3");
    x = cmd(r0, "GET %s", "dbkey", NULL);
    OK(x.status == APR_SUCCESS && x.type == REDIS_REPLY_NIL, "select: not in database 0");
    x = cmd(r0, "SELECT 3", NULL, NULL);
    x = cmd(r0, "GET %s", "dbkey", NULL);
    IS_STR(x.str, "in3", "select: in database 3");
    comet_redis_destroy(r3);
    comet_redis_destroy(r0);

    nlogs = 0;
    bad = client(url_of("main", NULL, "?db=999"), NULL);
    x = cmd(bad, "PING", NULL, NULL);
    OK(x.status == APR_EINVAL && strstr(lastlog, "SELECT refused"),
       "select: a database out of range fails clearly: %s", lastlog);
    comet_redis_destroy(bad);
}

typedef struct {
    int ups, downs;
    apr_status_t why;
} state_rec_t;

static void on_state(comet_redis_t *r, int isup, apr_status_t why, void *baton)
{
    state_rec_t *s = baton;

    if (isup) {
        s->ups++;
    }
    else {
        s->downs++;
        s->why = why;
    }
}

static void test_timeout(void)
{
    comet_redis_opts_t o = quick_opts();
    state_rec_t st;
    comet_redis_t *r;
    res_t a, b, x;
    pid_t pid = pids[0];
    int up;

    memset(&st, 0, sizeof(st));
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    o.state = on_state;
    o.state_baton = &st;
    r = client(url_of("main", NULL, NULL), &o);
    run_until(&st.ups, MS(3000));
    OK(st.ups == 1, "timeout: up (state callback)");

    kill(pid, SIGSTOP);
    comet_redis_command(r, MS(300), on_res, &a, "GET %s", "greeting");
    comet_redis_command(r, MS(5000), on_res, &b, "GET %s", "greeting");
    run_until(&b.called, MS(3000));
    OK(a.called == 1 && a.status == APR_TIMEUP, "timeout: a stopped server: the command "
       "fails with APR_TIMEUP after its 300 ms (%d)", a.status);
    OK(b.called == 1 && b.status == APR_ECONNRESET, "timeout: the one behind it fails with "
       "APR_ECONNRESET: the connection was dropped");
    OK(st.downs == 1 && st.why == APR_TIMEUP, "timeout: the state callback says down "
       "(APR_TIMEUP)");
    run_for(MS(700));
    OK(!comet_redis_is_up(r), "timeout: still down while the server is stopped "
       "(the connect + PING time out)");
    x = cmd(r, "GET %s", "greeting", NULL);
    OK(x.called == 1 && x.status != APR_SUCCESS, "timeout: a command given meanwhile fails "
       "(%d)", x.status);

    kill(pid, SIGCONT);
    up = run_until_n(&st.ups, 2, MS(5000)) && st.ups == 2;
    OK(up, "timeout: up again once the server runs (SIGCONT)");
    x = cmd(r, "GET %s", "greeting", NULL);
    IS_STR(x.str, "hello", "timeout: commands work after the reconnection");
    comet_redis_destroy(r);
}

/* Without any command, a stopped server is found by the pings. */
static void test_ping(void)
{
    comet_redis_opts_t oc = quick_opts(), os = quick_opts();
    state_rec_t cst, sst;
    comet_redis_t *c, *sub;
    subrec_t rec;
    pid_t pid = pids[0];
    res_t x;

    memset(&cst, 0, sizeof(cst));
    memset(&sst, 0, sizeof(sst));
    memset(&rec, 0, sizeof(rec));
    oc.ping_interval = os.ping_interval = MS(150);
    oc.state = os.state = on_state;
    oc.state_baton = &cst;
    os.state_baton = &sst;
    os.subscriber = 1;
    c = client(url_of("main", NULL, NULL), &oc);
    sub = client(url_of("main", NULL, NULL), &os);
    comet_redis_subscribe(sub, 0, "pinged", on_msg, &rec, NULL);
    run_until(&rec.ready, MS(3000));
    run_until(&cst.ups, MS(3000));
    run_for(MS(400));
    OK(cst.downs == 0 && sst.downs == 0, "ping: answered pings keep both clients up");

    kill(pid, SIGSTOP);
    run_until_n(&cst.downs, 1, MS(3000));
    run_until_n(&sst.downs, 1, MS(3000));
    OK(cst.downs == 1 && cst.why == APR_TIMEUP, "ping: a command client idle on a stopped "
       "server goes down (APR_TIMEUP)");
    OK(sst.downs == 1 && sst.why == APR_TIMEUP, "ping: so does a subscriber (its ping is a "
       "SUBSCRIBE again)");
    kill(pid, SIGCONT);
    run_until_n(&cst.ups, 2, MS(5000));
    run_until_n(&rec.ready, 2, MS(5000));
    OK(cst.ups == 2 && sst.ups == 2 && rec.ready == 2, "ping: both up again, subscribed again");
    x = cmd(c, "PUBLISH %s %s", "pinged", "still here");
    run_until(&rec.messages, MS(3000));
    OK(x.integer == 1 && rec.messages == 1 && !strcmp(rec.data, "still here"),
       "ping: the subscription delivers");
    comet_redis_destroy(sub);
    comet_redis_destroy(c);
}

static void test_restart(void)
{
    comet_redis_opts_t o = quick_opts(), os;
    state_rec_t st, sst;
    comet_redis_t *r, *sub;
    subrec_t rec;
    res_t x;
    apr_time_t t0;

    memset(&st, 0, sizeof(st));
    memset(&sst, 0, sizeof(sst));
    memset(&rec, 0, sizeof(rec));
    o.state = on_state;
    o.state_baton = &st;
    r = client(url_of("main", NULL, NULL), &o);
    os = quick_opts();
    os.subscriber = 1;
    os.state = on_state;
    os.state_baton = &sst;
    sub = client(url_of("main", NULL, NULL), &os);
    comet_redis_subscribe(sub, 0, "after", on_msg, &rec, NULL);
    run_until(&rec.ready, MS(3000));
    run_until(&st.ups, MS(3000));
    OK(st.ups == 1 && rec.ready == 1, "restart: both clients up, subscribed");

    stop_redis(0, SIGKILL);
    run_until(&st.downs, MS(3000));
    run_until(&sst.downs, MS(3000));
    OK(st.downs == 1 && st.why == APR_ECONNRESET && sst.downs == 1,
       "restart: killed (-9): both clients see it go (APR_ECONNRESET)");
    run_for(MS(200));
    t0 = apr_time_now();
    memset(&x, 0, sizeof(x));
    comet_redis_command(r, MS(5000), on_res, &x, "PING");
    OK(x.called == 1 && x.status != APR_SUCCESS && apr_time_now() - t0 < MS(100),
       "restart: while it is down a command fails at once, not after its time-out (%d)",
       x.status);

    OK(start_redis(0, "main", NULL) > 0, "restart: a new server on the same socket");
    run_until_n(&st.ups, 2, MS(5000));
    OK(st.ups == 2 && comet_redis_connects(r) == 2, "restart: the command client is up again");
    run_until_n(&rec.ready, 2, MS(5000));
    OK(rec.ready == 2, "restart: the subscription was made again (READY twice)");
    x = cmd(r, "PUBLISH %s %s", "after", "back");
    run_until(&rec.messages, MS(3000));
    OK(x.integer == 1 && rec.messages == 1 && !strcmp(rec.data, "back"),
       "restart: a message published after the restart arrives");
    comet_redis_destroy(sub);
    comet_redis_destroy(r);
}

static void test_destroy(void)
{
    comet_redis_t *r = client(url_of("main", NULL, NULL), NULL);
    res_t a, b;

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    cmd(r, "PING", NULL, NULL);
    comet_redis_command(r, MS(2000), on_res, &a, "BLPOP %s %d", "nothing", 0);
    run_for(MS(50));
    comet_redis_destroy(r);
    OK(a.called == 1 && a.status == APR_ECONNABORTED,
       "destroy: a command in flight gets APR_ECONNABORTED");

    r = client(url_of("main", NULL, NULL), NULL);
    comet_redis_command(r, MS(2000), on_res, &b, "PING");
    comet_redis_destroy(r);
    OK(b.called == 1 && b.status == APR_ECONNABORTED,
       "destroy: a command waiting for the connection gets APR_ECONNABORTED");
}

static void test_refused(void)
{
    comet_redis_t *r = client(apr_psprintf(pool, "unix:%s/none.sock", tmpdir), NULL);
    res_t x;

    nlogs = 0;
    x = cmd(r, "PING", NULL, NULL);
    OK(x.called == 1 && x.status != APR_SUCCESS && strstr(lastlog, "cannot connect")
       && strstr(lastlog, "none.sock"), "no server: the command fails, the log names the "
       "socket: %s", lastlog);
    comet_redis_destroy(r);
}

int main(void)
{
    apr_initialize();
    atexit(apr_terminate);
    apr_pool_create(&pool, NULL);
    signal(SIGPIPE, SIG_IGN);
    comet_loop_create(&loop, NULL, NULL);

    test_urls();

    redis_bin = find_redis();
    if (!redis_bin) {
        printf("# SKIP: no redis-server: only the URL tests ran\n");
        return UNIT_DONE();
    }
    apr_cpystrn(tmpdir, "/tmp/comet-redis-XXXXXX", sizeof(tmpdir));
    if (!mkdtemp(tmpdir)) {
        OK(0, "a temporary directory");
        return UNIT_DONE();
    }
    atexit(at_exit);
    if (start_redis(0, "main", NULL) < 0) {
        OK(0, "a private redis-server started (%s)", redis_bin);
        return UNIT_DONE();
    }
    test_basic();
    test_pipeline();
    test_subscribe();
    test_auth();
    test_select();
    test_refused();
    test_destroy();
    test_timeout();
    test_ping();
    test_restart();
    stop_redis(0, SIGTERM);
    comet_loop_destroy(loop);
    apr_pool_destroy(pool);
    return UNIT_DONE();
}
