/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/* Several servers on one Redis; see comet_cluster.h for the picture. */

#define _GNU_SOURCE 1           /* POLLRDHUP */
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <poll.h>
#include <sys/time.h>
#include <unistd.h>

#include <apr_hash.h>
#include <apr_strings.h>

#include <hiredis/hiredis.h>

#include "comet_cluster.h"

/* The key of a channel's stream; the braces keep a channel on one node of
 * a Redis Cluster, should one ever be used. */
#define KEY_FMT "comet:{%.*s}:s"
#define KEY_MAX (COMET_CHANNEL_MAX + 16)

/* The publish script's refusal, Redis' own word for min-replicas-to-write. */
#define NOREPLICAS "NOREPLICAS"

/* The id: above the channel's last and Redis' clock in microseconds, which
 * a double holds exactly (below 2^53), printed with %.0f (tostring would
 * write 1.8e+15). Trimmed by count, then by age, the key expiring with its
 * last message when there is a ttl.
 * ARGV[7] "1" (sentinel:// with a replica): nothing is written by a master
 * with no replica online. A master whose replica a failover has just
 * promoted takes writes until the sentinels demote it; WAIT refuses to
 * acknowledge them, but their notices would reach the servers still
 * following it and, with ids above what the new master gives meanwhile,
 * make them skip acknowledged messages when they catch up from it. */
static const char PUBLISH_LUA[] =
    "if ARGV[7] == '1' then\n"
    "  local _, online = string.gsub(redis.call('INFO', 'replication'), 'state=online', '')\n"
    "  if online == 0 then\n"
    "    return redis.error_reply('" NOREPLICAS " no replica online "
    "(a failover?): not written')\n"
    "  end\n"
    "end\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local id = now\n"
    "local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)\n"
    "if #last > 0 then\n"
    "  local l = tonumber(string.match(last[1][1], '^(%d+)'))\n"
    "  if l >= id then id = l + 1 end\n"
    "end\n"
    "local sid = string.format('%.0f', id)\n"
    "redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[4], sid .. '-0', 'd', ARGV[2], 'f', ARGV[3],\n"
    "           't', string.format('%.0f', now))\n"
    "local ttl = tonumber(ARGV[5])\n"
    "if ttl > 0 then\n"
    "  redis.call('XTRIM', KEYS[1], 'MINID', string.format('%.0f', now - ttl))\n"
    "  redis.call('PEXPIRE', KEYS[1], math.floor(ttl / 1000) + 1000)\n"
    "end\n"
    "local kind, body = 'm', ARGV[2]\n"
    "if #body > tonumber(ARGV[6]) then kind, body = 'M', '' end\n"
    "local n = redis.call('PUBLISH', '" COMET_CLUSTER_NOTICES "', kind .. ' ' .. sid .. ' ' ..\n"
    "  ARGV[3] .. ' ' .. ARGV[4] .. ' ' .. ARGV[5] .. ' ' .. ARGV[1] .. '\\n' .. body)\n"
    "return {sid, n}\n";

static const char DELETE_LUA[] =
    "local n = redis.call('DEL', KEYS[1])\n"
    "redis.call('PUBLISH', '" COMET_CLUSTER_NOTICES "', 'd 0 0 0 0 ' .. ARGV[1] .. '\\n')\n"
    "return n\n";

static int key_of(char *key, const char *chan, apr_size_t clen)
{
    return apr_snprintf(key, KEY_MAX, KEY_FMT, (int)clen, chan);
}

/* "<digits>-<digits>" -> the first part. */
static comet_id_t entry_id(const redisReply *r)
{
    if (!r || r->type != REDIS_REPLY_STRING) {
        return 0;
    }
    return (comet_id_t)apr_strtoi64(r->str, NULL, 10);
}

/* One XRANGE entry [id, [field, value, ...]] -> fn. @return fn's result,
 * or 0 for an entry not ours (skipped) */
static int entry_hand(const redisReply *e, comet_cluster_msg_fn *fn, void *baton)
{
    const redisReply *f;
    const char *data = NULL;
    apr_size_t len = 0, i;
    apr_uint32_t flags = 0;
    apr_time_t published = 0;
    comet_id_t id;

    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2
        || (f = e->element[1])->type != REDIS_REPLY_ARRAY || !(id = entry_id(e->element[0]))) {
        return 0;
    }
    for (i = 0; i + 1 < f->elements; i += 2) {
        const redisReply *k = f->element[i], *v = f->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING || k->len != 1) {
            continue;
        }
        switch (k->str[0]) {
        case 'd':
            data = v->str;
            len = v->len;
            break;
        case 'f':
            flags = (apr_uint32_t)strtoul(v->str, NULL, 10);
            break;
        case 't':
            published = (apr_time_t)apr_strtoi64(v->str, NULL, 10);
            break;
        }
    }
    return data ? fn(baton, id, flags, published, data, len) : 0;
}

/*******************************************************************************
 * a handler thread's connection
 ******************************************************************************/

struct comet_cluster_conn_t {
    apr_pool_t *pool;
    comet_redis_url_t url;
    apr_interval_time_t timeout;
    apr_size_t inline_max;
    redisContext *c;
    char sha[41];                 /* the publish script once loaded */
    char del_sha[41];
    apr_time_t retry_at;          /* until then, fail at once with last_rv */
    int readonly;                 /* the last command met a demoted master */
    int wait_replicas;            /* sentinel://: WAIT for a replica */
    int sentinel_replicas;        /* ... those the sentinels count */
    apr_status_t last_rv;
    char err[256];
};

apr_status_t comet_cluster_conn_create(comet_cluster_conn_t **cp,
                                       const comet_cluster_opts_t *opts, const char **err)
{
    apr_pool_t *p;
    comet_cluster_conn_t *c;
    apr_status_t rv;

    if ((rv = apr_pool_create_unmanaged_ex(&p, NULL, NULL)) != APR_SUCCESS) {
        return rv;
    }
    c = apr_pcalloc(p, sizeof(*c));
    c->pool = p;
    if ((rv = comet_redis_url_parse(p, opts->url, &c->url, err)) != APR_SUCCESS) {
        apr_pool_destroy(p);
        return rv;
    }
    c->timeout = opts->timeout > 0 ? opts->timeout : apr_time_from_sec(2);
    c->inline_max = opts->inline_max ? opts->inline_max : COMET_CLUSTER_INLINE_MAX;
    *cp = c;
    return APR_SUCCESS;
}

static void conn_drop(comet_cluster_conn_t *c)
{
    if (c->c) {
        redisFree(c->c);
        c->c = NULL;
    }
    c->sha[0] = c->del_sha[0] = '\0';
}

void comet_cluster_conn_destroy(comet_cluster_conn_t *c)
{
    if (c) {
        conn_drop(c);
        apr_pool_destroy(c->pool);
    }
}

const char *comet_cluster_conn_display(const comet_cluster_conn_t *c)
{
    return c->url.display;
}

/* hiredis' error of a context -> a status (the context is then dropped). */
static apr_status_t conn_status(comet_cluster_conn_t *c, const char **err)
{
    apr_status_t rv;

    if (!c->c) {
        rv = APR_ENOMEM;
        apr_cpystrn(c->err, "out of memory", sizeof(c->err));
    }
    else {
        switch (c->c->err) {
        case REDIS_ERR_IO:
            rv = errno == EAGAIN || errno == ETIMEDOUT ? APR_TIMEUP
               : errno ? APR_FROM_OS_ERROR(errno) : APR_ECONNRESET;
            break;
        case REDIS_ERR_EOF:
            rv = APR_ECONNRESET;
            break;
        default:
            rv = APR_EGENERAL;
        }
        apr_cpystrn(c->err, c->c->errstr[0] ? c->c->errstr : "connection lost",
                    sizeof(c->err));
    }
    conn_drop(c);
    *err = c->err;
    return rv;
}

/* One command, its reply in *out (freeReplyObject by the caller).
 * @return APR_SUCCESS, APR_EGENERAL (an error reply, kept in *out), or
 *         the connection's failure (dropped) */
static apr_status_t conn_call(comet_cluster_conn_t *c, int argc, const char **argv,
                              const size_t *lens, redisReply **out, const char **err)
{
    redisReply *r = redisCommandArgv(c->c, argc, argv, lens);

    *out = r;
    if (!r) {
        return conn_status(c, err);
    }
    if (r->type == REDIS_REPLY_ERROR) {
        apr_cpystrn(c->err, r->str, sizeof(c->err));
        *err = c->err;
        if (!strncmp(r->str, "READONLY", 8) || !strncmp(r->str, "MASTERDOWN", 10)
            || !strncmp(r->str, "LOADING", 7)
            || !strncmp(r->str, NOREPLICAS, sizeof(NOREPLICAS) - 1)) {
            /* a master demoted by a failover, one about to be, or one not
             * ready: the next connection asks the sentinels again;
             * refused, nothing written */
            conn_drop(c);
            c->readonly = 1;
        }
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

/* The replicas a sentinel lists for the master that count: the one a
 * failover is promoting, and those not down that replicate (role-reported
 * slave). The master's own list (ROLE) is not enough: one whose replica a
 * failover has just promoted has none, and would take writes that no
 * replica will ever have. A demoted master still reporting itself master
 * is left out, so that the new one takes writes until it is converted
 * (seconds later). */
static int sentinel_replicas(const redisReply *r)
{
    apr_size_t i, j;
    int n = 0;

    if (!r || r->type != REDIS_REPLY_ARRAY) {
        return 0;
    }
    for (i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        const char *flags = "", *role = "";
        if (e->type != REDIS_REPLY_ARRAY) {
            continue;
        }
        for (j = 0; j + 1 < e->elements; j += 2) {
            const redisReply *k = e->element[j], *v = e->element[j + 1];
            if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) {
                continue;
            }
            if (!strcmp(k->str, "flags")) {
                flags = v->str;
            }
            else if (!strcmp(k->str, "role-reported")) {
                role = v->str;
            }
        }
        if (strstr(flags, "promoted")
            || (!strcmp(role, "slave") && !strstr(flags, "s_down") && !strstr(flags, "o_down")
                && !strstr(flags, "disconnected"))) {
            n++;
        }
    }
    return n;
}

/* One sentinel: where the master is, and how many replicas it counts.
 * @return APR_SUCCESS, or why not (*err) */
static apr_status_t sentinel_ask(comet_cluster_conn_t *c, const comet_redis_addr_t *a,
                                 struct timeval tv, char *host, apr_size_t hlen, int *port,
                                 int *replicas, const char **err)
{
    redisContext *sc = redisConnectWithTimeout(a->host, a->port, tv);
    redisReply *r;
    apr_status_t rv;

    if (!sc || sc->err) {
        rv = sc && sc->err == REDIS_ERR_IO && errno ? APR_FROM_OS_ERROR(errno)
                                                    : APR_ECONNREFUSED;
        if (sc) {
            redisFree(sc);
        }
        return rv;
    }
    redisSetTimeout(sc, tv);
    r = redisCommand(sc, "SENTINEL get-master-addr-by-name %s", c->url.master);
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2
        && r->element[0]->type == REDIS_REPLY_STRING
        && r->element[1]->type == REDIS_REPLY_STRING) {
        apr_cpystrn(host, r->element[0]->str, hlen);
        *port = atoi(r->element[1]->str);
        freeReplyObject(r);
        r = redisCommand(sc, "SENTINEL REPLICAS %s", c->url.master);
        *replicas = sentinel_replicas(r);
        rv = APR_SUCCESS;
    }
    else {
        rv = r ? APR_ENOENT : APR_TIMEUP;
        *err = r ? "no sentinel knows the master's name" : "a sentinel did not answer";
    }
    if (r) {
        freeReplyObject(r);
    }
    redisFree(sc);
    return rv;
}

/* sentinel://: ask the sentinels in turn where the master is, each within
 * the time-out; the first that knows it answers. The others are asked
 * too, briefly, how many replicas they count for that master
 * (c->sentinel_replicas: the most any counts): only the one running a
 * failover flags the replica it promotes. @return APR_SUCCESS with host
 * (static in c) and port, else the last failure */
static apr_status_t conn_master(comet_cluster_conn_t *c, struct timeval tv, char *host,
                                apr_size_t hlen, int *port, const char **err)
{
    struct timeval brief = { 0, 200000 };
    apr_status_t rv = APR_ECONNREFUSED;
    int i, found = 0;

    *err = "no sentinel answered";
    c->sentinel_replicas = 0;
    for (i = 0; i < c->url.nsentinels; i++) {
        char h[256];
        int p = 0, n = 0;
        if (!found) {
            if ((rv = sentinel_ask(c, &c->url.sentinels[i], tv, host, hlen, port,
                                   &c->sentinel_replicas, err)) == APR_SUCCESS) {
                found = 1;
            }
        }
        else if (sentinel_ask(c, &c->url.sentinels[i], timercmp(&tv, &brief, <) ? tv : brief,
                              h, sizeof(h), &p, &n, err) == APR_SUCCESS
                 && p == *port && !strcmp(h, host) && n > c->sentinel_replicas) {
            c->sentinel_replicas = n;
        }
    }
    return found ? APR_SUCCESS : rv;
}

/* Connected, AUTH and SELECT done; or why not (then failing fast a while). */
static apr_status_t conn_ready(comet_cluster_conn_t *c, const char **err)
{
    struct timeval tv;
    apr_time_t now = apr_time_now();
    redisReply *r = NULL;
    apr_status_t rv;

    if (c->c) {
        struct pollfd pfd = { c->c->fd, POLLIN | POLLRDHUP, 0 };
        /* idle, a connection has nothing to read: if it has, Redis closed
         * it (a restart) and the command must not go to the dead one */
        if (poll(&pfd, 1, 0) == 0) {
            return APR_SUCCESS;
        }
        conn_drop(c);
        c->retry_at = 0;
    }
    if (now < c->retry_at) {
        *err = c->err;
        return c->last_rv;
    }
    tv.tv_sec = apr_time_sec(c->timeout);
    tv.tv_usec = apr_time_usec(c->timeout);
    if (c->url.kind == COMET_REDIS_SENTINEL) {
        char host[256];
        int port = 0;
        if ((rv = conn_master(c, tv, host, sizeof(host), &port, err)) != APR_SUCCESS) {
            apr_cpystrn(c->err, *err, sizeof(c->err));
            *err = c->err;
            goto failed;
        }
        c->c = redisConnectWithTimeout(host, port, tv);
    }
    else {
        c->c = c->url.kind == COMET_REDIS_UNIX ? redisConnectUnixWithTimeout(c->url.path, tv)
                                               : redisConnectWithTimeout(c->url.host,
                                                                         c->url.port, tv);
    }
    if (!c->c || c->c->err) {
        rv = conn_status(c, err);
        goto failed;
    }
    redisSetTimeout(c->c, tv);
    if (c->url.password) {
        const char *argv[3] = { "AUTH", c->url.user ? c->url.user : c->url.password,
                                c->url.password };
        size_t lens[3] = { 4, strlen(argv[1]), strlen(c->url.password) };
        rv = conn_call(c, c->url.user ? 3 : 2, argv, lens, &r, err);
        if (r) {
            freeReplyObject(r);
        }
        if (rv != APR_SUCCESS) {
            rv = rv == APR_EGENERAL ? APR_EACCES : rv;
            conn_drop(c);
            goto failed;
        }
    }
    if (c->url.db) {
        char db[16];
        const char *argv[2] = { "SELECT", db };
        size_t lens[2] = { 6, 0 };
        lens[1] = (size_t)apr_snprintf(db, sizeof(db), "%d", c->url.db);
        rv = conn_call(c, 2, argv, lens, &r, err);
        if (r) {
            freeReplyObject(r);
        }
        if (rv != APR_SUCCESS) {
            conn_drop(c);
            goto failed;
        }
    }
    if (c->url.kind == COMET_REDIS_SENTINEL) {
        /* a master the sentinels have not demoted yet may be one no more */
        const char *argv[1] = { "ROLE" };
        size_t lens[1] = { 4 };
        rv = conn_call(c, 1, argv, lens, &r, err);
        if (rv == APR_SUCCESS && (r->type != REDIS_REPLY_ARRAY || r->elements < 3
                                  || r->element[0]->type != REDIS_REPLY_STRING
                                  || strcmp(r->element[0]->str, "master"))) {
            *err = "the server the sentinels named is not a master (yet)";
            rv = APR_EAGAIN;
        }
        else if (rv == APR_SUCCESS) {
            /* with a replica, a publish is answered once it has it too */
            c->wait_replicas = c->sentinel_replicas > 0
                               || (r->element[2]->type == REDIS_REPLY_ARRAY
                                   && r->element[2]->elements > 0);
        }
        if (r) {
            freeReplyObject(r);
        }
        if (rv != APR_SUCCESS) {
            conn_drop(c);
            goto failed;
        }
    }
    c->retry_at = 0;
    return APR_SUCCESS;
failed:
    c->last_rv = rv;
    c->retry_at = now + apr_time_from_sec(1);
    return rv;
}

/* EVALSHA, loading the script on NOSCRIPT (a restarted or flushed Redis). */
static apr_status_t conn_eval(comet_cluster_conn_t *c, const char *script, char *sha,
                              const char *key, int nargs, const char **args,
                              const size_t *alens, redisReply **out, const char **err)
{
    const char *argv[16];
    size_t lens[16];
    redisReply *r = NULL;
    apr_status_t rv;
    int i, n = 0;

    if (!sha[0]) {
        const char *la[3] = { "SCRIPT", "LOAD", script };
        size_t ll[3] = { 6, 4, strlen(script) };
        if ((rv = conn_call(c, 3, la, ll, &r, err)) != APR_SUCCESS) {
            if (r) {
                freeReplyObject(r);
            }
            return rv;
        }
        if (r->type != REDIS_REPLY_STRING || r->len != 40) {
            freeReplyObject(r);
            *err = "SCRIPT LOAD: unexpected reply";
            return APR_EGENERAL;
        }
        memcpy(sha, r->str, 40);
        sha[40] = '\0';
        freeReplyObject(r);
    }
    argv[n] = "EVALSHA";
    lens[n++] = 7;
    argv[n] = sha;
    lens[n++] = 40;
    argv[n] = "1";
    lens[n++] = 1;
    argv[n] = key;
    lens[n++] = strlen(key);
    for (i = 0; i < nargs && n < 16; i++) {
        argv[n] = args[i];
        lens[n++] = alens[i];
    }
    rv = conn_call(c, n, argv, lens, out, err);
    if (rv == APR_EGENERAL && !strncmp((*out)->str, "NOSCRIPT", 8)) {
        freeReplyObject(*out);
        *out = NULL;
        sha[0] = '\0';
        return conn_eval(c, script, sha, key, nargs, args, alens, out, err);
    }
    return rv;
}

/* sentinel:// with a replica: the write is the group's once a replica has
 * it (WAIT). A master that has lost its replicas, one a failover has left
 * behind most likely, says 0: the publish is not acknowledged (what it
 * wrote there goes when the sentinels demote it), the connection is
 * dropped and the next asks the sentinels again. */
static apr_status_t conn_replicated(comet_cluster_conn_t *c, const char **err)
{
    char ms[24];
    const char *argv[3] = { "WAIT", "1", ms };
    size_t lens[3] = { 4, 1, 0 };
    /* a replica answers in a round trip; this long means it is gone */
    apr_interval_time_t t = c->timeout < apr_time_from_msec(500) ? c->timeout
                                                                : apr_time_from_msec(500);
    redisReply *r = NULL;
    apr_status_t rv;

    lens[2] = (size_t)apr_snprintf(ms, sizeof(ms), "%" APR_INT64_T_FMT,
                                   (apr_int64_t)apr_time_as_msec(t));
    rv = conn_call(c, 3, argv, lens, &r, err);
    if (rv == APR_SUCCESS && (r->type != REDIS_REPLY_INTEGER || r->integer < 1)) {
        apr_cpystrn(c->err, "no replica took the message in time (a failover?)",
                    sizeof(c->err));
        *err = c->err;
        conn_drop(c);
        rv = APR_TIMEUP;
    }
    if (r) {
        freeReplyObject(r);
    }
    return rv;
}

apr_status_t comet_cluster_publish(comet_cluster_conn_t *c, const char *chan, apr_size_t clen,
                                   const char *data, apr_size_t len, apr_uint32_t flags,
                                   const comet_limits_t *lim, comet_id_t *id,
                                   apr_uint32_t *servers, const char **err)
{
    char key[KEY_MAX], fl[16], buf[16], ttl[24], inl[24], name[COMET_CHANNEL_MAX + 1];
    const char *args[7];
    size_t lens[7];
    redisReply *r = NULL;
    apr_status_t rv;

    if (clen > COMET_CHANNEL_MAX || (rv = conn_ready(c, err)) != APR_SUCCESS) {
        return clen > COMET_CHANNEL_MAX ? APR_EINVAL : rv;
    }
    key_of(key, chan, clen);
    memcpy(name, chan, clen);
    name[clen] = '\0';
    args[0] = name;
    lens[0] = clen;
    args[1] = data;
    lens[1] = len;
    lens[2] = (size_t)apr_snprintf(fl, sizeof(fl), "%u", flags);
    args[2] = fl;
    lens[3] = (size_t)apr_snprintf(buf, sizeof(buf), "%u",
                                   lim->buffer_length ? lim->buffer_length : 1);
    args[3] = buf;
    lens[4] = (size_t)apr_snprintf(ttl, sizeof(ttl), "%" APR_INT64_T_FMT, (apr_int64_t)lim->ttl);
    args[4] = ttl;
    lens[5] = (size_t)apr_snprintf(inl, sizeof(inl), "%" APR_SIZE_T_FMT, c->inline_max);
    args[5] = inl;
    lens[6] = 1;
    args[6] = c->wait_replicas ? "1" : "0";
    c->readonly = 0;
    rv = conn_eval(c, PUBLISH_LUA, c->sha, key, 7, args, lens, &r, err);
    if (rv == APR_EGENERAL && c->readonly) {
        /* refused by a master demoted since: once more, on the new one */
        if (r) {
            freeReplyObject(r);
            r = NULL;
        }
        if ((rv = conn_ready(c, err)) == APR_SUCCESS) {
            args[6] = c->wait_replicas ? "1" : "0";
            rv = conn_eval(c, PUBLISH_LUA, c->sha, key, 7, args, lens, &r, err);
        }
    }
    if (rv == APR_SUCCESS) {
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2
            || !(*id = entry_id(r->element[0]))) {
            *err = "publish script: unexpected reply";
            rv = APR_EGENERAL;
        }
        else {
            *servers = r->element[1]->type == REDIS_REPLY_INTEGER
                     ? (apr_uint32_t)r->element[1]->integer : 0;
        }
    }
    if (r) {
        freeReplyObject(r);
        r = NULL;
    }
    if (rv == APR_SUCCESS && c->wait_replicas) {
        rv = conn_replicated(c, err);
    }
    return rv;
}

apr_status_t comet_cluster_range(comet_cluster_conn_t *c, const char *chan, apr_size_t clen,
                                 comet_id_t since, apr_size_t max, comet_cluster_msg_fn *fn,
                                 void *baton, const char **err)
{
    char key[KEY_MAX], from[32], count[24];
    const char *argv[6] = { "XRANGE", key, from, "+", "COUNT", count };
    size_t lens[6] = { 6, 0, 0, 1, 5, 0 };
    redisReply *r = NULL;
    apr_status_t rv;
    apr_size_t i;

    if ((rv = conn_ready(c, err)) != APR_SUCCESS) {
        return rv;
    }
    lens[1] = (size_t)key_of(key, chan, clen);
    lens[2] = (size_t)apr_snprintf(from, sizeof(from), "(%" APR_UINT64_T_FMT "-0", since);
    lens[5] = (size_t)apr_snprintf(count, sizeof(count), "%" APR_SIZE_T_FMT, max ? max : 1);
    rv = conn_call(c, 6, argv, lens, &r, err);
    if (rv == APR_SUCCESS && r->type == REDIS_REPLY_ARRAY) {
        for (i = 0; i < r->elements; i++) {
            if (entry_hand(r->element[i], fn, baton)) {
                break;
            }
        }
    }
    if (r) {
        freeReplyObject(r);
    }
    return rv;
}

apr_status_t comet_cluster_info(comet_cluster_conn_t *c, const char *chan, apr_size_t clen,
                                comet_channel_info_t *info, const char **err)
{
    char key[KEY_MAX];
    const char *argv[3][5] = {
        { "XLEN", key },
        { "XRANGE", key, "-", "+", "COUNT" },
        { "XREVRANGE", key, "+", "-", "COUNT" },
    };
    redisReply *r[3] = { NULL, NULL, NULL };
    apr_status_t rv;
    size_t klen;
    int i;

    memset(info, 0, sizeof(*info));
    if ((rv = conn_ready(c, err)) != APR_SUCCESS) {
        return rv;
    }
    klen = (size_t)key_of(key, chan, clen);
    /* a pipeline: one round trip */
    for (i = 0; i < 3; i++) {
        const char *argv1[6];
        size_t lens[6];
        int n = i ? 6 : 2, k;
        for (k = 0; k < n && k < 5; k++) {
            argv1[k] = argv[i][k];
            lens[k] = k == 1 ? klen : strlen(argv[i][k]);
        }
        if (i) {
            argv1[5] = "1";
            lens[5] = 1;
        }
        redisAppendCommandArgv(c->c, n, argv1, lens);
    }
    for (i = 0; i < 3; i++) {
        if (redisGetReply(c->c, (void **)&r[i]) != REDIS_OK) {
            rv = conn_status(c, err);
            break;
        }
    }
    if (rv == APR_SUCCESS) {
        if (r[0]->type != REDIS_REPLY_INTEGER || r[1]->type != REDIS_REPLY_ARRAY
            || r[2]->type != REDIS_REPLY_ARRAY) {
            *err = "unexpected reply to XLEN/XRANGE";
            rv = APR_EGENERAL;
        }
        else if (r[0]->integer == 0 && r[1]->elements == 0) {
            rv = APR_NOTFOUND;
        }
        else {
            info->messages = (apr_uint32_t)r[0]->integer;
            if (r[1]->elements) {
                info->first_id = entry_id(r[1]->element[0]->element[0]);
            }
            if (r[2]->elements) {
                info->last_id = entry_id(r[2]->element[0]->element[0]);
            }
        }
    }
    for (i = 0; i < 3; i++) {
        if (r[i]) {
            freeReplyObject(r[i]);
        }
    }
    return rv;
}

apr_status_t comet_cluster_remove(comet_cluster_conn_t *c, const char *chan, apr_size_t clen,
                                  const char **err)
{
    char key[KEY_MAX], name[COMET_CHANNEL_MAX + 1];
    const char *args[1] = { name };
    size_t lens[1] = { clen };
    redisReply *r = NULL;
    apr_status_t rv;

    if (clen > COMET_CHANNEL_MAX) {
        return APR_EINVAL;
    }
    if ((rv = conn_ready(c, err)) != APR_SUCCESS) {
        return rv;
    }
    key_of(key, chan, clen);
    memcpy(name, chan, clen);
    name[clen] = '\0';
    rv = conn_eval(c, DELETE_LUA, c->del_sha, key, 1, args, lens, &r, err);
    if (rv == APR_SUCCESS && r->type == REDIS_REPLY_INTEGER && r->integer == 0) {
        rv = APR_NOTFOUND;
    }
    if (r) {
        freeReplyObject(r);
    }
    return rv;
}

/*******************************************************************************
 * the supervisor's follower
 ******************************************************************************/

/* A notice waiting its turn: notices are applied in the order Redis sent
 * them, and one that waits for an XRANGE (a large message, a catch-up)
 * holds back those after it. */
typedef struct notice_t {
    struct notice_t *next;
    comet_cluster_t *cl;
    comet_loop_timer_t retry;     /* 'c': its XRANGE again, after a failure */
    char kind;                    /* 'm', 'd', or 'c' (a catch-up range) */
    int waiting;                  /* its XRANGE has not answered */
    int failed;                   /* ... and failed (logged once) */
    comet_id_t since, only;       /* 'c': the range */
    comet_id_t id;
    apr_uint32_t flags;
    comet_limits_t lim;
    char chan[COMET_CHANNEL_MAX + 1];
    apr_size_t clen;
    apr_size_t len;
    char data[1];                 /* 'm': the message */
} notice_t;

/* A lease this server holds or wants. */
typedef struct lease_t {
    struct lease_t *next;
    comet_cluster_t *cl;
    char name[COMET_CHANNEL_MAX + 1];
    char key[KEY_MAX];
    int held;
    int pending;                  /* a SET or a renewal is out */
    apr_time_t asked_at;          /* when the pending one went */
    apr_time_t valid_until;       /* held: counting from the last answer */
    apr_time_t next_at;
} lease_t;

struct comet_cluster_t {
    apr_pool_t *pool;
    comet_loop_t *loop;
    comet_store_t *st;
    comet_redis_t *sub, *cmd;
    comet_limits_t lim;
    comet_log_fn *log;
    void *log_baton;
    notice_t *head, *tail;
    int ready;
    apr_uint64_t imported, dropped;
    lease_t *leases;
    apr_hash_t *counted;          /* channel -> the count last told (apr_uint32_t) */
    apr_time_t counted_at;
    char me[128];                 /* this server, as a lease names it */
    apr_time_t publish_failed_at; /* the last publish failure logged */
};

static void cl_log(comet_cluster_t *cl, comet_log_level_t level, apr_status_t rv,
                 const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    int n;

    if (!cl->log) {
        return;
    }
    n = apr_snprintf(msg, sizeof(msg), "comet redis %s: ", comet_redis_display(cl->sub));
    va_start(ap, fmt);
    apr_vsnprintf(msg + n, sizeof(msg) - (apr_size_t)n, fmt, ap);
    va_end(ap);
    cl->log(cl->log_baton, level, rv, msg);
}

static notice_t *notice_new(comet_cluster_t *cl, char kind, const char *chan, apr_size_t clen,
                            apr_size_t len)
{
    notice_t *n = calloc(1, sizeof(*n) + len);

    if (!n) {
        cl_log(cl, COMET_LOG_ERR, APR_ENOMEM, "a notice is lost (out of memory)");
        return NULL;
    }
    n->cl = cl;
    n->kind = kind;
    memcpy(n->chan, chan, clen);
    n->clen = clen;
    n->len = len;
    if (cl->tail) {
        cl->tail->next = n;
    }
    else {
        cl->head = n;
    }
    cl->tail = n;
    return n;
}

/* Between two pages of a catch-up: time for the children's loops to read
 * what the last page brought before the next turns their buffer over. */
#define CATCHUP_PAUSE apr_time_from_msec(20)

/* How many entries one XRANGE of a catch-up asks for: half the channel's
 * buffer at most (256 at most), so that a page never pushes out of the
 * buffer what its streams have not read yet. */
static apr_size_t range_count(const notice_t *n)
{
    apr_size_t half = n->lim.buffer_length / 2;

    if (n->only) {
        return 1;
    }
    if (!n->lim.buffer_length || half > 256) {
        return 256;
    }
    return half < 1 ? 1 : half;
}

typedef struct {
    comet_cluster_t *cl;
    const notice_t *n;
} import_ctx_t;

static int import_one(void *baton, comet_id_t id, apr_uint32_t flags, apr_time_t published,
                      const char *data, apr_size_t len)
{
    import_ctx_t *x = baton;
    comet_cluster_t *cl = x->cl;
    comet_publish_result_t res;
    comet_limits_t lim = x->n->lim;
    apr_status_t rv;

    lim.max_size = len;
    rv = cl->st->import(cl->st, x->n->chan, x->n->clen, id, data, len, flags, published,
                        &lim, &res);
    if (rv == APR_SUCCESS) {
        cl->imported++;
    }
    else if (rv != APR_EEXIST) {
        cl->dropped++;
        cl_log(cl, COMET_LOG_ERR, rv, "%.*s: message %" APR_UINT64_T_FMT " not kept here",
             (int)x->n->clen, x->n->chan, id);
    }
    return 0;
}

/* Apply the notices at the head that are not waiting. */
static void notices_apply(comet_cluster_t *cl)
{
    notice_t *n;

    while ((n = cl->head) != NULL && !n->waiting) {
        import_ctx_t x = { cl, n };
        if (n->kind == 'm') {
            import_one(&x, n->id, n->flags, 0, n->data, n->len);
        }
        else if (n->kind == 'd') {
            apr_uint32_t subs = 0;
            if (cl->st->remove(cl->st, n->chan, n->clen, &subs) == APR_SUCCESS) {
                cl_log(cl, COMET_LOG_INFO, 0, "channel %.*s deleted, %u streams ended here",
                     (int)n->clen, n->chan, subs);
            }
        }
        cl->head = n->next;
        if (!cl->head) {
            cl->tail = NULL;
        }
        free(n);
    }
}

/* The answer to a notice's XRANGE: import what it brought. */
static void range_send(notice_t *n);

/* A range that could not be read: again soon (the command connection may
 * still be coming back after Redis did), holding the notices after it. */
static void on_range_retry(comet_loop_t *l, comet_loop_timer_t *t, apr_time_t now)
{
    notice_t *n = COMET_LOOP_CONTAINER(t, notice_t, retry);

    (void)l;
    (void)now;
    range_send(n);
}

/* The answer to a notice's XRANGE: import what it brought, then ask for
 * the rest if the answer was full. */
static void on_range(comet_redis_t *r, apr_status_t status, const redisReply *reply,
                     void *baton)
{
    notice_t *n = baton;
    comet_cluster_t *cl = n->cl;
    comet_id_t last = 0;
    apr_size_t i;

    (void)r;
    if (status == APR_ECONNABORTED) {
        return;                   /* stopping: the list is freed */
    }
    if (status != APR_SUCCESS || reply->type != REDIS_REPLY_ARRAY) {
        if (!n->failed) {
            cl_log(cl, COMET_LOG_WARN, status, "%.*s: cannot read the missed messages yet: "
                   "trying again", (int)n->clen, n->chan);
        }
        n->failed = 1;
        comet_loop_timer_set(cl->loop, &n->retry, apr_time_now() + apr_time_from_msec(250),
                             on_range_retry);
        return;
    }
    {
        import_ctx_t x = { cl, n };
        for (i = 0; i < reply->elements; i++) {
            const redisReply *e = reply->element[i];
            entry_hand(e, import_one, &x);
            if (e->type == REDIS_REPLY_ARRAY && e->elements == 2) {
                last = entry_id(e->element[0]);
            }
        }
    }
    if (!n->only && last && reply->elements >= range_count(n)) {
        n->since = last;          /* a full page: there may be more, after a pause */
        comet_loop_timer_set(cl->loop, &n->retry, apr_time_now() + CATCHUP_PAUSE,
                             on_range_retry);
        return;
    }
    if (n->failed) {
        cl_log(cl, COMET_LOG_INFO, 0, "%.*s: caught up", (int)n->clen, n->chan);
    }
    n->waiting = 0;
    notices_apply(cl);
}

static void range_send(notice_t *n)
{
    comet_cluster_t *cl = n->cl;
    char key[KEY_MAX], from[32], to[32], count[24];
    const char *argv[6] = { "XRANGE", key, from, to, "COUNT", count };
    apr_size_t lens[6] = { 6, 0, 0, 0, 5, 0 };
    apr_status_t rv;

    lens[1] = (apr_size_t)key_of(key, n->chan, n->clen);
    if (n->only) {
        lens[2] = (apr_size_t)apr_snprintf(from, sizeof(from), "%" APR_UINT64_T_FMT "-0",
                                           n->only);
        lens[3] = (apr_size_t)apr_snprintf(to, sizeof(to), "%s", from);
    }
    else {
        lens[2] = (apr_size_t)apr_snprintf(from, sizeof(from), "(%" APR_UINT64_T_FMT "-0",
                                           n->since);
        lens[3] = (apr_size_t)apr_snprintf(to, sizeof(to), "+");
    }
    lens[5] = (apr_size_t)apr_snprintf(count, sizeof(count), "%" APR_SIZE_T_FMT,
                                       range_count(n));
    rv = comet_redis_command_argv(cl->cmd, apr_time_from_sec(5), on_range, n, 6, argv, lens);
    if (rv != APR_SUCCESS) {
        /* (not called: out of memory) */
        comet_loop_timer_set(cl->loop, &n->retry, apr_time_now() + apr_time_from_msec(250),
                             on_range_retry);
    }
}

/* A notice that needs a range of the channel's stream: from `since`
 * (exclusive) on, or the one id `only`. */
static void notice_range(comet_cluster_t *cl, const char *chan, apr_size_t clen,
                         comet_id_t since, comet_id_t only, const comet_limits_t *lim)
{
    notice_t *n = notice_new(cl, 'c', chan, clen, 0);

    if (!n) {
        return;
    }
    n->lim = *lim;
    n->waiting = 1;
    n->since = since;
    n->only = only;
    range_send(n);
}

/* Parse "<kind> <id> <flags> <buffer> <ttl> <channel>\n<data>". */
static void on_notice(comet_cluster_t *cl, const char *s, apr_size_t len)
{
    const char *nl = memchr(s, '\n', len), *p, *chan;
    char head[COMET_CHANNEL_MAX + 128];
    apr_uint64_t id, flags, buf, ttl;
    apr_size_t hlen, clen;
    char kind;
    int used = 0;
    notice_t *n;

    if (!nl || (hlen = (apr_size_t)(nl - s)) >= sizeof(head) || hlen < 2) {
        cl_log(cl, COMET_LOG_WARN, APR_EINVAL, "a notice not understood (ignored)");
        return;
    }
    memcpy(head, s, hlen);
    head[hlen] = '\0';
    kind = head[0];
    if (sscanf(head + 1, " %" APR_UINT64_T_FMT " %" APR_UINT64_T_FMT " %" APR_UINT64_T_FMT
               " %" APR_UINT64_T_FMT " %n", &id, &flags, &buf, &ttl, &used) != 4 || !used) {
        cl_log(cl, COMET_LOG_WARN, APR_EINVAL, "a notice not understood (ignored)");
        return;
    }
    chan = head + 1 + used;
    clen = strlen(chan);
    if (!comet_channel_valid(chan, clen)) {
        cl_log(cl, COMET_LOG_WARN, APR_EINVAL, "a notice for an invalid channel (ignored)");
        return;
    }
    p = nl + 1;
    if (kind == 'm' || kind == 'M') {
        comet_limits_t lim = { (apr_uint32_t)buf, (apr_interval_time_t)ttl, 0, 0 };
        if (kind == 'M') {
            comet_channel_info_t info;
            /* a large message: copied only where the channel is */
            if (cl->st->info(cl->st, chan, clen, &info) == APR_SUCCESS) {
                notice_range(cl, chan, clen, 0, id, &lim);
            }
        }
        else if ((n = notice_new(cl, 'm', chan, clen, len - (apr_size_t)(p - s))) != NULL) {
            n->id = id;
            n->flags = (apr_uint32_t)flags;
            n->lim = lim;
            memcpy(n->data, p, n->len);
        }
    }
    else if (kind == 'd') {
        notice_new(cl, 'd', chan, clen, 0);
    }
    notices_apply(cl);
}

typedef struct {
    comet_cluster_t *cl;
} catchup_ctx_t;

/* A local channel: ask for what it missed. Sessions and the supervisor's
 * own channels (names with ':') stay local. */
static void catchup_one(void *baton, const char *name, apr_size_t len)
{
    catchup_ctx_t *x = baton;
    comet_channel_info_t info;

    if (memchr(name, ':', len) || !comet_channel_valid(name, len)
        || x->cl->st->info(x->cl->st, name, len, &info) != APR_SUCCESS
        || (info.flags & COMET_CHAN_SESSION)) {
        return;
    }
    notice_range(x->cl, name, len, info.last_id, 0, &x->cl->lim);
}

static void on_sub(comet_redis_t *r, const comet_redis_msg_t *m, void *baton)
{
    comet_cluster_t *cl = baton;
    catchup_ctx_t x = { cl };

    (void)r;
    if (m->event == COMET_REDIS_SUB_READY) {
        /* live from here: what came before it, by range, first */
        cl->st->session.list(cl->st, "", catchup_one, &x);
        if (!cl->ready) {
            cl_log(cl, COMET_LOG_INFO, 0, "following the channels of every server");
        }
        else {
            cl_log(cl, COMET_LOG_INFO, 0, "following again: catching up");
        }
        cl->ready = 1;
        return;
    }
    on_notice(cl, m->data, m->len);
}

static void on_state(comet_redis_t *r, int up, apr_status_t why, void *baton)
{
    comet_cluster_t *cl = baton;

    (void)r;
    if (!up && cl->ready) {
        cl_log(cl, COMET_LOG_ERR, why, "lost: messages wait in Redis until it is back");
    }
}

static void on_published(comet_redis_t *r, apr_status_t status, const redisReply *reply,
                         void *baton)
{
    comet_cluster_t *cl = baton;
    apr_time_t now;

    (void)r;
    (void)reply;
    if (status == APR_SUCCESS || status == APR_ECONNABORTED) {
        return;
    }
    /* a source printing while Redis is away: once a second in the log */
    now = apr_time_now();
    if (now - cl->publish_failed_at >= apr_time_from_sec(1)) {
        cl->publish_failed_at = now;
        cl_log(cl, COMET_LOG_ERR, status, "a source's line is lost: %s",
               status == APR_EGENERAL && reply && reply->str ? reply->str : "no answer");
    }
}

apr_status_t comet_cluster_publish_async(comet_cluster_t *cl, const char *chan,
                                         apr_size_t clen, const char *data, apr_size_t len,
                                         const comet_limits_t *lim)
{
    char key[KEY_MAX], name[COMET_CHANNEL_MAX + 1], buf[16], ttl[24], inl[24];
    const char *argv[10];
    apr_size_t lens[10];

    if (clen > COMET_CHANNEL_MAX) {
        return APR_EINVAL;
    }
    memcpy(name, chan, clen);
    name[clen] = '\0';
    argv[0] = "EVAL";
    argv[1] = PUBLISH_LUA;
    argv[2] = "1";
    argv[3] = key;
    argv[4] = name;
    argv[5] = data;
    argv[6] = "0";
    argv[7] = buf;
    argv[8] = ttl;
    argv[9] = inl;
    lens[0] = 4;
    lens[1] = sizeof(PUBLISH_LUA) - 1;
    lens[2] = 1;
    lens[3] = (apr_size_t)key_of(key, chan, clen);
    lens[4] = clen;
    lens[5] = len;
    lens[6] = 1;
    lens[7] = (apr_size_t)apr_snprintf(buf, sizeof(buf), "%u",
                                       lim->buffer_length ? lim->buffer_length : 1);
    lens[8] = (apr_size_t)apr_snprintf(ttl, sizeof(ttl), "%" APR_INT64_T_FMT,
                                       (apr_int64_t)lim->ttl);
    lens[9] = (apr_size_t)apr_snprintf(inl, sizeof(inl), "%d", COMET_CLUSTER_INLINE_MAX);
    return comet_redis_command_argv(cl->cmd, apr_time_from_sec(2), on_published, cl, 10,
                                    argv, lens);
}

/* Take the lease if free, keep it if ours: one script for both. */
static const char LEASE_LUA[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if v == false or v == ARGV[1] then\n"
    "  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
    "  return 1\n"
    "end\n"
    "return 0\n";

static void on_lease(comet_redis_t *r, apr_status_t status, const redisReply *reply,
                     void *baton)
{
    lease_t *l = baton;
    int ok;

    (void)r;
    if (status == APR_ECONNABORTED) {
        return;                   /* stopping: freed with the follower */
    }
    l->pending = 0;
    if (status != APR_SUCCESS) {
        /* no answer: what we had lasts until it would have run out */
        return;
    }
    ok = reply->type == REDIS_REPLY_INTEGER && reply->integer == 1;
    if (ok && !l->held) {
        cl_log(l->cl, COMET_LOG_INFO, 0, "%s: this server holds it", l->key);
    }
    else if (!ok && l->held) {
        cl_log(l->cl, COMET_LOG_WARN, 0, "%s: lost to another server", l->key);
    }
    l->held = ok;
    /* counted from when it was asked: Redis' timer started no earlier */
    l->valid_until = ok ? l->asked_at + COMET_CLUSTER_LEASE_TTL : 0;
}

int comet_cluster_lease(comet_cluster_t *cl, const char *name, apr_time_t now)
{
    lease_t *l;
    char ttl[24];

    for (l = cl->leases; l; l = l->next) {
        if (!strcmp(l->name, name)) {
            break;
        }
    }
    if (!l) {
        if (!(l = apr_pcalloc(cl->pool, sizeof(*l)))) {
            return 0;
        }
        l->cl = cl;
        apr_cpystrn(l->name, name, sizeof(l->name));
        apr_snprintf(l->key, sizeof(l->key), "comet:lease:{%s}", name);
        l->next = cl->leases;
        cl->leases = l;
    }
    if (l->held && now >= l->valid_until) {
        cl_log(cl, COMET_LOG_WARN, 0, "%s: not renewed in time: let go", l->key);
        l->held = 0;
    }
    if (!l->pending && now >= l->next_at) {
        apr_status_t rv;
        apr_snprintf(ttl, sizeof(ttl), "%" APR_INT64_T_FMT,
                     (apr_int64_t)apr_time_as_msec(COMET_CLUSTER_LEASE_TTL));
        l->pending = 1;
        l->asked_at = now;
        l->next_at = now + COMET_CLUSTER_LEASE_TTL / 3;
        rv = comet_redis_command(cl->cmd, COMET_CLUSTER_LEASE_TTL / 3, on_lease, l,
                                 "EVAL %s 1 %s %s %s", LEASE_LUA, l->key, cl->me, ttl);
        if (rv != APR_SUCCESS) {
            l->pending = 0;
        }
    }
    return l->held && now < l->valid_until;
}

#define SUBS_FMT "comet:subs:{%.*s}"

static void on_counted(comet_redis_t *r, apr_status_t status, const redisReply *reply,
                       void *baton)
{
    (void)r;
    (void)status;
    (void)reply;
    (void)baton;                  /* figures: the next tick tells again */
}

typedef struct {
    comet_cluster_t *cl;
    apr_time_t now;
} count_ctx_t;

static void count_one(void *baton, const char *name, apr_size_t len)
{
    count_ctx_t *x = baton;
    comet_cluster_t *cl = x->cl;
    comet_channel_info_t info;
    apr_uint32_t *last;
    char key[KEY_MAX + 8], val[48];

    if (memchr(name, ':', len) || !comet_channel_valid(name, len)
        || cl->st->info(cl->st, name, len, &info) != APR_SUCCESS
        || (info.flags & COMET_CHAN_SESSION)) {
        return;
    }
    last = apr_hash_get(cl->counted, name, (apr_ssize_t)len);
    if (info.subscribers == 0 && !last) {
        return;                   /* nobody here, and Redis knows it */
    }
    apr_snprintf(key, sizeof(key), SUBS_FMT, (int)len, name);
    if (info.subscribers == 0) {
        comet_redis_command(cl->cmd, apr_time_from_sec(2), on_counted, NULL, "HDEL %s %s",
                            key, cl->me);
        apr_hash_set(cl->counted, name, (apr_ssize_t)len, NULL);
        return;
    }
    apr_snprintf(val, sizeof(val), "%u %" APR_TIME_T_FMT, info.subscribers,
                 apr_time_sec(x->now));
    comet_redis_command(cl->cmd, apr_time_from_sec(2), on_counted, NULL, "HSET %s %s %s",
                        key, cl->me, val);
    comet_redis_command(cl->cmd, apr_time_from_sec(2), on_counted, NULL, "PEXPIRE %s %d",
                        key, (int)apr_time_as_msec(COMET_CLUSTER_COUNTS_STALE * 3));
    if (!last) {
        /* (pool memory: a channel counted once keeps its key until the
         * supervisor ends; channels are few next to their subscribers) */
        last = apr_palloc(cl->pool, sizeof(*last));
        apr_hash_set(cl->counted, apr_pstrmemdup(cl->pool, name, len), (apr_ssize_t)len, last);
    }
    *last = info.subscribers;
}

void comet_cluster_tick(comet_cluster_t *cl, apr_time_t now)
{
    count_ctx_t x = { cl, now };

    if (!cl || !cl->ready || now - cl->counted_at < COMET_CLUSTER_COUNTS_EVERY) {
        return;
    }
    cl->counted_at = now;
    cl->st->session.list(cl->st, "", count_one, &x);
}

apr_status_t comet_cluster_subscribers(comet_cluster_conn_t *c, const char *chan,
                                       apr_size_t clen, apr_uint32_t *n, const char **err)
{
    char key[KEY_MAX + 8];
    const char *argv[2] = { "HGETALL", key };
    size_t lens[2] = { 7, 0 };
    apr_int64_t now = apr_time_sec(apr_time_now());
    redisReply *r = NULL;
    apr_status_t rv;
    apr_size_t i;

    *n = 0;
    if ((rv = conn_ready(c, err)) != APR_SUCCESS) {
        return rv;
    }
    lens[1] = (size_t)apr_snprintf(key, sizeof(key), SUBS_FMT, (int)clen, chan);
    rv = conn_call(c, 2, argv, lens, &r, err);
    if (rv == APR_SUCCESS && r->type == REDIS_REPLY_ARRAY) {
        for (i = 0; i + 1 < r->elements; i += 2) {
            const redisReply *v = r->element[i + 1];
            unsigned long count;
            long long at;
            if (v->type == REDIS_REPLY_STRING && sscanf(v->str, "%lu %lld", &count, &at) == 2
                && now - at <= apr_time_sec(COMET_CLUSTER_COUNTS_STALE)) {
                *n += (apr_uint32_t)count;
            }
        }
    }
    if (r) {
        freeReplyObject(r);
    }
    return rv;
}

#define SESS_FMT "comet:sess:{%.*s}"

void comet_cluster_session(comet_cluster_t *cl, const char *name, apr_size_t len, int open)
{
    char key[KEY_MAX + 8];

    if (!cl) {
        return;
    }
    apr_snprintf(key, sizeof(key), SESS_FMT, (int)len, name);
    if (open) {
        comet_redis_command(cl->cmd, apr_time_from_sec(2), on_counted, NULL,
                            "SET %s %s PX 86400000", key, cl->me);
    }
    else {
        comet_redis_command(cl->cmd, apr_time_from_sec(2), on_counted, NULL, "DEL %s", key);
    }
}

apr_status_t comet_cluster_session_known(comet_cluster_conn_t *c, const char *name,
                                         apr_size_t len, int *known, const char **err)
{
    char key[KEY_MAX + 8];
    const char *argv[2] = { "EXISTS", key };
    size_t lens[2] = { 6, 0 };
    redisReply *r = NULL;
    apr_status_t rv;

    *known = 0;
    if ((rv = conn_ready(c, err)) != APR_SUCCESS) {
        return rv;
    }
    lens[1] = (size_t)apr_snprintf(key, sizeof(key), SESS_FMT, (int)len, name);
    rv = conn_call(c, 2, argv, lens, &r, err);
    if (rv == APR_SUCCESS) {
        *known = r->type == REDIS_REPLY_INTEGER && r->integer > 0;
    }
    if (r) {
        freeReplyObject(r);
    }
    return rv;
}

apr_status_t comet_cluster_follow(comet_cluster_t **clp, apr_pool_t *p, comet_loop_t *loop,
                                  comet_store_t *st, const char *url,
                                  const comet_limits_t *lim, comet_log_fn *log,
                                  void *log_baton)
{
    comet_cluster_t *cl = apr_pcalloc(p, sizeof(*cl));
    comet_redis_opts_t so = { 0 }, co = { 0 };
    apr_status_t rv;

    cl->pool = p;
    cl->loop = loop;
    cl->st = st;
    cl->lim = *lim;
    cl->counted = apr_hash_make(p);
    cl->log = log;
    cl->log_baton = log_baton;
    {
        char host[64] = "";
        if (gethostname(host, sizeof(host) - 1) != 0) {
            apr_cpystrn(host, "?", sizeof(host));
        }
        /* the supervisor's: the same when its follower is made again */
        apr_snprintf(cl->me, sizeof(cl->me), "%s:%d", host, (int)getpid());
    }
    so.subscriber = 1;
    so.ping_interval = apr_time_from_sec(5);
    /* back within a second of Redis: what is published meanwhile must
     * still be in the channel's stream (MAXLEN CometMessageBuffer) when
     * the catch-up reads it */
    so.retry_max = co.retry_max = apr_time_from_sec(1);
    so.state = on_state;
    so.state_baton = cl;
    co.ping_interval = apr_time_from_sec(5);
    if ((rv = comet_redis_create(&cl->cmd, p, loop, url, &co, log, log_baton)) != APR_SUCCESS) {
        return rv;
    }
    if ((rv = comet_redis_create(&cl->sub, p, loop, url, &so, log, log_baton)) != APR_SUCCESS) {
        comet_redis_destroy(cl->cmd);
        return rv;
    }
    if ((rv = comet_redis_subscribe(cl->sub, 0, COMET_CLUSTER_NOTICES, on_sub, cl, NULL))
        != APR_SUCCESS) {
        comet_redis_destroy(cl->sub);
        comet_redis_destroy(cl->cmd);
        return rv;
    }
    *clp = cl;
    return APR_SUCCESS;
}

void comet_cluster_stop(comet_cluster_t *cl)
{
    notice_t *n;

    if (!cl) {
        return;
    }
    comet_redis_destroy(cl->sub);
    comet_redis_destroy(cl->cmd);
    while ((n = cl->head) != NULL) {
        cl->head = n->next;
        comet_loop_timer_cancel(cl->loop, &n->retry);
        free(n);
    }
    cl->tail = NULL;
}

int comet_cluster_ready(const comet_cluster_t *cl)
{
    return cl && cl->ready;
}
