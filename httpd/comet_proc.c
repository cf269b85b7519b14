/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/* The shared memory, the mutex, the child's store and loop; see comet_proc.h. */

#include <unistd.h>

#include <apr_strings.h>

#include <ap_mpm.h>
#include <util_mutex.h>

#include "comet_proc.h"
#include "comet_config.h"

comet_proc_t comet_proc;

/* Userdata keys in the process pool: what survives a restart. */
#define KEY_SHM   "mod_comet/shm"
#define KEY_MUTEX "mod_comet/mutex"

int comet_proc_log_level(comet_log_level_t level)
{
    static const int levels[] = { APLOG_ERR, APLOG_WARNING, APLOG_INFO, APLOG_DEBUG,
                                  APLOG_TRACE1 };

    return levels[level];
}

void comet_proc_log(void *baton, comet_log_level_t level, apr_status_t rv, const char *msg)
{
    ap_log_error(APLOG_MARK, comet_proc_log_level(level), rv, (server_rec *)baton,
                 COMET_LOGNO(00100) "%s", msg);
}

int comet_proc_pre_config(apr_pool_t *pconf)
{
    return ap_mutex_register(pconf, COMET_MUTEX_TYPE, NULL, APR_LOCK_DEFAULT, 0);
}

/*******************************************************************************
 * the parent: mutex and segment
 ******************************************************************************/

/* How many processes may hold subscribers at once: every process the MPM can
 * run, twice (old and new generation overlap during a graceful restart). */
static int slot_count(void)
{
    int limit = 0, n;

    if (ap_mpm_query(AP_MPMQ_HARD_LIMIT_DAEMONS, &limit) != APR_SUCCESS || limit < 1) {
        limit = 16;
    }
    n = 2 * limit + 8;
    return n > 4096 ? 4096 : n;
}

/* The lock: created once, kept across restarts so that children of two
 * generations never guard the same memory with two different locks. */
static int mutex_create(server_rec *s, apr_pool_t *pproc)
{
    void *data = NULL;
    apr_status_t rv;

    apr_pool_userdata_get(&data, KEY_MUTEX, pproc);
    if (data) {
        comet_proc.mutex = data;
        return OK;
    }
    rv = ap_global_mutex_create(&comet_proc.mutex, NULL, COMET_MUTEX_TYPE, NULL, s, pproc, 0);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, COMET_LOGNO(00101)
                     "cannot create the %s mutex", COMET_MUTEX_TYPE);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    apr_pool_userdata_set(comet_proc.mutex, KEY_MUTEX, apr_pool_cleanup_null, pproc);
    return OK;
}

/* The previous generation's segment, if this configuration can use it:
 * the channels survive the restart. */
static int segment_adopt(server_rec *s, apr_pool_t *pproc, int nslots, apr_size_t want)
{
    const comet_server_conf_t *sc = comet_config_server(s);
    void *data = NULL;
    apr_shm_t *shm;
    apr_status_t rv;

    apr_pool_userdata_get(&data, KEY_SHM, pproc);
    if (!data) {
        return 0;
    }
    shm = data;
    rv = comet_store_shm_init(apr_shm_baseaddr_get(shm), apr_shm_size_get(shm), nslots, "", 0);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s, COMET_LOGNO(00104)
                     "the channels' shared memory does not fit this configuration "
                     "(ServerLimit changed?): starting with empty channels");
        /* the old segment stays with children of the old generation */
        return 0;
    }
    comet_proc.shm = shm;
    comet_proc.base = apr_shm_baseaddr_get(shm);
    comet_proc.size = apr_shm_size_get(shm);
    if (comet_proc.size != want) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, COMET_LOGNO(00102)
                     "CometSharedMemory changed to %" APR_SIZE_T_FMT " bytes: the "
                     "running %" APR_SIZE_T_FMT " bytes stay in use until a full "
                     "restart", want, comet_proc.size);
    }
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, COMET_LOGNO(00103)
                 "kept %" APR_SIZE_T_FMT " bytes of channels across the restart",
                 comet_proc.size);
    comet_store_shm_set_max_channels(comet_proc.base,
                                     (apr_uint32_t)COMET_CONF(sc, COMET_CONF_MAX_CHANNELS));
    return 1;
}

/* A name unique to this server start, for the slots' wake sockets. */
static apr_status_t instance_name(char *buf, apr_size_t len)
{
    unsigned char rnd[8];
    apr_status_t rv = apr_generate_random_bytes(rnd, sizeof(rnd));

    if (rv == APR_SUCCESS) {
        apr_snprintf(buf, len, "%d-%02x%02x%02x%02x%02x%02x%02x%02x", (int)getpid(),
                     rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
    }
    return rv;
}

static int segment_create(server_rec *s, apr_pool_t *pproc, int nslots, apr_size_t want)
{
    const comet_server_conf_t *sc = comet_config_server(s);
    char instance[48];
    apr_status_t rv = instance_name(instance, sizeof(instance));

    if (rv == APR_SUCCESS) {
        rv = apr_shm_create(&comet_proc.shm, comet_store_shm_size(want), NULL, pproc);
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, COMET_LOGNO(00105)
                     "cannot create %" APR_SIZE_T_FMT " bytes of shared memory "
                     "(CometSharedMemory)", want);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    comet_proc.base = apr_shm_baseaddr_get(comet_proc.shm);
    comet_proc.size = apr_shm_size_get(comet_proc.shm);
    rv = comet_store_shm_init(comet_proc.base, comet_proc.size, nslots, instance, 1);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, COMET_LOGNO(00106)
                     "CometSharedMemory %" APR_SIZE_T_FMT " is too small for %d processes",
                     comet_proc.size, nslots);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    apr_pool_userdata_set(comet_proc.shm, KEY_SHM, apr_pool_cleanup_null, pproc);
    comet_store_shm_set_max_channels(comet_proc.base,
                                     (apr_uint32_t)COMET_CONF(sc, COMET_CONF_MAX_CHANNELS));
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, COMET_LOGNO(00107)
                 "mod_comet %s: %" APR_SIZE_T_FMT " bytes of shared memory for up to %d "
                 "processes", COMET_VERSION, comet_proc.size, nslots);
    return OK;
}

int comet_proc_post_config(apr_pool_t *pconf, server_rec *s)
{
    apr_pool_t *pproc = s->process->pool;
    apr_size_t want = (apr_size_t)COMET_CONF(comet_config_server(s), COMET_CONF_SHM_SIZE);
    int nslots = slot_count();
    int rc = mutex_create(s, pproc);

    if (rc != OK) {
        return rc;
    }
    if (segment_adopt(s, pproc, nslots, want)) {
        return OK;
    }
    return segment_create(s, pproc, nslots, want);
}

/*******************************************************************************
 * a child: store, slot, loop
 ******************************************************************************/

static apr_status_t child_exit(void *data)
{
    server_rec *s = data;

    if (comet_proc.reactor) {
        comet_reactor_destroy(comet_proc.reactor);
        comet_proc.reactor = NULL;
    }
    if (comet_proc.store && comet_proc.slot) {
        comet_proc.store->slot_release(comet_proc.store, comet_proc.slot);
        comet_proc.slot = 0;
    }
    ap_log_error(APLOG_MARK, APLOG_TRACE1, 0, s, "comet: child %d done", (int)getpid());
    return APR_SUCCESS;
}

void comet_proc_child_init(apr_pool_t *pchild, server_rec *s,
                           comet_reactor_resolve_fn *resolve)
{
    apr_status_t rv;
    int wake_fd = -1;

    if (!comet_proc.mutex || !comet_proc.base) {
        return;
    }
    rv = apr_global_mutex_child_init(&comet_proc.mutex,
                                     apr_global_mutex_lockfile(comet_proc.mutex), pchild);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, COMET_LOGNO(00108)
                     "cannot attach the %s mutex in this child", COMET_MUTEX_TYPE);
        return;
    }
    rv = comet_store_shm_open(&comet_proc.store, pchild, comet_proc.base, comet_proc.mutex);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, COMET_LOGNO(00109)
                     "cannot open the channel store");
        comet_proc.store = NULL;
        return;
    }
    rv = comet_proc.store->slot_claim(comet_proc.store, &comet_proc.slot, &wake_fd);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, COMET_LOGNO(00110)
                     "no free subscriber slot for child %d: its streams will be "
                     "refused (503)", (int)getpid());
        comet_proc.slot = 0;
        return;
    }
    apr_pool_cleanup_register(pchild, s, child_exit, apr_pool_cleanup_null);
    comet_proc.move_streams = (int)COMET_CONF(comet_config_server(s), COMET_CONF_MOVE_STREAMS);
    rv = comet_reactor_create(&comet_proc.reactor, comet_proc.store, comet_proc.slot,
                              wake_fd, comet_proc_log, s);
    if (rv == APR_SUCCESS) {
        comet_reactor_set_resolve(comet_proc.reactor, resolve, s);
        rv = comet_reactor_start(comet_proc.reactor);
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, COMET_LOGNO(00111)
                     "cannot start the subscriber loop of child %d", (int)getpid());
        comet_reactor_destroy(comet_proc.reactor);
        comet_proc.reactor = NULL;
        return;
    }
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, COMET_LOGNO(00112)
                 "child %d holds subscriber slot %d", (int)getpid(), comet_proc.slot);
}

void comet_proc_child_stopping(int graceful)
{
    comet_reactor_quiesce(comet_proc.reactor, graceful && comet_proc.move_streams);
}
