/* Licensed under the Apache License, Version 2.0 (the "License"); see README. */

/**
 * @file comet_transport.h
 * @brief How a stream looks on the wire: one small table of framing
 *        functions per transport (forever iframe, ...). Frames of a message do
 *        not depend on the subscriber, so the reactor builds each once per
 *        message and transport and hands the same bytes to every subscriber.
 */
#ifndef COMET_TRANSPORT_H
#define COMET_TRANSPORT_H

#include "comet_util.h"

/** Why a stream ends normally; the client reacts accordingly. */
typedef enum {
    COMET_END_RECONNECT = 0,   /**< lifetime or size limit, server restart: come back now */
    COMET_END_DELETED,         /**< the channel was deleted */
    COMET_END_TIMEOUT          /**< long-poll: nothing arrived, poll again */
} comet_end_t;

/** Per-stream values a prelude may need. */
typedef struct comet_stream_params_t {
    const char *callback;              /**< iframe: validated JS path of the parent's callback */
    apr_interval_time_t heartbeat;     /**< announced to the client (0: none) */
    apr_interval_time_t retry;         /**< reconnect delay the client should use */
} comet_stream_params_t;

typedef struct comet_transport_t comet_transport_t;

/** A transport: a content type and the framing functions (0 or -1: no memory). */
struct comet_transport_t {
    const char *name;                  /**< as in ?transport= */
    int index;                         /**< position in comet_transports[] */
    const char *content_type;
    unsigned accumulates:1;            /**< the client keeps every byte: recycle the stream */
    unsigned oneshot:1;                /**< the response ends after one batch (long-poll) */

    /** Bytes sent once, right after the headers. */
    int (*prelude)(comet_buf_t *out, const comet_stream_params_t *p);
    /** One message. */
    int (*message)(comet_buf_t *out, comet_id_t id, const char *chan, apr_size_t clen,
                   const char *data, apr_size_t len);
    /** Keeps proxies and the client's watchdog content; NULL: none. */
    int (*heartbeat)(comet_buf_t *out);
    /** Last bytes of a stream that ends normally; NULL: none. */
    int (*end)(comet_buf_t *out, comet_end_t why);
};

/** The forever iframe: text/html, one <script> per message. */
extern const comet_transport_t comet_transport_iframe;

/** Every transport, NULL-terminated. */
extern const comet_transport_t *const comet_transports[];

/** Number of transports (size of per-message frame caches). */
#define COMET_TRANSPORTS_MAX 8

/** Find a transport by name; NULL if unknown. */
const comet_transport_t *comet_transport_find(const char *name);

/** Minimum size of an iframe prelude: browsers render nothing before it. */
#define COMET_IFRAME_PRELUDE_MIN 1024

#endif /* COMET_TRANSPORT_H */
