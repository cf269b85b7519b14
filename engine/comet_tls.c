/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/*
 * TLS streams on the reactor's loop; see comet_tls.h.
 *
 *   frames (iovecs) --SSL_write--> session --socket BIO--> fd
 *   fd --socket BIO--> session --SSL_read--> dropped (alerts, close_notify)
 *
 * A write that the socket cannot take leaves one record inside the session
 * (SSL_ERROR_WANT_WRITE); it must be retried with the same bytes, at least
 * as many: the reactor's queue only grows at its tail, so the bytes at its
 * front are the same at the next try, and moving buffers are allowed.
 * OpenSSL's error queue is per thread: it is emptied before each call so
 * that an error read here is this call's.
 */

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "comet_tls.h"

/* Small frames are gathered into one record up to this size. */
#define GATHER_MAX     16384
/* Bytes read per readable event at most, before others get their turn. */
#define READ_MAX       65536

typedef struct {
    SSL *ssl;
    unsigned want_write:1;            /* a record waits for room in the socket */
    unsigned said_goodbye:1;          /* close_notify sent */
} tls_conn_t;

apr_status_t comet_tls_create(void **conn, SSL *ssl, int fd)
{
    tls_conn_t *t = calloc(1, sizeof(*t));
    BIO *bio = t ? BIO_new_socket(fd, BIO_NOCLOSE) : NULL;

    if (!bio) {
        free(t);
        SSL_free(ssl);
        return APR_ENOMEM;
    }
    /* frees the BIOs the session had */
    SSL_set_bio(ssl, bio, bio);
    SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER
                      | SSL_MODE_RELEASE_BUFFERS);
    t->ssl = ssl;
    *conn = t;
    return APR_SUCCESS;
}

/* What an SSL call that returned `rc` <= 0 means for the stream. */
static apr_status_t tls_status(tls_conn_t *t, int rc)
{
    int err = SSL_get_error(t->ssl, rc);

    switch (err) {
    case SSL_ERROR_WANT_WRITE:
        t->want_write = 1;
        return APR_EAGAIN;
    case SSL_ERROR_WANT_READ:
        return APR_EAGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return APR_EOF;               /* the client's close_notify */
    case SSL_ERROR_SYSCALL:
        return errno ? errno : APR_EOF;
    default:
        return APR_EGENERAL;          /* a protocol error, or an EOF without goodbye */
    }
}

static apr_status_t tls_write(void *conn, const struct iovec *iov, int iovcnt,
                              apr_size_t *taken)
{
    tls_conn_t *t = conn;
    char gather[GATHER_MAX];
    const void *data = iov[0].iov_base;
    apr_size_t len = iov[0].iov_len;
    apr_status_t rv;
    int i, rc;

    *taken = 0;
    /* Gather small frames (a chunk header, a message, a chunk trailer) into
     * one record; what is gathered depends only on the front of the queue,
     * so a retry after WANT_WRITE writes the same bytes again, or more. */
    if (len < GATHER_MAX / 4 && iovcnt > 1) {
        len = 0;
        for (i = 0; i < iovcnt && len < GATHER_MAX; i++) {
            apr_size_t n = iov[i].iov_len < GATHER_MAX - len ? iov[i].iov_len
                                                              : GATHER_MAX - len;
            memcpy(gather + len, iov[i].iov_base, n);
            len += n;
        }
        data = gather;
    }
    if (len == 0) {
        return APR_SUCCESS;
    }
    ERR_clear_error();
    rc = SSL_write(t->ssl, data, (int)(len > INT_MAX ? INT_MAX : len));
    if (rc > 0) {
        t->want_write = 0;
        *taken = (apr_size_t)rc;
        return APR_SUCCESS;
    }
    rv = tls_status(t, rc);
    return rv == APR_EAGAIN ? APR_SUCCESS : rv;
}

static apr_status_t tls_read(void *conn)
{
    tls_conn_t *t = conn;
    char buf[4096];
    apr_size_t total = 0;

    while (total < READ_MAX) {
        apr_status_t rv;
        int rc;
        ERR_clear_error();
        rc = SSL_read(t->ssl, buf, sizeof(buf));
        if (rc > 0) {
            total += (apr_size_t)rc;
            continue;
        }
        rv = tls_status(t, rc);
        return rv == APR_EAGAIN ? APR_SUCCESS : rv;
    }
    return APR_SUCCESS;
}

static apr_status_t tls_recv(void *conn, char *buf, apr_size_t len, apr_size_t *got)
{
    tls_conn_t *t = conn;
    int rc;

    *got = 0;
    ERR_clear_error();
    rc = SSL_read(t->ssl, buf, (int)(len > INT_MAX ? INT_MAX : len));
    if (rc > 0) {
        *got = (apr_size_t)rc;
        return APR_SUCCESS;
    }
    return tls_status(t, rc);
}

static int tls_want_write(void *conn)
{
    return ((tls_conn_t *)conn)->want_write;
}

static apr_status_t tls_shutdown(void *conn)
{
    tls_conn_t *t = conn;
    int rc;

    if (t->said_goodbye) {
        return APR_SUCCESS;
    }
    ERR_clear_error();
    rc = SSL_shutdown(t->ssl);
    if (rc >= 0) {
        /* 0: ours sent, the client's not awaited (as mod_ssl's default) */
        t->said_goodbye = 1;
        t->want_write = 0;
        return APR_SUCCESS;
    }
    return tls_status(t, rc);
}

static void tls_destroy(void *conn, int hard)
{
    tls_conn_t *t = conn;

    if (hard && !t->said_goodbye) {
        /* as mod_ssl's abortive shutdown: no close_notify now, none later */
        SSL_set_shutdown(t->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    }
    ERR_clear_error();
    SSL_free(t->ssl);
    ERR_clear_error();
    free(t);
}

const comet_conn_ops_t comet_tls_ops = {
    "tls", tls_write, tls_read, tls_want_write, tls_shutdown, tls_destroy, tls_recv
};
