/* Licensed under the Apache License, Version 2.0 (the "License"); see README. */

/**
 * @file mod_comet.h
 * @brief What mod_comet.c and mod_comet_socket.c share: configuration,
 *        process-wide state, log tags.
 */
#ifndef MOD_COMET_H
#define MOD_COMET_H

#include <apr_shm.h>
#include <apr_global_mutex.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>

#include "comet_store.h"
#include "comet_reactor.h"
#include "comet_transport.h"

#ifndef COMET_VERSION
#define COMET_VERSION "dev"
#endif

/* httpd reserves AH numbers for its own modules: ours are CMTnnnnn. */
#define COMET_LOGNO(n) "CMT" #n ": "

APLOG_USE_MODULE(comet);
extern module AP_MODULE_DECLARE_DATA comet_module;

/** Name of our global mutex, for the Mutex directive. */
#define COMET_MUTEX_TYPE "comet-shm"

/** Per-directory configuration; -1 / NULL: not set here (see merge). */
typedef struct comet_dir_conf_t {
    const char *base;                 /**< the <Location> path, to find the channel in the URL */
    const char *class_id;             /**< CometClassID */
    int buffer_length;                /**< CometMessageBuffer */
    apr_interval_time_t ttl;          /**< CometMessageTTL */
    apr_off_t max_size;               /**< CometMaxMessageSize */
    apr_interval_time_t heartbeat;    /**< CometHeartbeat */
    apr_interval_time_t lifetime;     /**< CometMaxLifetime */
    apr_off_t stream_limit;           /**< CometStreamLimit */
    apr_off_t client_buffer;          /**< CometClientBuffer */
    int stream_mode;                  /**< CometStreamMode */
} comet_dir_conf_t;

#define COMET_MODE_AUTO   0           /**< the event loop writes plain HTTP/1 streams */
#define COMET_MODE_THREAD 1           /**< the handler thread writes every stream */

/** State of this process (parent or child). */
typedef struct comet_proc_t {
    apr_shm_t *shm;
    void *base;
    apr_size_t size;
    apr_global_mutex_t *mutex;
    comet_store_t *store;             /**< child: opened store */
    comet_reactor_t *reactor;         /**< child: its event loop, or NULL */
    int slot;
    server_rec *s;
} comet_proc_t;

/** This process' state. */
extern comet_proc_t comet_proc;

/**
 * Register the hooks of mod_comet_socket.c (bidirectional sessions).
 * @param p the pool hooks are registered with
 */
void comet_socket_register_hooks(apr_pool_t *p);

#endif /* MOD_COMET_H */
