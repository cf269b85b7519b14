/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/*
 * mod_comet_socket: bidirectional sessions over HTTP, the Pxxo_Widget_Socket
 * of the PHP widgets mod_comet rebuilds, speaking SockJS 0.3 so that
 * sockjs-client works too.
 *
 *   <Location /chat>
 *       SetHandler comet-socket
 *       CometSocketBackend exec:/usr/local/lib/chat/session-handler --room main
 *   </Location>
 *
 *   GET  /chat/info                          {"websocket": true, ...}
 *   GET  /chat/iframe.html                   page for sockjs-client's iframe transports
 *   POST /chat/<server>/<session>/xhr        poll (xhr_streaming, eventsource,
 *   GET  .../eventsource, htmlfile?c=, jsonp?c=   htmlfile: streams)
 *   POST .../xhr_send, jsonp_send            messages from the browser
 *   GET  .../websocket                       SockJS over WebSocket (its own
 *   GET  /chat/websocket                     session); raw WebSocket
 *
 * A session lives in the store ("s:<sid>" to the browser, "u:<sid>" from it),
 * so each of its requests may land in any child. Its backend belongs to the
 * supervisor (engine/comet_supervisor.c, started by httpd/comet_daemon.c), a
 * process the parent forks once and keeps across graceful restarts, as
 * mod_cgid keeps its daemon: a recycled child or a new generation neither
 * ends a session nor starts its program twice.
 */

#include <unistd.h>

#include <apr_strings.h>
#include <apr_atomic.h>
#include <apr_md5.h>

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <util_script.h>

#include "mod_comet.h"
#include "comet_config.h"
#include "comet_json.h"
#include "comet_proc.h"
#include "comet_redisconn.h"
#include "comet_request.h"
#include "comet_stream.h"
#include "comet_sup.h"
#include "comet_websocket.h"

/* how long a new receiver waits for an ending one to let go (milliseconds) */
#define RECEIVER_WAIT_MS    1000
/* ... and for a busy one (milliseconds): a client that drops its receiver
 * and opens another at once must find the first one gone (and the session
 * interrupted), not "another connection", though the loop that watches the
 * first may not have seen it go yet */
#define BUSY_WAIT_MS        100
/* the largest payload of one xhr_send or jsonp_send */
#define MAX_PAYLOAD         (1 << 20)
#define ANOTHER_CONNECTION  "2010,\"Another connection still open\""
/* A session another server of the group held (CometRedis): that server is gone. */
#define SESSION_LOST        "1001,\"Session lost: its server went away\""

/*******************************************************************************
 * SockJS over HTTP
 ******************************************************************************/

typedef struct {
    request_rec *r;
    const comet_dir_conf_t *conf;
    const char *server, *sid, *what;  /* /<server>/<session>/<what> */
    char down[COMET_CHANNEL_MAX + 8];
    apr_size_t down_len;
} sjs_req_t;

static apr_uint64_t sjs_token(void)
{
    static apr_uint32_t counter;
    return ((apr_uint64_t)(apr_uint32_t)comet_proc.slot << 40)
           | ((apr_uint64_t)(apr_uint32_t)getpid() << 20 & 0xffffff00000ULL)
           | (apr_atomic_inc32(&counter) & 0xfffff);
}

/* The JSESSIONID the client sent, if it is one we may echo; else NULL.
 * Under CometSocketRoute, without its route: from the first dot on, what
 * mod_proxy_balancer reads as the route (this server's, or that of one
 * which failed over to this one). */
static const char *sjs_client_cookie(request_rec *r)
{
    const char *cookie = apr_table_get(r->headers_in, "Cookie");
    const char *p, *end, *dot;

    if (!cookie || (p = ap_strstr_c(cookie, "JSESSIONID=")) == NULL
        || (p != cookie && p[-1] != ' ' && p[-1] != ';')) {
        return NULL;
    }
    for (end = p + 11; *end && *end != ';' && *end != ' ' && *end != '"' && *end != ','; end++) {
    }
    if (comet_config_server(r->server)->route
        && (dot = memchr(p + 11, '.', (apr_size_t)(end - p - 11))) != NULL) {
        end = dot;
    }
    if (!comet_channel_valid(p + 11, (apr_size_t)(end - p - 11))) {
        return NULL;
    }
    return apr_pstrmemdup(r->pool, p + 11, (apr_size_t)(end - p - 11));
}

/* The owner a session opened by this request is bound to (0: none): with
 * CometSocketCookie On, the client's own JSESSIONID. A client without one
 * gets "dummy" (sockjs-node's cookie, which the protocol's suite checks), a
 * value every such client shares: it binds nothing. */
static apr_uint64_t sjs_owner(request_rec *r, const comet_dir_conf_t *conf)
{
    const char *v = COMET_CONF(conf, COMET_CONF_SOCKET_COOKIE) == 1 ? sjs_client_cookie(r) : NULL;
    apr_uint64_t h = 14695981039346656037ULL;

    if (!v || !strcmp(v, "dummy")) {
        return 0;
    }
    for (; *v; v++) {
        h = (h ^ (unsigned char)*v) * 1099511628211ULL;
    }
    return h ? h : 1;
}

/* CometSocketCookie On, on session URLs only (as sockjs-node): the cookie a
 * load balancer may stick by, the client's own or "dummy", set every time
 * so that the balancer can add its own. CometSocketRoute adds ".<route>"
 * for mod_proxy_balancer's stickysession=JSESSIONID: the session's next
 * requests come back here, and after a fail-over the next server's route
 * replaces the dead one's. */
static void sjs_cookie(request_rec *r, const comet_dir_conf_t *conf)
{
    const char *v, *route;

    if (COMET_CONF(conf, COMET_CONF_SOCKET_COOKIE) != 1) {
        return;
    }
    v = sjs_client_cookie(r);
    route = comet_config_server(r->server)->route;
    apr_table_setn(r->err_headers_out, "Set-Cookie",
                   apr_pstrcat(r->pool, "JSESSIONID=", v ? v : "dummy", route ? "." : "",
                               route ? route : "", "; path=/; HttpOnly", NULL));
}

/* CORS, as sockjs-node answers it: the Origin echoed, "null" too (a page
 * from file:// sends it, and sockjs-protocol wants it back), with
 * credentials; without an Origin, "*" and no credentials (the two do not go
 * together). */
static void sjs_cors(request_rec *r)
{
    const char *origin = apr_table_get(r->headers_in, "Origin");
    const char *req_headers = apr_table_get(r->headers_in, "Access-Control-Request-Headers");

    if (origin && *origin) {
        apr_table_setn(r->headers_out, "Access-Control-Allow-Origin", origin);
        apr_table_setn(r->headers_out, "Access-Control-Allow-Credentials", "true");
    }
    else {
        apr_table_setn(r->headers_out, "Access-Control-Allow-Origin", "*");
    }
    apr_table_mergen(r->headers_out, "Vary", "Origin");
    if (req_headers && *req_headers) {
        apr_table_setn(r->headers_out, "Access-Control-Allow-Headers", req_headers);
    }
}

/* Headers every SockJS answer carries. */
static void sjs_common(request_rec *r, int cache)
{
    sjs_cors(r);
    if (!cache) {
        comet_request_no_cache(r);
    }
}

/* Answers that do not change: cached for a year. */
static void sjs_cache_year(request_rec *r)
{
    char expires[APR_RFC822_DATE_LEN];

    apr_table_setn(r->headers_out, "Cache-Control", "public, max-age=31536000");
    apr_rfc822_date(expires, r->request_time + apr_time_from_sec(31536000));
    apr_table_setn(r->headers_out, "Expires", apr_pstrdup(r->pool, expires));
}

/* Answer a CORS preflight for the given methods. */
static int sjs_options(request_rec *r, const char *methods)
{
    sjs_common(r, 1);
    apr_table_setn(r->headers_out, "Access-Control-Allow-Methods", methods);
    sjs_cache_year(r);
    apr_table_setn(r->headers_out, "Access-Control-Max-Age", "31536000");
    return HTTP_NO_CONTENT;
}

static int sjs_text(request_rec *r, int status, const char *ctype, const char *body)
{
    return comet_request_text(r, status, ctype, body, strlen(body));
}

/* A SockJS protocol error: the status and the exact text the spec wants. */
static int sjs_fail(request_rec *r, int status, const char *text, const char *why)
{
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, COMET_LOGNO(00210) "%s: %s", r->uri, why);
    r->status = status;
    ap_set_content_type(r, "text/plain; charset=UTF-8");
    ap_rputs(text, r);
    return OK;
}

static int sjs_info(request_rec *r, const comet_dir_conf_t *conf)
{
    apr_uint32_t entropy;
    comet_buf_t b = { 0 };
    comet_json_t j;
    int rc;

    if (r->method_number == M_OPTIONS) {
        return sjs_options(r, "OPTIONS, GET");
    }
    if (r->method_number != M_GET) {
        return comet_request_refuse_method(r, COMET_METHOD(M_GET) | COMET_METHOD(M_OPTIONS));
    }
    apr_generate_random_bytes((unsigned char *)&entropy, sizeof(entropy));
    sjs_common(r, 0);
    comet_json_start(&j, &b, COMET_JSON_SPACED);
    comet_json_open(&j, NULL, '{');
    /* CometStreamMode thread refuses every handshake (501: the loop must
     * read the frames): not offered there, or clients would try it first */
    comet_json_bool(&j, "websocket", COMET_CONF(conf, COMET_CONF_SOCKET_WEBSOCKET) != 0
                                     && COMET_CONF(conf, COMET_CONF_STREAM_MODE) == COMET_MODE_AUTO);
    comet_json_bool(&j, "cookie_needed", COMET_CONF(conf, COMET_CONF_SOCKET_COOKIE) == 1);
    comet_json_open(&j, "origins", '[');
    comet_json_str(&j, NULL, "*:*", 3);
    comet_json_close(&j);
    comet_json_u64(&j, "entropy", entropy);
    comet_json_close(&j);
    rc = comet_json_finish(&j) < 0 ? HTTP_INTERNAL_SERVER_ERROR
       : comet_request_text(r, HTTP_OK, "application/json; charset=UTF-8", b.data, b.len);
    comet_buf_free(&b);
    return rc;
}

static int sjs_iframe(request_rec *r, const comet_dir_conf_t *conf)
{
    const char *url = COMET_CONF_STR(conf, COMET_CONF_CLIENT_URL);
    const char *page, *etag, *inm;
    unsigned char digest[APR_MD5_DIGESTSIZE];
    char hex[2 * APR_MD5_DIGESTSIZE + 1];
    int i;

    if (r->method_number != M_GET) {
        return comet_request_refuse_method(r, COMET_METHOD(M_GET));
    }
    page = apr_pstrcat(r->pool,
        "<!DOCTYPE html>\n<html>\n<head>\n"
        "  <meta http-equiv=\"X-UA-Compatible\" content=\"IE=edge\" />\n"
        "  <meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\" />\n"
        "  <script src=\"", url, "\"></script>\n"
        "  <script>\n    document.domain = document.domain;\n"
        "    SockJS.bootstrap_iframe();\n  </script>\n</head>\n<body>\n"
        "  <h2>Don't panic!</h2>\n"
        "  <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>\n"
        "</body>\n</html>", NULL);
    apr_md5(digest, page, strlen(page));
    for (i = 0; i < APR_MD5_DIGESTSIZE; i++) {
        apr_snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    }
    etag = apr_pstrcat(r->pool, "\"", hex, "\"", NULL);
    apr_table_setn(r->headers_out, "ETag", etag);
    sjs_cache_year(r);
    inm = apr_table_get(r->headers_in, "If-None-Match");
    if (inm && !strcmp(inm, etag)) {
        return HTTP_NOT_MODIFIED;
    }
    return sjs_text(r, HTTP_OK, "text/html; charset=UTF-8", page);
}

/* The environment an exec backend gets: CGI's, plus the session id. */
static const char *const *sjs_backend_env(request_rec *r, const char *sid)
{
    apr_table_t *env = r->subprocess_env;

    ap_add_common_vars(r);
    ap_add_cgi_vars(r);
    apr_table_setn(env, "COMET_SESSION_ID", sid);
    apr_table_setn(env, "COMET_VERSION", COMET_VERSION);
    return (const char *const *)ap_create_environment(r->pool, env);
}

/* A new session: the supervisor starts its backend; if it cannot, the
 * session closes at once (its receiver gets c[3000,"Go away!"]). */
static void sjs_start_backend(sjs_req_t *q)
{
    request_rec *r = q->r;
    const char *backend = COMET_CONF_STR(q->conf, COMET_CONF_BACKEND);
    comet_limits_t lim = { 10, 0, 64, 0 };
    comet_publish_result_t res;
    apr_status_t rv;

    rv = comet_sup_open(comet_proc.store, q->sid, backend, q->conf->backend_argv,
                        !strcmp(backend, "exec") ? sjs_backend_env(r, q->sid) : NULL);
    if (rv == APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, COMET_LOGNO(00212)
                      "session %s opened (%s)", q->sid, backend);
        return;
    }
    if (rv == APR_ENOPROC) {
        /* comet_daemon.c has said why, once */
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, COMET_LOGNO(00211)
                      "session %s closed: no comet supervisor is running to start its "
                      "backend (see its error at start-up)", q->sid);
    }
    else {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, COMET_LOGNO(00211)
                      "session %s: the supervisor cannot start its backend", q->sid);
    }
    comet_proc.store->publish(comet_proc.store, q->down, q->down_len, COMET_SOCKJS_GO_AWAY,
                              strlen(COMET_SOCKJS_GO_AWAY), COMET_MSG_CLOSE, &lim, &res);
}

/* Find the session, creating it (and its backend) on first contact. */
static int sjs_session(sjs_req_t *q, int create, comet_chan_ref_t *ref)
{
    request_rec *r = q->r;
    apr_uint32_t max = (apr_uint32_t)COMET_CONF(comet_config_server(r->server),
                                                COMET_CONF_MAX_SESSIONS);
    comet_store_t *st = comet_proc.store;
    int created = 0;
    apr_status_t rv;

    if (!create) {
        comet_channel_info_t info;
        if (st->info(st, q->down, q->down_len, &info) != APR_SUCCESS) {
            return comet_request_error(r, HTTP_NOT_FOUND, APLOG_DEBUG, 0, "no such session");
        }
    }
    rv = st->session.open(st, q->down, q->down_len, max, sjs_owner(r, q->conf), &created, ref);
    switch (rv) {
    case APR_SUCCESS:
        if (created) {
            sjs_start_backend(q);
        }
        return OK;
    case APR_EACCES:
        return comet_request_error(r, HTTP_NOT_FOUND, APLOG_INFO, 0, "session bound to "
                                   "another client's cookie (CometSocketCookie)");
    case APR_EAGAIN:
        return comet_request_error(r, HTTP_SERVICE_UNAVAILABLE, APLOG_WARNING, rv,
                                   apr_psprintf(r->pool, "CometSocketMaxSessions (%u) "
                                                "reached: session refused", max));
    case APR_ENOSPC:
        return comet_request_error(r, HTTP_SERVICE_UNAVAILABLE, APLOG_ERR, rv,
                                   "the store is full (CometSharedMemory): session refused");
    default:
        return comet_request_error(r, HTTP_INTERNAL_SERVER_ERROR, APLOG_ERR, rv,
                                   "session lookup failed");
    }
}

/* Become the session's receiver. The previous one may have ended its
 * response and the client come back before it let go: wait for it, a matter
 * of milliseconds, rather than answer "another connection". */
static apr_status_t sjs_claim(sjs_req_t *q, const comet_chan_ref_t *ref, apr_uint64_t token,
                              comet_id_t *acked, apr_uint32_t *flags)
{
    apr_status_t rv;
    int waited = 0;

    while (((rv = comet_proc.store->session.claim(comet_proc.store, comet_proc.slot, ref,
                                                   token, acked, flags)) == APR_EAGAIN
            && waited < RECEIVER_WAIT_MS)
           || (rv == APR_EBUSY && waited < BUSY_WAIT_MS)) {
        apr_sleep(apr_time_from_msec(5));
        waited += 5;
    }
    if (rv == APR_EAGAIN) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, q->r, COMET_LOGNO(00219)
                      "session %s: the previous receiver did not let go in %d ms",
                      q->sid, RECEIVER_WAIT_MS);
        rv = APR_EBUSY;
    }
    return rv;
}

/* The session's receiver this request became. */
typedef struct {
    comet_chan_ref_t ref;
    apr_uint64_t token;
    comet_id_t acked;                 /* delivered up to here before */
    apr_uint32_t flags;               /* COMET_CHAN_* */
} sjs_receiver_t;

static void sjs_release(const sjs_receiver_t *rcv)
{
    comet_proc.store->session.release(comet_proc.store, &rcv->ref, rcv->token);
}

/* A receiver whose client left before the loop had it (while its prelude
 * went out, or as its connection was handed over): the session is over, as
 * when the loop sees a receiver go (sub_interrupted, comet_reactor.c); its
 * next receiver is told c[1002,"Connection interrupted"]. Then released. */
static void sjs_release_left(sjs_req_t *q, const sjs_receiver_t *rcv, int resumable)
{
    if (q->r->connection->aborted && !resumable) {
        comet_limits_t lim = { 10, 0, 64, 0 };
        comet_publish_result_t res;
        apr_status_t rv;

        rv = comet_proc.store->publish(comet_proc.store, q->down, q->down_len,
                                       COMET_SOCKJS_INTERRUPTED,
                                       strlen(COMET_SOCKJS_INTERRUPTED), COMET_MSG_CLOSE,
                                       &lim, &res);
        ap_log_rerror(APLOG_MARK, rv == APR_SUCCESS ? APLOG_DEBUG : APLOG_ERR, rv, q->r,
                      COMET_LOGNO(00216) "session %s: its receiver left: interrupted",
                      q->sid);
    }
    sjs_release(rcv);
}

/* What a receiver says first: the transport's prelude, then "o" if the
 * session is new, or why it gets nothing if another receiver has it. Each
 * goes out on its own (its own chunk): clients that read a frame per chunk,
 * as sockjs-protocol's suite, must not find "o" glued to the prelude.
 * @return DECLINED if the stream goes on, else the request's result (the
 *         claim released) */
static int sjs_receive_open(sjs_req_t *q, const comet_transport_t *t,
                            const comet_stream_params_t *params, const sjs_receiver_t *rcv,
                            int busy)
{
    request_rec *r = q->r;
    apr_bucket_brigade *bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    comet_buf_t out = { 0 };
    int rc = DECLINED;

    if (t->prelude && t->prelude(&out, params) < 0) {
        rc = HTTP_INTERNAL_SERVER_ERROR;
    }
    else if (out.len && comet_stream_send(r, bb, out.data, out.len) < 0) {
        rc = OK;                      /* the client left */
    }
    else if (busy) {
        /* one receiver at a time: this one learns why it gets nothing */
        out.len = 0;
        t->close(&out, params, ANOTHER_CONNECTION, strlen(ANOTHER_CONNECTION));
        comet_stream_send(r, bb, out.data, out.len);
        comet_buf_free(&out);
        return OK;
    }
    else if (!(rcv->flags & COMET_CHAN_OPENED)) {
        out.len = 0;
        if (t->open(&out, params) < 0) {
            rc = HTTP_INTERNAL_SERVER_ERROR;
        }
        else if (comet_stream_send(r, bb, out.data, out.len) < 0) {
            rc = OK;                  /* the client left */
        }
        else {
            comet_proc.store->session.ack(comet_proc.store, &rcv->ref, rcv->acked,
                                          COMET_CHAN_OPENED);
            if (t->oneshot) {
                rc = OK;              /* a poll that opens a session answers "o" alone */
            }
        }
    }
    comet_buf_free(&out);
    if (rc != DECLINED) {
        sjs_release_left(q, rcv, comet_request_arg(r, "resume") != NULL);
    }
    return rc;
}

/* The rest of the session's messages go out from the child's loop. */
static int sjs_receive_stream(sjs_req_t *q, const comet_transport_t *t,
                              const comet_stream_params_t *params, const sjs_receiver_t *rcv)
{
    comet_sub_spec_t spec;
    int rc, taken = 0;

    memset(&spec, 0, sizeof(spec));
    spec.transport = t;
    spec.params = *params;
    spec.nchannels = 1;
    spec.channels[0] = q->down;
    spec.channel_lens[0] = q->down_len;
    spec.since[0] = rcv->acked;
    spec.heartbeat = params->heartbeat;
    spec.byte_limit = t->accumulates
                    ? (apr_size_t)COMET_CONF(q->conf, COMET_CONF_RESPONSE_LIMIT) : 0;
    spec.session = 1;
    spec.token = rcv->token;
    /* ?resume=1 (socket.js): a client that replaces receivers it finds
     * silent; its going does not end the session (sockjs-client's does) */
    spec.resumable = comet_request_arg(q->r, "resume") != NULL;
    rc = comet_stream_handoff(q->r, q->conf, &spec, &taken);
    if (!taken) {
        sjs_release_left(q, rcv, spec.resumable);
    }
    return rc;
}

/* CometRedis: a receiver for a session this server does not have, which a
 * server of the group held: its client was sent here because that server
 * died (behind a balancer). It is told so, with a close frame, rather than
 * given a new session that would not be the one it had. @return DECLINED
 * if the session may be made here */
static int sjs_receive_lost(sjs_req_t *q, const comet_transport_t *t,
                            const comet_stream_params_t *params)
{
    request_rec *r = q->r;
    comet_channel_info_t info;
    comet_cluster_conn_t *c;
    apr_bucket_brigade *bb;
    comet_buf_t out = { 0 };
    const char *err = NULL;
    apr_status_t rv;
    int known = 0;

    if (!comet_redisconn_enabled(r)
        || comet_proc.store->info(comet_proc.store, q->down, q->down_len, &info) == APR_SUCCESS
        || !(c = comet_redisconn_get(r, &rv))) {
        return DECLINED;
    }
    if ((rv = comet_cluster_session_known(c, q->down, q->down_len, &known, &err))
        != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r, COMET_LOGNO(00453)
                      "session %s: Redis at %s cannot say whether another server held it "
                      "(%s): a new session", q->sid, comet_cluster_conn_display(c),
                      err ? err : "");
        return DECLINED;
    }
    if (!known) {
        return DECLINED;
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, COMET_LOGNO(00454)
                  "session %s was another server's, gone: its client is told", q->sid);
    sjs_common(r, 0);
    comet_stream_headers(r, t->content_type, 1);
    bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    if ((!t->prelude || t->prelude(&out, params) == 0)
        && (!out.len || comet_stream_send(r, bb, out.data, out.len) == 0)) {
        out.len = 0;
        t->close(&out, params, SESSION_LOST, strlen(SESSION_LOST));
        comet_stream_send(r, bb, out.data, out.len);
    }
    comet_buf_free(&out);
    return OK;
}

/* A receiver: xhr, xhr_streaming, eventsource, htmlfile, jsonp. */
static int sjs_receive(sjs_req_t *q, const comet_transport_t *t)
{
    request_rec *r = q->r;
    comet_stream_params_t params;
    sjs_receiver_t rcv;
    apr_status_t rv;
    int rc;

    memset(&params, 0, sizeof(params));
    memset(&rcv, 0, sizeof(rcv));
    params.heartbeat = COMET_CONF(q->conf, COMET_CONF_SOCKET_HEARTBEAT);
    if (t == &comet_transport_sockjs_htmlfile || t == &comet_transport_sockjs_jsonp) {
        /* the function each frame calls */
        const char *cb = comet_request_arg(r, "c");
        if (!cb) {
            return sjs_fail(r, HTTP_INTERNAL_SERVER_ERROR, "\"callback\" parameter required",
                            "callback parameter missing");
        }
        if (!comet_callback_valid(cb)) {
            return sjs_fail(r, HTTP_INTERNAL_SERVER_ERROR, "invalid \"callback\" parameter",
                            "invalid callback parameter");
        }
        params.callback = cb;
    }
    if ((rc = sjs_receive_lost(q, t, &params)) != DECLINED) {
        return rc;
    }
    if ((rc = comet_stream_admit(r, q->conf)) != OK
        || (rc = sjs_session(q, 1, &rcv.ref)) != OK) {
        return rc;
    }
    rcv.token = sjs_token();
    rv = sjs_claim(q, &rcv.ref, rcv.token, &rcv.acked, &rcv.flags);
    if (rv == APR_NOTFOUND) {
        return comet_request_error(r, HTTP_NOT_FOUND, APLOG_DEBUG, 0, "session gone");
    }
    if (rv != APR_SUCCESS && rv != APR_EBUSY) {
        return comet_request_error(r, HTTP_INTERNAL_SERVER_ERROR, APLOG_ERR, rv,
                                   "receiver claim failed");
    }
    sjs_common(r, 0);
    comet_stream_headers(r, t->content_type, 1);
    if ((rc = sjs_receive_open(q, t, &params, &rcv, rv == APR_EBUSY)) != DECLINED) {
        return rc;
    }
    return sjs_receive_stream(q, t, &params, &rcv);
}

typedef struct {
    sjs_req_t *q;
    apr_status_t rv;
    apr_size_t max_size, max_queue;
} sjs_send_ctx_t;

static int sjs_send_one(void *baton, const char *s, apr_size_t len)
{
    sjs_send_ctx_t *x = baton;

    x->rv = comet_sup_send(comet_proc.store, x->q->sid, s, len, x->max_size, x->max_queue);
    return x->rv == APR_SUCCESS ? 0 : 1;
}

static int sjs_check_one(void *baton, const char *s, apr_size_t len)
{
    return 0;
}

/* jsonp_send in a form: the payload is its d=<urlencoded JSON>. */
static void sjs_form_payload(request_rec *r, char **body, apr_size_t *len)
{
    const char *ct = apr_table_get(r->headers_in, "Content-Type");
    char *d = NULL, *p, *amp;

    if (!ct || strncasecmp(ct, "application/x-www-form-urlencoded", 33)) {
        return;
    }
    for (p = *body; p && *p; p = amp ? amp + 1 : NULL) {
        amp = strchr(p, '&');
        if (amp) {
            *amp = '\0';
        }
        if (!strncmp(p, "d=", 2)) {
            d = p + 2;
            break;
        }
    }
    /* form decoding: ap_unescape_url() would refuse %2F, which any message
     * with a slash has (sockjs-client encodes it) */
    if (d && ap_unescape_urlencoded(d) != OK) {
        d = NULL;
    }
    *body = d;
    *len = d ? strlen(d) : 0;
}

/* Why the supervisor's queue refused a message, as an HTTP status. */
static int sjs_send_status(request_rec *r, apr_status_t rv)
{
    switch (rv) {
    case APR_EAGAIN:
        return comet_request_error(r, HTTP_SERVICE_UNAVAILABLE, APLOG_WARNING, rv,
                                   "session queue full (CometSocketMaxQueue): its backend "
                                   "does not read");
    case APR_EOF:
        return comet_request_error(r, HTTP_NOT_FOUND, APLOG_DEBUG, rv, "session closed");
    case APR_EINVAL:
        return comet_request_error(r, HTTP_REQUEST_ENTITY_TOO_LARGE, APLOG_INFO, rv,
                                   "message over CometMaxMessageSize");
    default:
        return comet_request_error(r, HTTP_SERVICE_UNAVAILABLE, APLOG_ERR, rv,
                                   "cannot queue the message (CometSharedMemory full?)");
    }
}

/* Messages from the browser: xhr_send (raw JSON) or jsonp_send (d=...). */
static int sjs_send(sjs_req_t *q, int jsonp)
{
    request_rec *r = q->r;
    comet_buf_t scratch = { 0 };
    sjs_send_ctx_t x;
    comet_chan_ref_t ref;
    char *body = NULL;
    apr_size_t len = 0;
    int rc;

    if ((rc = sjs_session(q, 0, &ref)) != OK) {
        return rc;
    }
    rc = comet_request_read_body(r, MAX_PAYLOAD, &body, &len);
    if (rc != OK) {
        return comet_request_error(r, rc, APLOG_INFO, 0, rc == HTTP_REQUEST_ENTITY_TOO_LARGE
                                   ? "payload over 1 MiB" : "cannot read the payload");
    }
    if (jsonp) {
        sjs_form_payload(r, &body, &len);
    }
    if (!body || !len) {
        return sjs_fail(r, HTTP_INTERNAL_SERVER_ERROR, "Payload expected.", "empty payload");
    }
    x.q = q;
    x.rv = APR_SUCCESS;
    x.max_size = (apr_size_t)COMET_CONF(q->conf, COMET_CONF_MAX_MESSAGE);
    x.max_queue = (apr_size_t)COMET_CONF(comet_config_server(r->server), COMET_CONF_MAX_QUEUE);
    /* the whole payload first: a broken one must deliver none of its
     * messages, not those before the error */
    rc = comet_json_parse_strings(body, len, &scratch, sjs_check_one, NULL);
    if (rc == 0) {
        rc = comet_json_parse_strings(body, len, &scratch, sjs_send_one, &x);
    }
    comet_buf_free(&scratch);
    if (rc < 0) {
        return sjs_fail(r, HTTP_INTERNAL_SERVER_ERROR, "Broken JSON encoding.",
                        "payload is not a JSON array of strings");
    }
    if (x.rv != APR_SUCCESS) {
        return sjs_send_status(r, x.rv);
    }
    sjs_common(r, 0);
    if (jsonp) {
        return sjs_text(r, HTTP_OK, "text/plain; charset=UTF-8", "ok");
    }
    /* a 204 with a type all the same: Firefox takes an untyped answer to
     * an XHR for XML and complains it is not */
    r->status = HTTP_NO_CONTENT;
    /* in the table itself: httpd drops r->content_type from a 204 */
    apr_table_setn(r->headers_out, "Content-Type", "text/plain; charset=UTF-8");
    return OK;
}

/*******************************************************************************
 * WebSocket
 ******************************************************************************/


/*******************************************************************************
 * SockJS over WebSocket
 *
 * A WebSocket is a session of its own, as long as the connection: the same
 * session id may serve several at once (the protocol says so), so the store
 * knows it by the id and a token of the connection. Frames from the client
 * go to the backend from the child's loop (sjs_ws_upstream), as xhr_send's.
 ******************************************************************************/

/* What the loop needs to pass the client's messages on (the loop frees it). */
typedef struct {
    comet_store_t *store;
    apr_size_t max_size, max_queue;
    int raw;                          /* /websocket: each message as it is */
    char sid[COMET_CHANNEL_MAX];
} sjs_ws_up_t;

/* A close code for what the supervisor's queue answered. */
static int sjs_ws_status(apr_status_t rv)
{
    switch (rv) {
    case APR_SUCCESS:
    case APR_EOF:                     /* closing: its close frame is on the way */
        return 0;
    case APR_EINVAL:
        return COMET_WS_TOO_BIG;
    default:                          /* queue full (CometSocketMaxQueue), store full */
        return COMET_WS_TRY_LATER;
    }
}

static int sjs_ws_send_one(void *baton, const char *s, apr_size_t len)
{
    sjs_ws_up_t *u = baton;

    return sjs_ws_status(comet_sup_send(u->store, u->sid, s, len, u->max_size, u->max_queue));
}

/* On the loop's thread: a message from the client. SockJS frames carry a
 * JSON array of strings (empty frames and [] are nothing); a broken one
 * ends the connection, with none of its messages delivered. */
static int sjs_ws_upstream(void *baton, int opcode, const char *data, apr_size_t len)
{
    sjs_ws_up_t *u = baton;
    comet_buf_t scratch = { 0 };
    int rc;

    if (u->raw) {
        return sjs_ws_send_one(u, data, len);
    }
    if (len == 0) {
        return 0;
    }
    rc = comet_json_parse_strings(data, len, &scratch, sjs_check_one, NULL);
    if (rc == 0) {
        rc = comet_json_parse_strings(data, len, &scratch, sjs_ws_send_one, u);
    }
    comet_buf_free(&scratch);
    return rc < 0 ? COMET_WS_BAD_DATA : rc;
}

/* On the loop's thread: the WebSocket is over, and so is its session. */
static void sjs_ws_hangup(void *baton)
{
    sjs_ws_up_t *u = baton;

    comet_sup_hangup(u->store, u->sid);
}

/* The session of one WebSocket: "<id>-<token>" (raw: "ws-<token>"). */
static void sjs_ws_session(sjs_req_t *q, int raw)
{
    apr_uint64_t t = sjs_token();

    q->sid = raw ? apr_psprintf(q->r->pool, "ws-%" APR_UINT64_T_HEX_FMT, t)
                 : apr_psprintf(q->r->pool, "%.*s-%" APR_UINT64_T_HEX_FMT,
                                /* room for "s:" and the token: the token
                                 * alone makes it unique */
                                COMET_CHANNEL_MAX - 2 - 17, q->sid, t);
    q->down_len = comet_sup_channel(q->down, sizeof(q->down), 's', q->sid);
}

/* The stream's spec: the session's channel, frames, the client's messages. */
static sjs_ws_up_t *sjs_ws_spec(sjs_req_t *q, const comet_transport_t *t,
                                const sjs_receiver_t *rcv, comet_sub_spec_t *spec)
{
    request_rec *r = q->r;
    sjs_ws_up_t *u = calloc(1, sizeof(*u));

    if (!u) {
        return NULL;
    }
    u->store = comet_proc.store;
    u->max_size = (apr_size_t)COMET_CONF(q->conf, COMET_CONF_MAX_MESSAGE);
    u->max_queue = (apr_size_t)COMET_CONF(comet_config_server(r->server), COMET_CONF_MAX_QUEUE);
    u->raw = t == &comet_transport_sockjs_rawws;
    apr_cpystrn(u->sid, q->sid, sizeof(u->sid));
    memset(spec, 0, sizeof(*spec));
    spec->transport = t;
    spec->nchannels = 1;
    spec->channels[0] = q->down;
    spec->channel_lens[0] = q->down_len;
    spec->since[0] = rcv->acked;
    spec->heartbeat = COMET_CONF(q->conf, COMET_CONF_SOCKET_HEARTBEAT);
    spec->params.heartbeat = spec->heartbeat;
    spec->session = 1;
    spec->token = rcv->token;
    spec->websocket = 1;
    /* a SockJS frame holds the message JSON-escaped: room for that */
    spec->ws_max_message = u->max_size * 6 + 16;
    spec->upstream = sjs_ws_upstream;
    spec->upstream_baton = u;
    spec->on_end = sjs_ws_hangup;
    return u;
}

/* GET .../websocket (raw: the location's /websocket). */
static int sjs_websocket(sjs_req_t *q, int raw)
{
    request_rec *r = q->r;
    const comet_transport_t *t = raw ? &comet_transport_sockjs_rawws
                                     : &comet_transport_sockjs_websocket;
    const char *why = NULL;
    apr_uint32_t keys[2];
    int hixie = !raw && comet_websocket_hixie(r, keys);
    comet_buf_t out = { 0 };
    comet_sub_spec_t spec;
    sjs_receiver_t rcv;
    sjs_ws_up_t *u;
    const char *ext;
    apr_status_t rv;
    int rc, taken = 0;

    if (!COMET_CONF(q->conf, COMET_CONF_SOCKET_WEBSOCKET)) {
        return comet_request_error(r, HTTP_NOT_FOUND, APLOG_DEBUG, 0,
                                   "websocket not offered (CometSocketWebSocket Off)");
    }
    rc = comet_websocket_check(r, (int)COMET_CONF(q->conf, COMET_CONF_STREAM_MODE), !raw,
                               &why);
    if (rc == HTTP_METHOD_NOT_ALLOWED) {
        /* 405 with Allow and nothing else: no body, no type (the suite) */
        ap_discard_request_body(r);
        apr_table_setn(r->headers_out, "Allow", "GET");
        r->status = HTTP_METHOD_NOT_ALLOWED;
        return OK;
    }
    if (rc != OK) {
        return sjs_fail(r, rc, why, why);
    }
    memset(&rcv, 0, sizeof(rcv));
    sjs_ws_session(q, raw);
    if ((rc = sjs_session(q, 1, &rcv.ref)) != OK) {
        return rc;
    }
    rcv.token = sjs_token();
    rv = sjs_claim(q, &rcv.ref, rcv.token, &rcv.acked, &rcv.flags);
    if (rv != APR_SUCCESS) {
        return comet_request_error(r, HTTP_INTERNAL_SERVER_ERROR, APLOG_ERR, rv,
                                   "receiver claim of a new WebSocket session failed");
    }
    if (hixie) {
        t = &comet_transport_sockjs_hixie;
    }
    ext = hixie ? NULL : comet_websocket_deflate(r, (int)COMET_CONF(q->conf,
                                                                   COMET_CONF_WEBSOCKET_DEFLATE));
    if (comet_websocket_upgrade(r, hixie, ext) != OK) {
        sjs_release(&rcv);
        return OK;
    }
    /* "o": now, or (hixie-76) once its handshake ends, from the loop */
    if (t->open(&out, NULL) < 0
        || (!hixie && comet_stream_send(r, apr_brigade_create(r->pool,
                                                              r->connection->bucket_alloc),
                                        out.data, out.len) < 0)
        || !(u = sjs_ws_spec(q, t, &rcv, &spec))) {
        comet_buf_free(&out);
        sjs_release(&rcv);
        return OK;
    }
    comet_proc.store->session.ack(comet_proc.store, &rcv.ref, rcv.acked, COMET_CHAN_OPENED);
    if (hixie) {
        spec.hixie = 1;
        spec.hixie_keys[0] = keys[0];
        spec.hixie_keys[1] = keys[1];
        spec.hixie_greeting = apr_pmemdup(r->pool, out.data, out.len);
        spec.hixie_greeting_len = out.len;
    }
    if (ext) {
        /* the same frames; messages compressed */
        spec.transport = raw ? &comet_transport_sockjs_rawws_deflate
                             : &comet_transport_sockjs_websocket_deflate;
        spec.ws_deflate = 1;
    }
    comet_buf_free(&out);
    ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r, "session %s: websocket", q->sid);
    rc = comet_stream_handoff(r, q->conf, &spec, &taken);
    if (!taken) {
        free(u);
        sjs_release(&rcv);
    }
    return rc;
}

/*******************************************************************************
 * routing
 ******************************************************************************/

typedef enum { SJS_RECEIVE, SJS_SEND, SJS_SEND_FORM, SJS_WEBSOCKET } sjs_action_t;

/* /<server>/<session>/<what>: the method each takes, whether it answers a
 * CORS preflight, and what it does. */
static const struct {
    const char *what;
    int method;
    int preflight;
    sjs_action_t action;
    const comet_transport_t *t;
} sjs_routes[] = {
    { "xhr", M_POST, 1, SJS_RECEIVE, &comet_transport_sockjs_xhr },
    { "xhr_streaming", M_POST, 1, SJS_RECEIVE, &comet_transport_sockjs_xhr_streaming },
    { "xhr_send", M_POST, 1, SJS_SEND, NULL },
    { "jsonp_send", M_POST, 0, SJS_SEND_FORM, NULL },
    { "eventsource", M_GET, 0, SJS_RECEIVE, &comet_transport_sockjs_eventsource },
    { "htmlfile", M_GET, 0, SJS_RECEIVE, &comet_transport_sockjs_htmlfile },
    { "jsonp", M_GET, 0, SJS_RECEIVE, &comet_transport_sockjs_jsonp },
    { "websocket", M_GET, 0, SJS_WEBSOCKET, NULL },
    { NULL }
};

static int sjs_route(sjs_req_t *q)
{
    request_rec *r = q->r;
    int i;

    for (i = 0; sjs_routes[i].what && strcmp(sjs_routes[i].what, q->what); i++) {
    }
    if (!sjs_routes[i].what) {
        return comet_request_error(r, HTTP_NOT_FOUND, APLOG_DEBUG, 0,
                                   "unknown SockJS transport");
    }
    if (sjs_routes[i].action == SJS_WEBSOCKET) {
        return sjs_websocket(q, 0);
    }
    if (sjs_routes[i].preflight && r->method_number == M_OPTIONS) {
        sjs_cookie(r, q->conf);
        return sjs_options(r, "OPTIONS, POST");
    }
    if (r->method_number != sjs_routes[i].method) {
        return comet_request_refuse_method(r, COMET_METHOD(sjs_routes[i].method)
                                           | (sjs_routes[i].preflight
                                              ? COMET_METHOD(M_OPTIONS) : 0));
    }
    sjs_cookie(r, q->conf);
    if (sjs_routes[i].action != SJS_RECEIVE) {
        return sjs_send(q, sjs_routes[i].action == SJS_SEND_FORM);
    }
    if (r->method_number == M_POST) {
        /* a poll's body means nothing: read it so the connection stays sane */
        ap_discard_request_body(r);
    }
    return sjs_receive(q, sjs_routes[i].t);
}

/* A segment of a session URL: anything but empty, a dot or a slash (SockJS:
 * the client picks its ids, any value goes), of a sane length. */
static int sjs_segment_ok(const char *s, apr_size_t len)
{
    return len > 0 && len <= COMET_CHANNEL_MAX - 2 && !memchr(s, '.', len)
           && !memchr(s, '/', len);
}

/* The session's name in the store and for the supervisor, in the channel
 * alphabet ([A-Za-z0-9_-]): the id itself when it is made of it and has no
 * "_" (sockjs-client's and socket.js's ids), else with "_" doubled and any
 * other byte as _<hex>, so that two ids never share a name.
 * @return its length, 0 if it would be too long */
static apr_size_t sjs_session_name(const char *s, apr_size_t len, char *out, apr_size_t size)
{
    static const char hex[] = "0123456789abcdef";
    apr_size_t i, n = 0;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c != '_' && comet_channel_valid(s + i, 1)) {
            if (n + 1 >= size) {
                return 0;
            }
            out[n++] = (char)c;
        }
        else if (c == '_') {
            if (n + 2 >= size) {
                return 0;
            }
            out[n++] = '_';
            out[n++] = '_';
        }
        else {
            if (n + 3 >= size) {
                return 0;
            }
            out[n++] = '_';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        }
    }
    out[n] = '\0';
    return n;
}

/* iframe.html, or iframe<anything without a slash>.html (the version). */
static int sjs_is_iframe(const char *rest)
{
    const char *html = ap_strstr_c(rest, ".html");

    return !strncmp(rest, "iframe", 6) && html && !ap_strchr_c(rest, '/')
        && strlen(rest) == (apr_size_t)(html - rest) + 5;
}

/* Does the path as the client sent it have an empty segment ("//")? No
 * SockJS URL has one, and httpd's MergeSlashes would make /echo// the
 * greeting (it merges r->uri and r->parsed_uri.path alike). */
static int sjs_empty_segment(request_rec *r)
{
    const char *p = r->unparsed_uri ? r->unparsed_uri : "", *scheme;

    if (*p != '/' && (scheme = ap_strstr_c(p, "://")) != NULL) {
        p = ap_strchr_c(scheme + 3, '/');         /* absolute form: the path */
    }
    for (; p && *p && *p != '?' && *p != '#'; p++) {
        if (p[0] == '/' && p[1] == '/') {
            return 1;
        }
    }
    return 0;
}

static int comet_socket_handler(request_rec *r)
{
    const comet_dir_conf_t *conf;
    const char *rest, *slash1, *slash2;
    char sid[COMET_CHANNEL_MAX - 1];
    sjs_req_t q;

    if (strcmp(r->handler, "comet-socket")) {
        return DECLINED;
    }
    conf = comet_config_dir(r);
    if (!comet_proc.store) {
        return comet_request_error(r, HTTP_SERVICE_UNAVAILABLE, APLOG_ERR, 0,
                                   "the channel store is not available (see earlier errors)");
    }
    if (sjs_empty_segment(r)) {
        return comet_request_error(r, HTTP_NOT_FOUND, APLOG_DEBUG, 0, "not a SockJS URL");
    }
    rest = comet_request_path_rest(r, conf);
    if (!*rest) {
        if (r->method_number != M_GET) {
            return comet_request_refuse_method(r, COMET_METHOD(M_GET));
        }
        return sjs_text(r, HTTP_OK, "text/plain; charset=UTF-8", "Welcome to SockJS!\n");
    }
    if (!strcmp(rest, "info")) {
        return sjs_info(r, conf);
    }
    if (!strcmp(rest, "websocket")) {
        memset(&q, 0, sizeof(q));
        q.r = r;
        q.conf = conf;
        return sjs_websocket(&q, 1);
    }
    if (sjs_is_iframe(rest)) {
        return sjs_iframe(r, conf);
    }
    /* <server>/<session>/<what> */
    slash1 = ap_strchr_c(rest, '/');
    slash2 = slash1 ? ap_strchr_c(slash1 + 1, '/') : NULL;
    if (!slash1 || !slash2 || ap_strchr_c(slash2 + 1, '/')
        || !sjs_segment_ok(rest, (apr_size_t)(slash1 - rest))
        || !sjs_segment_ok(slash1 + 1, (apr_size_t)(slash2 - slash1 - 1))
        || !sjs_session_name(slash1 + 1, (apr_size_t)(slash2 - slash1 - 1),
                             sid, sizeof(sid))) {
        return comet_request_error(r, HTTP_NOT_FOUND, APLOG_DEBUG, 0, "not a SockJS URL");
    }
    memset(&q, 0, sizeof(q));
    q.r = r;
    q.conf = conf;
    q.server = apr_pstrmemdup(r->pool, rest, (apr_size_t)(slash1 - rest));
    q.sid = apr_pstrdup(r->pool, sid);
    q.what = slash2 + 1;
    q.down_len = comet_sup_channel(q.down, sizeof(q.down), 's', q.sid);
    return sjs_route(&q);
}

void comet_socket_register_hooks(apr_pool_t *p)
{
    ap_hook_handler(comet_socket_handler, NULL, NULL, APR_HOOK_MIDDLE);
}
