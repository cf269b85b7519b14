/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/* The supervisor's life cycle, parent side; see comet_daemon.h. */

#include <errno.h>
#include <signal.h>
#include <unistd.h>
#include <sys/wait.h>

#include <apr_strings.h>

#include <http_core.h>
#include <ap_listen.h>
#include <ap_mpm.h>
#include <mod_unixd.h>

#include "comet_daemon.h"
#include "comet_config.h"
#include "comet_proc.h"
#include "comet_supervisor.h"

/* The layout of daemon_t is part of the key: a new module version loaded
 * by a graceful restart must not read an old one's. */
#define KEY_SUPERVISOR "mod_comet/supervisor/1"

/* The supervisor, as the parent knows it: kept in the process pool. */
typedef struct {
    apr_proc_t proc;
    int parent_fd;                /* write end of the pipe it watches */
    int running;
    pid_t owner;                  /* the parent: the only process that stops it */
    char store[64];               /* the store it was started on */
    server_rec *s;
} daemon_t;

static daemon_t *sup;

/* This generation's configuration pool: whatever points into this module's
 * code must be registered there, since httpd unloads and reloads the module
 * at every restart (a cleanup left on the process pool would run code that
 * is no longer mapped). */
static apr_pool_t *sup_pconf;

static void sup_log(void *baton, comet_log_level_t level, apr_status_t rv, const char *msg)
{
    ap_log_error(APLOG_MARK, comet_proc_log_level(level), rv, (server_rec *)baton,
                 COMET_LOGNO(00200) "%s", msg);
}

/* What the supervisor is told: the server-wide settings; its sources
 * publish with the server's own CometMessageBuffer, CometMessageTTL and
 * CometMaxMessageSize (those outside any section). */
static void sup_conf(server_rec *s, comet_supervisor_conf_t *c)
{
    const comet_server_conf_t *sc = comet_config_server(s);
    const comet_dir_conf_t *dc = comet_config_server_dir(s);

    memset(c, 0, sizeof(*c));
    c->max_message = (apr_size_t)COMET_CONF(dc, COMET_CONF_MAX_MESSAGE);
    c->max_queue = (apr_size_t)COMET_CONF(sc, COMET_CONF_MAX_QUEUE);
    c->disconnect_delay = COMET_CONF(sc, COMET_CONF_DISCONNECT_DELAY);
    c->kill_grace = COMET_CONF(sc, COMET_CONF_PROGRAM_GRACE);
    c->source_rate = (apr_uint32_t)COMET_CONF(sc, COMET_CONF_SOURCE_RATE);
    c->source_limits.buffer_length = (apr_uint32_t)COMET_CONF(dc, COMET_CONF_BUFFER_LENGTH);
    c->source_limits.ttl = COMET_CONF(dc, COMET_CONF_TTL);
    c->source_limits.max_size = c->max_message;
    c->sources = (const comet_source_t *)sc->sources->elts;
    c->nsources = (apr_size_t)sc->sources->nelts;
    c->uid = c->gid = -1;
}

/* In the forked process: become the supervisor, never return. */
static void sup_run(server_rec *s, int parent_fd)
{
    comet_supervisor_conf_t conf;
    comet_store_t *st;
    apr_pool_t *p;

    apr_pool_create(&p, NULL);
    ap_close_listeners();
    if (ap_unixd_setup_child() != 0) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, COMET_LOGNO(00201)
                     "comet supervisor: cannot switch to the User and Group of httpd");
        _exit(1);
    }
    if (apr_global_mutex_child_init(&comet_proc.mutex,
                                    apr_global_mutex_lockfile(comet_proc.mutex), p)
        != APR_SUCCESS
        || comet_store_shm_open(&st, p, comet_proc.base, comet_proc.mutex) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, COMET_LOGNO(00202)
                     "comet supervisor: cannot open the store");
        _exit(1);
    }
    sup_conf(s, &conf);
    comet_supervisor_main(st, &conf, parent_fd, sup_log, s);
    _exit(0);
}

/* Fork the supervisor: it runs as the children's user, holds no listener
 * and watches a pipe whose end-of-file means the parent is gone. */
static apr_status_t sup_spawn(server_rec *s)
{
    int fds[2];
    pid_t pid;

    if (pipe(fds) < 0) {
        return errno;
    }
    pid = fork();
    if (pid < 0) {
        apr_status_t rv = errno;
        close(fds[0]);
        close(fds[1]);
        return rv;
    }
    if (pid == 0) {
        close(fds[1]);
        sup_run(s, fds[0]);
    }
    close(fds[0]);
    apr_cpystrn(sup->store, comet_store_shm_instance(comet_proc.base), sizeof(sup->store));
    sup->proc.pid = pid;
    sup->proc.in = sup->proc.out = sup->proc.err = NULL;
    sup->parent_fd = fds[1];
    sup->running = 1;
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, COMET_LOGNO(00203)
                 "comet supervisor started (pid %d)", (int)pid);
    return APR_SUCCESS;
}

/* httpd noticed the supervisor died: start another (its sessions are lost:
 * their browsers get c[3000]; channel sources restart). */
static void sup_maintenance(int reason, void *data, apr_wait_t status)
{
    daemon_t *h = data;
    int mpm_state = AP_MPMQ_RUNNING;

    if (reason != APR_OC_REASON_DEATH && reason != APR_OC_REASON_LOST) {
        return;
    }
    apr_proc_other_child_unregister(h);
    h->running = 0;
    if (h->parent_fd >= 0) {
        close(h->parent_fd);
        h->parent_fd = -1;
    }
    if (ap_mpm_query(AP_MPMQ_MPM_STATE, &mpm_state) == APR_SUCCESS
        && mpm_state == AP_MPMQ_STOPPING) {
        return;
    }
    ap_log_error(APLOG_MARK, APLOG_ERR, 0, h->s, COMET_LOGNO(00204)
                 "comet supervisor (pid %d) died: starting a new one", (int)h->proc.pid);
    if (sup_spawn(h->s) == APR_SUCCESS && sup_pconf) {
        apr_proc_other_child_register(&h->proc, sup_maintenance, h, NULL, sup_pconf);
    }
}

/* At httpd's exit: the supervisor ends its programs, then itself. Runs with
 * every configuration pool; a restart leaves the supervisor alone. */
static apr_status_t sup_stop(void *data)
{
    daemon_t *h = data;
    apr_interval_time_t waited = 0, limit;

    /* children run this pool's cleanups too when they exit (apr_terminate) */
    if (!h->running || getpid() != h->owner
        || ap_state_query(AP_SQ_MAIN_STATE) != AP_SQ_MS_EXITING) {
        return APR_SUCCESS;
    }
    limit = 2 * COMET_CONF(comet_config_server(h->s), COMET_CONF_PROGRAM_GRACE)
          + apr_time_from_sec(2);
    /* (its other-child registration goes with this pool by itself) */
    kill(h->proc.pid, SIGTERM);
    while (waited < limit) {
        pid_t got = waitpid(h->proc.pid, NULL, WNOHANG);
        if (got == h->proc.pid || (got < 0 && errno == ECHILD)) {
            break;
        }
        apr_sleep(apr_time_from_msec(20));
        waited += apr_time_from_msec(20);
    }
    if (waited >= limit) {
        kill(h->proc.pid, SIGKILL);
        waitpid(h->proc.pid, NULL, 0);
    }
    if (h->parent_fd >= 0) {
        close(h->parent_fd);
        h->parent_fd = -1;
    }
    h->running = 0;
    return APR_SUCCESS;
}

/* A graceful restart: the running supervisor takes the new channel sources. */
static void sup_reconfigure(apr_pool_t *pconf, server_rec *s)
{
    const comet_server_conf_t *sc = comet_config_server(s);
    comet_store_t *st;
    apr_pool_t *p;
    apr_status_t rv;

    apr_pool_create(&p, pconf);
    rv = comet_store_shm_open(&st, p, comet_proc.base, comet_proc.mutex);
    if (rv == APR_SUCCESS) {
        rv = comet_sup_configure(st, (const comet_source_t *)sc->sources->elts,
                                 (apr_size_t)sc->sources->nelts);
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s, COMET_LOGNO(00205)
                     "cannot hand the new CometChannelSource list to the supervisor");
    }
    apr_pool_destroy(p);
}

int comet_daemon_post_config(apr_pool_t *pconf, server_rec *s)
{
    apr_pool_t *pproc = s->process->pool;
    void *data = NULL;
    apr_status_t rv;

    apr_pool_userdata_get(&data, KEY_SUPERVISOR, pproc);
    sup = data;
    if (!sup) {
        sup = apr_pcalloc(pproc, sizeof(*sup));
        sup->parent_fd = -1;
        apr_pool_userdata_set(sup, KEY_SUPERVISOR, apr_pool_cleanup_null, pproc);
    }
    sup_pconf = pconf;
    apr_pool_cleanup_register(pconf, sup, sup_stop, apr_pool_cleanup_null);
    sup->s = s;
    sup->owner = getpid();
    if (sup->running && strcmp(sup->store, comet_store_shm_instance(comet_proc.base))) {
        /* the channels' memory was made anew (its layout changed with a new
         * module version): the supervisor of the old one goes */
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, COMET_LOGNO(00207)
                     "new channel store: restarting the comet supervisor");
        kill(sup->proc.pid, SIGTERM);
        sup->running = 0;
    }
    if (sup->running && kill(sup->proc.pid, 0) == 0) {
        sup_reconfigure(pconf, s);
    }
    else if ((rv = sup_spawn(s)) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, COMET_LOGNO(00206)
                     "cannot start the comet supervisor: sockets and channel sources "
                     "will not work");
        return OK;
    }
    /* registered per generation: httpd forgets other children at restart */
    apr_proc_other_child_register(&sup->proc, sup_maintenance, sup, NULL, pconf);
    return OK;
}

void comet_daemon_child_init(void)
{
    /* only the parent's end keeps the supervisor alive */
    if (sup && sup->parent_fd >= 0) {
        close(sup->parent_fd);
        sup->parent_fd = -1;
    }
}
