/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/*
 * Subscribers; see comet_subscribe.h. In order: the channels of the URL,
 * the transport, where each channel starts (since), the subscription in the
 * store, the prelude, the hand-over to the loop.
 */

#include <apr_strings.h>

#include <http_protocol.h>

#include "comet_subscribe.h"
#include "comet_redisconn.h"
#include "comet_proc.h"
#include "comet_request.h"
#include "comet_stream.h"
#include "comet_websocket.h"

#define BAD_CHANNEL "invalid channel id: use 1 to 128 of A-Z a-z 0-9 _ -"

/* One channel, or several joined by commas. */
static int parse_channels(request_rec *r, const char *rest, comet_sub_spec_t *spec)
{
    const char *p = rest;

    for (;;) {
        const char *comma = strchr(p, ',');
        apr_size_t len = comma ? (apr_size_t)(comma - p) : strlen(p);
        if (spec->nchannels == COMET_SUB_CHANNELS_MAX) {
            return comet_request_error(r, HTTP_BAD_REQUEST, APLOG_INFO, 0,
                                       "too many channels in one stream");
        }
        if (!comet_channel_valid(p, len)) {
            return comet_request_error(r, HTTP_BAD_REQUEST, APLOG_INFO, 0, BAD_CHANNEL);
        }
        spec->channels[spec->nchannels] = p;
        spec->channel_lens[spec->nchannels] = len;
        spec->nchannels++;
        if (!comma) {
            return OK;
        }
        p = comma + 1;
    }
}

/* ?transport=, else what the client accepts, else the forever iframe. */
static int choose_transport(request_rec *r, const comet_dir_conf_t *conf,
                            const comet_transport_t **tp)
{
    const char *name = comet_request_arg(r, "transport");
    const comet_transport_t *t = &comet_transport_iframe;

    if (comet_websocket_asked(r) && !name) {
        t = &comet_transport_websocket;
    }
    else if (name) {
        if (!(t = comet_transport_find(name)) || t->session) {
            return comet_request_error(r, HTTP_BAD_REQUEST, APLOG_INFO, 0,
                                       "transport: iframe, sse, stream, longpoll or websocket");
        }
    }
    else {
        const char *accept = apr_table_get(r->headers_in, "Accept");
        if (accept && ap_strcasestr(accept, "text/event-stream")) {
            t = &comet_transport_sse;
        }
        else if (accept && ap_strcasestr(accept, "application/x-ndjson")) {
            t = &comet_transport_stream;
        }
    }
    if (!(COMET_CONF(conf, COMET_CONF_TRANSPORTS) & comet_config_transport_bit(t))) {
        return comet_request_error(r, HTTP_FORBIDDEN, APLOG_INFO, 0, apr_psprintf(r->pool,
                                   "transport %s is not allowed here (CometTransports)",
                                   t->name));
    }
    *tp = t;
    return OK;
}

/* `since`: one id for every channel, or "<channel>:<id>,..." (a channel not
 * named starts where it stands). 0, or -1 if malformed. */
static int parse_since(const char *since, comet_sub_spec_t *spec)
{
    apr_size_t i;
    const char *p = since;
    apr_uint64_t all;

    for (i = 0; i < spec->nchannels; i++) {
        spec->since[i] = COMET_ID_NONE;
    }
    if (!ap_strchr_c(since, ':')) {
        if (!comet_parse_u64(since, strlen(since), &all)) {
            return -1;
        }
        for (i = 0; i < spec->nchannels; i++) {
            spec->since[i] = all;
        }
        return 0;
    }
    while (*p) {
        const char *colon = ap_strchr_c(p, ':'), *comma;
        apr_uint64_t v;
        if (!colon) {
            return -1;
        }
        comma = ap_strchr_c(colon, ',');
        if (!comet_parse_u64(colon + 1, comma ? (apr_size_t)(comma - colon - 1)
                                              : strlen(colon + 1), &v)) {
            return -1;
        }
        for (i = 0; i < spec->nchannels; i++) {
            if (spec->channel_lens[i] == (apr_size_t)(colon - p)
                && !memcmp(spec->channels[i], p, spec->channel_lens[i])) {
                spec->since[i] = v;
            }
        }
        p = comma ? comma + 1 : colon + 1 + strlen(colon + 1);
    }
    return 0;
}

/* Where each channel starts: `since`, else (SSE) Last-Event-ID, else where
 * it stands now (COMET_ID_NONE, resolved when subscribing). */
static int parse_cursors(request_rec *r, const comet_transport_t *t, comet_sub_spec_t *spec)
{
    const char *since = comet_request_arg(r, "since");
    apr_size_t i;

    if (t == &comet_transport_sse && !since) {
        /* an EventSource that reconnects says where it was */
        since = apr_table_get(r->headers_in, "Last-Event-ID");
    }
    if (!since) {
        for (i = 0; i < spec->nchannels; i++) {
            spec->since[i] = COMET_ID_NONE;
        }
        return OK;
    }
    if (parse_since(since, spec) < 0) {
        return comet_request_error(r, HTTP_BAD_REQUEST, APLOG_INFO, 0, "since: a message id, "
                                   "or <channel>:<id>,... for several channels");
    }
    return OK;
}

/* Undo the subscriptions of the first n channels of a stream not handed over. */
static void unsubscribe_first(comet_sub_spec_t *spec, apr_size_t n)
{
    apr_size_t i;

    for (i = 0; i < n; i++) {
        comet_proc.store->unsubscribe(comet_proc.store, comet_proc.slot, &spec->refs[i], 1);
    }
}

/* Subscribe now, so that a full store is a 503 rather than a stream that
 * dies; a channel without a cursor starts where it stands now, and the
 * stream's first event says so ({"<channel>": <id>, ...} in *cursors): a
 * client that reconnects before it saw any message resumes from there, so
 * nothing falls between two streams. */
static int subscribe_channels(request_rec *r, const comet_dir_conf_t *conf,
                              comet_sub_spec_t *spec, const char **cursors)
{
    apr_uint32_t max = (apr_uint32_t)COMET_CONF(conf, COMET_CONF_MAX_SUBSCRIBERS);
    comet_store_t *st = comet_proc.store;
    comet_buf_t b = { 0 };
    comet_json_t j;
    apr_size_t i;

    comet_json_start(&j, &b, COMET_JSON_COMPACT);
    comet_json_open(&j, NULL, '{');
    for (i = 0; i < spec->nchannels; i++) {
        comet_id_t last = 0;
        apr_status_t rv;

        /* several servers: what this one's copy lacks, from Redis */
        comet_redisconn_backfill(r, conf, spec->channels[i], spec->channel_lens[i],
                                 spec->since[i]);
        rv = st->subscribe(st, comet_proc.slot, spec->channels[i], spec->channel_lens[i], 1,
                           max, &spec->refs[i], &last);
        if (rv != APR_SUCCESS) {
            unsubscribe_first(spec, i);
            comet_buf_free(&b);
            return comet_request_error(r, HTTP_SERVICE_UNAVAILABLE, APLOG_WARNING, rv,
                rv == APR_ENOSPC ? "the channel store is full: raise CometSharedMemory"
                : rv == APR_EAGAIN ? apr_psprintf(r->pool, "channel %.*s: CometMaxSubscribers "
                                                  "or CometMaxChannels reached",
                                                  (int)spec->channel_lens[i], spec->channels[i])
                : "cannot subscribe");
        }
        if (spec->since[i] == COMET_ID_NONE) {
            spec->since[i] = last;
        }
        comet_json_key(&j, spec->channels[i], spec->channel_lens[i]);
        comet_json_u64(&j, NULL, spec->since[i] == COMET_ID_NONE ? 0 : spec->since[i]);
    }
    comet_json_close(&j);
    spec->presubscribed = 1;
    *cursors = comet_json_finish(&j) == 0 ? apr_pstrmemdup(r->pool, b.data, b.len) : "{}";
    comet_buf_free(&b);
    return OK;
}

/* What a channel's WebSocket needs to publish what its client sends (the
 * loop frees it): CometWebSocketPublish. */
typedef struct {
    comet_store_t *store;
    comet_limits_t lim;
    const char *redis;                /* CometRedis: publish there */
    int allowed;
    apr_size_t clen;
    char chan[COMET_CHANNEL_MAX];
} ws_publish_t;

/* CometRedis: the loop's thread has a connection of its own. Publishing
 * waits for Redis' answer on the loop (a round trip, as a POST's thread
 * does); a Redis that cannot be reached fails at once for a second after
 * each failure (comet_cluster_conn_t), so the loop is held at most one
 * time-out in a while, and the client is told to try later (1013). */
static __thread comet_cluster_conn_t *loop_conn;

static int ws_publish_redis(ws_publish_t *u, const char *data, apr_size_t len)
{
    const char *err = NULL;
    comet_id_t id;
    apr_uint32_t servers;

    if (!loop_conn) {
        comet_cluster_opts_t opts = { 0 };
        opts.url = u->redis;
        opts.timeout = apr_time_from_msec(500);
        if (comet_cluster_conn_create(&loop_conn, &opts, &err) != APR_SUCCESS) {
            loop_conn = NULL;
            return COMET_WS_TRY_LATER;
        }
    }
    if (len > u->lim.max_size) {
        return COMET_WS_TOO_BIG;
    }
    return comet_cluster_publish(loop_conn, u->chan, u->clen, data, len, 0, &u->lim, &id,
                                 &servers, &err) == APR_SUCCESS ? 0 : COMET_WS_TRY_LATER;
}

/* On the loop's thread: a message from a channel's WebSocket client, as a
 * POST to the channel would publish it (the stream's first channel). */
static int ws_publish(void *baton, int opcode, const char *data, apr_size_t len)
{
    ws_publish_t *u = baton;
    comet_publish_result_t res;
    apr_status_t rv;

    if (!u->allowed) {
        return COMET_WS_POLICY;       /* CometWebSocketPublish Off */
    }
    if (u->redis) {
        return ws_publish_redis(u, data, len);
    }
    rv = u->store->publish(u->store, u->chan, u->clen, data, len, 0, &u->lim, &res);
    return rv == APR_SUCCESS ? 0 : rv == APR_EINVAL ? COMET_WS_TOO_BIG : COMET_WS_TRY_LATER;
}

/* The WebSocket side of a channel stream's spec. @return 0, or -1 (no memory) */
static int ws_spec(request_rec *r, const comet_dir_conf_t *conf, comet_sub_spec_t *spec)
{
    ws_publish_t *u = calloc(1, sizeof(*u));

    if (!u) {
        return -1;
    }
    u->store = comet_proc.store;
    u->redis = comet_config_server(r->server)->redis;
    u->allowed = COMET_CONF(conf, COMET_CONF_WEBSOCKET_PUBLISH) == 1;
    u->lim.buffer_length = (apr_uint32_t)COMET_CONF(conf, COMET_CONF_BUFFER_LENGTH);
    u->lim.ttl = COMET_CONF(conf, COMET_CONF_TTL);
    u->lim.max_size = (apr_size_t)COMET_CONF(conf, COMET_CONF_MAX_MESSAGE);
    u->clen = spec->channel_lens[0];
    memcpy(u->chan, spec->channels[0], u->clen);
    spec->websocket = 1;
    spec->ws_max_message = u->lim.max_size;
    spec->upstream = ws_publish;
    spec->upstream_baton = u;
    return 0;
}

/* The headers and the transport's first bytes: OK, DONE if the client
 * left, HTTP_INTERNAL_SERVER_ERROR if out of memory. */
static int send_prelude(request_rec *r, const comet_transport_t *t,
                        const comet_stream_params_t *params)
{
    apr_bucket_brigade *bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    comet_buf_t prelude = { 0 };
    int rc = HTTP_INTERNAL_SERVER_ERROR;

    if (t->prelude(&prelude, params) == 0) {
        rc = comet_stream_send(r, bb, prelude.data, prelude.len) < 0 ? DONE : OK;
    }
    comet_buf_free(&prelude);
    return rc;
}

int comet_subscribe_handle(request_rec *r, const comet_dir_conf_t *conf, const char *channels)
{
    comet_sub_spec_t spec;
    const comet_transport_t *t = NULL;
    const char *cb = comet_request_arg(r, "cb");
    int rc, taken = 0;

    if (r->method_number != M_GET) {
        return comet_request_refuse_method(r, COMET_METHOD(M_GET));
    }
    memset(&spec, 0, sizeof(spec));
    if ((rc = parse_channels(r, channels, &spec)) != OK
        || (rc = choose_transport(r, conf, &t)) != OK
        || (rc = parse_cursors(r, t, &spec)) != OK) {
        return rc;
    }
    if (t == &comet_transport_sse && spec.nchannels > 1) {
        t = &comet_transport_sse_multi;
    }
    if (t == &comet_transport_websocket) {
        const char *why = NULL;
        rc = comet_websocket_check(r, (int)COMET_CONF(conf, COMET_CONF_STREAM_MODE), 0, &why);
        if (rc != OK) {
            return comet_request_error(r, rc, APLOG_INFO, 0, why);
        }
    }
    if (cb && !comet_callback_valid(cb)) {
        return comet_request_error(r, HTTP_BAD_REQUEST, APLOG_INFO, 0,
                                   "cb: a JavaScript name such as Pxxo_Widget_Comet.cb.c1 "
                                   "expected");
    }
    if (!comet_proc.reactor || !comet_proc.slot) {
        return comet_request_error(r, HTTP_SERVICE_UNAVAILABLE, APLOG_ERR, 0, apr_psprintf(
                                   r->pool, "this child has no subscriber %s (see earlier "
                                   "errors)", comet_proc.reactor ? "slot" : "loop"));
    }
    if ((rc = comet_stream_admit(r, conf)) != OK
        || (rc = subscribe_channels(r, conf, &spec, &spec.params.cursors)) != OK) {
        return rc;
    }
    comet_stream_headers(r, t->content_type, 0);
    spec.transport = t;
    spec.params.callback = cb ? cb : apr_pstrcat(r->pool, COMET_CONF_STR(conf,
                                                 COMET_CONF_CLASS_ID), ".dispatch", NULL);
    spec.params.heartbeat = spec.heartbeat = COMET_CONF(conf, COMET_CONF_HEARTBEAT);
    spec.params.retry = apr_time_from_sec(1);
    spec.lifetime = COMET_CONF(conf, COMET_CONF_LIFETIME);
    spec.byte_limit = (apr_size_t)COMET_CONF(conf, COMET_CONF_STREAM_LIMIT);
    if (r->header_only) {
        unsubscribe_first(&spec, spec.nchannels);
        return OK;
    }
    if (t == &comet_transport_websocket) {
        const char *ext = comet_websocket_deflate(r, (int)COMET_CONF(conf,
                                                                     COMET_CONF_WEBSOCKET_DEFLATE));
        if (ws_spec(r, conf, &spec) < 0 || comet_websocket_upgrade(r, 0, ext) != OK) {
            free(spec.upstream_baton);
            unsubscribe_first(&spec, spec.nchannels);
            return OK;
        }
        if (ext) {
            /* the same open line; messages compressed */
            spec.transport = &comet_transport_websocket_deflate;
            spec.ws_deflate = 1;
        }
    }
    if ((rc = send_prelude(r, t, &spec.params)) != OK) {
        free(spec.upstream_baton);
        unsubscribe_first(&spec, spec.nchannels);
        return rc == DONE ? OK : rc;
    }
    rc = comet_stream_handoff(r, conf, &spec, &taken);
    if (!taken) {
        free(spec.upstream_baton);
        unsubscribe_first(&spec, spec.nchannels);
    }
    return rc;
}
