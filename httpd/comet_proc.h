/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/**
 * @file comet_proc.h
 * @brief This process as mod_comet sees it: the shared memory and the global
 *        mutex that httpd's parent creates (kept across graceful restarts),
 *        and in a child the store opened on them, its slot and its event loop.
 *
 * The life cycle of mod_example_ipc and mod_authn_socache: the mutex type is
 * registered in pre_config; post_config creates the segment and the mutex
 * once and keeps both in the process pool, so that a graceful restart finds
 * the channels where it left them and old and new children share one lock;
 * child_init attaches them and starts the child's loop; child_stopping tells
 * the loop to end its streams.
 */
#ifndef COMET_PROC_H
#define COMET_PROC_H

#include <apr_shm.h>
#include <apr_global_mutex.h>

#include "mod_comet.h"
#include "comet_store_shm.h"
#include "comet_reactor.h"

/** Name of our global mutex, for the Mutex directive. */
#define COMET_MUTEX_TYPE "comet-shm"

/** State of this process (parent or child). */
typedef struct comet_proc_t {
    apr_shm_t *shm;
    void *base;                       /**< the segment, as this process maps it */
    apr_size_t size;
    apr_global_mutex_t *mutex;
    comet_store_t *store;             /**< child: the store opened here, or NULL */
    comet_reactor_t *reactor;         /**< child: its event loop, or NULL */
    int slot;                         /**< child: its slot in the store, or 0 */
    int move_streams;                 /**< child: CometMoveStreams */
} comet_proc_t;

/** This process' state. */
extern comet_proc_t comet_proc;

/** pre_config: register the mutex type (Mutex comet-shm ...). */
int comet_proc_pre_config(apr_pool_t *pconf);

/**
 * post_config (not in the first, checking pass): create the mutex and the
 * segment, or keep those of the previous generation.
 * @return OK or an HTTP status
 */
int comet_proc_post_config(apr_pool_t *pconf, server_rec *s);

/**
 * child_init: attach the mutex, open the store, claim a slot, start the loop.
 * @param resolve  how the streams other children hand over at their stop
 *                 take this configuration's settings (called with `s`)
 */
void comet_proc_child_init(apr_pool_t *pchild, server_rec *s,
                           comet_reactor_resolve_fn *resolve);

/**
 * child_stopping: the loop winds down; at a graceful stop (the event and
 * worker MPMs say so; prefork never does), with CometMoveStreams, its
 * plain streams go on in live children's loops.
 */
void comet_proc_child_stopping(int graceful);

/** httpd's log level for one of the engine's. */
int comet_proc_log_level(comet_log_level_t level);

/** Where the engine's log lines go: `baton` is the server_rec. */
void comet_proc_log(void *baton, comet_log_level_t level, apr_status_t rv, const char *msg);

#endif /* COMET_PROC_H */
