/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/* Long-lived responses handed to the event loop; see comet_stream.h. */

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <apr_strings.h>

#include <http_core.h>
#include <http_protocol.h>
#include <http_request.h>
#include <http_ssl.h>
#include <ap_mpm.h>

#include "comet_stream.h"
#include "comet_proc.h"
#include "comet_request.h"
#include "comet_takeover.h"

/* How often a held stream's thread looks at its server's state. */
#define HELD_POLL apr_time_from_sec(1)
/* What a stream refused for want of threads is told: come back then. */
#define RETRY_AFTER "5"
/* The request note of a stream that took a thread place. */
#define NOTE_THREAD "comet-thread"

/*******************************************************************************
 * streams that keep a thread
 ******************************************************************************/

/* CometMaxThreadStreams, and whether it counts this child's streams (a
 * threaded MPM) or the server's (prefork: a child is one thread). By
 * default a quarter of the threads, one at least, stays free. */
static apr_uint32_t thread_places(request_rec *r, int *per_child)
{
    apr_int64_t v = COMET_CONF(comet_config_server(r->server), COMET_CONF_MAX_THREAD_STREAMS);
    int threads = 1, n;

    if (ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads) != APR_SUCCESS || threads < 1) {
        threads = 1;
    }
    *per_child = threads > 1;
    if (v != COMET_CONF_AUTO) {
        return (apr_uint32_t)v;
    }
    n = threads;
    if (!*per_child && (ap_mpm_query(AP_MPMQ_MAX_DAEMONS, &n) != APR_SUCCESS || n < 1)) {
        n = 1;
    }
    return (apr_uint32_t)(n - (n / 4 > 1 ? n / 4 : 1));
}

static apr_status_t thread_place_release(void *data)
{
    apr_uint32_t mine, total;

    if (comet_proc.store && comet_proc.slot) {
        comet_proc.store->slot_held(comet_proc.store, comet_proc.slot, -1, &mine, &total);
    }
    return APR_SUCCESS;
}

/* Take one of the places, given back with the request. @return OK, or
 * HTTP_SERVICE_UNAVAILABLE */
static int thread_place_take(request_rec *r)
{
    apr_uint32_t mine = 0, total = 0, max;
    int per_child;

    if (apr_table_get(r->notes, NOTE_THREAD) || !comet_proc.store || !comet_proc.slot) {
        return OK;
    }
    max = thread_places(r, &per_child);
    if (comet_proc.store->slot_held(comet_proc.store, comet_proc.slot, 1, &mine, &total)
        != APR_SUCCESS) {
        return OK;
    }
    if ((per_child ? mine : total) > max) {
        thread_place_release(NULL);
        apr_table_setn(r->err_headers_out, "Retry-After", RETRY_AFTER);
        return comet_request_error(r, HTTP_SERVICE_UNAVAILABLE, APLOG_WARNING, 0,
            apr_psprintf(r->pool, "CometMaxThreadStreams (%u %s) reached: a stream that "
                         "would keep a worker thread (HTTP/2, an output filter, "
                         "CometStreamMode thread) is refused", max,
                         per_child ? "in this child" : "in the server"));
    }
    apr_table_setn(r->notes, NOTE_THREAD, "1");
    apr_pool_cleanup_register(r->pool, NULL, thread_place_release, apr_pool_cleanup_null);
    return OK;
}

int comet_stream_admit(request_rec *r, const comet_dir_conf_t *conf)
{
    if (COMET_CONF(conf, COMET_CONF_STREAM_MODE) == COMET_MODE_AUTO
        && comet_takeover_possible(r)) {
        return OK;
    }
    return thread_place_take(r);
}

/*******************************************************************************
 * the response
 ******************************************************************************/

void comet_stream_headers(request_rec *r, const char *content_type, int chunked)
{
    apr_table_setn(r->subprocess_env, "no-gzip", "1");
    apr_table_setn(r->subprocess_env, "no-brotli", "1");
    ap_remove_input_filter_byhandle(r->connection->input_filters, "reqtimeout");
    if (chunked) {
        /* "Connection: close" of our own: httpd still chunks an HTTP/1.1
         * response (ap_set_keepalive), yet keeps no connection alive */
        apr_table_setn(r->headers_out, "Connection", "close");
    }
    else {
        r->connection->keepalive = AP_CONN_CLOSE;
    }
    ap_set_content_type(r, content_type);
    comet_request_no_cache(r);
    apr_table_setn(r->headers_out, "X-Accel-Buffering", "no");
}

int comet_stream_send(request_rec *r, apr_bucket_brigade *bb, const char *data,
                      apr_size_t len)
{
    apr_status_t rv;

    apr_brigade_cleanup(bb);
    if (len) {
        apr_brigade_write(bb, NULL, NULL, data, len);
    }
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_flush_create(bb->bucket_alloc));
    rv = ap_pass_brigade(r->output_filters, bb);
    apr_brigade_cleanup(bb);
    return rv == APR_SUCCESS && !r->connection->aborted ? 0 : -1;
}

/* The end frame of a stream that cannot go on here (the child is stopping),
 * so that the client comes back at once, to another child. */
static void end_now(request_rec *r, apr_bucket_brigade *bb, const comet_sub_spec_t *spec)
{
    comet_buf_t out = { 0 };

    if (spec->transport->end
        && spec->transport->end(&out, &spec->params, COMET_END_RECONNECT) == 0) {
        comet_stream_send(r, bb, out.data, out.len);
    }
    comet_buf_free(&out);
}

/* CometBalance, or a child that stops with CometMoveStreams: the loop of
 * a child with fewer streams takes it, this child's gives its
 * subscriptions back. @return 1 if it did */
static int hand_to_other(request_rec *r, const comet_dir_conf_t *conf, comet_sub_spec_t *spec)
{
    apr_status_t rv;

    if ((!COMET_CONF(conf, COMET_CONF_BALANCE) && !comet_reactor_moving(comet_proc.reactor))
        || (rv = comet_reactor_forward(comet_proc.reactor, spec)) == APR_ENOTIMPL
        || rv == APR_EAGAIN) {
        return 0;
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r, COMET_LOGNO(00135)
                      "cannot hand the stream to another child: it stays here");
        return 0;
    }
    close(spec->fd);
    spec->fd = -1;
    comet_takeover_commit(r);
    return 1;
}

/* The loop takes the connection (comet_takeover.h). @return APR_ENOTIMPL
 * if it cannot: a thread must keep the stream; APR_SUCCESS otherwise (the
 * stream is the loop's, another child's, or over). */
static apr_status_t hand_to_loop(request_rec *r, const comet_dir_conf_t *conf,
                                 apr_bucket_brigade *bb, comet_sub_spec_t *spec, int *taken)
{
    apr_status_t rv;

    if (comet_reactor_stopping(comet_proc.reactor)
        && (!comet_reactor_moving(comet_proc.reactor) || ap_ssl_conn_is_ssl(r->connection))) {
        /* a stopping child's connection kept alive (a browser's, over
         * TLS): the end frame through httpd, which still has it; a plain
         * one goes to a live child if it can (hand_to_other) */
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, COMET_LOGNO(00133)
                      "the subscriber loop is stopping: stream ends");
        end_now(r, bb, spec);
        return APR_SUCCESS;
    }
    rv = comet_takeover(r, spec);
    if (rv == APR_ENOTIMPL) {
        return rv;
    }
    if (rv != APR_SUCCESS) {
        /* a client that resets meanwhile is a client going, not a fault */
        int gone = rv == APR_EOF || APR_STATUS_IS_ECONNRESET(rv) || APR_STATUS_IS_EPIPE(rv)
                   || APR_STATUS_IS_ECONNABORTED(rv);

        if (rv != APR_EOF) {
            comet_request_error(r, OK, gone ? APLOG_INFO : APLOG_ERR, rv,
                                "cannot hand the stream over");
        }
        if (gone) {
            /* the caller's to know (a SockJS receiver: its session is over) */
            r->connection->aborted = 1;
        }
        if (!r->connection->aborted) {
            end_now(r, bb, spec);
        }
        return APR_SUCCESS;
    }
    if (hand_to_other(r, conf, spec)) {
        *taken = 1;
        return APR_SUCCESS;
    }
    rv = comet_reactor_add(comet_proc.reactor, spec, NULL);
    if (rv != APR_SUCCESS) {
        comet_takeover_undo(r, spec);
        ap_log_rerror(APLOG_MARK, APLOG_INFO, rv, r, COMET_LOGNO(00133)
                      "the subscriber loop is stopping: stream ends");
        if (!r->connection->aborted) {
            end_now(r, bb, spec);
        }
        return APR_SUCCESS;
    }
    comet_takeover_commit(r);
    *taken = 1;
    return APR_SUCCESS;
}

/* This thread keeps the stream and writes what the loop hands it, until the
 * stream ends, the client leaves or the process stops. */
static int hold(request_rec *r, apr_bucket_brigade *bb, comet_sub_spec_t *spec, int *taken)
{
    apr_socket_t *sock = r->connection->master ? NULL : ap_get_conn_socket(r->connection);
    apr_os_sock_t fd = -1;
    comet_held_t *h = NULL;
    comet_buf_t out = { 0 };
    apr_status_t rv;
    int left = 0;                 /* the client went */

    if (sock) {
        apr_os_sock_get(&fd, sock);
    }
    spec->fd = -1;
    spec->ops = NULL;
    spec->conn = NULL;
    spec->chunked = 0;            /* httpd's chunk filter frames what we write */
    rv = comet_reactor_add(comet_proc.reactor, spec, &h);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, rv, r, COMET_LOGNO(00131)
                      "the subscriber loop is stopping: stream ends");
        end_now(r, bb, spec);
        return OK;
    }
    *taken = 1;
    for (;;) {
        int state = AP_MPMQ_RUNNING;
        rv = comet_held_wait(h, (int)fd, HELD_POLL, &out);
        if (out.len && comet_stream_send(r, bb, out.data, out.len) < 0) {
            left = 1;
            break;
        }
        out.len = 0;
        if (rv == APR_EOF || rv == APR_ECONNABORTED) {
            left = rv == APR_ECONNABORTED;
            break;
        }
        if (rv != APR_SUCCESS && rv != APR_TIMEUP) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, COMET_LOGNO(00132)
                          "waiting for messages failed");
            break;
        }
        if (rv == APR_TIMEUP && r->connection->master
            && (r->connection->aborted || comet_stream_send(r, bb, NULL, 0) < 0)) {
            /* HTTP/2: no socket to watch; the stream is reset when its client
             * goes, and the next flush says so */
            left = 1;
            break;
        }
        if (ap_mpm_query(AP_MPMQ_MPM_STATE, &state) == APR_SUCCESS
            && state == AP_MPMQ_STOPPING) {
            /* this process ends: the client comes back to the next one */
            end_now(r, bb, spec);
            break;
        }
    }
    comet_buf_free(&out);
    comet_held_release(h, left);
    return OK;
}

/*******************************************************************************
 * streams that move between generations
 ******************************************************************************/

/* How many request notes httpd's core keeps per request (its walks' caches
 * and those modules registered), known once registration is over. */
static apr_size_t request_notes;

void comet_stream_child_init(void)
{
    /* a note of our own, unused: its index says how many there are */
    request_notes = ap_register_request_note() + 1;
}

/* Where a stream was opened, for the child of a later generation that may
 * adopt it: "<generation> <port> <server name> <path>" (the path last: it
 * may hold spaces). */
static const char *stream_origin(request_rec *r)
{
    int gen = 0;

    (void)ap_mpm_query(AP_MPMQ_GENERATION, &gen);
    return apr_psprintf(r->pool, "%d %u %s %s", gen, (unsigned)r->connection->local_addr->port,
                        r->server->server_hostname ? r->server->server_hostname : "-", r->uri);
}

/* The server that answers for this name and port in this configuration,
 * as a reconnecting client would reach it: the virtual host of that name
 * on that port, else the first on that port, else the main server. */
static server_rec *origin_server(server_rec *main_s, const char *host, apr_port_t port)
{
    server_rec *v, *on_port = NULL;

    for (v = main_s->next; v; v = v->next) {
        server_addr_rec *a;
        for (a = v->addrs; a; a = a->next) {
            if (a->host_port == port || a->host_port == 0) {
                break;
            }
        }
        if (!a) {
            continue;
        }
        if (v->server_hostname && !ap_cstr_casecmp(v->server_hostname, host)) {
            return v;
        }
        on_port = on_port ? on_port : v;
    }
    return on_port ? on_port : main_s;
}

/* The stream's location walked anew in a request of our own making (no
 * client behind it: only what <Location> sections and SetHandler need).
 * @return 1 and `out` filled in, or 0 if nothing is known */
static int resolve_location(apr_pool_t *p, server_rec *v, const char *host, apr_port_t port,
                            const char *uri, const comet_sub_spec_t *spec, comet_resolved_t *out)
{
    conn_rec *c = apr_pcalloc(p, sizeof(*c));
    request_rec *r = apr_pcalloc(p, sizeof(*r));
    core_request_config *rc = apr_pcalloc(p, sizeof(*rc));
    const comet_dir_conf_t *conf;
    core_dir_config *cd;
    const char *handler = NULL, *err = NULL;

    c->pool = p;
    c->base_server = v;
    c->conn_config = ap_create_conn_config(p);
    c->notes = apr_table_make(p, 1);
    c->client_ip = c->local_ip = (char *)(spec->peer ? spec->peer : "-");
    /* an expression of SetHandler may ask for the port or the addresses */
    if (apr_sockaddr_info_get(&c->local_addr, "127.0.0.1", APR_INET, port, 0, p) != APR_SUCCESS) {
        return 0;
    }
    c->client_addr = c->local_addr;
    r->pool = p;
    r->connection = c;
    r->server = v;
    r->hostname = host;
    r->method = "GET";
    r->method_number = M_GET;
    r->protocol = (char *)"HTTP/1.1";
    r->proto_num = HTTP_VERSION(1, 1);
    r->uri = r->unparsed_uri = apr_pstrdup(p, uri);
    r->the_request = apr_pstrcat(p, "GET ", uri, " HTTP/1.1", NULL);
    r->useragent_ip = c->client_ip;
    r->request_time = apr_time_now();
    r->headers_in = apr_table_make(p, 1);
    r->headers_out = apr_table_make(p, 1);
    r->err_headers_out = apr_table_make(p, 1);
    r->subprocess_env = apr_table_make(p, 1);
    r->notes = apr_table_make(p, 1);
    /* what core's create_request gives a request: the walks cache in its
     * notes */
    r->request_config = ap_create_request_config(p);
    rc->notes = apr_pcalloc(p, sizeof(void *) * request_notes);
    ap_set_core_module_config(r->request_config, rc);
    r->per_dir_config = v->lookup_defaults;
    if (ap_location_walk(r) != OK) {
        return 0;
    }
    cd = ap_get_core_module_config(r->per_dir_config);
    if (cd && cd->expr_handler) {
        handler = ap_expr_str_exec(r, cd->expr_handler, &err);
    }
    conf = comet_config_dir(r);
    memset(out, 0, sizeof(*out));
    if (!handler || err || strcmp(handler, "comet") || !conf
        || !(COMET_CONF(conf, COMET_CONF_TRANSPORTS) & comet_config_transport_bit(spec->transport))) {
        out->gone = 1;
        return 1;
    }
    out->heartbeat = COMET_CONF(conf, COMET_CONF_HEARTBEAT);
    out->lifetime = COMET_CONF(conf, COMET_CONF_LIFETIME);
    out->byte_limit = (apr_size_t)COMET_CONF(conf, COMET_CONF_STREAM_LIMIT);
    out->queue_limit = (apr_size_t)COMET_CONF(conf, COMET_CONF_CLIENT_BUFFER);
    return 1;
}

/* The loop's thread walks in a pool of its own, cleared after each walk:
 * a pool made and destroyed for each of the thousands of streams that a
 * graceful restart hands the new generation mapped and unmapped its
 * memory every time, with the other CPUs' TLBs flushed (16% of the CPU
 * of a restart under 10,000 streams, perf). */
static __thread apr_pool_t *resolve_pool;

int comet_stream_resolve(void *baton, const char *origin, const comet_sub_spec_t *spec,
                         comet_resolved_t *out)
{
    server_rec *main_s = baton;
    char host[256];
    unsigned port;
    int gen, mine = 0, used = 0, rc;

    if (sscanf(origin, "%d %u %255s %n", &gen, &port, host, &used) != 3 || !used
        || origin[used] != '/' || port > 65535) {
        return 0;
    }
    (void)ap_mpm_query(AP_MPMQ_GENERATION, &mine);
    if (gen == mine || request_notes <= AP_NOTE_LOCATION_WALK) {
        return 0;                 /* the settings it has are ours */
    }
    if (!resolve_pool && apr_pool_create_unmanaged_ex(&resolve_pool, NULL, NULL) != APR_SUCCESS) {
        resolve_pool = NULL;
        return 0;
    }
    rc = resolve_location(resolve_pool, origin_server(main_s, host, (apr_port_t)port), host,
                          (apr_port_t)port, origin + used, spec, out);
    apr_pool_clear(resolve_pool);
    return rc;
}

int comet_stream_handoff(request_rec *r, const comet_dir_conf_t *conf,
                         comet_sub_spec_t *spec, int *taken)
{
    apr_bucket_brigade *bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);

    *taken = 0;
    /* the headers must be on the wire before the loop writes the body */
    if (!r->sent_bodyct && comet_stream_send(r, bb, NULL, 0) < 0) {
        return OK;
    }
    spec->queue_limit = (apr_size_t)COMET_CONF(conf, COMET_CONF_CLIENT_BUFFER);
    spec->peer = r->useragent_ip;
    spec->chunked = r->chunked;
    if (comet_proc.move_streams) {
        spec->origin = stream_origin(r);
    }
    if (!comet_proc.reactor) {
        end_now(r, bb, spec);
        return comet_request_error(r, OK, APLOG_ERR, 0,
                                   "this child has no subscriber loop (see earlier errors)");
    }
    if (COMET_CONF(conf, COMET_CONF_STREAM_MODE) == COMET_MODE_AUTO
        && hand_to_loop(r, conf, bb, spec, taken) != APR_ENOTIMPL) {
        return OK;
    }
    if (spec->websocket) {
        /* a thread could write it but not read the client's frames
         * (comet_websocket_check refused what it could foresee) */
        end_now(r, bb, spec);
        return comet_request_error(r, OK, APLOG_ERR, 0, "the event loop cannot take "
                                   "this WebSocket: closed");
    }
    if (thread_place_take(r) != OK) {
        /* the loop could not take it after all, and no thread is free for
         * it: the client comes back (to find a place, or another child) */
        end_now(r, bb, spec);
        return OK;
    }
    return hold(r, bb, spec, taken);
}
