/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/**
 * @file comet_tls.h
 * @brief A TLS stream the reactor writes itself: an OpenSSL session whose
 *        handshake is done, on a non-blocking socket, behind the connection
 *        table of comet_conn.h. No request handling in here: the httpd layer
 *        finds the session (httpd/comet_takeover.c), this file only drives
 *        it. APR and OpenSSL.
 */
#ifndef COMET_TLS_H
#define COMET_TLS_H

#include <openssl/ssl.h>

#include "comet_conn.h"

/** The functions of a TLS connection. */
extern const comet_conn_ops_t comet_tls_ops;

/**
 * Drive `ssl` on `fd` from now on: its I/O goes through a socket BIO on
 * `fd` (replacing whatever BIOs it had), writes may be partial and move.
 * @param ssl   a server session past its handshake; owned from now on (freed
 *              by the ops' destroy), also when this fails
 * @param fd    the connected socket, non-blocking; not owned
 * @param conn  receives the state to give the ops
 * @return APR_SUCCESS, or APR_ENOMEM
 */
apr_status_t comet_tls_create(void **conn, SSL *ssl, int fd);

#endif /* COMET_TLS_H */
