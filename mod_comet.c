/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/*
 * mod_comet: real-time server push for Apache httpd 2.4.
 *
 *   GET  /comet/<channel>           a stream of the channel's messages
 *   GET  /comet/comet.js            the Pxxo_Widget_Comet browser class
 *   POST /comet-publish/<channel>   publish the request body
 *   GET  /comet-publish/<channel>   channel info (JSON)
 *   DELETE /comet-publish/<channel> delete the channel, end its streams
 *   GET  /comet-publish/            store figures (JSON)
 *   GET  <comet-status location>    every child's figures (JSON, Prometheus);
 *                                   also a section of mod_status' page
 *   /chat/...                       SockJS sessions (mod_comet_socket.c)
 *
 * This file is the module: its record, its hooks and their order, its life
 * cycle. The work is done elsewhere (HACKING.md has the map):
 *   httpd/comet_config     the directives
 *   httpd/comet_check      checks of the whole configuration, the MPM's settings
 *   httpd/comet_proc       shared memory, mutex, the child's store and loop
 *   httpd/comet_daemon     the supervisor process, parent side
 *   httpd/comet_subscribe  streams; comet_stream hands them to the loop
 *   httpd/comet_publish    the publish API
 *   httpd/comet_assets     the browser classes and their strings
 *   httpd/comet_status     mod_status' section, the comet-status handler
 *   engine/                the store, the loop, the framing, the supervisor
 */

#include <apr_strings.h>

#include <http_core.h>
#include <http_request.h>
#include <mpm_common.h>

#include "mod_comet.h"
#include "comet_assets.h"
#include "comet_check.h"
#include "comet_config.h"
#include "comet_daemon.h"
#include "comet_proc.h"
#include "comet_publish.h"
#include "comet_redisconn.h"
#include "comet_request.h"
#include "comet_status.h"
#include "comet_stream.h"
#include "comet_subscribe.h"

static void comet_register_hooks(apr_pool_t *p);

/* AP_DECLARE_MODULE would repeat the APLOG_USE_MODULE of mod_comet.h */
module AP_MODULE_DECLARE_DATA comet_module = {
    STANDARD20_MODULE_STUFF,
    comet_config_dir_create,     /* create per-directory config */
    comet_config_dir_merge,      /* merge per-directory config */
    comet_config_server_create,  /* create per-server config */
    comet_config_server_merge,   /* merge per-server config */
    comet_config_cmds,           /* directives */
    comet_register_hooks         /* hooks */
};

/*******************************************************************************
 * life cycle
 ******************************************************************************/

static int comet_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    return comet_proc_pre_config(pconf);
}

/* What needs the whole configuration (httpd -t runs this, not post_config). */
static int comet_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                              server_rec *s)
{
    return comet_check_programs(pconf, ptemp, s);
}

static int comet_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                             server_rec *s)
{
    int rc;

    /* the first pass only checks the configuration */
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    comet_check_mpm(s);
    if ((rc = comet_proc_post_config(pconf, s)) != OK) {
        return rc;
    }
    return comet_daemon_post_config(pconf, s);
}

static void comet_child_init(apr_pool_t *pchild, server_rec *s)
{
    comet_daemon_child_init();
    comet_stream_child_init();
    comet_proc_child_init(pchild, s, comet_stream_resolve);
    comet_redisconn_child_init(pchild, s);
}

static void comet_child_stopping(apr_pool_t *pchild, int graceful)
{
    /* the streams move to live children, or end now: their clients come
     * back to the next generation */
    comet_proc_child_stopping(graceful);
}

/*******************************************************************************
 * requests
 ******************************************************************************/

/* Our handlers serve no file: skip httpd's walk of the file system for their
 * URLs (one stat per path component, and .htaccess lookups). The <Location>
 * that sets the handler is known once the URL is translated. */
static int comet_translate(request_rec *r)
{
    core_dir_config *cd = ap_get_core_module_config(r->per_dir_config);
    const char *err = NULL, *h;

    if (!cd || !cd->expr_handler) {
        return DECLINED;
    }
    h = ap_expr_str_exec(r, cd->expr_handler, &err);
    if (h && !err && (!strcmp(h, "comet") || !strcmp(h, "comet-publish")
                      || !strcmp(h, "comet-socket") || !strcmp(h, "comet-status"))) {
        ap_set_module_config(r->request_config, &comet_module, (void *)h);
        /* on every answer for these URLs, errors included (httpd sends
         * err_headers_out with error pages too, headers_out not) */
        apr_table_setn(r->err_headers_out, "X-Content-Type-Options", "nosniff");
    }
    return DECLINED;
}

static int comet_map_to_storage(request_rec *r)
{
    if (!ap_get_module_config(r->request_config, &comet_module)) {
        return DECLINED;
    }
    r->filename = apr_pstrcat(r->pool, "comet:", r->uri, NULL);
    return OK;
}

/* SetHandler comet: the browser classes and strings, else a stream. */
static int comet_handler(request_rec *r)
{
    const comet_dir_conf_t *conf;
    const char *path;
    int rc;

    if (strcmp(r->handler, "comet")) {
        return DECLINED;
    }
    conf = comet_config_dir(r);
    path = comet_request_channel_path(r, conf);
    if ((rc = comet_assets_handle(r, conf, path)) != DECLINED) {
        return rc;
    }
    if (!*path) {
        return comet_request_error(r, HTTP_NOT_FOUND, APLOG_DEBUG, 0,
                                   "no channel: GET <location>/<channel>");
    }
    return comet_subscribe_handle(r, conf, path);
}

static void comet_register_hooks(apr_pool_t *p)
{
    ap_hook_pre_config(comet_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_check_config(comet_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(comet_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(comet_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_stopping(comet_child_stopping, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_translate_name(comet_translate, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_map_to_storage(comet_map_to_storage, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_handler(comet_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(comet_publish_handler, NULL, NULL, APR_HOOK_MIDDLE);
    comet_socket_register_hooks(p);
    comet_status_register_hooks(p);
}
