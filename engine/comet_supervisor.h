/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/**
 * @file comet_supervisor.h
 * @brief The process that owns every server-side program: the backend of
 *        each socket session (the "unique process" of the PHP widgets mod_comet rebuilds) and the channel
 *        sources. Forked once by httpd's parent and kept across graceful
 *        restarts, so neither a recycled child nor a new generation ends a
 *        session or starts a program twice.
 *
 * It talks to httpd's children and parent through the store only: their
 * requests and a session's traffic come on the channels comet_sup.h
 * describes. Every line a backend or source prints becomes one message;
 * every message from the browser becomes one line on the backend's stdin.
 *
 * POSIX and APR only: no request handling in here.
 */
#ifndef COMET_SUPERVISOR_H
#define COMET_SUPERVISOR_H

#include "comet_store.h"
#include "comet_sup.h"

/** What the supervisor needs to know; copied at start. */
typedef struct comet_supervisor_conf_t {
    apr_size_t max_message;           /**< longer lines are dropped (logged) */
    apr_size_t max_queue;             /**< bytes waiting for a session's browser
                                           before its backend is no longer read */
    apr_interval_time_t disconnect_delay; /**< no receiver this long: session over */
    apr_interval_time_t kill_grace;   /**< stdin EOF, then SIGTERM, then SIGKILL */
    apr_uint32_t source_rate;         /**< most lines a second a source may publish */
    comet_limits_t source_limits;     /**< buffer/ttl/size of source messages */
    const comet_source_t *sources;
    apr_size_t nsources;
    /** run backends under this user and group if root (-1: as we are) */
    long uid, gid;
    /** CometRedis (NULL: none): follow every server's channels there
     * (comet_cluster.h); a catch-up keeps messages under redis_limits */
    const char *redis_url;
    comet_limits_t redis_limits;
} comet_supervisor_conf_t;

/** What the parent writes on the pipe: a restart begins (its old
 * configuration goes, and with it maybe the module) ... */
#define COMET_SUP_RESTARTING 'r'
/** ... the new configuration loads the module and keeps this supervisor. */
#define COMET_SUP_ADOPTED    'a'
/** A restart not followed by COMET_SUP_ADOPTED this soon: mod_comet is no
 * longer loaded (a2dismod, then a graceful restart), the supervisor stops. */
#define COMET_SUP_ADOPT_WAIT apr_time_from_sec(10)

/**
 * Run the supervisor in the calling (freshly forked) process until
 * `parent_fd` reads end-of-file, SIGTERM arrives, or a restart does not
 * take it on (COMET_SUP_RESTARTING without COMET_SUP_ADOPTED); then end
 * every program (stdin EOF, SIGTERM, SIGKILL after the grace) and return.
 * @param st  the store, opened in this process
 */
void comet_supervisor_main(comet_store_t *st, const comet_supervisor_conf_t *conf,
                           int parent_fd, comet_log_fn *log, void *log_baton);

#endif /* COMET_SUPERVISOR_H */
