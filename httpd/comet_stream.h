/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/**
 * @file comet_stream.h
 * @brief A long-lived response (a channel stream, a SockJS receiver) from its
 *        headers to the moment it leaves the handler: the socket goes to the
 *        child's event loop (comet_reactor.h), or, where the loop cannot
 *        write it (TLS, HTTP/2, an output filter that rewrites the body,
 *        CometStreamMode thread), the handler's thread stays and writes what
 *        the loop hands it.
 */
#ifndef COMET_STREAM_H
#define COMET_STREAM_H

#include "mod_comet.h"
#include "comet_config.h"
#include "comet_reactor.h"

/**
 * Before a stream's response starts: a stream that will keep a worker
 * thread (HTTP/2, an output filter that rewrites it, CometStreamMode
 * thread, a TLS session the loop cannot take) takes one of the
 * CometMaxThreadStreams places, or is refused: so that whatever streams
 * come, threads are left for publishes, pages and the module's assets.
 * The place is given back when the request ends.
 * @return OK, or HTTP_SERVICE_UNAVAILABLE (Retry-After set, logged)
 */
int comet_stream_admit(request_rec *r, const comet_dir_conf_t *conf);

/**
 * Prepare the response of a stream: this content type, no compression, no
 * keep-alive, no request timeout, no caching anywhere.
 * @param chunked non-zero: over HTTP/1.1, a chunked body (its end told by
 *        the last chunk, as SockJS clients want it), else a body the
 *        connection's close ends
 */
void comet_stream_headers(request_rec *r, const char *content_type, int chunked);

/**
 * Send bytes (none: just the headers) and flush.
 * @param bb  a brigade of the request, reused
 * @return 0, or -1 if the client is gone
 */
int comet_stream_send(request_rec *r, apr_bucket_brigade *bb, const char *data,
                      apr_size_t len);

/**
 * Hand a stream over, once its headers and what the handler wrote went out.
 * @param spec   what the loop needs (transport, channels, cursors, limits);
 *               its fd, peer, chunked and queue limit are filled in here
 * @param taken  set to 1 if the loop took the stream (it then releases what
 *               the stream holds in the store), 0 if not (the caller does)
 * @return OK (the stream may have ended with its end frame if the child is
 *         stopping)
 */
int comet_stream_handoff(request_rec *r, const comet_dir_conf_t *conf,
                         comet_sub_spec_t *spec, int *taken);

/**
 * The settings here of a stream another child hands over at its stop
 * (comet_reactor_resolve_fn, on the loop's thread): when that child was of
 * an earlier configuration (a graceful restart), the location the stream
 * was opened at is looked up again in this one, as httpd's walk of
 * <Location> sections does for a request; its heartbeat, lifetime, stream
 * limit and client buffer apply from then on. A location that no longer
 * serves streams of its transport (no `SetHandler comet`, the transport
 * not in its CometTransports) ends it with its end frame. Access rules are
 * not run again: the stream was let in when it opened.
 * @param baton  the main server_rec
 */
int comet_stream_resolve(void *baton, const char *origin, const comet_sub_spec_t *spec,
                         comet_resolved_t *out);

/** child_init, before any thread: what comet_stream_resolve needs to know
 * of httpd's requests. */
void comet_stream_child_init(void);

#endif /* COMET_STREAM_H */
