/* Licensed under the Apache License, Version 2.0 (the "License"); see README. */

/**
 * @file comet_reactor.h
 * @brief The per-process event loop that drives subscribers.
 *
 * One thread per child process owns, through its event loop (comet_loop.h),
 * the sockets of every subscriber the child's handlers passed to it: it
 * fetches new messages from the store when the child's wake descriptor
 * fires, frames each message once per transport, writes without blocking
 * with a bounded queue per subscriber, sends heartbeats, ends streams at
 * their lifetime or size limit and notices clients that leave. A subscriber costs a few hundred bytes here instead of a
 * worker thread.
 *
 * Connections that the reactor cannot write itself (TLS, HTTP/2) are "held":
 * their handler thread stays, and the reactor hands it the bytes to send
 * through the filter chain (comet_held_wait).
 *
 * Linux (epoll, eventfd) and APR types only: no request handling in here.
 */
#ifndef COMET_REACTOR_H
#define COMET_REACTOR_H

#include "comet_conn.h"
#include "comet_store.h"
#include "comet_transport.h"
#include "comet_ws.h"

typedef struct comet_reactor_t comet_reactor_t;
typedef struct comet_held_t comet_held_t;

/** Most channels one stream may follow. */
#define COMET_SUB_CHANNELS_MAX 16

/** A subscriber, as a handler hands it over. */
typedef struct comet_sub_spec_t {
    const comet_transport_t *transport;
    /** connected socket the reactor takes over (and closes), or -1: held */
    int fd;
    /** what the bytes go through on their way to fd (TLS), or NULL: the
     * socket as it is; `conn` is owned by the reactor once added */
    const comet_conn_ops_t *ops;
    void *conn;
    /** wrap every write in an HTTP/1.1 chunk */
    int chunked;
    apr_size_t nchannels;
    const char *channels[COMET_SUB_CHANNELS_MAX];
    apr_size_t channel_lens[COMET_SUB_CHANNELS_MAX];
    /** per channel: replay after this id; COMET_ID_NONE: new messages only */
    comet_id_t since[COMET_SUB_CHANNELS_MAX];
    apr_interval_time_t heartbeat;    /**< 0: none */
    apr_interval_time_t lifetime;     /**< 0: unlimited */
    apr_size_t byte_limit;            /**< accumulating transports: end past this */
    apr_size_t queue_limit;           /**< drop a client with more waiting */
    const char *peer;                 /**< client address, for log lines */
    comet_stream_params_t params;     /**< for the framing (copied) */
    /** the receiver of a session (one channel, since = its acked id): the
     * reactor records what was written and releases the claim at the end */
    int session;
    apr_uint64_t token;               /**< sessions: the receiver_claim token */
    /** sessions: the client may drop this receiver and go on with another
     * (socket.js's watchdog); else its going interrupts the session */
    int resumable;
    /** the caller subscribed this process' slot to each channel (refs[i]);
     * the reactor unsubscribes when the stream ends */
    int presubscribed;
    comet_chan_ref_t refs[COMET_SUB_CHANNELS_MAX];
    /** WebSocket: the client's frames are read (comet_ws.h), each message
     * goes to `upstream` (NULL: ignored; non-zero return: a close code) */
    int websocket;
    /** permessage-deflate negotiated: the client may compress (the
     * transport, a _deflate one, compresses what goes to it) */
    int ws_deflate;
    apr_size_t ws_max_message;
    comet_ws_message_fn *upstream;
    /** for upstream; the reactor free()s it when the stream ends */
    void *upstream_baton;
    /** called with upstream_baton on the loop's thread when the stream
     * ends, before the baton is freed (NULL: nothing to do): a SockJS
     * WebSocket's session ends with its connection */
    void (*on_end)(void *baton);
    /** hixie-76 instead (comet_ws_create_hixie): its keys' numbers, and the
     * bytes to send once its handshake ends (copied) */
    int hixie;
    apr_uint32_t hixie_keys[2];
    const char *hixie_greeting;
    apr_size_t hixie_greeting_len;
    /** bytes the client sent that httpd read ahead, fed first (copied) */
    const char *input;
    apr_size_t input_len;
    /** a stream that was running in another child's loop (moved at its
     * stop, comet_handoff.h): its response has begun long ago; the bytes
     * it wrote count against byte_limit, and it ends at end_at (0: none;
     * lifetime is not counted again) */
    int live;
    apr_size_t written;
    apr_time_t end_at;
    /** when the stream began (a live one's: in the first child; 0: now) */
    apr_time_t began;
    /** where it was opened, in the caller's words (copied, NULL: nowhere
     * said): carried when it moves, and given to the resolver of the child
     * that adopts it (comet_reactor_set_resolve) */
    const char *origin;
} comet_sub_spec_t;

/** The settings a moved stream takes in the child that adopts it. */
typedef struct comet_resolved_t {
    /** its location serves no stream there: it ends at once, with its end
     * frame (reconnect) */
    int gone;
    apr_interval_time_t heartbeat;    /**< 0: none */
    apr_interval_time_t lifetime;     /**< counted from `began`; 0: unlimited */
    apr_size_t byte_limit;            /**< against what it wrote already */
    apr_size_t queue_limit;
} comet_resolved_t;

/**
 * Asked, on the loop's thread, for each running stream another child hands
 * over (spec->live) that says where it was opened: the settings it takes
 * here (a graceful restart's new generation applies its own).
 * @param origin  spec->origin as the first child gave it
 * @return 1 if `out` is filled in, 0 to keep the stream's own settings
 */
typedef int comet_reactor_resolve_fn(void *baton, const char *origin,
                                     const comet_sub_spec_t *spec, comet_resolved_t *out);

/** Figures of one reactor. */
typedef struct comet_reactor_counts_t {
    apr_uint32_t subscribers;         /**< streams open now */
    apr_uint32_t held;                /**< of which held by a handler thread */
    apr_uint32_t channels;            /**< channels followed */
    apr_uint64_t delivered;           /**< messages queued to streams */
    apr_uint64_t dropped;             /**< streams dropped for a full queue */
} comet_reactor_counts_t;

/**
 * Create a reactor on a claimed store slot (not yet running).
 * @param wake_fd  the slot's wake descriptor from slot_claim
 */
apr_status_t comet_reactor_create(comet_reactor_t **r, comet_store_t *store,
                                  int slot, int wake_fd, comet_log_fn *log,
                                  void *log_baton);

/** Start the reactor's thread. */
apr_status_t comet_reactor_start(comet_reactor_t *r);

/**
 * End every stream (telling clients to reconnect), wait up to 5 seconds for
 * them to take the last bytes, stop the thread and free everything. The slot
 * stays claimed; the caller releases it.
 */
void comet_reactor_destroy(comet_reactor_t *r);

/**
 * Ask the reactor to wind down without waiting (e.g. a graceful stop has
 * begun): no new subscriber is taken, and the streams end as in destroy;
 * with `move`, those that can (comet_handoff_movable: plain sockets of
 * channel streams) go on in the loops of live children instead, handed
 * over as soon as one is there (a graceful restart's next generation) and
 * nothing waits to be written to them; those left after a few seconds end.
 */
void comet_reactor_quiesce(comet_reactor_t *r, int move);

/**
 * Is the reactor winding down (quiesce or destroy called)? Thread-safe. A
 * handler asks before it takes a connection from httpd: once taken, a TLS
 * connection the reactor then refuses cannot be given back to mod_ssl to
 * carry the stream's end frame.
 * @return 1 or 0
 */
int comet_reactor_stopping(comet_reactor_t *r);

/**
 * Is the reactor winding down with move (comet_reactor_quiesce)? A new
 * plain stream a handler of this child takes then goes to a live child
 * (comet_reactor_forward). Thread-safe.
 * @return 1 or 0
 */
int comet_reactor_moving(comet_reactor_t *r);

/**
 * Hand a subscriber over; thread-safe. On success the reactor owns spec->fd
 * and spec->conn (on failure the caller still does).
 * @param held  for spec->fd == -1: receives the handle the caller's thread
 *              waits on
 * @return APR_SUCCESS, APR_EAGAIN if the reactor is stopping (but a plain
 *         socket is taken while it stops with move, to go on elsewhere with
 *         its others), APR_ENOMEM
 */
apr_status_t comet_reactor_add(comet_reactor_t *r, const comet_sub_spec_t *spec,
                               comet_held_t **held);

/**
 * CometBalance: hand a new stream to the loop of another child with fewer
 * streams (comet_handoff.h), when this child has more than its share: of
 * two live children drawn at random, the one with fewer, if it has two
 * fewer than this one at least; when this reactor stops with move, to the
 * live child with the fewest. A child's count includes the streams on
 * their way to it (`incoming`); one whose wake socket is full passes the
 * stream to the next with the fewest. Thread-safe (a handler's thread). On
 * success the other child has the connection (its own descriptor: close
 * spec->fd) and this slot's subscriptions of spec->refs are its to give
 * back; otherwise nothing changed and the stream stays here.
 * @return APR_SUCCESS; APR_EAGAIN: no better place (or its queue is full);
 *         APR_ENOTIMPL: this stream cannot move; another error of the send
 */
apr_status_t comet_reactor_forward(comet_reactor_t *r, const comet_sub_spec_t *spec);

/**
 * Say how the streams this reactor adopts from another child take their
 * settings here (comet_reactor_resolve_fn); before comet_reactor_start.
 */
void comet_reactor_set_resolve(comet_reactor_t *r, comet_reactor_resolve_fn *fn, void *baton);

/** Current figures; thread-safe, approximate. */
void comet_reactor_counts(comet_reactor_t *r, comet_reactor_counts_t *c);

/**
 * Held subscribers: wait until there are bytes to write (appended to `out`),
 * the stream ended, or the client left.
 * @param client_fd  socket to watch for a hang-up, or -1
 * @param timeout    longest wait (-1: no limit), so the caller can look at
 *                   its server's state now and then
 * @return APR_SUCCESS with bytes in out; APR_EOF when the stream is over and
 *         out holds its last bytes (maybe none); APR_ECONNABORTED if the
 *         client hung up; APR_TIMEUP
 */
apr_status_t comet_held_wait(comet_held_t *h, int client_fd,
                             apr_interval_time_t timeout, comet_buf_t *out);

/** Held subscribers: the handler is done (stream over or write failed);
 *  client_left: because its client went (a session's receiver: the
 *  session is interrupted, as for a stream of the loop's own). */
void comet_held_release(comet_held_t *h, int client_left);

#endif /* COMET_REACTOR_H */
