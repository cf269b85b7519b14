/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/* Long-lived responses handed to the event loop; see comet_stream.h. */

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <http_core.h>
#include <http_protocol.h>
#include <http_request.h>
#include <http_ssl.h>
#include <ap_mpm.h>

#include "comet_stream.h"
#include "comet_proc.h"
#include "comet_request.h"

/* How often a held stream's thread looks at its server's state. */
#define HELD_POLL apr_time_from_sec(1)

void comet_stream_headers(request_rec *r, const char *content_type)
{
    apr_table_setn(r->subprocess_env, "no-gzip", "1");
    apr_table_setn(r->subprocess_env, "no-brotli", "1");
    ap_remove_input_filter_byhandle(r->connection->input_filters, "reqtimeout");
    r->connection->keepalive = AP_CONN_CLOSE;
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

/* May the event loop write this connection's socket itself? Only if nothing
 * between the handler and the socket changes the bytes (TLS, compression,
 * HTTP/2 framing, rate limits...). */
static int loop_can_write(request_rec *r)
{
    conn_rec *c = r->connection;
    ap_filter_t *f;

    if (c->master || ap_ssl_conn_is_ssl(c) || !ap_get_conn_socket(c)) {
        return 0;
    }
    for (f = r->output_filters; f; f = f->next) {
        const char *n = f->frec->name;
        /* reqtimeout: mod_reqtimeout's output filter only watches for the
         * EOR bucket and passes the brigade on untouched */
        if (strcasecmp(n, "byterange") && strcasecmp(n, "content_length")
            && strcasecmp(n, "http_header") && strcasecmp(n, "http_outerror")
            && strcasecmp(n, "core") && strcasecmp(n, "log_input_output")
            && strcasecmp(n, "reqtimeout")) {
            ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, COMET_LOGNO(00130)
                          "output filter %s rewrites the stream: a worker thread "
                          "keeps it", n);
            return 0;
        }
    }
    return 1;
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

/* The loop takes the socket (a duplicate of it). */
static int hand_to_loop(request_rec *r, apr_bucket_brigade *bb, comet_sub_spec_t *spec,
                        int *taken)
{
    conn_rec *c = r->connection;
    apr_os_sock_t fd;
    apr_status_t rv;
    int dup_fd;

    apr_os_sock_get(&fd, ap_get_conn_socket(c));
    dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0) {
        end_now(r, bb, spec);
        return comet_request_error(r, OK, APLOG_ERR, errno, "cannot hand the stream over");
    }
    /* the socket is already non-blocking at the OS level in httpd 2.4,
     * make sure of it: the loop must never block */
    fcntl(dup_fd, F_SETFL, fcntl(dup_fd, F_GETFL) | O_NONBLOCK);
    spec->fd = dup_fd;
    rv = comet_reactor_add(comet_proc.reactor, spec, NULL);
    if (rv != APR_SUCCESS) {
        close(dup_fd);
        ap_log_rerror(APLOG_MARK, APLOG_INFO, rv, r, COMET_LOGNO(00133)
                      "the subscriber loop is stopping: stream ends");
        end_now(r, bb, spec);
        return OK;
    }
    *taken = 1;
    /* The loop owns the socket now. Marking the connection aborted makes
     * httpd log the request and close only its own descriptor, without a
     * lingering shutdown that would end our stream. */
    ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r, "comet: stream handed to the loop");
    c->aborted = 1;
    return OK;
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

    if (sock) {
        apr_os_sock_get(&fd, sock);
    }
    spec->fd = -1;
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
            break;
        }
        out.len = 0;
        if (rv == APR_EOF || rv == APR_ECONNABORTED) {
            break;
        }
        if (rv != APR_SUCCESS && rv != APR_TIMEUP) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, COMET_LOGNO(00132)
                          "waiting for messages failed");
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
    comet_held_release(h);
    return OK;
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
    if (!comet_proc.reactor) {
        end_now(r, bb, spec);
        return comet_request_error(r, OK, APLOG_ERR, 0,
                                   "this child has no subscriber loop (see earlier errors)");
    }
    if (COMET_CONF(conf, COMET_CONF_STREAM_MODE) == COMET_MODE_AUTO && loop_can_write(r)) {
        return hand_to_loop(r, bb, spec, taken);
    }
    return hold(r, bb, spec, taken);
}
