/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/*
 * The loop taking connections over from httpd; see comet_takeover.h.
 *
 * Over HTTPS the stream's bytes must go through the TLS session mod_ssl
 * negotiated. mod_ssl 2.4 has no interface to hand it over, so this file
 * reads mod_ssl's own record of it: its output filter's context, which
 * starts with the session and names its BIOs and filters (ssl_filter_ctx_t,
 * modules/ssl/ssl_engine_io.c, unchanged through 2.4.x), and the contexts
 * of its input filter and of the connection, each starting with the same
 * session. Every one of those pointers is checked against what OpenSSL and
 * httpd say independently before anything is touched; if one does not
 * match, the stream keeps a thread as before (and one log line says why).
 *
 * Taking the session: mod_ssl's records let go of it (so that neither its
 * cleanup nor its filters nor its variables reach it again), its callbacks
 * lose the conn_rec they look for (they return at once without one), and
 * the session gets a socket BIO on the duplicate descriptor. The bytes
 * between the session and the socket are drained first: nothing is left
 * set aside in mod_ssl or httpd's core.
 */

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include <http_core.h>
#include <http_protocol.h>
#include <http_request.h>
#include <http_ssl.h>

#include "comet_takeover.h"
#include "comet_tls.h"

/* What mod_ssl keeps in its output filter's context (ssl_filter_ctx_t). */
typedef struct {
    SSL *pssl;
    BIO *pbioRead;
    BIO *pbioWrite;
    ap_filter_t *pInputFilter;
    ap_filter_t *pOutputFilter;
    void *config;                     /* SSLConnRec, which starts with its SSL * */
} modssl_filter_ctx_t;

/* Filters that leave a response's bytes as they are: the loop may write
 * them itself. (mod_reqtimeout's output filter only watches for the EOR
 * bucket; mod_ssl's two are replaced by the loop's own TLS writes; httpd's
 * chunk filter by the loop's own chunks, comet_sub_spec_t.chunked.) */
static int filter_neutral(const char *name, int tls)
{
    static const char *const plain[] = {
        "byterange", "chunk", "content_length", "http_header", "http_outerror", "core",
        "log_input_output", "reqtimeout", NULL
    };
    int i;

    for (i = 0; plain[i]; i++) {
        if (!strcasecmp(name, plain[i])) {
            return 1;
        }
    }
    return tls && (!strcasecmp(name, "ssl/tls filter")
                   || !strcasecmp(name, "ssl/tls coalescing filter"));
}

/* mod_ssl's record of this connection's session, if it is exactly what it
 * should be; NULL otherwise. */
static modssl_filter_ctx_t *modssl_find(request_rec *r)
{
    conn_rec *c = r->connection;
    modssl_filter_ctx_t *x;
    ap_filter_t *f;

    for (f = c->output_filters; f; f = f->next) {
        if (!strcasecmp(f->frec->name, "ssl/tls filter")) {
            break;
        }
    }
    if (!f || !(x = f->ctx)) {
        return NULL;
    }
    if (x->pOutputFilter != f || !x->pssl || !x->config || !x->pInputFilter
        || !x->pInputFilter->ctx || x->pInputFilter->c != c
        || *(SSL **)x->pInputFilter->ctx != x->pssl || *(SSL **)x->config != x->pssl
        || SSL_get_rbio(x->pssl) != x->pbioRead || SSL_get_wbio(x->pssl) != x->pbioWrite
        || SSL_get_app_data(x->pssl) != c || !SSL_is_init_finished(x->pssl)) {
        return NULL;
    }
    return x;
}

/* Read whatever waits between the client and the loop (mod_ssl's records,
 * the core's read-ahead), until the socket has nothing more: the loop
 * reads the socket directly. A WebSocket keeps it (a client may send its
 * first frame right behind the handshake): spec->input; other streams drop
 * it (the client has nothing to say). */
static apr_status_t drain(request_rec *r, comet_sub_spec_t *spec)
{
    conn_rec *c = r->connection;
    apr_bucket_brigade *bb = apr_brigade_create(r->pool, c->bucket_alloc);
    apr_status_t rv = APR_SUCCESS;
    int i;

    for (i = 0; i < 64; i++) {
        rv = ap_get_brigade(c->input_filters, bb, AP_MODE_READBYTES, APR_NONBLOCK_READ, 8192);
        if (rv == APR_SUCCESS && APR_BRIGADE_EMPTY(bb)) {
            rv = APR_EAGAIN;          /* the core's way of saying "nothing now" */
        }
        if (rv == APR_SUCCESS && APR_BUCKET_IS_EOS(APR_BRIGADE_LAST(bb))) {
            rv = APR_EOF;
        }
        if (rv == APR_SUCCESS && spec->websocket) {
            /* copied now: mod_ssl's buckets point into its own buffer */
            char *data, *all;
            apr_size_t len = 0;
            if (apr_brigade_pflatten(bb, &data, &len, r->pool) != APR_SUCCESS) {
                rv = APR_ENOMEM;
            }
            else if (len) {
                all = apr_palloc(r->pool, spec->input_len + len);
                if (spec->input_len) {
                    memcpy(all, spec->input, spec->input_len);
                }
                memcpy(all + spec->input_len, data, len);
                spec->input = all;
                spec->input_len += len;
            }
        }
        apr_brigade_cleanup(bb);
        if (rv != APR_SUCCESS) {
            break;
        }
    }
    apr_brigade_destroy(bb);
    if (APR_STATUS_IS_EAGAIN(rv)) {
        return APR_SUCCESS;
    }
    return rv == APR_SUCCESS ? APR_EGENERAL : rv;    /* a client that keeps talking */
}

/* The session, taken from mod_ssl's records. */
static SSL *tls_take(modssl_filter_ctx_t *x)
{
    SSL *ssl = x->pssl;

    x->pssl = NULL;
    *(SSL **)x->config = NULL;
    *(SSL **)x->pInputFilter->ctx = NULL;
    SSL_set_app_data(ssl, NULL);
    SSL_set_options(ssl, SSL_OP_NO_RENEGOTIATION);
    return ssl;
}

static int dup_socket(conn_rec *c)
{
    apr_os_sock_t fd;
    int dup_fd;

    apr_os_sock_get(&fd, ap_get_conn_socket(c));
    dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup_fd >= 0) {
        /* httpd 2.4 keeps sockets non-blocking at the OS level; make sure:
         * the loop must never block */
        fcntl(dup_fd, F_SETFL, fcntl(dup_fd, F_GETFL) | O_NONBLOCK);
    }
    return dup_fd;
}

/* Can the loop write this connection? The TLS record of mod_ssl in *x. */
static int takeover_possible(request_rec *r, modssl_filter_ctx_t **x)
{
    conn_rec *c = r->connection;
    int tls = ap_ssl_conn_is_ssl(c);
    ap_filter_t *f;

    *x = NULL;
    if (c->master || !ap_get_conn_socket(c)) {
        return 0;
    }
    for (f = r->output_filters; f; f = f->next) {
        if (!filter_neutral(f->frec->name, tls)) {
            ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, COMET_LOGNO(00130)
                          "output filter %s rewrites the stream: a worker thread "
                          "keeps it", f->frec->name);
            return 0;
        }
    }
    if (tls && !(*x = modssl_find(r))) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, COMET_LOGNO(00134)
                      "the TLS session is not mod_ssl's as this module knows it: a "
                      "worker thread keeps the stream");
        return 0;
    }
    return 1;
}

int comet_takeover_possible(request_rec *r)
{
    modssl_filter_ctx_t *x;

    return takeover_possible(r, &x);
}

apr_status_t comet_takeover(request_rec *r, comet_sub_spec_t *spec)
{
    conn_rec *c = r->connection;
    modssl_filter_ctx_t *x;
    apr_status_t rv;

    if (!takeover_possible(r, &x) || c->data_in_output_filters) {
        return APR_ENOTIMPL;          /* (bytes set aside: httpd must write them) */
    }
    if ((x || spec->websocket) && (rv = drain(r, spec)) != APR_SUCCESS) {
        return rv;
    }
    if ((spec->fd = dup_socket(c)) < 0) {
        return errno;
    }
    spec->ops = NULL;
    spec->conn = NULL;
    if (x) {
        if ((rv = comet_tls_create(&spec->conn, tls_take(x), spec->fd)) != APR_SUCCESS) {
            close(spec->fd);
            spec->fd = -1;
            c->aborted = 1;           /* the session is gone: so is the connection */
            return rv;
        }
        spec->ops = &comet_tls_ops;
    }
    return APR_SUCCESS;
}

void comet_takeover_commit(request_rec *r)
{
    /* Marked aborted, the connection is closed by httpd without a lingering
     * shutdown that would end the stream, and its filters write nothing more
     * (mod_ssl's included): the request is logged as any other. */
    ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r, "comet: stream handed to the loop");
    r->connection->aborted = 1;
}

void comet_takeover_undo(request_rec *r, comet_sub_spec_t *spec)
{
    if (spec->ops) {
        /* the session is no longer mod_ssl's: the connection goes with it */
        spec->ops->destroy(spec->conn, 1);
        spec->ops = NULL;
        spec->conn = NULL;
        r->connection->aborted = 1;
    }
    if (spec->fd >= 0) {
        close(spec->fd);
        spec->fd = -1;
    }
}
