/* Licensed under the Apache License, Version 2.0 (the "License"); see README. */

/**
 * @file comet_supervisor.h
 * @brief The process that owns every server-side program: the backend of
 *        each socket session (the seed's "unique process") and the channel
 *        sources. Forked once by httpd's parent and kept across graceful
 *        restarts, so neither a recycled child nor a new generation ends a
 *        session or starts a program twice.
 *
 * It talks to the children through the store only:
 *   - "ctl:sup"   children publish requests (open a session, new settings);
 *   - "u:<sid>"   a session's messages from the browser, in order;
 *   - "s:<sid>"   a session's messages to the browser (a session channel:
 *                 one receiver at a time, consumed as delivered).
 * Every line a backend or source prints becomes one message; every message
 * from the browser becomes one line on the backend's stdin.
 *
 * POSIX and APR only: no request handling in here.
 */
#ifndef COMET_SUPERVISOR_H
#define COMET_SUPERVISOR_H

#include "comet_store.h"
#include "comet_reactor.h"

/** The control channel. */
#define COMET_SUP_CTL "ctl:sup"

/** A channel source: a program whose output lines are published. */
typedef struct comet_source_t {
    const char *channel;              /**< channel id */
    const char *const *argv;          /**< program and arguments */
    int on_demand;                    /**< start at the first subscriber, not at once */
} comet_source_t;

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
} comet_supervisor_conf_t;

/**
 * Run the supervisor in the calling (freshly forked) process until
 * `parent_fd` reads end-of-file or SIGTERM arrives; then end every program
 * (stdin EOF, SIGTERM, SIGKILL after the grace) and return.
 * @param st  the store, opened in this process
 */
void comet_supervisor_main(comet_store_t *st, const comet_supervisor_conf_t *conf,
                           int parent_fd, comet_log_fn *log, void *log_baton);

/**
 * Children: ask the supervisor to start the backend of a new session.
 * @param sid      session id (validated by the caller)
 * @param backend  "echo", "close", "exec", "unix:<path>" or "tcp:<host>:<port>"
 * @param argv     for exec: program and arguments, NULL-terminated
 * @param env      for exec: "NAME=value" strings, NULL-terminated
 */
apr_status_t comet_supervisor_open(comet_store_t *st, const char *sid, const char *backend,
                                   const char *const *argv, const char *const *env);

/**
 * Children: pass one message from the browser to a session's backend.
 * @return APR_SUCCESS; APR_EAGAIN if the session already has `max_queue`
 *         bytes waiting; APR_EOF if the session is closed
 */
apr_status_t comet_supervisor_send(comet_store_t *st, const char *sid, const char *data,
                                   apr_size_t len, apr_size_t max_size,
                                   apr_size_t max_queue);

/**
 * The parent, after a graceful restart: replace the list of channel sources
 * (unchanged ones keep running, removed ones are stopped, new ones start).
 */
apr_status_t comet_supervisor_configure(comet_store_t *st, const comet_source_t *sources,
                                        apr_size_t n);

/** Name of a session's channels: "s:<sid>" (down) or "u:<sid>" (up). */
apr_size_t comet_session_channel(char *buf, apr_size_t size, char kind, const char *sid);

#endif /* COMET_SUPERVISOR_H */
