/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/**
 * @file comet_takeover.h
 * @brief The child's event loop taking a stream's connection over from
 *        httpd, so that no thread of httpd keeps it: a duplicate of the
 *        socket (httpd then closes its own and forgets the connection, as
 *        for any ended request), and over HTTPS the TLS session mod_ssl
 *        negotiated, which the loop then drives itself (engine/comet_tls.h).
 *
 * Why not return SUSPENDED to the event MPM and keep the conn_rec: httpd
 * 2.4 counts a suspended connection among the child's connections until its
 * pool is destroyed, and a child past ThreadsPerChild + idle workers x
 * AsyncRequestWorkerFactor of them stops accepting (event.c,
 * connections_above_limit): a few hundred streams per child would stop the
 * server. Here the connection leaves httpd's books at once, under every MPM.
 */
#ifndef COMET_TAKEOVER_H
#define COMET_TAKEOVER_H

#include "mod_comet.h"
#include "comet_reactor.h"

/**
 * Could the loop take this connection (checked before the response starts:
 * a stream that cannot keeps a thread, see comet_stream_admit)?
 * @return 1 or 0
 */
int comet_takeover_possible(request_rec *r);

/**
 * Take the request's connection for the loop: spec->fd, and for TLS
 * spec->ops and spec->conn, are filled in. Call it once the response's
 * headers and first bytes are out (flushed).
 * @return APR_SUCCESS; APR_ENOTIMPL if the loop cannot write this connection
 *         (HTTP/2, an output filter that rewrites the body, TLS not from a
 *         mod_ssl laid out as this module knows it): a thread must keep the
 *         stream; APR_EOF if the client is gone; another error of a system
 *         call
 */
apr_status_t comet_takeover(request_rec *r, comet_sub_spec_t *spec);

/**
 * The loop has the connection: httpd must now forget it (it closes its own
 * descriptor, logs the request, and writes nothing more).
 */
void comet_takeover_commit(request_rec *r);

/**
 * The loop refused the connection after comet_takeover (it is stopping):
 * free what was taken. The client's connection is then cut.
 */
void comet_takeover_undo(request_rec *r, comet_sub_spec_t *spec);

#endif /* COMET_TAKEOVER_H */
