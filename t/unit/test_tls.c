/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/* Unit tests of the TLS connection the reactor writes (engine/comet_tls.c):
 * a real TLS session between two OpenSSL endpoints over a socket pair, the
 * server side driven through comet_tls_ops, the client side plain OpenSSL. */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "comet_tls.h"
#include "unit.h"

static SSL_CTX *server_ctx, *client_ctx;

/* A self-signed P-256 certificate, made here: no file, no openssl command. */
static int make_contexts(void)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_NAME *name;

    if (!key || !x) {
        return -1;
    }
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost",
                               -1, -1, 0);
    X509_set_issuer_name(x, name);
    if (!X509_sign(x, key, EVP_sha256())) {
        return -1;
    }
    server_ctx = SSL_CTX_new(TLS_server_method());
    client_ctx = SSL_CTX_new(TLS_client_method());
    if (!server_ctx || !client_ctx || SSL_CTX_use_certificate(server_ctx, x) != 1
        || SSL_CTX_use_PrivateKey(server_ctx, key) != 1) {
        return -1;
    }
    SSL_CTX_set_verify(client_ctx, SSL_VERIFY_NONE, NULL);
    X509_free(x);
    EVP_PKEY_free(key);
    return 0;
}

typedef struct {
    int sfd, cfd;
    SSL *server, *client;
    void *conn;
} pair_t;

static void set_nonblock(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* A connected pair past its handshake, the server side in comet_tls. */
static int pair_open(pair_t *p, int max_version)
{
    int fds[2], i, sdone = 0, cdone = 0;

    memset(p, 0, sizeof(*p));
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) < 0) {
        return -1;
    }
    p->sfd = fds[0];
    p->cfd = fds[1];
    set_nonblock(p->sfd);
    set_nonblock(p->cfd);
    p->server = SSL_new(server_ctx);
    p->client = SSL_new(client_ctx);
    SSL_set_max_proto_version(p->client, max_version);
    SSL_set_fd(p->server, p->sfd);
    SSL_set_fd(p->client, p->cfd);
    SSL_set_accept_state(p->server);
    SSL_set_connect_state(p->client);
    for (i = 0; i < 1000 && !(sdone && cdone); i++) {
        if (!cdone) {
            cdone = SSL_do_handshake(p->client) == 1;
        }
        if (!sdone) {
            sdone = SSL_do_handshake(p->server) == 1;
        }
    }
    if (!sdone || !cdone) {
        return -1;
    }
    return comet_tls_create(&p->conn, p->server, p->sfd) == APR_SUCCESS ? 0 : -1;
}

static void pair_close(pair_t *p, int hard)
{
    if (p->conn) {
        comet_tls_ops.destroy(p->conn, hard);
    }
    SSL_free(p->client);
    close(p->sfd);
    close(p->cfd);
}

/* Everything the client can read now, appended to buf; its SSL_read's last
 * result in *last. */
static apr_size_t client_read(pair_t *p, char *buf, apr_size_t max, int *last)
{
    apr_size_t got = 0;
    int rc = 0;

    while (got < max && (rc = SSL_read(p->client, buf + got, (int)(max - got))) > 0) {
        got += (apr_size_t)rc;
    }
    *last = got < max ? SSL_get_error(p->client, rc) : SSL_ERROR_NONE;
    return got;
}

static void test_small_frames(int version, const char *v)
{
    pair_t p;
    struct iovec iov[3];
    apr_size_t taken = 0;
    char buf[64];
    int last;

    OK(pair_open(&p, version) == 0, "%s: handshake, then the session in comet_tls", v);
    iov[0].iov_base = "5\r\n";
    iov[0].iov_len = 3;
    iov[1].iov_base = "hello";
    iov[1].iov_len = 5;
    iov[2].iov_base = "\r\n";
    iov[2].iov_len = 2;
    OK(comet_tls_ops.write(p.conn, iov, 3, &taken) == APR_SUCCESS && taken == 10,
       "%s: a chunk header, a frame and a trailer go in one write (%d)", v, (int)taken);
    OK(client_read(&p, buf, sizeof(buf), &last) == 10 && !memcmp(buf, "5\r\nhello\r\n", 10),
       "%s: the client reads them as they were", v);
    OK(!comet_tls_ops.want_write(p.conn), "%s: nothing waits for the socket", v);
    OK(comet_tls_ops.read(p.conn) == APR_SUCCESS, "%s: nothing to read is not an end", v);
    SSL_write(p.client, "ignored", 7);
    OK(comet_tls_ops.read(p.conn) == APR_SUCCESS, "%s: what the client says is dropped", v);
    SSL_shutdown(p.client);
    OK(comet_tls_ops.read(p.conn) == APR_EOF, "%s: the client's close_notify is its end", v);
    pair_close(&p, 1);
}

/* Fill the socket: the server must keep its record until there is room,
 * then go on from there, and every byte arrives once, in order. */
static void test_full_socket(void)
{
    enum { TOTAL = 4 * 1024 * 1024 };
    char *src = malloc(TOTAL), *dst = malloc(TOTAL);
    apr_size_t sent = 0, got = 0, i;
    int blocked = 0, rounds = 0, last = 0;
    pair_t p;

    for (i = 0; i < TOTAL; i++) {
        src[i] = (char)(i * 31 + i / 7);
    }
    OK(pair_open(&p, TLS1_3_VERSION) == 0, "big: handshake");
    while ((sent < TOTAL || got < TOTAL) && rounds++ < 100000) {
        while (sent < TOTAL) {
            struct iovec iov[2];
            apr_size_t taken = 0, left = TOTAL - sent, first = left < 100 ? left : 100;
            /* a small first piece: gathered with the next, as the queue does */
            iov[0].iov_base = src + sent;
            iov[0].iov_len = first;
            iov[1].iov_base = src + sent + first;
            iov[1].iov_len = left - first < 50000 ? left - first : 50000;
            if (comet_tls_ops.write(p.conn, iov, iov[1].iov_len ? 2 : 1, &taken)
                != APR_SUCCESS) {
                break;
            }
            if (taken == 0) {
                blocked += comet_tls_ops.want_write(p.conn);
                break;
            }
            sent += taken;
        }
        got += client_read(&p, dst + got, TOTAL - got, &last);
    }
    OK(blocked > 0, "big: the socket filled up (%d times a record waited)", blocked);
    OK(sent == TOTAL && got == TOTAL && !memcmp(src, dst, TOTAL),
       "big: 4 MiB arrive whole and in order (%d rounds)", rounds);
    OK(comet_tls_ops.shutdown(p.conn) == APR_SUCCESS, "big: goodbye said");
    client_read(&p, dst, 16, &last);
    OK(last == SSL_ERROR_ZERO_RETURN, "big: the client sees close_notify");
    pair_close(&p, 0);
    free(src);
    free(dst);
}

static void test_hard_end(void)
{
    pair_t p;
    char buf[16];
    int last;

    OK(pair_open(&p, TLS1_2_VERSION) == 0, "hard: handshake (TLS 1.2)");
    comet_tls_ops.destroy(p.conn, 1);
    p.conn = NULL;
    shutdown(p.sfd, SHUT_RDWR);
    client_read(&p, buf, sizeof(buf), &last);
    OK(last != SSL_ERROR_ZERO_RETURN && last != SSL_ERROR_WANT_READ,
       "hard: no close_notify, the connection just ends (%d)", last);
    pair_close(&p, 1);
}

static void test_peer_gone(void)
{
    pair_t p;
    struct iovec iov;
    apr_size_t taken;
    apr_status_t rv = APR_SUCCESS;
    int i;

    OK(pair_open(&p, TLS1_3_VERSION) == 0, "gone: handshake");
    close(p.cfd);
    p.cfd = -1;
    OK(comet_tls_ops.read(p.conn) != APR_SUCCESS, "gone: the read side ends");
    iov.iov_base = "x";
    iov.iov_len = 1;
    for (i = 0; i < 10 && rv == APR_SUCCESS; i++) {
        rv = comet_tls_ops.write(p.conn, &iov, 1, &taken);
    }
    OK(rv != APR_SUCCESS, "gone: a write fails rather than blocking");
    comet_tls_ops.destroy(p.conn, 1);
    p.conn = NULL;
    SSL_free(p.client);
    close(p.sfd);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (make_contexts() < 0) {
        printf("Bail out! cannot make a certificate\n");
        return 1;
    }
    test_small_frames(TLS1_3_VERSION, "TLS 1.3");
    test_small_frames(TLS1_2_VERSION, "TLS 1.2");
    test_full_socket();
    test_hard_end();
    test_peer_gone();
    SSL_CTX_free(server_ctx);
    SSL_CTX_free(client_ctx);
    return UNIT_DONE();
}
