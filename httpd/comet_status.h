/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/**
 * @file comet_status.h
 * @brief mod_comet's figures for monitoring, read from the shared segment so
 *        that any child shows those of every child:
 *
 *   /server-status          a mod_comet section (mod_status' status_hook)
 *   /server-status?auto     the same as `CometXxx: value` lines
 *   SetHandler comet-status JSON, or Prometheus' text format when asked
 *                           (?format=prometheus, or an Accept of text/plain
 *                           or application/openmetrics-text)
 */
#ifndef COMET_STATUS_H
#define COMET_STATUS_H

#include "mod_comet.h"

/**
 * Register the handler of `comet-status` and, when mod_status is loaded
 * (an optional hook: the order of LoadModule does not matter), its section.
 * @param p the pool hooks are registered with
 */
void comet_status_register_hooks(apr_pool_t *p);

#endif /* COMET_STATUS_H */
