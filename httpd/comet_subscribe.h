/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/**
 * @file comet_subscribe.h
 * @brief GET <location>/<channel>[,<channel>...]: a subscriber's stream, over
 *        the transport it asks for (forever iframe, SSE, streaming,
 *        long-polling), from where it says it was (`since`, Last-Event-ID).
 */
#ifndef COMET_SUBSCRIBE_H
#define COMET_SUBSCRIBE_H

#include "mod_comet.h"
#include "comet_config.h"

/**
 * Subscribe, answer the headers and the transport's prelude, and hand the
 * stream to the child's event loop.
 * @param channels  what follows the location in the URL: one channel id, or
 *                  several joined by commas
 * @return OK or an HTTP status (400 for a bad channel or argument, 403 for a
 *         transport the location does not offer, 503 past a limit)
 */
int comet_subscribe_handle(request_rec *r, const comet_dir_conf_t *conf, const char *channels);

#endif /* COMET_SUBSCRIBE_H */
