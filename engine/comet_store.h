/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/**
 * @file comet_store.h
 * @brief The channel store: where messages live between their publication
 *        and their delivery, and how the processes holding subscribers are
 *        told that a channel moved. A table of functions, so that a store
 *        shared by several servers (Redis) can stand beside the shared-memory
 *        one. APR and libc only: no request handling in here.
 *
 * Processes that hold subscribers ("children") each claim a slot. A channel
 * remembers which slots have subscribers on it; a publish appends the channel
 * to those slots' inboxes and wakes each slot whose inbox was empty through
 * the slot's wake descriptor. The child then drains its inbox and fetches
 * what is new on each channel it names.
 */
#ifndef COMET_STORE_H
#define COMET_STORE_H

#include <apr.h>
#include <apr_pools.h>
#include <apr_time.h>

#include "comet_util.h"

typedef struct comet_store_t comet_store_t;

/** Message flags. */
#define COMET_MSG_CLOSE     0x1   /**< last message of a session: the stream closes */

/** Channel flags. */
#define COMET_CHAN_SESSION  0x1   /**< a session: one receiver at a time, consumed */
#define COMET_CHAN_OPENED   0x2   /**< the session's open frame was delivered */
#define COMET_CHAN_CLOSED   0x4   /**< the session's close message was published */
#define COMET_CHAN_ENDING   0x8   /**< its receiver has ended its response and is
                                       finishing: the next one waits for it (set
                                       through ack, cleared by release and claim) */

/** Per-publish limits, from the configuration of the publishing location. */
typedef struct comet_limits_t {
    apr_uint32_t buffer_length;      /**< messages kept per channel (>= 1) */
    apr_interval_time_t ttl;         /**< message time-to-live */
    apr_size_t max_size;             /**< largest message accepted */
    apr_size_t max_bytes;            /**< most bytes a channel may hold (0: no limit);
                                          past it publish says APR_EAGAIN */
} comet_limits_t;

/** A channel as a child remembers it: stable until the channel is deleted. */
typedef struct comet_chan_ref_t {
    apr_uint32_t idx;
    apr_uint32_t gen;
} comet_chan_ref_t;

/** What a publish did. */
typedef struct comet_publish_result_t {
    comet_id_t id;                   /**< id given to the message */
    apr_uint32_t subscribers;        /**< subscribers on the channel, all children */
} comet_publish_result_t;

/** A channel's state, for the publisher's GET. */
typedef struct comet_channel_info_t {
    comet_id_t last_id;              /**< newest id ever given (0: none yet) */
    comet_id_t first_id;             /**< oldest buffered id (0: buffer empty) */
    apr_uint32_t messages;           /**< messages buffered */
    apr_uint32_t subscribers;        /**< subscribers, all children */
    apr_size_t bytes;                /**< bytes of buffered message bodies */
    apr_time_t created;
    apr_time_t last_publish;         /**< 0: never */
    apr_uint32_t flags;              /**< COMET_CHAN_* */
    int receiver;                    /**< sessions: a receiver is attached */
    apr_time_t detached_at;          /**< sessions: when the last receiver left */
    comet_id_t acked_id;             /**< sessions: delivered up to here */
} comet_channel_info_t;

/** What a fetch found besides the messages. */
typedef struct comet_fetch_result_t {
    comet_id_t last_id;              /**< newest id of the channel */
    int gap;                         /**< messages after `since` were already dropped */
    int gone;                        /**< the channel was deleted */
    apr_uint32_t count;              /**< messages handed to the callback */
} comet_fetch_result_t;

/** Most descriptors one slot_send passes (well under the kernel's 253). */
#define COMET_SLOT_SEND_FDS    64

/** What a slot's process is, for status pages (comet_slot_counters_t.kind). */
#define COMET_SLOT_CHILD       0     /**< an httpd child and its loop */
#define COMET_SLOT_SUPERVISOR  1     /**< the supervisor (comet_supervisor.h) */

/**
 * A slot's figures, kept where every process can read them (the shared
 * segment), so that a status page served by one child shows them all.
 * Written by the slot's own process alone, with apr_atomic_* (no lock):
 * its loop thread counts as it goes. The store zeroes them when the slot is
 * claimed, and adds the counters of a slot given back (or of a process that
 * died) to its totals, so that the totals of comet_store_stats_t never go
 * down.
 */
typedef struct comet_slot_counters_t {
    apr_uint32_t kind;               /**< COMET_SLOT_* */
    apr_uint32_t subscribers;        /**< streams open now */
    apr_uint32_t held;               /**< of which held by a handler thread */
    apr_uint32_t channels;           /**< channels followed */
    apr_uint32_t backends;           /**< the supervisor: session backends running */
    apr_uint32_t sources;            /**< the supervisor: channel sources running */
    apr_uint64_t delivered;          /**< messages queued to streams */
    apr_uint64_t delivered_bytes;    /**< bytes of those messages' bodies */
    apr_uint64_t dropped;            /**< streams dropped for a client too slow */
    apr_uint64_t gaps;               /**< streams that missed messages (buffer) */
    apr_uint32_t draining;           /**< its loop is winding down: takes no stream */
    apr_uint64_t started;            /**< when its loop started (apr_time_t) */
    /** streams on their way to its loop, not yet counted in `subscribers`:
     * queued by its handlers, or handed over by another loop and not yet
     * read (the one counter other processes write: slot_send adds) */
    apr_uint32_t incoming;
} comet_slot_counters_t;

/** One live slot, as comet_store_t.slot_list reports it. */
typedef struct comet_slot_info_t {
    int slot;
    apr_int32_t pid;
    apr_uint32_t held;               /**< streams keeping a thread (slot_held) */
    comet_slot_counters_t counters;  /**< a copy */
} comet_slot_info_t;

/** Store-wide figures, for status pages and benchmarks. */
typedef struct comet_store_stats_t {
    apr_uint32_t channels, channels_max;
    apr_uint32_t blocks_used, blocks_max;
    apr_size_t block_size;
    apr_uint64_t size;               /**< bytes of the store (the segment) */
    apr_uint32_t slots_used, slots_max;
    apr_uint64_t published;          /**< messages published since creation */
    apr_uint64_t published_bytes;    /**< bytes of their bodies */
    apr_uint32_t repairs;            /**< recoveries from a holder that died */
    apr_uint32_t sessions;           /**< session channels */
    apr_uint32_t held;               /**< streams keeping a thread, every live slot */
    /* every slot's counters: the live ones added up, plus those of the
     * slots given back since creation (totals) */
    apr_uint32_t subscribers;        /**< streams open, every live slot */
    apr_uint32_t backends;           /**< session backends running */
    apr_uint32_t sources;            /**< channel sources running */
    apr_uint64_t delivered;          /**< messages queued to streams (total) */
    apr_uint64_t delivered_bytes;    /**< bytes of their bodies (total) */
    apr_uint64_t dropped;            /**< streams dropped for slowness (total) */
    apr_uint64_t gaps;               /**< streams that missed messages (total) */
} comet_store_stats_t;

/**
 * Called by fetch for each message, in id order, with the lock held: return
 * memory for `len` bytes that the store fills, or NULL to stop the fetch
 * there (the message is then not counted).
 */
typedef char *comet_fetch_alloc_fn(void *baton, comet_id_t id, apr_uint32_t flags,
                                   apr_time_t published, apr_size_t len);

/**
 * Sessions: channels read by one receiver at a time, whose messages go once
 * they are delivered (SockJS sessions, and the supervisor's upstream queues).
 * The same lock and status codes as the rest of the store.
 */
typedef struct comet_store_session_ops_t {
    /**
     * Find or create a session channel.
     * @param max      most sessions at once (0: no limit); APR_EAGAIN past it
     * @param owner    the client it belongs to (0: anyone); a session made by
     *                 another owner answers APR_EACCES
     * @param created  set to 1 if this call made it
     */
    apr_status_t (*open)(comet_store_t *st, const char *name, apr_size_t nlen,
                         apr_uint32_t max, apr_uint64_t owner, int *created,
                         comet_chan_ref_t *ref);

    /**
     * Become the session's receiver. @param token identifies the receiver
     * (unique in the process, with `slot` in the store)
     * @param acked receives the id delivered so far; @param flags its flags
     * @return APR_EBUSY if another receiver has it, APR_EAGAIN if that one
     *         is ending (COMET_CHAN_ENDING: try again in a moment), APR_NOTFOUND
     *         if gone
     */
    apr_status_t (*claim)(comet_store_t *st, int slot, const comet_chan_ref_t *ref,
                          apr_uint64_t token, comet_id_t *acked, apr_uint32_t *flags);

    /** Stop being the receiver (no-op if `token` is not the receiver). */
    apr_status_t (*release)(comet_store_t *st, const comet_chan_ref_t *ref,
                            apr_uint64_t token);

    /**
     * Record delivery up to `id` (the messages go) and set `flags`
     * (e.g. COMET_CHAN_OPENED). Works on any channel with a single reader.
     */
    apr_status_t (*ack)(comet_store_t *st, const comet_chan_ref_t *ref, comet_id_t id,
                        apr_uint32_t flags);

    /** Call `fn` with the name of every channel starting with `prefix`. */
    apr_status_t (*list)(comet_store_t *st, const char *prefix,
                         void (*fn)(void *baton, const char *name, apr_size_t len),
                         void *baton);
} comet_store_session_ops_t;

/**
 * The store's functions. Every function takes and releases the store's lock
 * itself. Status codes: APR_SUCCESS; APR_NOTFOUND (no such channel);
 * APR_ENOSPC (segment or channel table full); APR_EINVAL (bad argument);
 * APR_EGENERAL (corruption that could not be repaired).
 */
struct comet_store_t {
    /** "shm", ... */
    const char *name;

    /**
     * Append a message to a channel, creating the channel if needed, and
     * wake the children that follow it. APR_EAGAIN: the channel's max_bytes,
     * or the cap on channels (comet_store_shm_set_max_channels), is reached.
     */
    apr_status_t (*publish)(comet_store_t *st, const char *chan, apr_size_t clen,
                            const char *data, apr_size_t len, apr_uint32_t flags,
                            const comet_limits_t *lim, comet_publish_result_t *res);

    /**
     * Keep a message under an id given elsewhere (several servers: Redis
     * gives the ids, comet_cluster.h), in id order whatever the order of
     * arrival, and wake the children that follow the channel when it is
     * the newest. `published` is when it was published (0: now).
     * @return APR_SUCCESS; APR_EEXIST if the channel has it already, or it
     *         is older than what a full buffer keeps (dropped); as publish
     *         otherwise
     */
    apr_status_t (*import)(comet_store_t *st, const char *chan, apr_size_t clen,
                           comet_id_t id, const char *data, apr_size_t len,
                           apr_uint32_t flags, apr_time_t published,
                           const comet_limits_t *lim, comet_publish_result_t *res);

    /**
     * Hand every buffered message with an id above `since` to `alloc`, in
     * order. `since` COMET_ID_NONE hands nothing and just reports last_id.
     * @param slot  the fetching process' slot when this is its pull of what
     *              is new (the store may then drop what every follower has),
     *              0 for a replay or a look
     */
    apr_status_t (*fetch)(comet_store_t *st, const comet_chan_ref_t *ref, int slot,
                          comet_id_t since, comet_fetch_alloc_fn *alloc,
                          void *baton, comet_fetch_result_t *res);

    /** Describe a channel; APR_NOTFOUND if it does not exist. */
    apr_status_t (*info)(comet_store_t *st, const char *chan, apr_size_t clen,
                         comet_channel_info_t *info);

    /**
     * Delete a channel and its messages; the children following it find it
     * gone at their next fetch. @param subscribers how many followed it
     */
    apr_status_t (*remove)(comet_store_t *st, const char *chan, apr_size_t clen,
                           apr_uint32_t *subscribers);

    /**
     * Add `n` subscribers of `slot` to a channel, creating it if needed.
     * @param max  most subscribers the channel may have (0: no limit);
     *             APR_EAGAIN past it
     * @param ref receives the channel's reference
     * @param last receives the id of its last message (0: none yet), if
     *             not NULL: where a new stream starts, under the same lock
     */
    apr_status_t (*subscribe)(comet_store_t *st, int slot, const char *chan,
                              apr_size_t clen, apr_uint32_t n, apr_uint32_t max,
                              comet_chan_ref_t *ref, comet_id_t *last);

    /** Remove `n` subscribers of `slot` from a channel (gone channels: no-op). */
    apr_status_t (*unsubscribe)(comet_store_t *st, int slot,
                                const comet_chan_ref_t *ref, apr_uint32_t n);

    /**
     * Claim a slot for the calling process. @param slot receives its number
     * @param wake_fd receives a descriptor that turns readable when the
     * slot's inbox gets entries (owned by the store; close with release).
     */
    apr_status_t (*slot_claim)(comet_store_t *st, int *slot, int *wake_fd);

    /** Give the slot back: its subscriptions are dropped. */
    apr_status_t (*slot_release)(comet_store_t *st, int slot);

    /**
     * Count the slot's streams that keep a thread of their process: add
     * `delta` (a slot's count goes with the slot when its process dies).
     * @param mine   receives the slot's count
     * @param total  receives the count of every live slot together
     */
    apr_status_t (*slot_held)(comet_store_t *st, int slot, int delta, apr_uint32_t *mine,
                              apr_uint32_t *total);

    /**
     * Empty a slot's inbox into refs[0..max). Sets *overflow if entries were
     * lost (the child must then recheck every channel it follows).
     */
    apr_status_t (*drain)(comet_store_t *st, int slot, comet_chan_ref_t *refs,
                          apr_size_t max, apr_size_t *n, int *overflow);

    /**
     * Housekeeping, cheap enough for every child to call once a second:
     * expire messages, reclaim idle channels and the slots of dead children.
     */
    apr_status_t (*maintain)(comet_store_t *st, apr_time_t now);

    /** Store-wide figures. */
    apr_status_t (*stats)(comet_store_t *st, comet_store_stats_t *stats);

    /**
     * The counters of a slot this process claimed, for its own process to
     * update with apr_atomic_* (see comet_slot_counters_t); valid until the
     * slot is released. NULL if `slot` is out of range.
     */
    comet_slot_counters_t *(*slot_counters)(comet_store_t *st, int slot);

    /**
     * Describe the live slots into out[0..max), in slot order.
     * @param n receives how many were written
     */
    apr_status_t (*slot_list)(comet_store_t *st, comet_slot_info_t *out, apr_size_t max,
                              apr_size_t *n);

    /**
     * Send a datagram to a slot's wake descriptor, with descriptors of this
     * process (passed as SCM_RIGHTS, in order: the receiver gets its own
     * copies; at most COMET_SLOT_SEND_FDS), without blocking: streams handed
     * to another child's loop. Each descriptor counts in the slot's
     * `incoming` until the receiver reads it (and takes it off).
     * @return APR_SUCCESS; APR_EAGAIN if its queue is full; another error
     *         if no process is there
     */
    apr_status_t (*slot_send)(comet_store_t *st, int slot, const void *data, apr_size_t len,
                              const int *fds, apr_size_t nfds);

    /** Sessions (see comet_store_session_ops_t). */
    comet_store_session_ops_t session;
};

#endif /* COMET_STORE_H */
