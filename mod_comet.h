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

#include "comet_store_shm.h"
#include "comet_reactor.h"
#include "comet_transport.h"
#include "comet_supervisor.h"

#ifndef COMET_VERSION
#define COMET_VERSION "dev"
#endif

/* httpd reserves AH numbers for its own modules: ours are CMTnnnnn. */
#define COMET_LOGNO(n) "CMT" #n ": "

APLOG_USE_MODULE(comet);
extern module AP_MODULE_DECLARE_DATA comet_module;

/** Name of our global mutex, for the Mutex directive. */
#define COMET_MUTEX_TYPE "comet-shm"

/** One CometTranslate line. */
typedef struct comet_translation_t {
    const char *lang;                 /**< NULL: every language */
    const char *key;
    const char *text;
} comet_translation_t;

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
    int transports;                   /**< CometTransports: bit per transport index */
    apr_array_header_t *translate;    /**< CometTranslate: comet_translation_t */
    apr_interval_time_t publish_linger; /**< CometPublishLinger */
    int max_subscribers;              /**< CometMaxSubscribers (per channel) */
    /* mod_comet_socket.c */
    const char *backend;              /**< CometSocketBackend: echo, close, exec, unix:, tcp: */
    const char *const *backend_argv;  /**< exec: program and arguments */
    int cookie;                       /**< CometSocketCookie */
    apr_off_t response_limit;         /**< CometSocketResponseLimit */
    apr_interval_time_t socket_heartbeat; /**< CometSocketHeartbeat */
    const char *client_url;           /**< CometSocketClientURL */
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

/** Server-wide settings of mod_comet_socket.c and the channel sources. */
typedef struct comet_socket_globals_t {
    apr_uint32_t max_sessions;        /**< CometSocketMaxSessions */
    apr_interval_time_t disconnect_delay; /**< CometSocketDisconnectDelay */
    apr_size_t max_queue;             /**< CometSocketMaxQueue */
    apr_interval_time_t kill_grace;   /**< CometProgramGrace */
    apr_array_header_t *sources;      /**< CometChannelSource: comet_source_t */
    apr_uint32_t source_rate;         /**< CometSourceRate */
} comet_socket_globals_t;

extern comet_socket_globals_t comet_socket_globals;

/**
 * Register the hooks of mod_comet_socket.c (bidirectional sessions).
 * @param p the pool hooks are registered with
 */
void comet_socket_register_hooks(apr_pool_t *p);

/** Reset the server-wide settings before a configuration is read. */
void comet_socket_pre_config(apr_pool_t *pconf);

/**
 * Start the supervisor once (later generations hand it their settings).
 * @return OK or an HTTP status for post_config
 */
int comet_socket_post_config(apr_pool_t *pconf, server_rec *s);

/** In every child: drop what only the parent may hold. */
void comet_socket_child_init(apr_pool_t *pchild, server_rec *s);

/** Merge the socket part of the per-directory configuration. */
void comet_socket_dir_merge(comet_dir_conf_t *c, const comet_dir_conf_t *base,
                            const comet_dir_conf_t *add);

/** Directive setters (mod_comet.c holds the one command table). */
const char *comet_socket_set_backend(cmd_parms *cmd, void *cv, const char *args);
const char *comet_socket_set_cookie(cmd_parms *cmd, void *cv, int flag);
const char *comet_socket_set_response_limit(cmd_parms *cmd, void *cv, const char *arg);
const char *comet_socket_set_heartbeat(cmd_parms *cmd, void *cv, const char *arg);
const char *comet_socket_set_client_url(cmd_parms *cmd, void *cv, const char *arg);
const char *comet_socket_set_max_sessions(cmd_parms *cmd, void *cv, const char *arg);
const char *comet_socket_set_disconnect_delay(cmd_parms *cmd, void *cv, const char *arg);
const char *comet_socket_set_max_queue(cmd_parms *cmd, void *cv, const char *arg);
const char *comet_socket_set_grace(cmd_parms *cmd, void *cv, const char *arg);
const char *comet_socket_set_source(cmd_parms *cmd, void *cv, const char *args);
const char *comet_socket_set_source_rate(cmd_parms *cmd, void *cv, const char *arg);

/*
 * Shared by both handlers (mod_comet.c).
 */

/** Answer an error: status, a line in the error log, the reason in error-notes. */
int comet_error(request_rec *r, int status, int level, apr_status_t rv, const char *why);

/** Read the whole request body, at most `max` bytes; an HTTP status on failure. */
int comet_read_body(request_rec *r, apr_off_t max, char **data, apr_size_t *len);

/** What follows the <Location> path in the URL ("" for the location itself). */
const char *comet_path_rest(request_rec *r, const comet_dir_conf_t *conf);

/** Value of a query argument, decoded; NULL if absent. */
const char *comet_query_arg(request_rec *r, const char *name);

/** Send bytes and flush; 0, or -1 if the client is gone. */
int comet_send(request_rec *r, apr_bucket_brigade *bb, const char *data, apr_size_t len);

/** Headers of a stream: no compression, keep-alive, request timeout, caching. */
void comet_stream_headers(request_rec *r, const char *content_type);

/** May the event loop write this connection's socket itself? */
int comet_can_own_socket(request_rec *r);

/**
 * Hand a stream to this child's event loop (or keep it on this thread for
 * TLS, HTTP/2, CometStreamMode thread), after the headers and whatever the
 * handler already wrote.
 * @param taken  set to 1 if the loop took the subscriber (and will release
 *               what it holds), 0 if it could not
 * @return OK
 */
int comet_stream_handoff(request_rec *r, const comet_dir_conf_t *conf, comet_sub_spec_t *spec,
                         int *taken);

/** Effective value of a per-directory setting. */
#define COMET_CONF(c, f, d) ((c)->f == -1 ? (d) : (c)->f)

#endif /* MOD_COMET_H */
