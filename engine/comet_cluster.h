/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/**
 * @file comet_cluster.h
 * @brief Several servers, one set of channels: Redis holds each channel's
 *        messages and gives their ids; each server's shared-memory store is
 *        a copy of what it needs (issue 14, CometRedis).
 *
 *  publisher -> any server's handler --(its thread's connection)--> Redis
 *      EVALSHA publish: id = max(last + 1, TIME in us); XADD comet:{ch}:s;
 *      trim (MAXLEN = CometMessageBuffer, MINID = now - CometMessageTTL);
 *      PUBLISH comet:msg "<notice>"                       (201 after this)
 *                                  |
 *        every server's supervisor (one subscriber connection for the server)
 *                                  v
 *      store->import(ch, id, ...) -> the inboxes -> every child's loop
 *
 * Two halves, APR and hiredis only:
 *  - comet_cluster_conn_t: a blocking connection for one handler thread
 *    (publish, a channel's figures, DELETE, the range a `since` needs);
 *  - comet_cluster_t: the supervisor's follower on its loop (comet_redis.h):
 *    notices in Redis' order into the store; after every (re)connection,
 *    what each local channel missed, by XRANGE, before any newer notice, so
 *    that a child's stream never gets an id below one it already sent.
 *
 * Keys: `comet:{<channel>}:s`, a stream; entry id `<our id>-0`, fields
 * d (the message), f (flags), t (published, us). Notices on `comet:msg`:
 * `m <id> <flags> <buffer> <ttl us> <channel>\n<message>`; `M ...\n` for a
 * message larger than the inline limit (a server copies it, by XRANGE, only
 * when it has the channel); `d 0 0 0 0 <channel>\n` for a DELETE.
 */
#ifndef COMET_CLUSTER_H
#define COMET_CLUSTER_H

#include "comet_loop.h"
#include "comet_redis.h"
#include "comet_store.h"

/** The Redis channel every server's supervisor follows. */
#define COMET_CLUSTER_NOTICES "comet:msg"

/** Messages larger than this go in notices by id only (default). */
#define COMET_CLUSTER_INLINE_MAX (16 * 1024)

typedef struct comet_cluster_conn_t comet_cluster_conn_t;
typedef struct comet_cluster_t comet_cluster_t;

/** What a handler asks of Redis; copied by comet_cluster_conn_create. */
typedef struct comet_cluster_opts_t {
    const char *url;                  /**< CometRedis */
    apr_interval_time_t timeout;      /**< connect and each command (default 2 s) */
    apr_size_t inline_max;            /**< 0: COMET_CLUSTER_INLINE_MAX */
} comet_cluster_opts_t;

/** A message as a range hands it. */
typedef int comet_cluster_msg_fn(void *baton, comet_id_t id, apr_uint32_t flags,
                                 apr_time_t published, const char *data, apr_size_t len);

/**
 * A blocking connection for one thread (not connected yet: the first use
 * connects). After a failure to connect, every call fails at once with the
 * same status for a second, so that publishers get their 503 quickly.
 * sentinel://: the sentinels are asked where the master is at each
 * connection, and what they name must say it is a master (ROLE); a command
 * that fails drops the connection, so the next asks again.
 * @return APR_SUCCESS, APR_EINVAL (a bad URL: `err` says why)
 */
apr_status_t comet_cluster_conn_create(comet_cluster_conn_t **c,
                                       const comet_cluster_opts_t *opts,
                                       const char **err);

/** Close and free. */
void comet_cluster_conn_destroy(comet_cluster_conn_t *c);

/** The URL without its password, for log lines. */
const char *comet_cluster_conn_display(const comet_cluster_conn_t *c);

/**
 * Publish: the message is in Redis (and announced) when this returns
 * APR_SUCCESS. @param servers receives how many servers were told.
 * @return APR_SUCCESS; APR_ECONNREFUSED, APR_TIMEUP, ... (Redis cannot be
 *         reached or did not answer: the message may or may not be there
 *         when the connection broke after sending); APR_EGENERAL (Redis
 *         answered an error: `err`)
 */
apr_status_t comet_cluster_publish(comet_cluster_conn_t *c, const char *chan, apr_size_t clen,
                                   const char *data, apr_size_t len, apr_uint32_t flags,
                                   const comet_limits_t *lim, comet_id_t *id,
                                   apr_uint32_t *servers, const char **err);

/**
 * Hand `fn` the messages of `chan` with ids above `since` (at most `max`),
 * in order; `fn` returning non-zero stops. @return as publish
 */
apr_status_t comet_cluster_range(comet_cluster_conn_t *c, const char *chan, apr_size_t clen,
                                 comet_id_t since, apr_size_t max, comet_cluster_msg_fn *fn,
                                 void *baton, const char **err);

/**
 * A channel's figures in Redis: messages, first and last id, bytes are not
 * counted (0). @return APR_NOTFOUND if Redis has no such channel; as publish
 */
apr_status_t comet_cluster_info(comet_cluster_conn_t *c, const char *chan, apr_size_t clen,
                                comet_channel_info_t *info, const char **err);

/**
 * Delete a channel in Redis and tell every server to drop its copy.
 * @return APR_NOTFOUND if Redis had no such channel; as publish
 */
apr_status_t comet_cluster_remove(comet_cluster_conn_t *c, const char *chan, apr_size_t clen,
                                  const char **err);

/**
 * The supervisor's follower: subscribe to the notices and keep `st` up to
 * date, on `loop`, until comet_cluster_stop.
 * @param lim  the limits a catch-up imports under (the server's defaults)
 */
apr_status_t comet_cluster_follow(comet_cluster_t **cl, apr_pool_t *p, comet_loop_t *loop,
                                  comet_store_t *st, const char *url,
                                  const comet_limits_t *lim, comet_log_fn *log,
                                  void *log_baton);

/**
 * Publish from the supervisor (a channel source's line) through Redis: the
 * same script as comet_cluster_publish, without waiting; lines of one
 * source keep their order (one connection). A failure is logged.
 */
apr_status_t comet_cluster_publish_async(comet_cluster_t *cl, const char *chan,
                                         apr_size_t clen, const char *data, apr_size_t len,
                                         const comet_limits_t *lim);

/** A lease lasts this long unless renewed (every third of it). */
#define COMET_CLUSTER_LEASE_TTL apr_time_from_sec(6)

/**
 * The lease of a program that must run on one server of the group at a time
 * (a channel source): `comet:lease:{<name>}`, taken (if free) and renewed
 * (if ours) by one script; a server is named by its host and its
 * supervisor's pid. Call it often (each
 * tick): it asks or renews when due and answers from what Redis last said.
 * @return 1 while this server holds it (a renewal not answered counts
 *         until the lease would have run out), else 0
 */
int comet_cluster_lease(comet_cluster_t *cl, const char *name, apr_time_t now);

/** How often each server tells Redis its subscriber counts. */
#define COMET_CLUSTER_COUNTS_EVERY apr_time_from_sec(2)
/** A count older than this is a server's that went away. */
#define COMET_CLUSTER_COUNTS_STALE apr_time_from_sec(10)

/**
 * The supervisor's tick: every COMET_CLUSTER_COUNTS_EVERY, this server's
 * subscriber count of each channel goes to `comet:subs:{<channel>}` (a hash
 * of the servers' "<count> <unix time>"; comet_cluster_subscribers adds
 * them up).
 */
void comet_cluster_tick(comet_cluster_t *cl, apr_time_t now);

/**
 * The subscribers of a channel on every server (the fresh counts of
 * comet:subs:{<channel>}). @return as comet_cluster_publish
 */
apr_status_t comet_cluster_subscribers(comet_cluster_conn_t *c, const char *chan,
                                       apr_size_t clen, apr_uint32_t *n, const char **err);

/**
 * SockJS sessions: note in Redis that this server holds the session whose
 * channel is `name` (open), or no more (!open), so that another server
 * its client reaches (its server died) can tell it the session is lost
 * rather than start a new one. `comet:sess:{<name>}`, kept a day at most.
 */
void comet_cluster_session(comet_cluster_t *cl, const char *name, apr_size_t len, int open);

/**
 * Whether a server of the group holds (or held until it died) the session
 * whose channel is `name`. @return as comet_cluster_publish
 */
apr_status_t comet_cluster_session_known(comet_cluster_conn_t *c, const char *name,
                                         apr_size_t len, int *known, const char **err);

/** Stop following; frees what the follower holds. */
void comet_cluster_stop(comet_cluster_t *cl);

/** @return 1 once the follower's subscription is live (and caught up). */
int comet_cluster_ready(const comet_cluster_t *cl);

#endif /* COMET_CLUSTER_H */
