/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/* The publish API; see comet_publish.h. */

#include <unistd.h>
#include <poll.h>

#include <apr_strings.h>

#include <http_core.h>
#include <http_protocol.h>
#include <http_request.h>

#include "comet_publish.h"
#include "comet_config.h"
#include "comet_proc.h"
#include "comet_redisconn.h"
#include "comet_request.h"

/* A publisher often sends its next message as soon as it has the answer.
 * Send the answer now and wait a moment for that next request: if it comes,
 * httpd finds it buffered when this request ends and reads it on this
 * thread, instead of handing the connection to the listener and back. */
static void linger(request_rec *r, apr_interval_time_t wait)
{
    conn_rec *c = r->connection;
    apr_socket_t *sock = ap_get_conn_socket(c);
    apr_bucket_brigade *bb;
    apr_os_sock_t fd;
    struct pollfd pfd;

    if (wait <= 0 || c->keepalive == AP_CONN_CLOSE || c->master || !sock) {
        return;
    }
    ap_finalize_request_protocol(r);
    bb = apr_brigade_create(r->pool, c->bucket_alloc);
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_flush_create(c->bucket_alloc));
    if (ap_pass_brigade(c->output_filters, bb) != APR_SUCCESS || c->aborted) {
        return;
    }
    apr_os_sock_get(&fd, sock);
    pfd.fd = fd;
    pfd.events = POLLIN;
    pfd.revents = 0;
    (void)poll(&pfd, 1, (int)((wait + 999) / 1000));
}

/* The store's answer to a publish, as an HTTP status. */
static int publish_status(request_rec *r, apr_status_t rv)
{
    if (rv == APR_ENOSPC) {
        return comet_request_error(r, HTTP_INSUFFICIENT_STORAGE, APLOG_ERR, rv,
                                   "the channel store is full: raise CometSharedMemory, lower "
                                   "CometMessageBuffer or CometMessageTTL");
    }
    if (rv == APR_EAGAIN) {
        return comet_request_error(r, HTTP_SERVICE_UNAVAILABLE, APLOG_WARNING, rv,
                                   "CometMaxChannels reached: no new channel");
    }
    return comet_request_error(r, HTTP_INTERNAL_SERVER_ERROR, APLOG_ERR, rv, "publish failed");
}

/* CometRedis: Redis could not be reached or refused: 503, the log naming it. */
static int redis_status(request_rec *r, comet_cluster_conn_t *c, apr_status_t rv,
                        const char *what, const char *err)
{
    if (!c) {
        return comet_request_error(r, HTTP_SERVICE_UNAVAILABLE, APLOG_ERR, rv,
                                   apr_psprintf(r->pool, "%s: no connection to Redis", what));
    }
    return comet_request_error(r, HTTP_SERVICE_UNAVAILABLE, APLOG_ERR, rv,
                               apr_psprintf(r->pool, "%s: Redis at %s: %s", what,
                                            comet_cluster_conn_display(c),
                                            err ? err : "unavailable"));
}

/* CometRedis: the message is the channel's once Redis has it; every
 * server's supervisor then brings it to its subscribers (this one's too). */
static int publish_redis(request_rec *r, const comet_dir_conf_t *conf, const char *chan,
                         apr_size_t clen, const char *data, apr_size_t len,
                         const comet_limits_t *lim)
{
    comet_cluster_conn_t *c;
    comet_channel_info_t info;
    comet_buf_t b = { 0 };
    comet_json_t j;
    const char *err = NULL;
    comet_id_t id = 0;
    apr_uint32_t servers = 0;
    apr_status_t rv;
    int rc;

    if (!(c = comet_redisconn_get(r, &rv))) {
        return redis_status(r, NULL, rv, "publish refused", NULL);
    }
    rv = comet_cluster_publish(c, chan, clen, data, len, 0, lim, &id, &servers, &err);
    if (rv != APR_SUCCESS) {
        return redis_status(r, c, rv, "publish refused", err);
    }
    ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r, "comet: published %" APR_UINT64_T_FMT
                  " (%" APR_SIZE_T_FMT " bytes) through Redis to %u servers", id, len, servers);
    comet_json_start(&j, &b, COMET_JSON_SPACED);
    comet_json_open(&j, NULL, '{');
    comet_json_str(&j, "channel", chan, clen);
    comet_json_u64(&j, "id", id);
    /* this server's: the others' are theirs to count */
    comet_json_u64(&j, "subscribers",
                   comet_proc.store->info(comet_proc.store, chan, clen, &info) == APR_SUCCESS
                   ? info.subscribers : 0);
    comet_json_u64(&j, "servers", servers);
    comet_json_close(&j);
    rc = comet_request_json(r, HTTP_CREATED, &j);
    linger(r, COMET_CONF(conf, COMET_CONF_PUBLISH_LINGER));
    return rc;
}

static int publish(request_rec *r, const comet_dir_conf_t *conf, const char *chan,
                   apr_size_t clen)
{
    comet_limits_t lim = { 0 };
    comet_publish_result_t res;
    comet_buf_t b = { 0 };
    comet_json_t j;
    char *data = NULL;
    apr_size_t len = 0;
    apr_status_t rv;
    int rc;

    lim.buffer_length = (apr_uint32_t)COMET_CONF(conf, COMET_CONF_BUFFER_LENGTH);
    lim.ttl = COMET_CONF(conf, COMET_CONF_TTL);
    lim.max_size = (apr_size_t)COMET_CONF(conf, COMET_CONF_MAX_MESSAGE);
    rc = comet_request_read_body(r, (apr_off_t)lim.max_size, &data, &len);
    if (rc == HTTP_REQUEST_ENTITY_TOO_LARGE) {
        return comet_request_error(r, rc, APLOG_INFO, 0, apr_psprintf(r->pool,
                                   "message larger than CometMaxMessageSize (%" APR_SIZE_T_FMT
                                   " bytes)", lim.max_size));
    }
    if (rc != OK) {
        return comet_request_error(r, rc, APLOG_INFO, 0, "cannot read the message body");
    }
    if (comet_redisconn_enabled(r)) {
        return publish_redis(r, conf, chan, clen, data, len, &lim);
    }
    rv = comet_proc.store->publish(comet_proc.store, chan, clen, data, len, 0, &lim, &res);
    if (rv != APR_SUCCESS) {
        return publish_status(r, rv);
    }
    ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r, "comet: published %" APR_UINT64_T_FMT
                  " (%" APR_SIZE_T_FMT " bytes) to %u subscribers", res.id, len,
                  res.subscribers);
    comet_json_start(&j, &b, COMET_JSON_SPACED);
    comet_json_open(&j, NULL, '{');
    comet_json_str(&j, "channel", chan, clen);
    comet_json_u64(&j, "id", res.id);
    comet_json_u64(&j, "subscribers", res.subscribers);
    comet_json_close(&j);
    rc = comet_request_json(r, HTTP_CREATED, &j);
    linger(r, COMET_CONF(conf, COMET_CONF_PUBLISH_LINGER));
    return rc;
}

/* A channel the store could not look at or delete: 404 or 500. */
static int channel_status(request_rec *r, apr_status_t rv, const char *what)
{
    if (rv == APR_NOTFOUND) {
        return comet_request_error(r, HTTP_NOT_FOUND, APLOG_DEBUG, 0, "no such channel");
    }
    return comet_request_error(r, HTTP_INTERNAL_SERVER_ERROR, APLOG_ERR, rv, what);
}

static int channel_get(request_rec *r, const char *chan, apr_size_t clen)
{
    comet_channel_info_t info;
    comet_buf_t b = { 0 };
    comet_json_t j;
    apr_status_t rv = comet_proc.store->info(comet_proc.store, chan, clen, &info);

    if (comet_redisconn_enabled(r)) {
        /* the messages are Redis'; subscribers and dates this server's */
        comet_channel_info_t local = info, shared;
        comet_cluster_conn_t *c;
        const char *err = NULL;

        if (rv != APR_SUCCESS) {
            memset(&local, 0, sizeof(local));
        }
        c = comet_redisconn_get(r, &rv);

        if (!c || (rv = comet_cluster_info(c, chan, clen, &shared, &err)) != APR_SUCCESS) {
            if (rv != APR_NOTFOUND) {
                return redis_status(r, c, rv, "channel info failed", err);
            }
            if (!local.created) {
                return channel_status(r, rv, "channel info failed");
            }
            /* followed here, nothing published yet */
            memset(&shared, 0, sizeof(shared));
        }
        info = shared;
        /* every server's, as each told Redis (every 2 s), this one's now */
        info.subscribers = local.subscribers;
        {
            apr_uint32_t all = 0;
            if (comet_cluster_subscribers(c, chan, clen, &all, &err) == APR_SUCCESS
                && all > info.subscribers) {
                info.subscribers = all;
            }
        }
        info.bytes = local.bytes;
        info.created = local.created;
        info.last_publish = local.last_publish;
    }
    else if (rv != APR_SUCCESS) {
        return channel_status(r, rv, "channel info failed");
    }
    comet_json_start(&j, &b, COMET_JSON_SPACED);
    comet_json_open(&j, NULL, '{');
    comet_json_str(&j, "channel", chan, clen);
    comet_json_u64(&j, "messages", info.messages);
    comet_json_u64(&j, "bytes", info.bytes);
    comet_json_u64(&j, "subscribers", info.subscribers);
    comet_json_u64(&j, "last_id", info.last_id);
    comet_json_u64(&j, "first_id", info.first_id);
    comet_json_i64(&j, "created", apr_time_sec(info.created));
    comet_json_i64(&j, "last_publish", apr_time_sec(info.last_publish));
    comet_json_close(&j);
    return comet_request_json(r, HTTP_OK, &j);
}

static int channel_delete(request_rec *r, const char *chan, apr_size_t clen)
{
    apr_uint32_t subs = 0;
    comet_buf_t b = { 0 };
    comet_json_t j;
    apr_status_t rv;

    if (comet_redisconn_enabled(r)) {
        /* gone from Redis, then from every server (this one at once) */
        comet_cluster_conn_t *c = comet_redisconn_get(r, &rv);
        const char *err = NULL;

        if (!c || (rv = comet_cluster_remove(c, chan, clen, &err)) != APR_SUCCESS) {
            return rv == APR_NOTFOUND ? channel_status(r, rv, "delete failed")
                                      : redis_status(r, c, rv, "delete failed", err);
        }
        comet_proc.store->remove(comet_proc.store, chan, clen, &subs);
        rv = APR_SUCCESS;
    }
    else {
        rv = comet_proc.store->remove(comet_proc.store, chan, clen, &subs);
    }
    if (rv != APR_SUCCESS) {
        return channel_status(r, rv, "delete failed");
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, COMET_LOGNO(00140)
                  "channel %s deleted, %u streams ended",
                  comet_request_json_str(r, chan, clen), subs);
    comet_json_start(&j, &b, COMET_JSON_SPACED);
    comet_json_open(&j, NULL, '{');
    comet_json_str(&j, "channel", chan, clen);
    comet_json_bool(&j, "deleted", 1);
    comet_json_u64(&j, "subscribers", subs);
    comet_json_close(&j);
    return comet_request_json(r, HTTP_OK, &j);
}

static int store_get(request_rec *r)
{
    comet_store_stats_t st;
    comet_reactor_counts_t rc = { 0 };
    comet_buf_t b = { 0 };
    comet_json_t j;
    apr_status_t rv = comet_proc.store->stats(comet_proc.store, &st);

    if (rv != APR_SUCCESS) {
        return comet_request_error(r, HTTP_INTERNAL_SERVER_ERROR, APLOG_ERR, rv,
                                   "store stats failed");
    }
    if (comet_proc.reactor) {
        comet_reactor_counts(comet_proc.reactor, &rc);
    }
    comet_json_start(&j, &b, COMET_JSON_SPACED);
    comet_json_open(&j, NULL, '{');
    comet_json_str(&j, "version", COMET_VERSION, strlen(COMET_VERSION));
    comet_json_str(&j, "store", comet_proc.store->name, strlen(comet_proc.store->name));
    comet_json_u64(&j, "channels", st.channels);
    comet_json_u64(&j, "channels_max", st.channels_max);
    comet_json_u64(&j, "memory_used", (apr_uint64_t)st.blocks_used * st.block_size);
    comet_json_u64(&j, "memory_max", (apr_uint64_t)st.blocks_max * st.block_size);
    comet_json_u64(&j, "processes", st.slots_used);
    comet_json_u64(&j, "processes_max", st.slots_max);
    comet_json_u64(&j, "published", st.published);
    comet_json_u64(&j, "repairs", st.repairs);
    comet_json_u64(&j, "thread_streams", st.held);
    comet_json_open(&j, "this_process", '{');
    comet_json_i64(&j, "pid", getpid());
    comet_json_u64(&j, "subscribers", rc.subscribers);
    comet_json_u64(&j, "held", rc.held);
    comet_json_u64(&j, "channels", rc.channels);
    comet_json_u64(&j, "delivered", rc.delivered);
    comet_json_u64(&j, "dropped", rc.dropped);
    comet_json_close(&j);
    comet_json_close(&j);
    return comet_request_json(r, HTTP_OK, &j);
}

int comet_publish_handler(request_rec *r)
{
    const comet_dir_conf_t *conf;
    const char *chan;
    apr_size_t len;

    if (strcmp(r->handler, "comet-publish")) {
        return DECLINED;
    }
    conf = comet_config_dir(r);
    if (!comet_proc.store) {
        return comet_request_error(r, HTTP_SERVICE_UNAVAILABLE, APLOG_ERR, 0,
                                   "the channel store is not available (see earlier errors)");
    }
    chan = comet_request_channel_path(r, conf);
    len = strlen(chan);
    if (!*chan) {
        if (r->method_number != M_GET) {
            return comet_request_refuse_method(r, COMET_METHOD(M_GET));
        }
        return store_get(r);
    }
    if (!comet_channel_valid(chan, len)) {
        return comet_request_error(r, HTTP_BAD_REQUEST, APLOG_INFO, 0,
                                   "invalid channel id: use 1 to 128 of A-Z a-z 0-9 _ -");
    }
    switch (r->method_number) {
    case M_POST:
    case M_PUT:
        return publish(r, conf, chan, len);
    case M_GET:
        return channel_get(r, chan, len);
    case M_DELETE:
        return channel_delete(r, chan, len);
    default:
        return comet_request_refuse_method(r, COMET_METHOD(M_GET) | COMET_METHOD(M_POST)
                                           | COMET_METHOD(M_PUT) | COMET_METHOD(M_DELETE));
    }
}
