/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/**
 * @file comet_conn.h
 * @brief A stream's connection when the reactor cannot hand its bytes to the
 *        socket as they are: a small table of functions between the frames
 *        and the socket (TLS: comet_tls.h). The reactor calls them on its
 *        loop's thread only; the socket itself stays the reactor's (it
 *        watches it and closes it).
 */
#ifndef COMET_CONN_H
#define COMET_CONN_H

#include <sys/uio.h>

#include <apr.h>
#include <apr_errno.h>

/** The functions of one kind of connection; `conn` is its own state. */
typedef struct comet_conn_ops_t {
    /** "tls", ...: for log lines */
    const char *name;

    /**
     * Take bytes from the front of `iov`.
     * @param taken  set to how many went (0: none now, see want_write)
     * @return APR_SUCCESS, or an error: the stream is over
     */
    apr_status_t (*write)(void *conn, const struct iovec *iov, int iovcnt,
                          apr_size_t *taken);

    /**
     * The socket is readable: read what the client sent and drop it.
     * @return APR_SUCCESS (nothing more for now), APR_EOF (the client
     *         left), or another error (the stream is over)
     */
    apr_status_t (*read)(void *conn);

    /** @return nonzero while it holds bytes for the socket: watch for room */
    int (*want_write)(void *conn);

    /**
     * Say goodbye on the wire (TLS: close_notify) once the last frame went.
     * @return APR_SUCCESS (said, or nothing to say), APR_EAGAIN (call again
     *         when the socket has room), or an error
     */
    apr_status_t (*shutdown)(void *conn);

    /**
     * Free the connection's state; the socket is not closed.
     * @param hard  the stream ended without its goodbye (dropped, failed)
     */
    void (*destroy)(void *conn, int hard);

    /**
     * Read what the client sent, for a stream that listens to it
     * (WebSocket), instead of read(): up to `len` bytes into buf.
     * @return APR_SUCCESS with *got > 0; APR_EAGAIN (nothing now), APR_EOF
     *         (the client left) or another error (the stream is over)
     */
    apr_status_t (*recv)(void *conn, char *buf, apr_size_t len, apr_size_t *got);
} comet_conn_ops_t;

#endif /* COMET_CONN_H */
