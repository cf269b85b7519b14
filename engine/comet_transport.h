/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

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

/** Per-stream values the framing may need. */
typedef struct comet_stream_params_t {
    const char *callback;              /**< iframe, htmlfile, jsonp: validated JS path */
    apr_interval_time_t heartbeat;     /**< announced to the client (0: none) */
    apr_interval_time_t retry;         /**< reconnect delay the client should use */
    /** channel streams: where each channel stood when the stream opened, as a
     * JSON object {"<channel>": <last id>, ...}; the stream delivers everything
     * after it, so a client that saw nothing yet can resume from there */
    const char *cursors;
} comet_stream_params_t;

/** A message as the framing sees it. */
typedef struct comet_frame_msg_t {
    comet_id_t id;
    const char *chan;
    apr_size_t clen;
    const char *data;
    apr_size_t len;
} comet_frame_msg_t;

typedef struct comet_transport_t comet_transport_t;

/** A transport: a content type and the framing functions (0 or -1: no memory). */
struct comet_transport_t {
    const char *name;                  /**< as in ?transport= */
    int index;                         /**< position in comet_transports[] */
    const char *content_type;
    unsigned accumulates:1;            /**< the client keeps every byte: recycle the stream */
    unsigned oneshot:1;                /**< the response ends after one batch (long-poll) */
    unsigned session:1;                /**< for sessions (mod_comet_socket) only */
    unsigned cursor_id:1;              /**< each message needs the stream's cursors
                                            first (SSE id: line of a multi-channel
                                            stream), built per subscriber */

    /** Bytes sent once, right after the headers; NULL: none. */
    int (*prelude)(comet_buf_t *out, const comet_stream_params_t *p);
    /** One message; the same for every subscriber (built once, shared). */
    int (*message)(comet_buf_t *out, comet_id_t id, const char *chan, apr_size_t clen,
                   const char *data, apr_size_t len);
    /** Keeps proxies and the client's watchdog content; NULL: none. */
    int (*heartbeat)(comet_buf_t *out, const comet_stream_params_t *p);
    /** Last bytes of a stream that ends normally; NULL: none. */
    int (*end)(comet_buf_t *out, const comet_stream_params_t *p, comet_end_t why);
    /** Oneshot transports: the whole batch as one frame; NULL: per message. */
    int (*batch)(comet_buf_t *out, const comet_stream_params_t *p,
                 const comet_frame_msg_t *msgs, apr_size_t n);
    /** Sessions: the frame that opens one (SockJS "o"); NULL: none. */
    int (*open)(comet_buf_t *out, const comet_stream_params_t *p);
    /** Sessions: the frame that closes one, from the close message's body. */
    int (*close)(comet_buf_t *out, const comet_stream_params_t *p, const char *data,
                 apr_size_t len);
};

/** The forever iframe: text/html, one <script> per message. */
extern const comet_transport_t comet_transport_iframe;

/** Server-Sent Events: text/event-stream, `id:` lines, Last-Event-ID resume. */
extern const comet_transport_t comet_transport_sse;
/** SSE for several channels: `event: <channel>`, composite ids "a:1,b:2". */
extern const comet_transport_t comet_transport_sse_multi;
/** XHR/fetch streaming: one JSON object per line. */
extern const comet_transport_t comet_transport_stream;
/** Long-polling: one batch per request, same lines as the stream. */
extern const comet_transport_t comet_transport_longpoll;

/**
 * Append the SSE id line of a multi-channel stream: "id: a:1,b:2\n".
 * @param names, lens, cursors  the stream's channels and where each stands
 */
int comet_sse_id_line(comet_buf_t *out, const char *const *names, const apr_size_t *lens,
                      const comet_id_t *cursors, apr_size_t n);

/** WebSocket: the stream transport's lines as text frames, pings, a close
 * frame at the end (comet_ws.h). */
extern const comet_transport_t comet_transport_websocket;

/** SockJS 0.3 transports (sessions). */
extern const comet_transport_t comet_transport_sockjs_xhr;
extern const comet_transport_t comet_transport_sockjs_xhr_streaming;
extern const comet_transport_t comet_transport_sockjs_eventsource;
extern const comet_transport_t comet_transport_sockjs_htmlfile;
extern const comet_transport_t comet_transport_sockjs_jsonp;
/** SockJS over WebSocket (/<server>/<session>/websocket): its frames as text frames. */
extern const comet_transport_t comet_transport_sockjs_websocket;
/** SockJS over the WebSocket draft of 2010 (hixie-76), which its test suite
 * still asks for: the same frames between 0x00 and 0xFF. */
extern const comet_transport_t comet_transport_sockjs_hixie;
/** SockJS's raw WebSocket (/websocket): each message as it is. */
extern const comet_transport_t comet_transport_sockjs_rawws;

/** The three WebSockets above with permessage-deflate negotiated: their
 * messages compressed (comet_ws_frame_deflate), the rest the same. */
extern const comet_transport_t comet_transport_websocket_deflate;
extern const comet_transport_t comet_transport_sockjs_websocket_deflate;
extern const comet_transport_t comet_transport_sockjs_rawws_deflate;

/** SockJS: the body of the close message a backend's end publishes. */
#define COMET_SOCKJS_GO_AWAY "3000,\"Go away!\""

/** SockJS: the body of the close message of a session whose receiver's
 *  client went away before the server ended it. */
#define COMET_SOCKJS_INTERRUPTED "1002,\"Connection interrupted\""

/** SockJS: bytes of the xhr_streaming prelude (2048 'h' and a newline). */
#define COMET_SOCKJS_XHR_PRELUDE 2049

/** Every transport, NULL-terminated. */
extern const comet_transport_t *const comet_transports[];

/** Number of transports (size of per-message frame caches). */
#define COMET_TRANSPORTS_MAX 17

/** Find a transport by name; NULL if unknown. */
const comet_transport_t *comet_transport_find(const char *name);

/** Minimum size of an iframe prelude: browsers render nothing before it. */
#define COMET_IFRAME_PRELUDE_MIN 1024

#endif /* COMET_TRANSPORT_H */
