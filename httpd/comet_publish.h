/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/**
 * @file comet_publish.h
 * @brief The publish API (SetHandler comet-publish):
 *
 *   POST|PUT <location>/<channel>   publish the body: 201 {"channel", "id", "subscribers"}
 *   GET      <location>/<channel>   the channel's figures
 *   DELETE   <location>/<channel>   delete it; its streams end
 *   GET      <location>/            the store's figures and this child's
 */
#ifndef COMET_PUBLISH_H
#define COMET_PUBLISH_H

#include "mod_comet.h"

/** The comet-publish handler (DECLINED for other handlers). */
int comet_publish_handler(request_rec *r);

#endif /* COMET_PUBLISH_H */
