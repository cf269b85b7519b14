/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/**
 * @file comet_assets.h
 * @brief What the `comet` handler serves besides streams: the browser
 *        classes (js/, compiled into the module by script/embed-assets) with
 *        the location's settings, and the widgets' strings per language.
 *
 *   GET <location>/comet.js, socket.js      the classes
 *   GET <location>/comet.mjs, socket.mjs    the same as ES modules
 *   GET <location>/comet.d.ts, socket.d.ts  their TypeScript declarations
 *   GET <location>/i18n/<lang>.js|.json     the strings of a language
 *   GET <location>/i18n.js|.json            those Accept-Language prefers
 */
#ifndef COMET_ASSETS_H
#define COMET_ASSETS_H

#include "mod_comet.h"
#include "comet_config.h"

/** One file of js/, as script/embed-assets writes it. */
typedef struct comet_asset_t {
    const char *name;
    const char *data;
    apr_size_t len;
} comet_asset_t;

/** Every file of js/, NULL-name terminated (the generated comet_assets_js.c). */
extern const comet_asset_t comet_assets[];

/**
 * Serve `path` (what follows the location) if it names a class or a string
 * table.
 * @return DECLINED if it names neither, else OK or an HTTP status
 */
int comet_assets_handle(request_rec *r, const comet_dir_conf_t *conf, const char *path);

#endif /* COMET_ASSETS_H */
