/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/* CometRedis in a child; see comet_redisconn.h. */

#include <apr_thread_proc.h>
#include <apr_portable.h>

#include "comet_redisconn.h"
#include "comet_proc.h"
#include "comet_request.h"

/* A command to Redis that takes longer than this fails (503). */
#define REDIS_TIMEOUT apr_time_from_sec(2)

static apr_threadkey_t *conn_key;

static void conn_free(void *data)
{
    comet_cluster_conn_destroy(data);
}

void comet_redisconn_child_init(apr_pool_t *pchild, server_rec *s)
{
    const comet_server_conf_t *sc = comet_config_server(s);
    apr_status_t rv;

    if (!sc->redis) {
        return;
    }
    rv = apr_threadkey_private_create(&conn_key, conn_free, pchild);
    if (rv != APR_SUCCESS) {
        conn_key = NULL;
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, COMET_LOGNO(00450)
                     "CometRedis: cannot keep a connection per thread: publishes will fail");
    }
}

int comet_redisconn_enabled(const request_rec *r)
{
    return comet_config_server(r->server)->redis != NULL;
}

comet_cluster_conn_t *comet_redisconn_get(request_rec *r, apr_status_t *rv)
{
    const comet_server_conf_t *sc = comet_config_server(r->server);
    comet_cluster_opts_t opts = { 0 };
    comet_cluster_conn_t *c = NULL;
    const char *err = NULL;

    *rv = APR_SUCCESS;
    if (!sc->redis) {
        return NULL;
    }
    if (!conn_key) {
        *rv = APR_ENOTIMPL;
        return NULL;
    }
    if (apr_threadkey_private_get((void **)&c, conn_key) == APR_SUCCESS && c) {
        return c;
    }
    opts.url = sc->redis;
    opts.timeout = REDIS_TIMEOUT;
    if ((*rv = comet_cluster_conn_create(&c, &opts, &err)) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, *rv, r, COMET_LOGNO(00451)
                      "CometRedis %s: %s", sc->redis, err ? err : "cannot be used");
        return NULL;
    }
    apr_threadkey_private_set(c, conn_key);
    return c;
}

typedef struct {
    request_rec *r;
    const char *chan;
    apr_size_t clen;
    comet_limits_t lim;
    apr_size_t n;
} backfill_t;

static int backfill_one(void *baton, comet_id_t id, apr_uint32_t flags, apr_time_t published,
                        const char *data, apr_size_t len)
{
    backfill_t *b = baton;
    comet_publish_result_t res;
    comet_limits_t lim = b->lim;

    lim.max_size = len;
    if (comet_proc.store->import(comet_proc.store, b->chan, b->clen, id, data, len, flags,
                                 published, &lim, &res) == APR_SUCCESS) {
        b->n++;
    }
    return 0;
}

void comet_redisconn_backfill(request_rec *r, const comet_dir_conf_t *conf, const char *chan,
                              apr_size_t clen, comet_id_t since)
{
    comet_channel_info_t info;
    comet_cluster_conn_t *c;
    backfill_t b;
    const char *err = NULL;
    apr_status_t rv;

    if (since == COMET_ID_NONE || !comet_redisconn_enabled(r)) {
        return;
    }
    /* this server's copy is whole from its first message on */
    if (comet_proc.store->info(comet_proc.store, chan, clen, &info) == APR_SUCCESS
        && info.messages && info.first_id <= since) {
        return;
    }
    if (!(c = comet_redisconn_get(r, &rv))) {
        return;
    }
    memset(&b, 0, sizeof(b));
    b.r = r;
    b.chan = chan;
    b.clen = clen;
    b.lim.buffer_length = (apr_uint32_t)COMET_CONF(conf, COMET_CONF_BUFFER_LENGTH);
    b.lim.ttl = COMET_CONF(conf, COMET_CONF_TTL);
    rv = comet_cluster_range(c, chan, clen, since, b.lim.buffer_length, backfill_one, &b, &err);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r, COMET_LOGNO(00452)
                      "CometRedis %s: cannot read what %.*s had after %" APR_UINT64_T_FMT
                      " (%s): the stream replays what this server has",
                      comet_cluster_conn_display(c), (int)clen, chan, since, err ? err : "");
        return;
    }
    ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r, "comet: %.*s: %" APR_SIZE_T_FMT
                  " messages after %" APR_UINT64_T_FMT " brought from Redis", (int)clen, chan,
                  b.n, since);
}
