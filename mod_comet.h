/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/**
 * @file mod_comet.h
 * @brief What every file of the httpd layer shares: the module, its version
 *        and its log tags. (The engine, in engine/, knows nothing of httpd.)
 */
#ifndef MOD_COMET_H
#define MOD_COMET_H

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>

#ifndef COMET_VERSION
#define COMET_VERSION "dev"
#endif

/* httpd reserves AH numbers for its own modules: ours are CMTnnnnn. */
#define COMET_LOGNO(n) "CMT" #n ": "

APLOG_USE_MODULE(comet);
extern module AP_MODULE_DECLARE_DATA comet_module;

/**
 * Register the hooks of mod_comet_socket.c (SockJS sessions).
 * @param p the pool hooks are registered with
 */
void comet_socket_register_hooks(apr_pool_t *p);

#endif /* MOD_COMET_H */
