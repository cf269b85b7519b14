/* Licensed under the Apache License, Version 2.0 (the "License"); see README. */

/*
 * mod_comet_socket: bidirectional sessions over plain HTTP, the seed's
 * Pxxo_Widget_Socket, speaking SockJS 0.3 so that sockjs-client works too.
 *
 *   <Location /chat>
 *       SetHandler comet-socket
 *       CometSocketBackend exec:/usr/local/lib/chat/session-handler --room main
 *   </Location>
 *
 *   GET  /chat/info                          {"websocket": false, ...}
 *   GET  /chat/iframe.html                   page for sockjs-client's iframe transports
 *   POST /chat/<server>/<session>/xhr        poll (xhr_streaming, eventsource,
 *   GET  .../eventsource, htmlfile?c=, jsonp?c=   htmlfile: streams)
 *   POST .../xhr_send, jsonp_send            messages from the browser
 *
 * A session lives in the store ("s:<sid>" to the browser, "u:<sid>" from it),
 * so each of its requests may land in any child. Its backend belongs to the
 * supervisor (comet_supervisor.c), a process the parent forks once and keeps
 * across graceful restarts, as mod_cgid keeps its daemon: a recycled child or
 * a new generation neither ends a session nor starts its program twice.
 */

#include <errno.h>
#include <signal.h>
#include <unistd.h>
#include <sys/wait.h>

#include <apr_strings.h>
#include <apr_lib.h>
#include <apr_atomic.h>
#include <apr_md5.h>

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <util_script.h>
#include <ap_listen.h>
#include <ap_mpm.h>
#include <mod_unixd.h>

#include "mod_comet.h"
#include "comet_json.h"

comet_socket_globals_t comet_socket_globals;

#define DEF_RESPONSE_LIMIT  (128 * 1024)
#define DEF_HEARTBEAT       apr_time_from_sec(25)
#define DEF_MAX_SESSIONS    10000
#define DEF_DISCONNECT      apr_time_from_sec(5)
#define DEF_MAX_QUEUE       (1024 * 1024)
#define DEF_GRACE           apr_time_from_sec(3)
#define DEF_SOURCE_RATE     1000
#define DEF_MAX_MESSAGE     (64 * 1024)
/* how long a new receiver waits for an ending one to let go (milliseconds) */
#define RECEIVER_WAIT_MS    1000
#define DEF_CLIENT_URL      "https://cdn.jsdelivr.net/npm/sockjs-client@1/dist/sockjs.min.js"
/* the layout of comet_sup_handle_t is part of the key: a new module version
 * loaded by a graceful restart must not read an old one's */
#define KEY_SUPERVISOR      "mod_comet/supervisor/1"
#define ANOTHER_CONNECTION  "2010,\"Another connection still open\""

/* The supervisor, as the parent knows it: kept in the process pool. */
typedef struct {
    apr_proc_t proc;
    int parent_fd;                /* write end of the pipe it watches */
    int running;
    pid_t owner;                  /* the parent: the only process that stops it */
    char store[64];               /* the store it was started on */
    server_rec *s;
} comet_sup_handle_t;

static comet_sup_handle_t *sup;

/* This generation's configuration pool: whatever points into this module's
 * code must be registered there, since httpd unloads and reloads the module
 * at every restart (a cleanup left on the process pool would run code that
 * is no longer mapped). */
static apr_pool_t *sup_pconf;

/*******************************************************************************
 * configuration
 ******************************************************************************/

void comet_socket_pre_config(apr_pool_t *pconf)
{
    comet_socket_globals.max_sessions = DEF_MAX_SESSIONS;
    comet_socket_globals.disconnect_delay = DEF_DISCONNECT;
    comet_socket_globals.max_queue = DEF_MAX_QUEUE;
    comet_socket_globals.kill_grace = DEF_GRACE;
    comet_socket_globals.sources = apr_array_make(pconf, 4, sizeof(comet_source_t));
    comet_socket_globals.source_rate = DEF_SOURCE_RATE;
}

void comet_socket_dir_merge(comet_dir_conf_t *c, const comet_dir_conf_t *base,
                            const comet_dir_conf_t *add)
{
    c->backend = add->backend ? add->backend : base->backend;
    c->backend_argv = add->backend ? add->backend_argv : base->backend_argv;
    c->cookie = add->cookie != -1 ? add->cookie : base->cookie;
    c->response_limit = add->response_limit != -1 ? add->response_limit : base->response_limit;
    c->socket_heartbeat = add->socket_heartbeat != -1 ? add->socket_heartbeat
                        : base->socket_heartbeat;
    c->client_url = add->client_url ? add->client_url : base->client_url;
}

/* "exec:/path/prog a b" -> argv; the program must be an absolute path. */
static const char *parse_exec(cmd_parms *cmd, const char *spec, const char *const **argv)
{
    char **args;

    if (apr_tokenize_to_argv(spec, &args, cmd->pool) != APR_SUCCESS || !args[0]) {
        return "exec: a program expected";
    }
    if (args[0][0] != '/') {
        return apr_psprintf(cmd->pool, "exec:%s: give the program's absolute path", args[0]);
    }
    *argv = (const char *const *)args;
    return NULL;
}

const char *comet_socket_set_backend(cmd_parms *cmd, void *cv, const char *args)
{
    comet_dir_conf_t *c = cv;
    const char *err;

    while (apr_isspace(*args)) {
        args++;
    }
    if (!strcmp(args, "echo") || !strcmp(args, "close")) {
        c->backend = args;
        c->backend_argv = NULL;
        return NULL;
    }
    if (!strncmp(args, "exec:", 5)) {
        if ((err = parse_exec(cmd, args + 5, &c->backend_argv)) != NULL) {
            return err;
        }
        c->backend = "exec";
        return NULL;
    }
    if (!strncmp(args, "unix:/", 6) || (!strncmp(args, "tcp:", 4) && strrchr(args + 4, ':'))) {
        c->backend = args;
        c->backend_argv = NULL;
        return NULL;
    }
    return "CometSocketBackend: echo, close, exec:<program> [args], unix:<path> or "
           "tcp:<host>:<port>";
}

const char *comet_socket_set_cookie(cmd_parms *cmd, void *cv, int flag)
{
    ((comet_dir_conf_t *)cv)->cookie = flag;
    return NULL;
}

static const char *parse_time(cmd_parms *cmd, const char *arg, apr_interval_time_t *t, int zero)
{
    if (ap_timeout_parameter_parse(arg, t, "s") != APR_SUCCESS || *t < 0 || (!zero && !*t)) {
        return apr_psprintf(cmd->pool, "%s: a duration such as 5, 5s, 500ms or 1mi",
                            cmd->cmd->name);
    }
    return NULL;
}

static const char *parse_size(cmd_parms *cmd, const char *arg, apr_uint64_t min,
                              apr_uint64_t max, apr_uint64_t *v)
{
    if (!comet_parse_size(arg, v) || *v < min || *v > max) {
        return apr_psprintf(cmd->pool, "%s: a size such as 128K or 1M, from %" APR_UINT64_T_FMT
                            " to %" APR_UINT64_T_FMT, cmd->cmd->name, min, max);
    }
    return NULL;
}

const char *comet_socket_set_response_limit(cmd_parms *cmd, void *cv, const char *arg)
{
    apr_uint64_t v;
    const char *err = parse_size(cmd, arg, 1024, APR_UINT32_MAX, &v);

    if (!err) {
        ((comet_dir_conf_t *)cv)->response_limit = (apr_off_t)v;
    }
    return err;
}

const char *comet_socket_set_heartbeat(cmd_parms *cmd, void *cv, const char *arg)
{
    return parse_time(cmd, arg, &((comet_dir_conf_t *)cv)->socket_heartbeat, 0);
}

const char *comet_socket_set_client_url(cmd_parms *cmd, void *cv, const char *arg)
{
    if (ap_strchr_c(arg, '"') || ap_strchr_c(arg, '<') || ap_strchr_c(arg, '>')) {
        return "CometSocketClientURL: a URL without quotes or angle brackets";
    }
    ((comet_dir_conf_t *)cv)->client_url = arg;
    return NULL;
}

static const char *global_only(cmd_parms *cmd)
{
    return ap_check_cmd_context(cmd, GLOBAL_ONLY);
}

const char *comet_socket_set_max_sessions(cmd_parms *cmd, void *cv, const char *arg)
{
    apr_uint64_t v;
    const char *err = global_only(cmd);

    if (err) {
        return err;
    }
    if (!comet_parse_u64(arg, strlen(arg), &v) || v < 1 || v > 10000000) {
        return "CometSocketMaxSessions: a number from 1 to 10000000";
    }
    comet_socket_globals.max_sessions = (apr_uint32_t)v;
    return NULL;
}

const char *comet_socket_set_disconnect_delay(cmd_parms *cmd, void *cv, const char *arg)
{
    const char *err = global_only(cmd);
    return err ? err : parse_time(cmd, arg, &comet_socket_globals.disconnect_delay, 0);
}

const char *comet_socket_set_max_queue(cmd_parms *cmd, void *cv, const char *arg)
{
    apr_uint64_t v;
    const char *err = global_only(cmd);

    if (!err && !(err = parse_size(cmd, arg, 1024, APR_UINT32_MAX, &v))) {
        comet_socket_globals.max_queue = (apr_size_t)v;
    }
    return err;
}

const char *comet_socket_set_grace(cmd_parms *cmd, void *cv, const char *arg)
{
    const char *err = global_only(cmd);
    return err ? err : parse_time(cmd, arg, &comet_socket_globals.kill_grace, 0);
}

const char *comet_socket_set_source(cmd_parms *cmd, void *cv, const char *args)
{
    const char *err = global_only(cmd);
    const char *name = ap_getword_white(cmd->pool, &args);
    comet_source_t *src;
    int on_demand = 0;

    if (err) {
        return err;
    }
    if (!comet_channel_valid(name, strlen(name))) {
        return "CometChannelSource: a channel id (1 to 128 of A-Z a-z 0-9 _ -) first";
    }
    while (apr_isspace(*args)) {
        args++;
    }
    if (!strncasecmp(args, "ondemand ", 9)) {
        on_demand = 1;
        args += 9;
        while (apr_isspace(*args)) {
            args++;
        }
    }
    if (strncmp(args, "exec:", 5)) {
        return "CometChannelSource: <channel> [ondemand] exec:<program> [args]";
    }
    src = apr_array_push(comet_socket_globals.sources);
    src->channel = name;
    src->on_demand = on_demand;
    return parse_exec(cmd, args + 5, &src->argv);
}

const char *comet_socket_set_source_rate(cmd_parms *cmd, void *cv, const char *arg)
{
    apr_uint64_t v;
    const char *err = global_only(cmd);

    if (err) {
        return err;
    }
    if (!comet_parse_u64(arg, strlen(arg), &v) || v < 1 || v > 1000000) {
        return "CometSourceRate: lines per second, from 1 to 1000000";
    }
    comet_socket_globals.source_rate = (apr_uint32_t)v;
    return NULL;
}

/*******************************************************************************
 * the supervisor's life cycle (parent side)
 ******************************************************************************/

static void sup_log(void *baton, comet_log_level_t level, apr_status_t rv, const char *msg)
{
    static const int levels[] = { APLOG_ERR, APLOG_WARNING, APLOG_INFO, APLOG_DEBUG,
                                  APLOG_TRACE1 };
    ap_log_error(APLOG_MARK, levels[level], rv, (server_rec *)baton, COMET_LOGNO(00200) "%s",
                 msg);
}

static void sup_conf(comet_supervisor_conf_t *c)
{
    memset(c, 0, sizeof(*c));
    c->max_message = DEF_MAX_MESSAGE;
    c->max_queue = comet_socket_globals.max_queue;
    c->disconnect_delay = comet_socket_globals.disconnect_delay;
    c->kill_grace = comet_socket_globals.kill_grace;
    c->source_rate = comet_socket_globals.source_rate;
    c->source_limits.buffer_length = 100;
    c->source_limits.ttl = apr_time_from_sec(3600);
    c->source_limits.max_size = DEF_MAX_MESSAGE;
    c->sources = (const comet_source_t *)comet_socket_globals.sources->elts;
    c->nsources = (apr_size_t)comet_socket_globals.sources->nelts;
    c->uid = c->gid = -1;
}

static void sup_maintenance(int reason, void *data, apr_wait_t status);

/* Fork the supervisor: it runs as the children's user, holds no listener
 * and watches a pipe whose end-of-file means the parent is gone. */
static apr_status_t sup_spawn(server_rec *s, apr_pool_t *pproc)
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
        comet_supervisor_conf_t conf;
        comet_store_t *st;
        apr_pool_t *p;

        close(fds[1]);
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
        sup_conf(&conf);
        comet_supervisor_main(st, &conf, fds[0], sup_log, s);
        _exit(0);
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
    comet_sup_handle_t *h = data;
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
    if (sup_spawn(h->s, h->s->process->pool) == APR_SUCCESS && sup_pconf) {
        apr_proc_other_child_register(&h->proc, sup_maintenance, h, NULL, sup_pconf);
    }
}

/* At httpd's exit: the supervisor ends its programs, then itself. Runs with
 * every configuration pool; a restart leaves the supervisor alone. */
static apr_status_t sup_stop(void *data)
{
    comet_sup_handle_t *h = data;
    apr_interval_time_t waited = 0, limit = 2 * comet_socket_globals.kill_grace
                                            + apr_time_from_sec(2);

    /* children run this pool's cleanups too when they exit (apr_terminate) */
    if (!h->running || getpid() != h->owner
        || ap_state_query(AP_SQ_MAIN_STATE) != AP_SQ_MS_EXITING) {
        return APR_SUCCESS;
    }
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

int comet_socket_post_config(apr_pool_t *pconf, server_rec *s)
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
        /* a restart: the running supervisor takes the new channel sources */
        comet_store_t *st;
        apr_pool_t *p;
        apr_pool_create(&p, pconf);
        rv = comet_store_shm_open(&st, p, comet_proc.base, comet_proc.mutex);
        if (rv == APR_SUCCESS) {
            rv = comet_sup_configure(st,
                                            (const comet_source_t *)comet_socket_globals.sources->elts,
                                            (apr_size_t)comet_socket_globals.sources->nelts);
        }
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s, COMET_LOGNO(00205)
                         "cannot hand the new CometChannelSource list to the supervisor");
        }
        apr_pool_destroy(p);
    }
    else {
        rv = sup_spawn(s, pproc);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, COMET_LOGNO(00206)
                         "cannot start the comet supervisor: sockets and channel sources "
                         "will not work");
            return OK;
        }
    }
    /* registered per generation: httpd forgets other children at restart */
    apr_proc_other_child_register(&sup->proc, sup_maintenance, sup, NULL, pconf);
    return OK;
}

void comet_socket_child_init(apr_pool_t *pchild, server_rec *s)
{
    /* only the parent's end keeps the supervisor alive */
    if (sup && sup->parent_fd >= 0) {
        close(sup->parent_fd);
        sup->parent_fd = -1;
    }
}

/*******************************************************************************
 * SockJS over HTTP
 ******************************************************************************/

typedef struct {
    request_rec *r;
    const comet_dir_conf_t *conf;
    const char *server, *sid, *what;  /* /<server>/<session>/<what> */
    char down[COMET_CHANNEL_MAX + 8];
    apr_size_t down_len;
} sjs_req_t;

static apr_uint64_t sjs_token(void)
{
    static apr_uint32_t counter;
    return ((apr_uint64_t)(apr_uint32_t)comet_proc.slot << 40)
           | ((apr_uint64_t)(apr_uint32_t)getpid() << 20 & 0xffffff00000ULL)
           | (apr_atomic_inc32(&counter) & 0xfffff);
}

/* CometSocketCookie On: the client's JSESSIONID, or a new one of 128 bits
 * from APR's random generator. A session is bound to the cookie of the client
 * that opened it: its id alone, even guessed, gets nobody else in. */
static const char *sjs_cookie(request_rec *r)
{
    const char *v = apr_table_get(r->notes, "comet-jsessionid");
    const char *cookie, *p;

    if (v) {
        return v;
    }
    cookie = apr_table_get(r->headers_in, "Cookie");
    if (cookie && (p = ap_strstr_c(cookie, "JSESSIONID=")) != NULL
        && (p == cookie || p[-1] == ' ' || p[-1] == ';')) {
        const char *end = p + 11;
        while (*end && *end != ';' && *end != ' ' && *end != '"' && *end != ',') {
            end++;
        }
        if (comet_channel_valid(p + 11, (apr_size_t)(end - p - 11))) {
            v = apr_pstrmemdup(r->pool, p + 11, (apr_size_t)(end - p - 11));
        }
    }
    if (!v) {
        unsigned char rnd[16];
        char *hex = apr_palloc(r->pool, 2 * sizeof(rnd) + 1);
        int i;
        if (apr_generate_random_bytes(rnd, sizeof(rnd)) != APR_SUCCESS) {
            return NULL;
        }
        for (i = 0; i < (int)sizeof(rnd); i++) {
            apr_snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
        }
        v = hex;
    }
    apr_table_setn(r->notes, "comet-jsessionid", v);
    return v;
}

/* The owner a session opened by this request is bound to (0: none). */
static apr_uint64_t sjs_owner(request_rec *r, const comet_dir_conf_t *conf)
{
    const char *v = conf->cookie == 1 ? sjs_cookie(r) : NULL;
    apr_uint64_t h = 14695981039346656037ULL;

    if (!v) {
        return 0;
    }
    for (; *v; v++) {
        h = (h ^ (unsigned char)*v) * 1099511628211ULL;
    }
    return h ? h : 1;
}

/* Headers every SockJS answer carries. */
static void sjs_common(request_rec *r, const comet_dir_conf_t *conf, int cache)
{
    const char *origin = apr_table_get(r->headers_in, "Origin");
    const char *req_headers = apr_table_get(r->headers_in, "Access-Control-Request-Headers");

    apr_table_setn(r->headers_out, "Access-Control-Allow-Origin",
                   origin && strcmp(origin, "null") ? origin : "*");
    apr_table_setn(r->headers_out, "Access-Control-Allow-Credentials", "true");
    apr_table_mergen(r->headers_out, "Vary", "Origin");
    if (req_headers) {
        apr_table_setn(r->headers_out, "Access-Control-Allow-Headers", req_headers);
    }
    if (!cache) {
        apr_table_setn(r->headers_out, "Cache-Control",
                       "no-store, no-cache, no-transform, must-revalidate, max-age=0");
    }
    if (conf->cookie == 1) {
        const char *v = sjs_cookie(r);
        if (v) {
            apr_table_setn(r->err_headers_out, "Set-Cookie",
                           apr_pstrcat(r->pool, "JSESSIONID=", v, "; path=/; HttpOnly", NULL));
        }
    }
}

/* Answer a CORS preflight for the given methods. */
static int sjs_options(request_rec *r, const comet_dir_conf_t *conf, const char *methods)
{
    char expires[APR_RFC822_DATE_LEN];

    sjs_common(r, conf, 1);
    apr_table_setn(r->headers_out, "Access-Control-Allow-Methods", methods);
    apr_table_setn(r->headers_out, "Cache-Control", "public, max-age=31536000");
    apr_table_setn(r->headers_out, "Access-Control-Max-Age", "31536000");
    apr_rfc822_date(expires, r->request_time + apr_time_from_sec(31536000));
    apr_table_setn(r->headers_out, "Expires", apr_pstrdup(r->pool, expires));
    return HTTP_NO_CONTENT;
}

static int sjs_text(request_rec *r, int status, const char *ctype, const char *body)
{
    r->status = status;
    ap_set_content_type(r, ctype);
    ap_set_content_length(r, (apr_off_t)strlen(body));
    if (!r->header_only) {
        ap_rputs(body, r);
    }
    return OK;
}

/* A SockJS protocol error: the status and the exact text the spec wants. */
static int sjs_fail(request_rec *r, int status, const char *text, const char *why)
{
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, COMET_LOGNO(00210) "%s: %s", r->uri, why);
    r->status = status;
    ap_set_content_type(r, "text/plain; charset=UTF-8");
    ap_rputs(text, r);
    return OK;
}

static int sjs_info(request_rec *r, const comet_dir_conf_t *conf)
{
    apr_uint32_t entropy;

    if (r->method_number == M_OPTIONS) {
        return sjs_options(r, conf, "OPTIONS, GET");
    }
    if (r->method_number != M_GET) {
        ap_allow_standard_methods(r, REPLACE_ALLOW, M_GET, M_OPTIONS, -1);
        return HTTP_METHOD_NOT_ALLOWED;
    }
    apr_generate_random_bytes((unsigned char *)&entropy, sizeof(entropy));
    sjs_common(r, conf, 0);
    return sjs_text(r, HTTP_OK, "application/json; charset=UTF-8", apr_psprintf(r->pool,
                    "{\"websocket\": false, \"cookie_needed\": %s, \"origins\": [\"*:*\"], "
                    "\"entropy\": %u}", conf->cookie == 1 ? "true" : "false", entropy));
}

static int sjs_iframe(request_rec *r, const comet_dir_conf_t *conf)
{
    const char *url = conf->client_url ? conf->client_url : DEF_CLIENT_URL;
    const char *page, *etag, *inm;
    unsigned char digest[APR_MD5_DIGESTSIZE];
    char hex[2 * APR_MD5_DIGESTSIZE + 1];
    int i;

    if (r->method_number != M_GET) {
        ap_allow_standard_methods(r, REPLACE_ALLOW, M_GET, -1);
        return HTTP_METHOD_NOT_ALLOWED;
    }
    page = apr_pstrcat(r->pool,
        "<!DOCTYPE html>\n<html>\n<head>\n"
        "  <meta http-equiv=\"X-UA-Compatible\" content=\"IE=edge\" />\n"
        "  <meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\" />\n"
        "  <script src=\"", url, "\"></script>\n"
        "  <script>\n    document.domain = document.domain;\n"
        "    SockJS.bootstrap_iframe();\n  </script>\n</head>\n<body>\n"
        "  <h2>Don't panic!</h2>\n"
        "  <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>\n"
        "</body>\n</html>", NULL);
    apr_md5(digest, page, strlen(page));
    for (i = 0; i < APR_MD5_DIGESTSIZE; i++) {
        apr_snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    }
    etag = apr_pstrcat(r->pool, "\"", hex, "\"", NULL);
    apr_table_setn(r->headers_out, "ETag", etag);
    apr_table_setn(r->headers_out, "Cache-Control", "public, max-age=31536000");
    {
        char expires[APR_RFC822_DATE_LEN];
        apr_rfc822_date(expires, r->request_time + apr_time_from_sec(31536000));
        apr_table_setn(r->headers_out, "Expires", apr_pstrdup(r->pool, expires));
    }
    inm = apr_table_get(r->headers_in, "If-None-Match");
    if (inm && !strcmp(inm, etag)) {
        return HTTP_NOT_MODIFIED;
    }
    return sjs_text(r, HTTP_OK, "text/html; charset=UTF-8", page);
}

/* The environment an exec backend gets: CGI's, plus the session id. */
static const char *const *sjs_backend_env(request_rec *r, const char *sid)
{
    apr_table_t *env = r->subprocess_env;

    ap_add_common_vars(r);
    ap_add_cgi_vars(r);
    apr_table_setn(env, "COMET_SESSION_ID", sid);
    apr_table_setn(env, "COMET_VERSION", COMET_VERSION);
    return (const char *const *)ap_create_environment(r->pool, env);
}

/* Find the session, creating it (and its backend) on first contact. */
static int sjs_session(sjs_req_t *q, int create, comet_chan_ref_t *ref)
{
    request_rec *r = q->r;
    int created = 0;
    apr_status_t rv;

    if (!create) {
        comet_channel_info_t info;
        rv = comet_proc.store->info(comet_proc.store, q->down, q->down_len, &info);
        if (rv != APR_SUCCESS) {
            return comet_error(r, HTTP_NOT_FOUND, APLOG_DEBUG, 0, "no such session");
        }
    }
    rv = comet_proc.store->session.open(comet_proc.store, q->down, q->down_len,
                                        comet_socket_globals.max_sessions,
                                        sjs_owner(r, q->conf), &created, ref);
    if (rv == APR_EACCES) {
        return comet_error(r, HTTP_NOT_FOUND, APLOG_INFO, 0,
                           "session bound to another client's cookie (CometSocketCookie)");
    }
    if (rv == APR_EAGAIN) {
        return comet_error(r, HTTP_SERVICE_UNAVAILABLE, APLOG_WARNING, rv, apr_psprintf(r->pool,
                           "CometSocketMaxSessions (%u) reached: session refused",
                           comet_socket_globals.max_sessions));
    }
    if (rv == APR_ENOSPC) {
        return comet_error(r, HTTP_SERVICE_UNAVAILABLE, APLOG_ERR, rv,
                           "the store is full (CometSharedMemory): session refused");
    }
    if (rv != APR_SUCCESS) {
        return comet_error(r, HTTP_INTERNAL_SERVER_ERROR, APLOG_ERR, rv, "session lookup failed");
    }
    if (created) {
        const char *backend = q->conf->backend ? q->conf->backend : "echo";
        rv = comet_sup_open(comet_proc.store, q->sid, backend, q->conf->backend_argv,
                                   !strcmp(backend, "exec") ? sjs_backend_env(r, q->sid) : NULL);
        if (rv != APR_SUCCESS) {
            comet_limits_t lim = { 10, 0, 64, 0 };
            comet_publish_result_t res;
            ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, COMET_LOGNO(00211)
                          "session %s: the supervisor cannot start its backend", q->sid);
            comet_proc.store->publish(comet_proc.store, q->down, q->down_len,
                                      COMET_SOCKJS_GO_AWAY, strlen(COMET_SOCKJS_GO_AWAY),
                                      COMET_MSG_CLOSE, &lim, &res);
        }
        else {
            ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, COMET_LOGNO(00212)
                          "session %s opened (%s)", q->sid, backend);
        }
    }
    return OK;
}

/* Become the session's receiver. The previous one may have ended its
 * response and the client come back before it let go: wait for it, a matter
 * of milliseconds, rather than answer "another connection". */
static apr_status_t sjs_claim(sjs_req_t *q, const comet_chan_ref_t *ref, apr_uint64_t token,
                              comet_id_t *acked, apr_uint32_t *flags)
{
    apr_status_t rv;
    int waited = 0;

    while ((rv = comet_proc.store->session.claim(comet_proc.store, comet_proc.slot, ref,
                                                  token, acked, flags)) == APR_EAGAIN
           && waited < RECEIVER_WAIT_MS) {
        apr_sleep(apr_time_from_msec(5));
        waited += 5;
    }
    if (rv == APR_EAGAIN) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, q->r, COMET_LOGNO(00219)
                      "session %s: the previous receiver did not let go in %d ms",
                      q->sid, RECEIVER_WAIT_MS);
        rv = APR_EBUSY;
    }
    return rv;
}

/* A receiver: xhr, xhr_streaming, eventsource, htmlfile, jsonp. */
static int sjs_receive(sjs_req_t *q, const comet_transport_t *t)
{
    request_rec *r = q->r;
    const comet_dir_conf_t *conf = q->conf;
    comet_stream_params_t params;
    comet_sub_spec_t spec;
    comet_chan_ref_t ref;
    comet_buf_t out = { 0 };
    apr_bucket_brigade *bb;
    apr_uint64_t token = sjs_token();
    comet_id_t acked = 0;
    apr_uint32_t flags = 0;
    apr_status_t rv;
    int rc;

    memset(&params, 0, sizeof(params));
    params.heartbeat = COMET_CONF(conf, socket_heartbeat, DEF_HEARTBEAT);
    if (t == &comet_transport_sockjs_htmlfile || t == &comet_transport_sockjs_jsonp) {
        const char *cb = comet_query_arg(r, "c");
        if (!cb) {
            return sjs_fail(r, HTTP_INTERNAL_SERVER_ERROR, "\"callback\" parameter required",
                            "callback parameter missing");
        }
        if (!comet_callback_valid(cb)) {
            return sjs_fail(r, HTTP_INTERNAL_SERVER_ERROR, "invalid \"callback\" parameter",
                            "invalid callback parameter");
        }
        params.callback = cb;
    }
    if ((rc = sjs_session(q, 1, &ref)) != OK) {
        return rc;
    }
    rv = sjs_claim(q, &ref, token, &acked, &flags);
    if (rv == APR_NOTFOUND) {
        return comet_error(r, HTTP_NOT_FOUND, APLOG_DEBUG, 0, "session gone");
    }
    if (rv != APR_SUCCESS && rv != APR_EBUSY) {
        return comet_error(r, HTTP_INTERNAL_SERVER_ERROR, APLOG_ERR, rv, "receiver claim failed");
    }

    sjs_common(r, conf, 0);
    comet_stream_headers(r, t->content_type);
    bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    if (t->prelude && t->prelude(&out, &params) < 0) {
        goto fail;
    }
    if (rv == APR_EBUSY) {
        /* one receiver at a time: this one learns why it gets nothing */
        t->close(&out, &params, ANOTHER_CONNECTION, strlen(ANOTHER_CONNECTION));
        comet_send(r, bb, out.data, out.len);
        comet_buf_free(&out);
        return OK;
    }
    if (!(flags & COMET_CHAN_OPENED)) {
        if (t->open(&out, &params) < 0) {
            goto fail;
        }
        if (comet_send(r, bb, out.data, out.len) < 0) {
            comet_buf_free(&out);
            comet_proc.store->session.release(comet_proc.store, &ref, token);
            return OK;
        }
        comet_proc.store->session.ack(comet_proc.store, &ref, acked, COMET_CHAN_OPENED);
        out.len = 0;
        if (t->oneshot) {
            /* a poll that opens a session answers "o" and nothing else */
            comet_buf_free(&out);
            comet_proc.store->session.release(comet_proc.store, &ref, token);
            return OK;
        }
    }
    if (out.len && comet_send(r, bb, out.data, out.len) < 0) {
        comet_buf_free(&out);
        comet_proc.store->session.release(comet_proc.store, &ref, token);
        return OK;
    }
    comet_buf_free(&out);

    memset(&spec, 0, sizeof(spec));
    spec.transport = t;
    spec.params = params;
    spec.nchannels = 1;
    spec.channels[0] = q->down;
    spec.channel_lens[0] = q->down_len;
    spec.since[0] = acked;
    spec.heartbeat = params.heartbeat;
    spec.byte_limit = t->accumulates
                    ? (apr_size_t)COMET_CONF(conf, response_limit, DEF_RESPONSE_LIMIT) : 0;
    spec.session = 1;
    spec.token = token;
    {
        int taken = 0;
        rc = comet_stream_handoff(r, conf, &spec, &taken);
        if (!taken) {
            comet_proc.store->session.release(comet_proc.store, &ref, token);
        }
    }
    return rc;

fail:
    comet_buf_free(&out);
    comet_proc.store->session.release(comet_proc.store, &ref, token);
    return HTTP_INTERNAL_SERVER_ERROR;
}

typedef struct {
    sjs_req_t *q;
    apr_status_t rv;
    apr_size_t max_size;
} sjs_send_ctx_t;

static int sjs_send_one(void *baton, const char *s, apr_size_t len)
{
    sjs_send_ctx_t *x = baton;

    x->rv = comet_sup_send(comet_proc.store, x->q->sid, s, len, x->max_size,
                                  comet_socket_globals.max_queue);
    return x->rv == APR_SUCCESS ? 0 : 1;
}

static int sjs_check_one(void *baton, const char *s, apr_size_t len)
{
    return 0;
}

/* Messages from the browser: xhr_send (raw JSON) or jsonp_send (d=...). */
static int sjs_send(sjs_req_t *q, int jsonp)
{
    request_rec *r = q->r;
    apr_off_t max = 1 << 20;
    comet_buf_t scratch = { 0 };
    sjs_send_ctx_t x;
    comet_chan_ref_t ref;
    char *body = NULL;
    apr_size_t len = 0;
    int rc;

    if ((rc = sjs_session(q, 0, &ref)) != OK) {
        return rc;
    }
    rc = comet_read_body(r, max, &body, &len);
    if (rc == HTTP_REQUEST_ENTITY_TOO_LARGE) {
        return comet_error(r, rc, APLOG_INFO, 0, "payload over 1 MiB");
    }
    if (rc != OK) {
        return comet_error(r, rc, APLOG_INFO, 0, "cannot read the payload");
    }
    if (jsonp) {
        const char *ct = apr_table_get(r->headers_in, "Content-Type");
        if (ct && !strncasecmp(ct, "application/x-www-form-urlencoded", 33)) {
            /* d=<urlencoded JSON> */
            char *d = NULL, *p = body, *amp;
            for (; p && *p; p = amp ? amp + 1 : NULL) {
                amp = strchr(p, '&');
                if (amp) {
                    *amp = '\0';
                }
                if (!strncmp(p, "d=", 2)) {
                    d = p + 2;
                    break;
                }
            }
            /* form decoding: ap_unescape_url() would refuse %2F, which
             * any message with a slash has (sockjs-client encodes it) */
            if (d && ap_unescape_urlencoded(d) != OK) {
                d = NULL;
            }
            body = d;
            len = d ? strlen(d) : 0;
        }
    }
    if (!body || !len) {
        return sjs_fail(r, HTTP_INTERNAL_SERVER_ERROR, "Payload expected.", "empty payload");
    }
    x.q = q;
    x.rv = APR_SUCCESS;
    x.max_size = (apr_size_t)COMET_CONF(q->conf, max_size, DEF_MAX_MESSAGE);
    /* the whole payload first: a broken one must deliver none of its
     * messages, not those before the error */
    rc = comet_json_parse_strings(body, len, &scratch, sjs_check_one, NULL);
    if (rc == 0) {
        rc = comet_json_parse_strings(body, len, &scratch, sjs_send_one, &x);
    }
    comet_buf_free(&scratch);
    if (rc < 0) {
        return sjs_fail(r, HTTP_INTERNAL_SERVER_ERROR, "Broken JSON encoding.",
                        "payload is not a JSON array of strings");
    }
    if (x.rv == APR_EAGAIN) {
        return comet_error(r, HTTP_SERVICE_UNAVAILABLE, APLOG_WARNING, x.rv,
                           "session queue full (CometSocketMaxQueue): its backend does not "
                           "read");
    }
    if (x.rv == APR_EOF) {
        return comet_error(r, HTTP_NOT_FOUND, APLOG_DEBUG, x.rv, "session closed");
    }
    if (x.rv == APR_EINVAL) {
        return comet_error(r, HTTP_REQUEST_ENTITY_TOO_LARGE, APLOG_INFO, x.rv,
                           "message over CometMaxMessageSize");
    }
    if (x.rv != APR_SUCCESS) {
        return comet_error(r, HTTP_SERVICE_UNAVAILABLE, APLOG_ERR, x.rv,
                           "cannot queue the message (CometSharedMemory full?)");
    }
    sjs_common(r, q->conf, 0);
    if (jsonp) {
        return sjs_text(r, HTTP_OK, "text/plain; charset=UTF-8", "ok");
    }
    ap_set_content_type(r, "text/plain; charset=UTF-8");
    return HTTP_NO_CONTENT;
}

/* A segment of a session URL: non-empty, no dot (SockJS), and for the
 * session id our channel-id alphabet. */
static int sjs_segment_ok(const char *s, apr_size_t len, int strict)
{
    apr_size_t i;

    if (len == 0 || len > COMET_CHANNEL_MAX - 2) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if (s[i] == '.' || s[i] == '/' || (strict && !comet_channel_valid(s + i, 1))) {
            return 0;
        }
    }
    return 1;
}

static int comet_socket_handler(request_rec *r)
{
    const comet_dir_conf_t *conf;
    const char *rest, *slash1, *slash2;
    sjs_req_t q;

    if (strcmp(r->handler, "comet-socket")) {
        return DECLINED;
    }
    conf = ap_get_module_config(r->per_dir_config, &comet_module);
    if (!comet_proc.store) {
        return comet_error(r, HTTP_SERVICE_UNAVAILABLE, APLOG_ERR, 0,
                           "the channel store is not available (see earlier errors)");
    }
    rest = comet_path_rest(r, conf);
    if (!*rest) {
        if (r->method_number != M_GET) {
            ap_allow_standard_methods(r, REPLACE_ALLOW, M_GET, -1);
            return HTTP_METHOD_NOT_ALLOWED;
        }
        return sjs_text(r, HTTP_OK, "text/plain; charset=UTF-8", "Welcome to SockJS!\n");
    }
    if (!strcmp(rest, "info")) {
        return sjs_info(r, conf);
    }
    if (!strncmp(rest, "iframe", 6) && ap_strstr_c(rest, ".html")
        && !ap_strchr_c(rest, '/') && strlen(rest) == (apr_size_t)(ap_strstr_c(rest, ".html") - rest) + 5) {
        return sjs_iframe(r, conf);
    }
    /* <server>/<session>/<transport> */
    slash1 = ap_strchr_c(rest, '/');
    slash2 = slash1 ? ap_strchr_c(slash1 + 1, '/') : NULL;
    if (!slash1 || !slash2 || ap_strchr_c(slash2 + 1, '/')
        || !sjs_segment_ok(rest, (apr_size_t)(slash1 - rest), 0)
        || !sjs_segment_ok(slash1 + 1, (apr_size_t)(slash2 - slash1 - 1), 1)) {
        return comet_error(r, HTTP_NOT_FOUND, APLOG_DEBUG, 0, "not a SockJS URL");
    }
    memset(&q, 0, sizeof(q));
    q.r = r;
    q.conf = conf;
    q.server = apr_pstrmemdup(r->pool, rest, (apr_size_t)(slash1 - rest));
    q.sid = apr_pstrmemdup(r->pool, slash1 + 1, (apr_size_t)(slash2 - slash1 - 1));
    q.what = slash2 + 1;
    q.down_len = comet_sup_channel(q.down, sizeof(q.down), 's', q.sid);

    if (!strcmp(q.what, "xhr") || !strcmp(q.what, "xhr_streaming")
        || !strcmp(q.what, "xhr_send")) {
        if (r->method_number == M_OPTIONS) {
            return sjs_options(r, conf, "OPTIONS, POST");
        }
        if (r->method_number != M_POST) {
            ap_allow_standard_methods(r, REPLACE_ALLOW, M_POST, M_OPTIONS, -1);
            return HTTP_METHOD_NOT_ALLOWED;
        }
        if (!strcmp(q.what, "xhr_send")) {
            return sjs_send(&q, 0);
        }
        /* a poll's body means nothing: read it so the connection stays sane */
        ap_discard_request_body(r);
        return sjs_receive(&q, !strcmp(q.what, "xhr") ? &comet_transport_sockjs_xhr
                                                       : &comet_transport_sockjs_xhr_streaming);
    }
    if (!strcmp(q.what, "jsonp_send")) {
        if (r->method_number != M_POST) {
            ap_allow_standard_methods(r, REPLACE_ALLOW, M_POST, -1);
            return HTTP_METHOD_NOT_ALLOWED;
        }
        return sjs_send(&q, 1);
    }
    if (!strcmp(q.what, "eventsource") || !strcmp(q.what, "htmlfile")
        || !strcmp(q.what, "jsonp")) {
        if (r->method_number != M_GET) {
            ap_allow_standard_methods(r, REPLACE_ALLOW, M_GET, -1);
            return HTTP_METHOD_NOT_ALLOWED;
        }
        return sjs_receive(&q, comet_transport_find(q.what));
    }
    /* websocket is not offered (/info says so) */
    return comet_error(r, HTTP_NOT_FOUND, APLOG_DEBUG, 0, "unknown SockJS transport");
}

void comet_socket_register_hooks(apr_pool_t *p)
{
    ap_hook_handler(comet_socket_handler, NULL, NULL, APR_HOOK_MIDDLE);
}
