/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/**
 * @file comet_daemon.h
 * @brief The supervisor (engine/comet_supervisor.h) as httpd's parent keeps
 *        it, the way mod_cgid keeps its daemon: forked once, as the
 *        children's User and Group, without listeners; started again if it
 *        dies; kept across graceful restarts (a new generation hands it its
 *        channel sources through the store); stopped when httpd exits.
 */
#ifndef COMET_DAEMON_H
#define COMET_DAEMON_H

#include "mod_comet.h"

/**
 * post_config, after comet_proc_post_config: start the supervisor, or hand
 * the running one this generation's channel sources.
 * @return OK (a supervisor that cannot start is logged: sockets and sources
 *         then do not work, the rest does)
 */
int comet_daemon_post_config(apr_pool_t *pconf, server_rec *s);

/** child_init: drop what only the parent may hold. */
void comet_daemon_child_init(void);

#endif /* COMET_DAEMON_H */
