/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/**
 * @file comet_redisconn.h
 * @brief CometRedis in a child: each worker thread's own blocking connection
 *        to Redis (comet_cluster.h), made at its first use and closed with
 *        the thread, and what the handlers ask of it besides publishing.
 */
#ifndef COMET_REDISCONN_H
#define COMET_REDISCONN_H

#include "mod_comet.h"
#include "comet_cluster.h"
#include "comet_config.h"

/** child_init: the thread key of the connections, if CometRedis is set. */
void comet_redisconn_child_init(apr_pool_t *pchild, server_rec *s);

/**
 * This thread's connection, or NULL when the server has no CometRedis.
 * @param rv  receives why there is none although CometRedis is set
 *            (logged: the caller answers 503)
 */
comet_cluster_conn_t *comet_redisconn_get(request_rec *r, apr_status_t *rv);

/** Whether this server shares its channels through Redis. */
int comet_redisconn_enabled(const request_rec *r);

/**
 * A subscriber asks for what followed `since` on a channel: when this
 * server's copy may not hold it all (it starts after `since`, or it has no
 * copy), bring the rest from Redis into the store first, so that the
 * stream's replay finds it. Failures are logged; the stream replays what
 * there is.
 */
void comet_redisconn_backfill(request_rec *r, const comet_dir_conf_t *conf, const char *chan,
                              apr_size_t clen, comet_id_t since);

#endif /* COMET_REDISCONN_H */
