/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/**
 * @file comet_sup.h
 * @brief Talking to the supervisor (comet_supervisor.h) through the store:
 *        what httpd's children and parent send it, and the line format it
 *        shares with its programs. The supervisor itself lives in another
 *        process; these functions only publish. APR only.
 *
 * Channels:
 *   - "ctl:sup"   requests: open a session, a new list of channel sources,
 *                 and a starting supervisor's "supervisor <pid>";
 *   - "u:<sid>"   a session's messages from the browser, in order;
 *   - "s:<sid>"   a session's messages to the browser (a session channel:
 *                 one receiver at a time, consumed as delivered).
 *
 * A request is lines of "<word> <escaped value>": backslash, newline and
 * carriage return escaped as \\, \n and \r. Programs get each message from
 * the browser as one such escaped line on their stdin.
 */
#ifndef COMET_SUP_H
#define COMET_SUP_H

#include "comet_store.h"

/** The control channel. */
#define COMET_SUP_CTL "ctl:sup"

/** A channel source: a program whose output lines are published. */
typedef struct comet_source_t {
    const char *channel;              /**< channel id */
    const char *const *argv;          /**< program and arguments */
    int on_demand;                    /**< start at the first subscriber, not at once */
} comet_source_t;

/**
 * Ask the supervisor to start the backend of a new session.
 * @param sid      session id (validated by the caller)
 * @param backend  "echo", "close", "exec", "unix:<path>" or "tcp:<host>:<port>"
 * @param argv     for exec: program and arguments, NULL-terminated
 * @param env      for exec: "NAME=value" strings, NULL-terminated
 * @return APR_SUCCESS; APR_ENOPROC if no supervisor follows the control
 *         channel; the store's status otherwise
 */
apr_status_t comet_sup_open(comet_store_t *st, const char *sid, const char *backend,
                            const char *const *argv, const char *const *env);

/**
 * Pass one message from the browser to a session's backend.
 * @return APR_SUCCESS; APR_EAGAIN if the session already has `max_queue`
 *         bytes waiting; APR_EOF if the session is closed
 */
apr_status_t comet_sup_send(comet_store_t *st, const char *sid, const char *data,
                            apr_size_t len, apr_size_t max_size, apr_size_t max_queue);

/**
 * The browser is gone for good (its WebSocket, a session of its own, ended):
 * the supervisor ends the session now rather than after
 * CometSocketDisconnectDelay; its backend gets EOF on its input.
 * @return APR_SUCCESS; APR_EOF if the session was already closed
 */
apr_status_t comet_sup_hangup(comet_store_t *st, const char *sid);

/**
 * Replace the supervisor's list of channel sources (unchanged ones keep
 * running, removed ones are stopped, new ones start) and its CometRedis
 * (NULL: none; a new one is followed from then on): the parent, after a
 * graceful restart.
 */
apr_status_t comet_sup_configure(comet_store_t *st, const comet_source_t *sources,
                                 apr_size_t n, const char *redis);

/**
 * Name of a session's channels: "s:<sid>" (kind 's', down) or "u:<sid>"
 * (kind 'u', up). @return its length
 */
apr_size_t comet_sup_channel(char *buf, apr_size_t size, char kind, const char *sid);

/**
 * Append s[0..len) with backslash, newline and carriage return escaped.
 * @return 0 or -1 (out of memory)
 */
int comet_sup_escape(comet_buf_t *b, const char *s, apr_size_t len);

/** Undo comet_sup_escape in place. @return the new length */
apr_size_t comet_sup_unescape(char *s, apr_size_t len);

/** Limits of a control request (size, buffer, time-to-live). */
comet_limits_t comet_sup_ctl_limits(void);

#endif /* COMET_SUP_H */
