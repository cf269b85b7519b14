/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/**
 * @file comet_check.h
 * @brief What can only be checked once the whole configuration is read:
 *        the programs it names against the User and Group httpd runs them
 *        as (so that `apachectl configtest` fails on them, with the file
 *        and line), and the MPM settings that stop children holding
 *        streams (a warning at start-up).
 */
#ifndef COMET_CHECK_H
#define COMET_CHECK_H

#include "mod_comet.h"

/**
 * check_config (run by `httpd -t` too, before the logs are open: the
 * messages go to stderr): every exec: program of CometSocketBackend and
 * CometChannelSource exists, is a file, and httpd's User and Group (or the
 * user httpd runs as, when not started as root) may run it; httpd started
 * as root can switch to its User and Group at all.
 * @return OK, or HTTP_INTERNAL_SERVER_ERROR after one line per problem
 *         (httpd then refuses the configuration)
 */
int comet_check_programs(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s);

/**
 * post_config: one warning when the MPM may stop a child while it holds
 * streams (idle children reaped, MaxConnectionsPerChild), naming the
 * settings and what to set; logged at start, and again at a restart only
 * if what it says changed.
 */
void comet_check_mpm(server_rec *s);

#endif /* COMET_CHECK_H */
