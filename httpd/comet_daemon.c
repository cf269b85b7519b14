/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/* The supervisor's life cycle, parent side; see comet_daemon.h. */

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>
#include <sys/wait.h>

#include <apr_signal.h>
#include <apr_strings.h>

#include <http_core.h>
#include <ap_listen.h>
#include <ap_mpm.h>
#include <mod_unixd.h>
#include <unixd.h>

#include "comet_daemon.h"
#include "comet_config.h"
#include "comet_proc.h"
#include "comet_supervisor.h"

/* The layout of daemon_t is part of the key: a new module version loaded
 * by a graceful restart must not read an old one's. */
#define KEY_SUPERVISOR "mod_comet/supervisor/1"
/* (the back-off has a record of its own: daemon_t keeps the layout a
 * running older version shares) */
#define KEY_BACKOFF "mod_comet/supervisor-backoff/1"

/* How a supervisor that cannot start exits (above the signal numbers: httpd
 * hands other children's exit code or signal number alike). */
#define SUP_EXIT_SWITCH 80        /* cannot become httpd's User and Group */
#define SUP_EXIT_STORE  81        /* cannot open the store */

/* One that dies sooner than this after starting failed to start: the next
 * waits 1 s, then twice as long each time, up to BACKOFF_MAX. */
#define QUICK_DEATH apr_time_from_sec(10)
#define BACKOFF_MAX apr_time_from_sec(300)

/* The supervisor, as the parent knows it: kept in the process pool. */
typedef struct {
    apr_proc_t proc;
    int parent_fd;                /* write end of the pipe it watches */
    int running;
    pid_t owner;                  /* the parent: the only process that stops it */
    char store[64];               /* the store it was started on */
    server_rec *s;
} daemon_t;

/* Its starts, kept in the process pool too. */
typedef struct {
    int failures;                 /* starts in a row that failed */
    apr_time_t started;           /* when it was forked */
    apr_interval_time_t delay;    /* how long it waited before starting */
} backoff_t;

static backoff_t *bo;

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
    c->redis_url = sc->redis;
    c->redis_limits = c->source_limits;
}

/* A supervisor started again after failures first waits, as root still:
 * until `delay` is over, or the parent is gone (its pipe's end-of-file).
 * httpd's stop (SIGTERM) ends it at once. */
static void sup_wait(int parent_fd, apr_interval_time_t delay)
{
    apr_time_t end = apr_time_now() + delay, now;
    struct pollfd pfd;
    sigset_t set;

    apr_signal(SIGTERM, SIG_DFL);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    while ((now = apr_time_now()) < end) {
        pfd.fd = parent_fd;
        pfd.events = POLLIN;
        pfd.revents = 0;
        if (poll(&pfd, 1, (int)apr_time_as_msec(end - now) + 1) > 0) {
            char buf[64];
            /* a restart's news (sup_tell) is no reason to go; EOF is */
            if (read(parent_fd, buf, sizeof(buf)) <= 0) {
                _exit(0);
            }
        }
    }
}

/* In the forked process: become the supervisor, never return. After the
 * first failure in a row, its own lines go at debug level: the parent
 * says it once. */
static void sup_run(server_rec *s, int parent_fd, apr_interval_time_t delay, int quiet)
{
    comet_supervisor_conf_t conf;
    comet_store_t *st;
    apr_pool_t *p;

    apr_pool_create(&p, NULL);
    ap_close_listeners();
    if (delay > 0) {
        sup_wait(parent_fd, delay);
    }
    if (ap_unixd_setup_child() != 0) {
        /* the parent says it, with what to do (sup_log_failure) */
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, COMET_LOGNO(00201)
                     "comet supervisor: cannot switch to the User and Group of httpd");
        _exit(SUP_EXIT_SWITCH);
    }
    if (apr_global_mutex_child_init(&comet_proc.mutex,
                                    apr_global_mutex_lockfile(comet_proc.mutex), p)
        != APR_SUCCESS
        || comet_store_shm_open(&st, p, comet_proc.base, comet_proc.mutex) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, quiet ? APLOG_DEBUG : APLOG_CRIT, 0, s, COMET_LOGNO(00202)
                     "comet supervisor: cannot open the store");
        _exit(SUP_EXIT_STORE);
    }
    sup_conf(s, &conf);
    comet_supervisor_main(st, &conf, parent_fd, sup_log, s);
    _exit(0);
}

/* The wait before the next start after `failures` failed ones. */
static apr_interval_time_t sup_backoff(int failures)
{
    apr_interval_time_t d = apr_time_from_sec(1);

    if (failures <= 0) {
        return 0;
    }
    while (--failures > 0 && d < BACKOFF_MAX) {
        d *= 2;
    }
    return d < BACKOFF_MAX ? d : BACKOFF_MAX;
}

/* Fork the supervisor: it runs as the children's user, holds no listener
 * and watches a pipe whose end-of-file means the parent is gone. After
 * failed starts it waits first (sup_backoff). */
static apr_status_t sup_spawn(server_rec *s)
{
    apr_interval_time_t delay = sup_backoff(bo->failures);
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
        sup_run(s, fds[0], delay, bo->failures > 0);
    }
    close(fds[0]);
    apr_cpystrn(sup->store, comet_store_shm_instance(comet_proc.base), sizeof(sup->store));
    sup->proc.pid = pid;
    sup->proc.in = sup->proc.out = sup->proc.err = NULL;
    sup->parent_fd = fds[1];
    sup->running = 1;
    bo->started = apr_time_now();
    bo->delay = delay;
    if (delay) {
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, COMET_LOGNO(00203)
                     "comet supervisor started (pid %d), to begin in %" APR_TIME_T_FMT " s",
                     (int)pid, apr_time_sec(delay));
    }
    else {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, COMET_LOGNO(00203)
                     "comet supervisor started (pid %d)", (int)pid);
    }
    return APR_SUCCESS;
}

/* The one line that says why the supervisor does not run, and what to do. */
static void sup_log_failure(daemon_t *h, int status, apr_interval_time_t next)
{
    const char *then = "then less and less often while it fails (up to every 5 minutes)";

    if (status == SUP_EXIT_SWITCH) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, h->s, COMET_LOGNO(00441)
                     "the comet supervisor cannot switch to httpd's User %s (uid %ld) and "
                     "Group (gid %ld): SockJS sessions are closed at once (c[3000]) and "
                     "channel sources do not run. Set User and Group to an account that "
                     "exists, e.g. User www-data and Group www-data (Debian's apache2ctl "
                     "takes them from /etc/apache2/envvars), then restart. Trying again in %"
                     APR_TIME_T_FMT " s, %s", ap_unixd_config.user_name,
                     (long)ap_unixd_config.user_id, (long)ap_unixd_config.group_id,
                     apr_time_sec(next), then);
    }
    else {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, h->s, COMET_LOGNO(00441)
                     "the comet supervisor (pid %d) %s (exit code or signal %d), %"
                     APR_TIME_T_FMT " s after it began: SockJS sessions are closed at once "
                     "(c[3000]) and channel sources do not run until it stays up; see the "
                     "lines before. Trying again in %" APR_TIME_T_FMT " s, %s",
                     (int)h->proc.pid, status == SUP_EXIT_STORE ? "cannot open the channel "
                     "store" : "died", status,
                     apr_time_sec(apr_time_now() - bo->started - bo->delay),
                     apr_time_sec(next), then);
    }
}

/* httpd noticed the supervisor died: start another (its sessions are lost:
 * their browsers get c[3000]; channel sources restart). One that could not
 * start is tried again later and later, and said once. */
static void sup_maintenance(int reason, void *data, apr_wait_t status)
{
    daemon_t *h = data;
    int mpm_state = AP_MPMQ_RUNNING;
    apr_interval_time_t lived;

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
    lived = apr_time_now() - bo->started - bo->delay;
    if (reason == APR_OC_REASON_DEATH
        && (status == SUP_EXIT_SWITCH || status == SUP_EXIT_STORE || lived < QUICK_DEATH)) {
        bo->failures++;
    }
    else {
        bo->failures = 0;
    }
    if (bo->failures == 0) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, h->s, COMET_LOGNO(00204)
                     "comet supervisor (pid %d) died: starting a new one", (int)h->proc.pid);
    }
    else if (bo->failures == 1) {
        sup_log_failure(h, status, sup_backoff(1));
    }
    else {
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, h->s, COMET_LOGNO(00442)
                     "comet supervisor (pid %d) failed again (%d in a row, status %d): next "
                     "try in %" APR_TIME_T_FMT " s", (int)h->proc.pid, bo->failures, status,
                     apr_time_sec(sup_backoff(bo->failures)));
    }
    if (sup_spawn(h->s) == APR_SUCCESS && sup_pconf) {
        apr_proc_other_child_register(&h->proc, sup_maintenance, h, NULL, sup_pconf);
    }
}

/* A byte on the supervisor's pipe (comet_supervisor.h). */
static void sup_tell(daemon_t *h, char what)
{
    if (h->parent_fd >= 0 && write(h->parent_fd, &what, 1) != 1) {
        ap_log_error(APLOG_MARK, APLOG_DEBUG, errno, h->s, "cannot tell the comet supervisor "
                     "of the restart");
    }
}

/* At httpd's exit: the supervisor ends its programs, then itself. Runs with
 * every configuration pool; a restart leaves the supervisor alone, but tells
 * it: should the next configuration no longer load the module, nobody would
 * take it on, and it ends by itself (COMET_SUP_ADOPT_WAIT). */
static apr_status_t sup_stop(void *data)
{
    daemon_t *h = data;
    apr_interval_time_t waited = 0, limit;

    /* children run this pool's cleanups too when they exit (apr_terminate) */
    if (!h->running || getpid() != h->owner) {
        return APR_SUCCESS;
    }
    if (ap_state_query(AP_SQ_MAIN_STATE) != AP_SQ_MS_EXITING) {
        sup_tell(h, COMET_SUP_RESTARTING);
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

/* End a supervisor that has not proven itself: SIGTERM, a second at most. */
static void sup_end(daemon_t *h)
{
    int i;

    kill(h->proc.pid, SIGTERM);
    for (i = 0; i < 50 && waitpid(h->proc.pid, NULL, WNOHANG) == 0; i++) {
        apr_sleep(apr_time_from_msec(20));
    }
    h->running = 0;
    if (h->parent_fd >= 0) {
        close(h->parent_fd);
        h->parent_fd = -1;
    }
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
                                 (apr_size_t)sc->sources->nelts, sc->redis);
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

    apr_pool_userdata_get(&data, KEY_BACKOFF, pproc);
    if (!(bo = data)) {
        bo = apr_pcalloc(pproc, sizeof(*bo));
        apr_pool_userdata_set(bo, KEY_BACKOFF, apr_pool_cleanup_null, pproc);
    }
    data = NULL;
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
    if (sup->running && bo->failures > 0) {
        if (apr_time_now() < bo->started + bo->delay + QUICK_DEATH) {
            /* it kept failing (the User, say) and this one is still waiting
             * or has just begun: a restart, maybe with that fixed, tries
             * again at once */
            sup_end(sup);
        }
        bo->failures = 0;
    }
    if (sup->running && kill(sup->proc.pid, 0) == 0) {
        /* the restart (sup_stop) said so: this generation keeps it */
        sup_tell(sup, COMET_SUP_ADOPTED);
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
