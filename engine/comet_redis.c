/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/*
 * A Redis client on comet_loop: hiredis reads and writes RESP, we drive it.
 *
 *   caller                        comet_redis.c                    hiredis (async.c)
 *   ------                        -------------                    -----------------
 *   comet_redis_create ---------> start_connect
 *                                 [sentinel://: ask_sentinel, each in turn --> redisAsyncConnect
 *                                   SENTINEL get-master-addr-by-name ------> (a context each)
 *                                   on_sentinel: the address, or skip_sentinel;
 *                                   next step from step_timer]
 *                                 connect_server ---------------> redisAsyncConnect[Unix]
 *                                   ev hooks = ev_add/del_read/write, ev_cleanup
 *                                   handshake: AUTH, SELECT | PING -> redisAsyncFormattedCommand
 *                                     (sentinel://: AUTH, SELECT, ROLE: master or drop)
 *                                   connect_timer (connect_timeout, each sentinel too)
 *                                 [sentinel://, once up: watch_open: SUBSCRIBE +switch-master
 *                                   on a sentinel; on_switch drops the connection]
 *   comet_loop_poll ------------> on_io -------------------------> redisAsyncHandleRead/Write
 *                                   <- ev_add/del_* (want) <------ (what it needs next)
 *                                   <- on_handshake, on_reply, <-- reply callbacks
 *                                      on_sub
 *                                   <- ev_cleanup: conn_gone <---- __redisAsyncFree (EOF, error,
 *                                                                  our redisAsyncFree)
 *   comet_redis_command --------> submit: UP: send_cmd ---------> redisAsyncFormattedCommand
 *                                         CONNECTING: r->waiting (sent once up)
 *                                         DOWN: fails at once (last attempt's status)
 *                                   cmd timer (the caller's timeout)
 *   comet_loop_expire ----------> on_cmd_timeout: fails the command; if it was
 *                                   sent, drop -> redisAsyncFree (the others get
 *                                   APR_ECONNRESET), then a new connection
 *                                 on_connect_timeout: drop the attempt
 *                                 on_retry: start_connect again (back-off)
 *   <- fn(reply) / state fn(up, down) / msg fn(READY, MESSAGE)
 *
 * Who frees what: a command (cmd_t) is ours until handed to hiredis (its
 * privdata); from then on hiredis calls on_reply exactly once, with a
 * reply or with NULL when the context goes, and on_reply frees it. A
 * command failed early (time-out) keeps its cmd_t, marked done, for that
 * last call. A subscription lives in r->subs; unsubscribed while hiredis
 * holds it, it is freed on its "unsubscribe" reply or the context's end.
 *
 * hiredis 0.14 has no timer hook: every time-out here is a comet_loop timer.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <apr_strings.h>

#include <hiredis/async.h>

#include "comet_redis.h"

typedef enum {
    ST_DOWN = 0,                      /* no connection: waiting for retry_timer */
    ST_CONNECTING,                    /* connect + handshake in progress */
    ST_UP,                            /* commands go straight to hiredis */
    ST_CLOSED                         /* being destroyed */
} state_e;

/* What the context in r->link.ac is, while connecting */
typedef enum {
    PH_SERVER = 0,                    /* the server's (the master's, through Sentinel) */
    PH_ASK                            /* a sentinel's, asked for the master's address */
} phase_e;

/* A hiredis context on the loop: the connection's, or the watch's (a
 * sentinel's +switch-master) */
typedef struct link_t {
    comet_redis_t *r;
    redisAsyncContext *ac;
    comet_loop_io_t io;
    apr_uint32_t want;                /* COMET_LOOP_READ | WRITE, as hiredis asks */
} link_t;

typedef struct cmd_t cmd_t;
struct cmd_t {
    comet_loop_timer_t timer;         /* the caller's time-out */
    comet_redis_t *r;
    cmd_t *next, *prev;               /* in r->waiting, until sent */
    char *buf;                        /* formatted, until handed to hiredis */
    int len;
    comet_redis_reply_fn *fn;
    void *baton;
    int sent;                         /* hiredis holds it */
    int done;                         /* fn called already */
};

struct comet_redis_sub_t {
    comet_redis_sub_t *next, *prev;   /* in r->subs while wanted */
    comet_redis_t *r;
    int pattern;
    char *name;
    apr_size_t nlen;
    comet_redis_msg_fn *fn;
    void *baton;
    int in_hiredis;                   /* privdata of the current context's dict */
    int dead;                         /* unsubscribed: free once hiredis lets go */
};

struct comet_redis_t {
    apr_pool_t *pool;
    comet_loop_t *loop;
    comet_redis_url_t url;
    comet_redis_opts_t opts;
    comet_log_fn *log;
    void *log_baton;

    state_e state;
    link_t link;                      /* the connection (or a sentinel asked) */
    comet_loop_timer_t retry_timer;
    comet_loop_timer_t connect_timer;
    apr_interval_time_t backoff;      /* the next wait between attempts */
    int failures;                     /* attempts failed in a row */
    apr_status_t last_status;         /* why the last attempt failed or the link went */
    apr_status_t drop_status;         /* set when we drop the connection ourselves */
    char why[160];                    /* the words for drop_status, or hiredis' */

    cmd_t *wait_head, *wait_tail;     /* commands given while connecting */
    comet_redis_sub_t *subs;
    comet_loop_timer_t ping_timer;    /* the next ping (opts.ping_interval) */
    comet_loop_timer_t ping_wait;     /* a subscriber's ping not answered yet */
    comet_redis_sub_t hb;             /* a subscriber's ping: SUBSCRIBE again */
    apr_uint64_t connects;
    const char *last_step;            /* the handshake's step whose answer makes it up */

    /* sentinel:// only */
    phase_e phase;
    int sentinel;                     /* the one asked now: a round starts with the
                                         last that gave a master that said so */
    int asked;                        /* sentinels asked in this round */
    int unknown;                      /* of them, how many did not know the name */
    int found;                        /* the one asked gave an address */
    apr_status_t round_status;        /* the last sentinel's failure in this round */
    comet_loop_timer_t step_timer;    /* the next step, out of hiredis' callbacks */
    char master_host[256];            /* the address the sentinels gave */
    int master_port;
    char master_up[300];              /* "host:port" of the last master we were up on */
    char display[600];                /* url.display + " (master host:port)" */
    link_t watch;                     /* a sentinel's +switch-master, while up */
    int watch_sentinel;               /* the sentinel watched, or to watch next */
    comet_loop_timer_t watch_timer;   /* the watch made again */
};

#define DEF_CONNECT_TIMEOUT apr_time_from_sec(2)
#define DEF_RETRY_MIN       apr_time_from_msec(100)
#define DEF_RETRY_MAX       apr_time_from_sec(5)
/* RESP2 allows a subscribed connection no PING that hiredis 0.14 routes
 * right; SUBSCRIBE to a channel already held is answered, changes nothing */
#define HB_CHANNEL          "comet:ping"

static void start_connect(comet_redis_t *r);
static void sentinel_gone(comet_redis_t *r, apr_status_t status);
static void watch_gone(comet_redis_t *r, const char *why);
static void watch_open(comet_redis_t *r, int i);
static void on_watch_open(comet_loop_t *l, comet_loop_timer_t *t, apr_time_t now);
static apr_status_t open_ctx(link_t *k, const char *host, int port, const char *path,
                             char *why, apr_size_t wlen);

static void rlog(comet_redis_t *r, comet_log_level_t level, apr_status_t rv, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void rlog(comet_redis_t *r, comet_log_level_t level, apr_status_t rv, const char *fmt, ...)
{
    char msg[512];
    apr_size_t n;
    va_list ap;

    if (!r->log) {
        return;
    }
    n = apr_snprintf(msg, sizeof(msg), "comet redis %s: ", comet_redis_display(r));
    va_start(ap, fmt);
    apr_vsnprintf(msg + n, sizeof(msg) - n, fmt, ap);
    va_end(ap);
    r->log(r->log_baton, level, rv, msg);
}

/*******************************************************************************
 * URLs
 ******************************************************************************/

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* A userinfo part with its %XX escapes decoded; NULL if one is broken. */
static char *unescape(apr_pool_t *p, const char *s, apr_size_t n)
{
    char *out = apr_palloc(p, n + 1), *o = out;
    apr_size_t i;

    for (i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi, lo;
            if (i + 2 >= n) {
                return NULL;
            }
            hi = hexval(s[i + 1]);
            lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                return NULL;
            }
            *o++ = (char)(hi * 16 + lo);
            i += 2;
        }
        else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

/* Digits only, at most `max`; -1 otherwise. */
static long digits(const char *s, apr_size_t n, long max)
{
    long v = 0;
    apr_size_t i;

    if (n == 0 || n > 10) {
        return -1;
    }
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    return v <= max ? v : -1;
}

/* "[user:]password" into u->user and u->password. */
static const char *parse_userinfo(apr_pool_t *p, const char *s, apr_size_t n,
                                  comet_redis_url_t *u)
{
    const char *colon = memchr(s, ':', n);

    if (colon) {
        apr_size_t ulen = (apr_size_t)(colon - s);
        if (ulen) {
            u->user = unescape(p, s, ulen);
            if (!u->user) {
                return "a broken %-escape in the user name";
            }
        }
        u->password = unescape(p, colon + 1, n - ulen - 1);
    }
    else {
        u->password = unescape(p, s, n);
    }
    if (!u->password) {
        return "a broken %-escape in the password";
    }
    if (!*u->password) {
        return "an empty password";
    }
    return NULL;
}

/* "host[:port]" or "[v6]:port". */
static const char *parse_hostport(apr_pool_t *p, const char *s, apr_size_t n, int defport,
                                  comet_redis_url_t *u)
{
    const char *end = s + n, *hend, *colon = NULL;

    if (n == 0) {
        return "no host";
    }
    if (*s == '[') {
        hend = memchr(s, ']', n);
        if (!hend || hend == s + 1) {
            return "a broken [IPv6] host";
        }
        u->host = apr_pstrmemdup(p, s + 1, (apr_size_t)(hend - s - 1));
        hend++;
        if (hend < end) {
            if (*hend != ':') {
                return "junk after the [IPv6] host";
            }
            colon = hend;
        }
    }
    else {
        colon = memchr(s, ':', n);
        hend = colon ? colon : end;
        if (hend == s) {
            return "no host";
        }
        u->host = apr_pstrmemdup(p, s, (apr_size_t)(hend - s));
        if (strpbrk(u->host, "[]@/?#% ")) {
            return "a host with a character hosts do not have";
        }
    }
    u->port = defport;
    if (colon) {
        long port = digits(colon + 1, (apr_size_t)(end - colon - 1), 65535);
        if (port < 1) {
            return "the port is not a number from 1 to 65535";
        }
        u->port = (int)port;
    }
    return NULL;
}

static const char *parse_db(const char *s, apr_size_t n, comet_redis_url_t *u)
{
    long db;

    if (n == 0) {
        return NULL;
    }
    db = digits(s, n, 2147483647L);
    if (db < 0) {
        return "the database is not a number";
    }
    u->db = (int)db;
    return NULL;
}

/* "host[:port][,host[:port]...]" from s to end: the sentinels. */
static const char *parse_sentinels(apr_pool_t *p, const char *s, const char *end,
                                   comet_redis_url_t *u)
{
    comet_redis_addr_t *a;
    const char *c, *err;
    int n = 1, i;

    for (c = s; c < end; c++) {
        n += *c == ',';
    }
    a = apr_pcalloc(p, sizeof(*a) * (apr_size_t)n);
    for (i = 0; i < n; i++) {
        comet_redis_url_t one;
        c = memchr(s, ',', (apr_size_t)(end - s));
        if (!c) {
            c = end;
        }
        memset(&one, 0, sizeof(one));
        if ((err = parse_hostport(p, s, (apr_size_t)(c - s), 26379, &one))) {
            return n > 1 ? apr_psprintf(p, "sentinel %d of %d: %s", i + 1, n, err) : err;
        }
        a[i].host = one.host;
        a[i].port = one.port;
        s = c + 1;
    }
    u->sentinels = a;
    u->nsentinels = n;
    u->host = a[0].host;
    u->port = a[0].port;
    return NULL;
}

/* "host:port", "[v6]:port" */
static const char *hostport(apr_pool_t *p, const char *host, int port)
{
    return apr_psprintf(p, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
}

static const char *parse(apr_pool_t *p, const char *url, comet_redis_url_t *u)
{
    const char *s, *end, *slash, *at, *err, *hosts;

    memset(u, 0, sizeof(*u));
    if (!url || !*url) {
        return "an empty URL";
    }
    end = url + strlen(url);
    if (strpbrk(url, " \t\r\n#")) {
        return "a space or '#' in the URL";
    }

    if (!strncasecmp(url, "unix:", 5)) {
        const char *q;
        u->kind = COMET_REDIS_UNIX;
        s = url + 5;
        if (!strncmp(s, "//", 2)) {
            /* unix://[userinfo@]/path */
            s += 2;
            slash = strchr(s, '/');
            if (!slash) {
                return "no socket path";
            }
            if (slash > s) {
                if (slash[-1] != '@') {
                    return "unix:// takes no host, only [user:password@]/path";
                }
                if ((err = parse_userinfo(p, s, (apr_size_t)(slash - 1 - s), u))) {
                    return err;
                }
            }
            s = slash;
        }
        if (*s != '/' || s[1] == '\0' || s[1] == '?') {
            return "the socket path must be absolute";
        }
        q = strchr(s, '?');
        u->path = apr_pstrmemdup(p, s, q ? (apr_size_t)(q - s) : strlen(s));
        if (q) {
            if (strncmp(q, "?db=", 4) || q[4] == '\0') {
                return "the only query a unix: URL takes is ?db=N";
            }
            if ((err = parse_db(q + 4, strlen(q + 4), u))) {
                return err;
            }
        }
        u->display = u->db ? apr_psprintf(p, "unix:%s?db=%d", u->path, u->db)
                           : apr_pstrcat(p, "unix:", u->path, NULL);
        return NULL;
    }

    if (!strncasecmp(url, "redis://", 8)) {
        u->kind = COMET_REDIS_TCP;
        s = url + 8;
    }
    else if (!strncasecmp(url, "sentinel://", 11)) {
        u->kind = COMET_REDIS_SENTINEL;
        s = url + 11;
    }
    else {
        return "not redis://, unix: nor sentinel://";
    }

    slash = strchr(s, '/');
    if (!slash) {
        slash = end;
    }
    /* the last '@' of the authority: a raw '@' in a password still works */
    for (at = slash; at > s && at[-1] != '@'; at--) {
    }
    if (at > s) {
        if ((err = parse_userinfo(p, s, (apr_size_t)(at - 1 - s), u))) {
            return err;
        }
        s = at;
    }
    if (u->kind == COMET_REDIS_TCP) {
        if ((err = parse_hostport(p, s, (apr_size_t)(slash - s), 6379, u))) {
            return err;
        }
    }
    else if ((err = parse_sentinels(p, s, slash, u))) {
        return err;
    }
    if (u->kind == COMET_REDIS_TCP) {
        if (slash < end && (err = parse_db(slash + 1, (apr_size_t)(end - slash - 1), u))) {
            return err;
        }
    }
    else {
        const char *s2;
        if (slash == end || slash[1] == '\0' || slash[1] == '/') {
            return "sentinel:// needs the master's name: sentinel://host:port/<name>";
        }
        s2 = strchr(slash + 1, '/');
        u->master = apr_pstrmemdup(p, slash + 1, (apr_size_t)((s2 ? s2 : end) - slash - 1));
        if (s2 && (err = parse_db(s2 + 1, (apr_size_t)(end - s2 - 1), u))) {
            return err;
        }
    }
    if (u->kind == COMET_REDIS_TCP) {
        hosts = hostport(p, u->host, u->port);
    }
    else {
        int i;
        for (i = 0, hosts = ""; i < u->nsentinels; i++) {
            hosts = apr_pstrcat(p, hosts, i ? "," : "",
                                hostport(p, u->sentinels[i].host, u->sentinels[i].port), NULL);
        }
    }
    u->display = apr_psprintf(p, "%s://%s%s%s%s%s",
                              u->kind == COMET_REDIS_TCP ? "redis" : "sentinel",
                              u->user ? u->user : "", u->user ? "@" : "", hosts,
                              u->master ? "/" : "", u->master ? u->master : "");
    if (u->db) {
        u->display = apr_psprintf(p, "%s/%d", u->display, u->db);
    }
    return NULL;
}

apr_status_t comet_redis_url_parse(apr_pool_t *p, const char *url, comet_redis_url_t *u,
                                   const char **err)
{
    const char *e = parse(p, url, u);

    if (e) {
        if (err) {
            *err = e;
        }
        return APR_EINVAL;
    }
    return APR_SUCCESS;
}

/*******************************************************************************
 * the connection: hiredis' hooks on our loop
 ******************************************************************************/

static void on_io(comet_loop_t *l, comet_loop_io_t *io, apr_uint32_t events)
{
    link_t *k = COMET_LOOP_CONTAINER(io, link_t, io);
    redisAsyncContext *ac = k->ac;

    if (!ac) {
        return;
    }
    /* an error or hang-up goes through a read: hiredis finds EOF or the
     * socket's error (also for a connect that failed) and frees the context */
    if (events & (COMET_LOOP_READ | COMET_LOOP_HUP | COMET_LOOP_ERROR)) {
        redisAsyncHandleRead(ac);
        if (k->ac != ac) {
            return;                   /* freed: ev_cleanup ran */
        }
    }
    if (events & COMET_LOOP_WRITE) {
        redisAsyncHandleWrite(ac);
    }
}

static void want(link_t *k, apr_uint32_t set, apr_uint32_t clear)
{
    comet_redis_t *r = k->r;
    apr_uint32_t w = (k->want | set) & ~clear;
    apr_status_t rv = APR_SUCCESS;

    if (!k->ac || (w == k->want && comet_loop_io_watched(&k->io))) {
        return;
    }
    k->want = w;
    if (!comet_loop_io_watched(&k->io)) {
        rv = comet_loop_io_add(r->loop, &k->io, k->ac->c.fd, w, on_io);
    }
    else {
        rv = comet_loop_io_set(r->loop, &k->io, w);
    }
    if (rv != APR_SUCCESS) {
        /* not watched, the connection would hang: it fails at its time-out */
        rlog(r, COMET_LOG_ERR, rv, "cannot watch the connection");
    }
}

static void ev_add_read(void *d)  { want(d, COMET_LOOP_READ, 0); }
static void ev_del_read(void *d)  { want(d, 0, COMET_LOOP_READ); }
static void ev_add_write(void *d) { want(d, COMET_LOOP_WRITE, 0); }
static void ev_del_write(void *d) { want(d, 0, COMET_LOOP_WRITE); }

/* Fail a command now; hiredis may still hold it (then on_reply frees it). */
static void complete(comet_redis_t *r, cmd_t *c, apr_status_t status, const redisReply *reply)
{
    comet_loop_timer_cancel(r->loop, &c->timer);
    c->done = 1;
    if (c->fn) {
        c->fn(r, status, reply, c->baton);
    }
}

static void unwait(comet_redis_t *r, cmd_t *c)
{
    if (c->prev) c->prev->next = c->next; else r->wait_head = c->next;
    if (c->next) c->next->prev = c->prev; else r->wait_tail = c->prev;
    c->next = c->prev = NULL;
}

static void free_cmd(cmd_t *c)
{
    free(c->buf);
    free(c);
}

/* Every command that waited for this attempt gets its failure. */
static void fail_waiting(comet_redis_t *r, apr_status_t status)
{
    cmd_t *c;

    while ((c = r->wait_head)) {
        unwait(r, c);
        complete(r, c, status, NULL);
        free_cmd(c);
    }
}

static void on_retry(comet_loop_t *l, comet_loop_timer_t *t, apr_time_t now)
{
    comet_redis_t *r = COMET_LOOP_CONTAINER(t, comet_redis_t, retry_timer);

    if (r->state == ST_DOWN) {
        start_connect(r);
    }
}

static void schedule_retry(comet_redis_t *r, apr_interval_time_t wait)
{
    if (comet_loop_timer_set(r->loop, &r->retry_timer, apr_time_now() + wait, on_retry)
        != APR_SUCCESS) {
        rlog(r, COMET_LOG_ERR, APR_ENOMEM, "cannot arm the reconnection timer");
    }
}

/* A connection attempt failed (no context, or one that never came up). */
static void attempt_failed(comet_redis_t *r, apr_status_t status, const char *why)
{
    apr_interval_time_t wait = r->backoff;

    r->state = ST_DOWN;
    r->last_status = status;
    /* the first failure in a row loud, the rest (every back-off) quietly */
    rlog(r, r->failures++ ? COMET_LOG_DEBUG : COMET_LOG_ERR, status,
         "cannot connect: %s (next try in %" APR_TIME_T_FMT " ms)", why, apr_time_as_msec(wait));
    r->backoff = r->backoff * 2 > r->opts.retry_max ? r->opts.retry_max : r->backoff * 2;
    fail_waiting(r, status);
    if (r->state == ST_DOWN && !comet_loop_timer_armed(&r->retry_timer)) {
        schedule_retry(r, wait);
    }
}

/* hiredis' cleanup hook: the context is going (EOF, an error, our
 * redisAsyncFree); its pending callbacks have had their NULL reply. */
static void ev_cleanup(void *d)
{
    link_t *k = d;
    comet_redis_t *r = k->r;
    redisAsyncContext *ac = r->link.ac;
    state_e was = r->state;
    apr_status_t status;

    if (k != &r->link) {
        watch_gone(r, k->ac && k->ac->err && k->ac->errstr ? k->ac->errstr
                                                            : "the sentinel closed it");
        return;
    }
    comet_loop_io_del(r->loop, &r->link.io);
    r->link.want = 0;
    comet_loop_timer_cancel(r->loop, &r->connect_timer);
    comet_loop_timer_cancel(r->loop, &r->ping_timer);
    comet_loop_timer_cancel(r->loop, &r->ping_wait);
    if (!r->drop_status) {
        apr_cpystrn(r->why, ac && ac->err && ac->errstr ? ac->errstr
                            : "the server closed the connection", sizeof(r->why));
    }
    status = r->drop_status ? r->drop_status
                            : (was == ST_UP ? APR_ECONNRESET : APR_ECONNREFUSED);
    r->drop_status = APR_SUCCESS;
    r->link.ac = NULL;
    if (was == ST_CLOSED) {
        return;
    }
    if (r->phase == PH_ASK) {
        sentinel_gone(r, status);
        return;
    }
    if (was == ST_UP) {
        r->state = ST_DOWN;
        r->last_status = status;
        rlog(r, COMET_LOG_ERR, status, "connection lost: %s", r->why);
        /* once straight away: a restarted Redis is often back already */
        r->backoff = r->opts.retry_min;
        schedule_retry(r, 0);
        fail_waiting(r, status);      /* none, unless up() was cut short */
        if (r->opts.state) {
            r->opts.state(r, 0, status, r->opts.state_baton);
        }
        return;
    }
    attempt_failed(r, status, r->why);
}

/* Drop the connection ourselves; new commands fail until the next attempt. */
static void drop(comet_redis_t *r, apr_status_t status, const char *why)
{
    if (!r->link.ac) {
        return;
    }
    r->drop_status = status;
    apr_cpystrn(r->why, why, sizeof(r->why));
    /* from inside a hiredis callback the free waits for it to return:
     * the context refuses commands meanwhile */
    redisAsyncFree(r->link.ac);
}

/*******************************************************************************
 * commands
 ******************************************************************************/

static void on_reply(redisAsyncContext *ac, void *rep, void *privdata)
{
    cmd_t *c = privdata;
    comet_redis_t *r = c->r;
    redisReply *reply = rep;

    if (!c->done) {
        apr_status_t status;
        if (!reply) {
            status = r->state == ST_CLOSED ? APR_ECONNABORTED : APR_ECONNRESET;
        }
        else {
            status = reply->type == REDIS_REPLY_ERROR ? APR_EGENERAL : APR_SUCCESS;
        }
        complete(r, c, status, reply);
    }
    free_cmd(c);
}

static apr_status_t send_cmd(comet_redis_t *r, cmd_t *c)
{
    if (redisAsyncFormattedCommand(r->link.ac, on_reply, c, c->buf, (size_t)c->len) != REDIS_OK) {
        return APR_ECONNRESET;        /* the context is being freed */
    }
    c->sent = 1;
    free(c->buf);
    c->buf = NULL;
    return APR_SUCCESS;
}

static void on_cmd_timeout(comet_loop_t *l, comet_loop_timer_t *t, apr_time_t now)
{
    cmd_t *c = COMET_LOOP_CONTAINER(t, cmd_t, timer);
    comet_redis_t *r = c->r;

    if (!c->sent) {
        unwait(r, c);
        complete(r, c, APR_TIMEUP, NULL);
        free_cmd(c);
        return;
    }
    /* its reply would come after the next command's: the connection is out
     * of step with our callbacks, and the server likely stuck */
    complete(r, c, APR_TIMEUP, NULL);
    if (r->state == ST_UP || r->state == ST_CONNECTING) {
        rlog(r, COMET_LOG_ERR, APR_TIMEUP, "a command was not answered in time: "
             "dropping the connection");
        drop(r, APR_TIMEUP, "a command was not answered in time");
    }
}

static apr_status_t submit(comet_redis_t *r, apr_interval_time_t timeout,
                           comet_redis_reply_fn *fn, void *baton, char *buf, int len)
{
    cmd_t *c;
    apr_status_t rv;

    if (len < 0 || !buf) {
        free(buf);
        return APR_EINVAL;
    }
    if (!(c = calloc(1, sizeof(*c)))) {
        free(buf);
        return APR_ENOMEM;
    }
    c->r = r;
    c->buf = buf;
    c->len = len;
    c->fn = fn;
    c->baton = baton;

    if (r->state == ST_DOWN) {
        complete(r, c, r->last_status, NULL);
        free_cmd(c);
        return APR_SUCCESS;
    }
    if (timeout > 0) {
        rv = comet_loop_timer_set(r->loop, &c->timer, apr_time_now() + timeout, on_cmd_timeout);
        if (rv != APR_SUCCESS) {
            free_cmd(c);
            return rv;
        }
    }
    if (r->state == ST_CONNECTING) {
        c->prev = r->wait_tail;
        if (r->wait_tail) r->wait_tail->next = c; else r->wait_head = c;
        r->wait_tail = c;
        return APR_SUCCESS;
    }
    if ((rv = send_cmd(r, c)) != APR_SUCCESS) {
        complete(r, c, rv, NULL);
        free_cmd(c);
    }
    return APR_SUCCESS;
}

apr_status_t comet_redis_vcommand(comet_redis_t *r, apr_interval_time_t timeout,
                                  comet_redis_reply_fn *fn, void *baton, const char *fmt,
                                  va_list ap)
{
    char *buf = NULL;
    int len;

    if (r->opts.subscriber || r->state == ST_CLOSED) {
        return APR_EINVAL;
    }
    len = redisvFormatCommand(&buf, fmt, ap);
    return submit(r, timeout, fn, baton, len < 0 ? NULL : buf, len);
}

apr_status_t comet_redis_command(comet_redis_t *r, apr_interval_time_t timeout,
                                 comet_redis_reply_fn *fn, void *baton, const char *fmt, ...)
{
    apr_status_t rv;
    va_list ap;

    va_start(ap, fmt);
    rv = comet_redis_vcommand(r, timeout, fn, baton, fmt, ap);
    va_end(ap);
    return rv;
}

apr_status_t comet_redis_command_argv(comet_redis_t *r, apr_interval_time_t timeout,
                                      comet_redis_reply_fn *fn, void *baton, int argc,
                                      const char **argv, const apr_size_t *argvlen)
{
    char *buf = NULL;
    int len;

    if (r->opts.subscriber || r->state == ST_CLOSED || argc < 1) {
        return APR_EINVAL;
    }
    len = redisFormatCommandArgv(&buf, argc, argv, argvlen);
    return submit(r, timeout, fn, baton, len < 0 ? NULL : buf, len);
}

/*******************************************************************************
 * subscriptions
 ******************************************************************************/

static void free_sub(comet_redis_sub_t *s)
{
    free(s->name);
    free(s);
}

static void on_sub(redisAsyncContext *ac, void *rep, void *privdata)
{
    comet_redis_sub_t *s = privdata;
    redisReply *reply = rep;
    comet_redis_msg_t m;
    const char *kind;

    if (!reply) {                     /* the context is going */
        s->in_hiredis = 0;
        if (s->dead) {
            free_sub(s);
        }
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3
        || reply->element[0]->type != REDIS_REPLY_STRING) {
        return;
    }
    kind = reply->element[0]->str;
    if (s->dead) {
        /* hiredis drops its entry on this reply (nothing else pending) */
        if (!strcasecmp(kind, "unsubscribe") || !strcasecmp(kind, "punsubscribe")) {
            s->in_hiredis = 0;
            free_sub(s);
        }
        return;
    }
    memset(&m, 0, sizeof(m));
    if (!strcasecmp(kind, "subscribe") || !strcasecmp(kind, "psubscribe")) {
        m.event = COMET_REDIS_SUB_READY;
        m.pattern = s->pattern ? s->name : NULL;
        m.channel = s->pattern ? NULL : s->name;
    }
    else if (!strcasecmp(kind, "message")) {
        m.event = COMET_REDIS_SUB_MESSAGE;
        m.channel = reply->element[1]->str;
        m.data = reply->element[2]->str;
        m.len = reply->element[2]->len;
    }
    else if (!strcasecmp(kind, "pmessage") && reply->elements >= 4) {
        m.event = COMET_REDIS_SUB_MESSAGE;
        m.pattern = reply->element[1]->str;
        m.channel = reply->element[2]->str;
        m.data = reply->element[3]->str;
        m.len = reply->element[3]->len;
    }
    else {
        return;
    }
    s->fn(s->r, &m, s->baton);
}

static void send_sub(comet_redis_t *r, comet_redis_sub_t *s)
{
    if (redisAsyncCommand(r->link.ac, on_sub, s, "%s %b", s->pattern ? "PSUBSCRIBE" : "SUBSCRIBE",
                          s->name, s->nlen) == REDIS_OK) {
        s->in_hiredis = 1;
    }
}

apr_status_t comet_redis_subscribe(comet_redis_t *r, int pattern, const char *name,
                                   comet_redis_msg_fn *fn, void *baton,
                                   comet_redis_sub_t **sub)
{
    comet_redis_sub_t *s;

    if (!r->opts.subscriber || r->state == ST_CLOSED || !name || !*name || !fn) {
        return APR_EINVAL;
    }
    for (s = r->subs; s; s = s->next) {
        if (s->pattern == !!pattern && !strcmp(s->name, name)) {
            return APR_EEXIST;
        }
    }
    if (!(s = calloc(1, sizeof(*s))) || !(s->name = strdup(name))) {
        free(s);
        return APR_ENOMEM;
    }
    s->r = r;
    s->pattern = !!pattern;
    s->nlen = strlen(name);
    s->fn = fn;
    s->baton = baton;
    s->next = r->subs;
    if (r->subs) r->subs->prev = s;
    r->subs = s;
    if (r->state == ST_UP) {
        send_sub(r, s);
    }
    if (sub) {
        *sub = s;
    }
    return APR_SUCCESS;
}

void comet_redis_unsubscribe(comet_redis_t *r, comet_redis_sub_t *s)
{
    if (!s || s->dead) {
        return;
    }
    if (s->prev) s->prev->next = s->next; else r->subs = s->next;
    if (s->next) s->next->prev = s->prev;
    s->next = s->prev = NULL;
    s->dead = 1;
    if (!s->in_hiredis) {
        free_sub(s);
        return;
    }
    /* freed on the "unsubscribe" reply, or when the context goes */
    redisAsyncCommand(r->link.ac, NULL, NULL, "%s %b", s->pattern ? "PUNSUBSCRIBE" : "UNSUBSCRIBE",
                      s->name, s->nlen);
}

/*******************************************************************************
 * pings: a server that stopped answering (stopped, a network gone quiet) is
 * found within ping_interval + connect_timeout, commands or not
 ******************************************************************************/

static void on_ping_late(comet_loop_t *l, comet_loop_timer_t *t, apr_time_t now)
{
    comet_redis_t *r = COMET_LOOP_CONTAINER(t, comet_redis_t, ping_wait);

    rlog(r, COMET_LOG_ERR, APR_TIMEUP, "no answer to a ping: dropping the connection");
    drop(r, APR_TIMEUP, "no answer to a ping");
}

static void on_hb(comet_redis_t *r, const comet_redis_msg_t *m, void *baton)
{
    if (m->event == COMET_REDIS_SUB_READY) {
        comet_loop_timer_cancel(r->loop, &r->ping_wait);
    }
}

static void on_ping_due(comet_loop_t *l, comet_loop_timer_t *t, apr_time_t now)
{
    comet_redis_t *r = COMET_LOOP_CONTAINER(t, comet_redis_t, ping_timer);
    char *buf = NULL;
    int len;

    if (r->state != ST_UP) {
        return;
    }
    if (r->opts.subscriber) {
        if (!comet_loop_timer_armed(&r->ping_wait)) {
            send_sub(r, &r->hb);
            comet_loop_timer_set(l, &r->ping_wait, now + r->opts.connect_timeout, on_ping_late);
        }
    }
    else {
        /* an ordinary command: its time-out drops the connection */
        len = redisFormatCommand(&buf, "PING");
        submit(r, r->opts.connect_timeout, NULL, NULL, len < 0 ? NULL : buf, len);
    }
    if (r->state == ST_UP) {
        comet_loop_timer_set(l, &r->ping_timer, now + r->opts.ping_interval, on_ping_due);
    }
}

/*******************************************************************************
 * connecting: (through Sentinel: the master's address, then) AUTH, SELECT,
 * (ROLE,) then up
 ******************************************************************************/

/* "host:port" or "[v6]:port" into buf */
static void fmt_addr(char *buf, apr_size_t len, const char *host, int port)
{
    apr_snprintf(buf, len, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
}

static void up(comet_redis_t *r)
{
    comet_redis_sub_t *s;
    cmd_t *c;

    comet_loop_timer_cancel(r->loop, &r->connect_timer);
    r->state = ST_UP;
    r->backoff = r->opts.retry_min;
    r->failures = 0;
    r->connects++;
    if (r->url.kind == COMET_REDIS_SENTINEL) {
        char addr[sizeof(r->master_up)];
        fmt_addr(addr, sizeof(addr), r->master_host, r->master_port);
        if (strcmp(addr, r->master_up)) {
            /* a failover (or the first master): worth a line of its own */
            if (r->master_up[0]) {
                rlog(r, COMET_LOG_WARN, APR_SUCCESS, "master '%s' changed: %s, was %s",
                     r->url.master, addr, r->master_up);
            }
            else {
                rlog(r, COMET_LOG_INFO, APR_SUCCESS, "master '%s' is %s", r->url.master, addr);
            }
            apr_cpystrn(r->master_up, addr, sizeof(r->master_up));
        }
        if (!r->watch.ac && !comet_loop_timer_armed(&r->watch_timer)) {
            /* from a timer: its io may have gone in this very turn */
            r->watch_sentinel = r->sentinel;
            comet_loop_timer_set(r->loop, &r->watch_timer, apr_time_now(), on_watch_open);
        }
    }
    rlog(r, r->connects > 1 ? COMET_LOG_WARN : COMET_LOG_INFO, APR_SUCCESS, "connected%s",
         r->connects > 1 ? " again" : "");
    for (s = r->subs; s; s = s->next) {
        send_sub(r, s);
    }
    if (r->opts.ping_interval > 0) {
        comet_loop_timer_set(r->loop, &r->ping_timer, apr_time_now() + r->opts.ping_interval,
                             on_ping_due);
    }
    /* what waited, in the order it was given */
    while ((c = r->wait_head) && r->state == ST_UP) {
        unwait(r, c);
        if (send_cmd(r, c) != APR_SUCCESS) {
            complete(r, c, APR_ECONNRESET, NULL);
            free_cmd(c);
        }
    }
    if (r->state == ST_UP && r->opts.state) {
        r->opts.state(r, 1, APR_SUCCESS, r->opts.state_baton);
    }
}

/*******************************************************************************
 * the watch: a subscription to +switch-master on a sentinel, so that a
 * failover that leaves the old master running (SENTINEL FAILOVER) moves us
 * at once rather than when Sentinel turns that one into a replica and kills
 * its clients (seconds later, writes going to it meanwhile). Best effort:
 * a lost watch is made again with the next sentinel after retry_max.
 ******************************************************************************/

static void on_watch_open(comet_loop_t *l, comet_loop_timer_t *t, apr_time_t now)
{
    comet_redis_t *r = COMET_LOOP_CONTAINER(t, comet_redis_t, watch_timer);

    if (r->state == ST_UP && !r->watch.ac) {
        watch_open(r, r->watch_sentinel);
    }
}

/* "+switch-master <name> <old ip> <old port> <new ip> <new port>" */
static void on_switch(redisAsyncContext *ac, void *rep, void *privdata)
{
    comet_redis_t *r = privdata;
    redisReply *reply = rep;
    char name[256], oldip[256], newip[256], why[300];
    int oldport, newport;

    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3
        || reply->element[0]->type != REDIS_REPLY_STRING
        || strcmp(reply->element[0]->str, "message")
        || reply->element[2]->type != REDIS_REPLY_STRING
        || sscanf(reply->element[2]->str, "%255s %255s %d %255s %d", name, oldip, &oldport,
                  newip, &newport) != 5
        || strcmp(name, r->url.master)) {
        return;
    }
    if (r->state != ST_UP
        || (!strcmp(newip, r->master_host) && newport == r->master_port)) {
        return;                       /* asking the sentinels, or there already */
    }
    apr_snprintf(why, sizeof(why), "Sentinel switched master '%s' to %s:%d", name, newip,
                 newport);
    rlog(r, COMET_LOG_WARN, APR_SUCCESS, "%s: leaving %s:%d", why, r->master_host,
         r->master_port);
    drop(r, APR_ECONNRESET, why);
}

static void watch_open(comet_redis_t *r, int i)
{
    const comet_redis_addr_t *a = &r->url.sentinels[i];
    char why[160];

    r->watch_sentinel = i;
    if (open_ctx(&r->watch, a->host, a->port, NULL, why, sizeof(why)) != APR_SUCCESS
        || redisAsyncCommand(r->watch.ac, on_switch, r, "SUBSCRIBE +switch-master")
           != REDIS_OK) {
        if (r->watch.ac) {
            apr_cpystrn(why, "cannot subscribe", sizeof(why));
            redisAsyncFree(r->watch.ac);  /* watch_gone arms the retry */
        }
        else {
            watch_gone(r, why);
        }
    }
}

/* ev_cleanup of the watch's context, or a watch that could not start */
static void watch_gone(comet_redis_t *r, const char *why)
{
    const comet_redis_addr_t *a = &r->url.sentinels[r->watch_sentinel];

    comet_loop_io_del(r->loop, &r->watch.io);
    r->watch.want = 0;
    r->watch.ac = NULL;
    if (r->state == ST_CLOSED) {
        return;
    }
    rlog(r, COMET_LOG_DEBUG, APR_SUCCESS, "+switch-master watch on sentinel %s%s%s:%d lost: "
         "%s (the next sentinel in %" APR_TIME_T_FMT " ms)", strchr(a->host, ':') ? "[" : "",
         a->host, strchr(a->host, ':') ? "]" : "", a->port, why,
         apr_time_as_msec(r->opts.retry_max));
    r->watch_sentinel = (r->watch_sentinel + 1) % r->url.nsentinels;
    comet_loop_timer_set(r->loop, &r->watch_timer, apr_time_now() + r->opts.retry_max,
                         on_watch_open);
}

/* ROLE's answer: ["master", ...] or ["slave", ...], ["sentinel", ...] */
static void check_role(comet_redis_t *r, const redisReply *reply)
{
    const char *role = reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1
                       && reply->element[0]->type == REDIS_REPLY_STRING
                       ? reply->element[0]->str : "?";
    char why[160];

    if (!strcmp(role, "master")) {
        up(r);
        return;
    }
    /* demoted, or a sentinel late to learn of a failover: the next round
     * starts with the next sentinel */
    apr_snprintf(why, sizeof(why), "ROLE says '%s', not 'master': asking the sentinels again",
                 role);
    r->sentinel = (r->sentinel + 1) % r->url.nsentinels;
    drop(r, APR_EAGAIN, why);
}

/* The replies of AUTH, SELECT, PING, ROLE; the baton is the step's name, and
 * the last step's answer makes the connection up. */
static void on_handshake(comet_redis_t *r, apr_status_t status, const redisReply *reply,
                         void *baton)
{
    const char *step = baton;
    char why[160];

    if (r->state != ST_CONNECTING || r->phase != PH_SERVER) {
        return;
    }
    if (status == APR_EGENERAL) {
        apr_snprintf(why, sizeof(why), "%s refused: %s", step, reply->str);
        /* a password refused (or missing: NOAUTH) is not the same
         * mistake as a database that does not exist */
        drop(r, !strcmp(step, "AUTH") || !strncmp(reply->str, "NOAUTH", 6)
                || !strncmp(reply->str, "WRONGPASS", 9) ? APR_EACCES
                : !strncmp(reply->str, "LOADING", 7) ? APR_EAGAIN : APR_EINVAL, why);
        return;
    }
    if (status != APR_SUCCESS || strcmp(step, r->last_step)) {
        return;                       /* going (ev_cleanup tells), or not the last */
    }
    if (!strcmp(step, "ROLE")) {
        check_role(r, reply);
        return;
    }
    up(r);
}

static void on_connect_timeout(comet_loop_t *l, comet_loop_timer_t *t, apr_time_t now)
{
    comet_redis_t *r = COMET_LOOP_CONTAINER(t, comet_redis_t, connect_timer);

    if (r->state == ST_CONNECTING) {
        drop(r, APR_TIMEUP, r->phase == PH_ASK ? "no answer in time"
             : r->url.kind == COMET_REDIS_SENTINEL
             ? "no answer to connect, AUTH, SELECT or ROLE in time"
             : "no answer to connect, AUTH or SELECT in time");
    }
}

/* Queue one command of a connection's start, answered to fn (baton: step). */
static apr_status_t handshake(comet_redis_t *r, comet_redis_reply_fn *fn, const char *step,
                              const char *fmt, ...)
{
    char *buf = NULL;
    cmd_t *c;
    va_list ap;
    int len;

    va_start(ap, fmt);
    len = redisvFormatCommand(&buf, fmt, ap);
    va_end(ap);
    if (len < 0 || !(c = calloc(1, sizeof(*c)))) {
        free(buf);
        return APR_ENOMEM;
    }
    c->r = r;
    c->buf = buf;
    c->len = len;
    c->fn = fn;
    c->baton = (void *)step;
    if (send_cmd(r, c) != APR_SUCCESS) {
        free_cmd(c);
        return APR_ECONNRESET;
    }
    r->last_step = step;
    return APR_SUCCESS;
}

/* A new context in k->ac on our hooks, or a failure (why filled, no context). */
static apr_status_t open_ctx(link_t *k, const char *host, int port, const char *path,
                             char *why, apr_size_t wlen)
{
    comet_redis_t *r = k->r;
    redisAsyncContext *ac = path ? redisAsyncConnectUnix(path) : redisAsyncConnect(host, port);
    apr_status_t rv;

    if (!ac) {
        apr_cpystrn(why, "out of memory", wlen);
        return APR_ENOMEM;
    }
    if (ac->err) {
        /* refused at once (a unix socket that is not there, ...) */
        rv = ac->c.err == REDIS_ERR_IO && errno ? APR_FROM_OS_ERROR(errno) : APR_ECONNREFUSED;
        apr_cpystrn(why, ac->errstr ? ac->errstr : "error", wlen);
        redisAsyncFree(ac);
        return rv;
    }
    /* watched from now on, for errors at least; the hooks add the rest */
    k->want = 0;
    if ((rv = comet_loop_io_add(r->loop, &k->io, ac->c.fd, 0, on_io)) != APR_SUCCESS) {
        apr_cpystrn(why, "cannot watch the socket", wlen);
        redisAsyncFree(ac);           /* no hooks yet: nothing of ours runs */
        return rv;
    }
    k->ac = ac;
    ac->data = r;
    ac->ev.data = k;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    return APR_SUCCESS;
}

static void arm_connect_timer(comet_redis_t *r)
{
    if (comet_loop_timer_set(r->loop, &r->connect_timer,
                             apr_time_now() + r->opts.connect_timeout, on_connect_timeout)
        != APR_SUCCESS) {
        drop(r, APR_ENOMEM, "cannot arm the connect timer");
    }
}

/* Connect to the server (through Sentinel: the master the sentinels gave). */
static void connect_server(comet_redis_t *r, const char *host, int port, const char *path)
{
    apr_status_t rv;
    char why[160];

    r->phase = PH_SERVER;
    if ((rv = open_ctx(&r->link, host, port, path, why, sizeof(why))) != APR_SUCCESS) {
        attempt_failed(r, rv, why);
        return;
    }
    /* queued in hiredis' buffer, written once connect(2) completes */
    if (r->url.password) {
        rv = r->url.user ? handshake(r, on_handshake, "AUTH", "AUTH %s %s", r->url.user,
                                     r->url.password)
                         : handshake(r, on_handshake, "AUTH", "AUTH %s", r->url.password);
    }
    if (rv == APR_SUCCESS && r->url.db) {
        rv = handshake(r, on_handshake, "SELECT", "SELECT %d", r->url.db);
    }
    if (rv == APR_SUCCESS && r->url.kind == COMET_REDIS_SENTINEL) {
        /* what the sentinels said may be stale: the server knows */
        rv = handshake(r, on_handshake, "ROLE", "ROLE");
    }
    else if (rv == APR_SUCCESS && !r->url.password && !r->url.db) {
        rv = handshake(r, on_handshake, "PING", "PING");
    }
    if (rv != APR_SUCCESS) {
        drop(r, rv, "cannot queue the handshake");
        return;
    }
    arm_connect_timer(r);
}

/*******************************************************************************
 * Sentinel: a round asks the sentinels in turn, from r->sentinel, until one
 * gives the master's address. Each step starts from step_timer: hiredis
 * calls us back from inside a context that is going, and the next one's
 * socket may not be watched from there.
 ******************************************************************************/

static void ask_sentinel(comet_redis_t *r);

static void on_step(comet_loop_t *l, comet_loop_timer_t *t, apr_time_t now)
{
    comet_redis_t *r = COMET_LOOP_CONTAINER(t, comet_redis_t, step_timer);

    if (r->state != ST_CONNECTING) {
        return;
    }
    if (r->found) {
        r->found = 0;
        connect_server(r, r->master_host, r->master_port, NULL);
        return;
    }
    ask_sentinel(r);
}

static void next_step(comet_redis_t *r)
{
    if (comet_loop_timer_set(r->loop, &r->step_timer, apr_time_now(), on_step)
        != APR_SUCCESS) {
        attempt_failed(r, APR_ENOMEM, "cannot arm the step timer");
    }
}

/* The sentinel asked now failed: say so, go to the next one. */
static void skip_sentinel(comet_redis_t *r, apr_status_t status, const char *why)
{
    const comet_redis_addr_t *a = &r->url.sentinels[r->sentinel];

    /* loud in the first round that fails, then quiet (every back-off) */
    rlog(r, r->failures ? COMET_LOG_DEBUG : COMET_LOG_WARN, status,
         "sentinel %s%s%s:%d skipped: %s", strchr(a->host, ':') ? "[" : "", a->host,
         strchr(a->host, ':') ? "]" : "", a->port, why);
    if (status != APR_ENOENT) {
        r->round_status = status;
    }
    r->asked++;
    r->sentinel = (r->sentinel + 1) % r->url.nsentinels;
}

/* SENTINEL get-master-addr-by-name: [host, port], or nil for a name the
 * sentinel does not monitor. */
static void on_sentinel(comet_redis_t *r, apr_status_t status, const redisReply *reply,
                        void *baton)
{
    char why[200];
    long port;

    if (r->state != ST_CONNECTING || r->phase != PH_ASK) {
        return;
    }
    if (status == APR_EGENERAL) {
        apr_snprintf(why, sizeof(why), "SENTINEL refused: %s", reply->str);
        drop(r, APR_EGENERAL, why);
        return;
    }
    if (status != APR_SUCCESS) {
        return;                       /* the context is going: ev_cleanup tells */
    }
    if (reply->type == REDIS_REPLY_NIL) {
        r->unknown++;
        apr_snprintf(why, sizeof(why), "it does not know master '%s'", r->url.master);
        drop(r, APR_ENOENT, why);
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2
        || reply->element[0]->type != REDIS_REPLY_STRING
        || reply->element[1]->type != REDIS_REPLY_STRING
        || !reply->element[0]->len || reply->element[0]->len >= sizeof(r->master_host)
        || (port = digits(reply->element[1]->str, reply->element[1]->len, 65535)) < 1) {
        drop(r, APR_EGENERAL, "its answer is not a host and a port");
        return;
    }
    if (strcmp(r->master_host, reply->element[0]->str) || r->master_port != (int)port) {
        char addr[sizeof(r->master_up)];
        apr_cpystrn(r->master_host, reply->element[0]->str, sizeof(r->master_host));
        r->master_port = (int)port;
        fmt_addr(addr, sizeof(addr), r->master_host, r->master_port);
        apr_snprintf(r->display, sizeof(r->display), "%s (master %s)", r->url.display, addr);
    }
    r->found = 1;
    drop(r, APR_SUCCESS, "asked");
}

/* ev_cleanup of a sentinel's context: the master next, or the next sentinel. */
static void sentinel_gone(comet_redis_t *r, apr_status_t status)
{
    if (!r->found) {
        skip_sentinel(r, status, r->why);
    }
    next_step(r);
}

static void ask_sentinel(comet_redis_t *r)
{
    const comet_redis_addr_t *a;
    apr_status_t rv;
    char why[200];

    while (r->asked < r->url.nsentinels) {
        a = &r->url.sentinels[r->sentinel];
        r->phase = PH_ASK;
        r->found = 0;
        if ((rv = open_ctx(&r->link, a->host, a->port, NULL, why, sizeof(why))) != APR_SUCCESS) {
            skip_sentinel(r, rv, why);
            continue;
        }
        if ((rv = handshake(r, on_sentinel, "SENTINEL", "SENTINEL get-master-addr-by-name %s",
                            r->url.master)) != APR_SUCCESS) {
            drop(r, rv, "cannot queue the question");
            return;
        }
        arm_connect_timer(r);
        return;
    }
    /* every sentinel failed: one failed attempt, the back-off as for a server */
    r->phase = PH_SERVER;
    if (r->unknown) {
        apr_snprintf(why, sizeof(why), "no sentinel knows master '%s' (%d of %d said so)",
                     r->url.master, r->unknown, r->url.nsentinels);
        attempt_failed(r, APR_ENOENT, why);
    }
    else {
        apr_snprintf(why, sizeof(why), "no sentinel answered for master '%s' (%d asked)",
                     r->url.master, r->url.nsentinels);
        attempt_failed(r, r->round_status, why);
    }
}

static void start_connect(comet_redis_t *r)
{
    comet_loop_timer_cancel(r->loop, &r->retry_timer);
    r->state = ST_CONNECTING;
    r->drop_status = APR_SUCCESS;
    if (r->url.kind == COMET_REDIS_SENTINEL) {
        r->asked = 0;
        r->unknown = 0;
        r->found = 0;
        r->round_status = APR_ECONNREFUSED;
        ask_sentinel(r);
        return;
    }
    connect_server(r, r->url.host, r->url.port,
                   r->url.kind == COMET_REDIS_UNIX ? r->url.path : NULL);
}

/*******************************************************************************
 * the client
 ******************************************************************************/

static apr_status_t cleanup(void *d)
{
    comet_redis_t *r = d;
    comet_redis_sub_t *s;

    r->state = ST_CLOSED;
    comet_loop_timer_cancel(r->loop, &r->retry_timer);
    comet_loop_timer_cancel(r->loop, &r->connect_timer);
    comet_loop_timer_cancel(r->loop, &r->ping_timer);
    comet_loop_timer_cancel(r->loop, &r->ping_wait);
    comet_loop_timer_cancel(r->loop, &r->step_timer);
    comet_loop_timer_cancel(r->loop, &r->watch_timer);
    if (r->watch.ac) {
        redisAsyncFree(r->watch.ac);
    }
    if (r->link.ac) {
        /* what hiredis holds gets APR_ECONNABORTED (on_reply, NULL reply) */
        redisAsyncFree(r->link.ac);
    }
    fail_waiting(r, APR_ECONNABORTED);
    while ((s = r->subs)) {
        r->subs = s->next;
        free_sub(s);
    }
    return APR_SUCCESS;
}

apr_status_t comet_redis_create(comet_redis_t **rp, apr_pool_t *p, comet_loop_t *loop,
                                const char *url, const comet_redis_opts_t *opts,
                                comet_log_fn *log, void *log_baton)
{
    comet_redis_t *r = apr_pcalloc(p, sizeof(*r));
    const char *err = NULL;

    r->pool = p;
    r->loop = loop;
    r->log = log;
    r->log_baton = log_baton;
    r->link.io.fd = -1;
    r->link.r = r;
    r->watch.io.fd = -1;
    r->watch.r = r;
    if (opts) {
        r->opts = *opts;
    }
    if (r->opts.connect_timeout <= 0) r->opts.connect_timeout = DEF_CONNECT_TIMEOUT;
    if (r->opts.retry_min <= 0) r->opts.retry_min = DEF_RETRY_MIN;
    if (r->opts.retry_max < r->opts.retry_min) {
        r->opts.retry_max = r->opts.retry_min > DEF_RETRY_MAX ? r->opts.retry_min : DEF_RETRY_MAX;
    }
    r->backoff = r->opts.retry_min;
    r->last_status = APR_ECONNREFUSED;
    r->hb.r = r;
    r->hb.name = (char *)HB_CHANNEL;
    r->hb.nlen = sizeof(HB_CHANNEL) - 1;
    r->hb.fn = on_hb;

    if (comet_redis_url_parse(p, url, &r->url, &err) != APR_SUCCESS) {
        if (log) {
            char msg[512];
            apr_snprintf(msg, sizeof(msg), "comet redis: bad URL: %s", err);
            log(log_baton, COMET_LOG_ERR, APR_EINVAL, msg);
        }
        return APR_EINVAL;
    }
    apr_pool_cleanup_register(p, r, cleanup, apr_pool_cleanup_null);
    start_connect(r);
    *rp = r;
    return APR_SUCCESS;
}

void comet_redis_destroy(comet_redis_t *r)
{
    apr_pool_cleanup_run(r->pool, r, cleanup);
}

int comet_redis_is_up(const comet_redis_t *r)
{
    return r->state == ST_UP;
}

const char *comet_redis_display(const comet_redis_t *r)
{
    return r->display[0] ? r->display : r->url.display;
}

apr_uint64_t comet_redis_connects(const comet_redis_t *r)
{
    return r->connects;
}
