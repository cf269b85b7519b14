/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/**
 * @file comet_handoff.h
 * @brief A stream handed from one child's loop to another's: a new one
 *        from the child that accepted it (CometBalance), or a running one
 *        from a child that stops (CometMoveStreams). What the other loop
 *        needs to take it on is packed into one datagram sent with the
 *        socket (SCM_RIGHTS, comet_store_t.slot_send) to that child's wake
 *        socket.
 *
 *   child A (accepted it)                       child B (fewest streams)
 *   handler: headers and open frame written
 *   comet_reactor_forward: pack + socket  --->  wake socket: "CMTH" datagram
 *   A forgets the connection                    subscribe B, unsubscribe A
 *                                               comet_reactor_add: replay
 *                                               after each cursor, go on
 *
 * Only a plain socket of a channel stream whose response has begun moves
 * (no TLS session, no WebSocket, no session receiver, nothing read ahead).
 * The cursors are exact (the handler subscribed A first; a running stream
 * moves with nothing left to write), so B's replay fills what was
 * published meanwhile.
 *
 *   child A (stopping: graceful, recycled, reaped)   live child B
 *   each stream with nothing queued: pack (live:
 *   cursors, bytes written, deadline) + socket  --->  subscribe B, replay
 *   A closes its descriptor, writes nothing,          after each cursor,
 *   unsubscribes as for any stream that ends          go on; its settings
 *                                                     are B's (resolver)
 *
 * APR types only; no I/O.
 */
#ifndef COMET_HANDOFF_H
#define COMET_HANDOFF_H

#include "comet_reactor.h"

/** The first bytes of a handoff datagram (a wake-up is one byte). */
#define COMET_HANDOFF_MAGIC "CMTH"

/** The first bytes of a batch: several streams in one datagram, their
 * sockets in the same order (a stopping child moves thousands; a wake
 * socket queues a few datagrams only, net.unix.max_dgram_qlen). */
#define COMET_HANDOFF_BATCH_MAGIC "CMTB"

/**
 * Can this stream move (see above)?
 * @return 1 or 0
 */
int comet_handoff_movable(const comet_sub_spec_t *spec);

/**
 * Pack a movable stream's spec. A new stream's channel refs are
 * `from_slot`'s subscriptions, which the receiver gives back; a running
 * one's (spec->live) stay the sender's, which gives them back itself.
 * @return 0, or -1 (out of memory, or a spec that cannot move)
 */
int comet_handoff_pack(comet_buf_t *out, const comet_sub_spec_t *spec, int from_slot);

/**
 * Unpack a datagram into spec (fd -1; strings point into `data`, which
 * must outlive the use of spec).
 * @return APR_SUCCESS, or APR_EINVAL for what is not a whole handoff
 */
apr_status_t comet_handoff_unpack(const char *data, apr_size_t len, comet_sub_spec_t *spec,
                                  int *from_slot);

/**
 * Append a movable stream to a batch (started when `out` is empty):
 *   "CMTB" u32 count, then count x { u32 length, a packed stream }
 * @return 0, or -1 (out of memory, or a spec that cannot move: `out` is
 *         left as it was)
 */
int comet_handoff_batch_add(comet_buf_t *out, const comet_sub_spec_t *spec, int from_slot);

/**
 * Read a batch: *count its streams; *next where the first one's record is.
 * @return APR_SUCCESS, or APR_EINVAL for what is not a batch
 */
apr_status_t comet_handoff_batch_open(const char *data, apr_size_t len, apr_uint32_t *count,
                                      const char **next);

/**
 * The next record of a batch (for comet_handoff_unpack), moving *next on.
 * @return APR_SUCCESS, or APR_EINVAL if the batch ends short
 */
apr_status_t comet_handoff_batch_take(const char **next, const char *end, const char **rec,
                                      apr_size_t *rec_len);

#endif /* COMET_HANDOFF_H */
