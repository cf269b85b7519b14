/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/**
 * @file comet_redis.h
 * @brief A Redis client on our own event loop (comet_loop.h): hiredis's
 *        asynchronous API driven through its adapter hooks, with time-outs,
 *        reconnection, AUTH and SELECT of our own, Redis Sentinel (issue
 *        14, in progress: not wired into the store yet).
 *
 * One comet_redis_t is one connection, made again whenever it is lost:
 *
 *  - a *command* client (the default) sends commands and hands each reply to
 *    its callback, in the order the commands were given (a pipeline);
 *  - a *subscriber* client (opts.subscriber) only holds SUBSCRIBE and
 *    PSUBSCRIBE subscriptions: RESP2 allows no other command on such a
 *    connection, and hiredis 0.14 would mis-route their replies.
 *
 * Every connection starts with AUTH (when the URL has a password) and
 * SELECT (when it has a database), or a PING: the client is *up* once the
 * last of them is answered; then the commands that waited go, in order, and
 * the subscriptions are made again.
 *
 * Through Sentinel (`sentinel://`), every connection (the first and each
 * one after a loss) starts by asking the sentinels, in turn, for the
 * master's address (SENTINEL get-master-addr-by-name, each within the
 * connect time-out; one that fails or does not know the name is skipped);
 * then AUTH and SELECT on that master, and ROLE, which must say "master"
 * (a demoted one is left and the sentinels asked again, after the
 * back-off). The round through the sentinels, the master's handshake and
 * ROLE make one connection attempt: commands wait during it, as above.
 * While up, the client also holds a subscription to `+switch-master` on
 * one sentinel (its *watch*, made again with the next sentinel after
 * retry_max if it is lost): a failover that leaves the old master running
 * (SENTINEL FAILOVER) drops the connection at once, as if it were lost.
 * A master that fails is found by its connection dropping, a command's
 * time-out or the pings; every loss starts a new round.
 *
 * What a command gets, in its callback, exactly once:
 *  - APR_SUCCESS and the reply;
 *  - APR_EGENERAL and the reply when Redis answered an error (reply->str);
 *  - APR_TIMEUP: not answered in time. If it had been sent, the connection
 *    is dropped and made again (its reply would come late, out of step);
 *  - APR_ECONNRESET: the connection was lost after the command was sent
 *    (Redis may or may not have run it);
 *  - the status of the last failed connection attempt (APR_ECONNREFUSED,
 *    APR_ENOENT for a unix socket that is not there or a master name that
 *    no sentinel knows, APR_EACCES for a refused AUTH, APR_EAGAIN for a
 *    server loading its data or, through Sentinel, a master that says it
 *    is a replica, APR_TIMEUP, ...) when the
 *    command was given while no connection was up: a command waits while a
 *    connection attempt is in progress, and fails at once between attempts
 *    (during the back-off), so that a caller can answer "unavailable"
 *    quickly rather than pile requests up;
 *  - APR_ECONNABORTED: the client was destroyed first.
 *
 * Only the loop's thread may call these functions. The client's own
 * callbacks must not call comet_redis_destroy.
 */
#ifndef COMET_REDIS_H
#define COMET_REDIS_H

#include <stdarg.h>

#include <apr.h>
#include <apr_errno.h>
#include <apr_pools.h>
#include <apr_time.h>

#include <hiredis/hiredis.h>

#include "comet_loop.h"
#include "comet_util.h"

typedef struct comet_redis_t comet_redis_t;
typedef struct comet_redis_sub_t comet_redis_sub_t;

/** What a URL names. */
typedef enum {
    COMET_REDIS_TCP = 0,              /**< redis://host:port */
    COMET_REDIS_UNIX,                 /**< unix:/path */
    COMET_REDIS_SENTINEL              /**< sentinel://host:port[,host:port...]/name */
} comet_redis_kind_t;

/** A host and a port (a sentinel's). */
typedef struct comet_redis_addr_t {
    const char *host;                 /**< without [] for IPv6 */
    int port;
} comet_redis_addr_t;

/** A parsed Redis URL; strings live in the pool given to the parser. */
typedef struct comet_redis_url_t {
    comet_redis_kind_t kind;
    const char *host;                 /**< TCP, SENTINEL (the first): without [] for IPv6 */
    int port;                         /**< TCP, SENTINEL (default 6379, 26379) */
    const comet_redis_addr_t *sentinels;  /**< SENTINEL: every sentinel, in order */
    int nsentinels;                   /**< SENTINEL: how many (at least 1) */
    const char *path;                 /**< UNIX: the socket */
    const char *user;                 /**< NULL: none (AUTH password); the master's */
    const char *password;             /**< NULL: no AUTH; the master's, not the
                                           sentinels' (they are asked without) */
    int db;                           /**< 0: no SELECT */
    const char *master;               /**< SENTINEL: the master's name */
    const char *display;              /**< the URL without its password, for logs */
} comet_redis_url_t;

/** A connection came up (AUTH and SELECT done) or went down. */
typedef void comet_redis_state_fn(comet_redis_t *r, int up, apr_status_t why, void *baton);

/** What a command gets, once; see the file's comment for the statuses. */
typedef void comet_redis_reply_fn(comet_redis_t *r, apr_status_t status,
                                  const redisReply *reply, void *baton);

/** What a subscription receives. */
typedef enum {
    COMET_REDIS_SUB_READY = 0,        /**< Redis confirmed it (after each connect) */
    COMET_REDIS_SUB_MESSAGE           /**< a message */
} comet_redis_event_t;

/** A subscription's event; the strings are valid during the callback only. */
typedef struct comet_redis_msg_t {
    comet_redis_event_t event;
    const char *pattern;              /**< PSUBSCRIBE: the pattern, else NULL */
    const char *channel;              /**< the channel (MESSAGE) */
    const char *data;                 /**< MESSAGE: the payload (binary-safe) */
    apr_size_t len;
} comet_redis_msg_t;

/** A subscription's callback. */
typedef void comet_redis_msg_fn(comet_redis_t *r, const comet_redis_msg_t *m, void *baton);

/** How a client behaves; zeroed, every field takes its default. */
typedef struct comet_redis_opts_t {
    int subscriber;                       /**< 1: subscriptions only, no commands */
    apr_interval_time_t connect_timeout;  /**< connect + AUTH + SELECT (2 s) */
    apr_interval_time_t retry_min;        /**< first back-off (100 ms) */
    apr_interval_time_t retry_max;        /**< the back-off doubles up to this (5 s) */
    apr_interval_time_t ping_interval;    /**< ping the server this often while up, so
                                               that one that stopped answering is left
                                               within ping_interval + connect_timeout
                                               (0: no pings; a subscriber's ping is a
                                               SUBSCRIBE to "comet:ping" again) */
    comet_redis_state_fn *state;          /**< up/down, may be NULL */
    void *state_baton;
} comet_redis_opts_t;

/**
 * Parse `redis://[user:password@]host[:port][/db]`,
 * `unix:/path/to/redis.sock` or `unix://[user:password@]/path[?db=N]`,
 * and `sentinel://[user:password@]host[:port][,host[:port]...]/<master>[/db]`
 * (one or more sentinels, asked in that order; the user, the password and
 * the database are the master's).
 * A userinfo without a colon is a password (as redis-cli reads it); %XX
 * escapes are decoded in the user and the password; an IPv6 host is written
 * in brackets.
 * @param u    filled on success
 * @param err  on failure, why (static or from p)
 * @return APR_SUCCESS or APR_EINVAL
 */
apr_status_t comet_redis_url_parse(apr_pool_t *p, const char *url, comet_redis_url_t *u,
                                   const char **err);

/**
 * Create a client and start connecting (nothing blocks: the loop does it).
 * @param r     the client, valid until comet_redis_destroy or p's cleanup
 * @param p     holds the client; destroying it destroys the client
 * @param loop  the loop of the calling thread
 * @param url   see comet_redis_url_parse
 * @param opts  may be NULL (defaults); copied
 * @param log   where failures are told (may be NULL); its baton `log_baton`
 * @return APR_SUCCESS, APR_EINVAL (a bad URL, logged)
 */
apr_status_t comet_redis_create(comet_redis_t **r, apr_pool_t *p, comet_loop_t *loop,
                                const char *url, const comet_redis_opts_t *opts,
                                comet_log_fn *log, void *log_baton);

/**
 * Close the connection and free the client: every command not answered yet
 * gets APR_ECONNABORTED, subscriptions end silently. Not from one of the
 * client's callbacks.
 */
void comet_redis_destroy(comet_redis_t *r);

/**
 * Send a command given as hiredis formats it (`"SET %s %b", key, val, len`).
 * @param timeout  how long the reply may take from now (> 0)
 * @param fn       called once, maybe before this returns (a failure)
 * @return APR_SUCCESS (fn will be called), or APR_EINVAL (a subscriber
 *         client, a bad format) or APR_ENOMEM, fn then not called
 */
apr_status_t comet_redis_command(comet_redis_t *r, apr_interval_time_t timeout,
                                 comet_redis_reply_fn *fn, void *baton, const char *fmt, ...);

/** comet_redis_command with a va_list. */
apr_status_t comet_redis_vcommand(comet_redis_t *r, apr_interval_time_t timeout,
                                  comet_redis_reply_fn *fn, void *baton, const char *fmt,
                                  va_list ap);

/** comet_redis_command with its arguments as an array (binary-safe). */
apr_status_t comet_redis_command_argv(comet_redis_t *r, apr_interval_time_t timeout,
                                      comet_redis_reply_fn *fn, void *baton, int argc,
                                      const char **argv, const apr_size_t *argvlen);

/**
 * Subscribe (SUBSCRIBE, or PSUBSCRIBE with `pattern`) on a subscriber
 * client, now if the connection is up and again after every reconnection.
 * `fn` gets COMET_REDIS_SUB_READY each time Redis confirms it (a caller
 * catching up after a gap starts from there) and every message.
 * @param sub  the subscription, for comet_redis_unsubscribe (may be NULL)
 * @return APR_SUCCESS, APR_EINVAL (a command client), APR_EEXIST (already
 *         subscribed to that name) or APR_ENOMEM
 */
apr_status_t comet_redis_subscribe(comet_redis_t *r, int pattern, const char *name,
                                   comet_redis_msg_fn *fn, void *baton,
                                   comet_redis_sub_t **sub);

/** End a subscription: its callback is not called any more. */
void comet_redis_unsubscribe(comet_redis_t *r, comet_redis_sub_t *sub);

/** @return 1 if the connection is up (AUTH and SELECT done), else 0. */
int comet_redis_is_up(const comet_redis_t *r);

/**
 * @return the URL, without its password, for log lines; through Sentinel
 *         followed, once the sentinels gave it, by the master's address:
 *         `sentinel://127.0.0.1:26379/mymaster (master 10.0.0.5:6379)`.
 *         The text changes with the master: copy it to keep it.
 */
const char *comet_redis_display(const comet_redis_t *r);

/** @return how many connections came up since the client was created. */
apr_uint64_t comet_redis_connects(const comet_redis_t *r);

#endif /* COMET_REDIS_H */
