/* Licensed under the Apache License, Version 2.0 (the "License"); see README. */

/*
 * mod_comet: real-time server push over plain HTTP.
 *
 *   GET  /comet/<channel>           a stream of the channel's messages
 *   GET  /comet/comet.js            the Pxxo_Widget_Comet browser class
 *   POST /comet-publish/<channel>   publish the request body
 *   GET  /comet-publish/<channel>   channel info (JSON)
 *   DELETE /comet-publish/<channel> delete the channel, end its streams
 *   GET  /comet-publish/            store figures (JSON)
 *
 * Life cycle (as mod_example_ipc and mod_authn_socache): the mutex type is
 * registered in pre_config; post_config creates the shared memory and the
 * global mutex once and keeps both in the process pool, so a graceful restart
 * finds the channels where it left them and old and new children share one
 * lock; child_init attaches them and starts the child's event loop
 * (comet_reactor.c); child_stopping tells that loop to end its streams.
 */

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <poll.h>

#include <apr_strings.h>
#include <apr_lib.h>
#include <apr_shm.h>
#include <apr_global_mutex.h>

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <http_ssl.h>
#include <ap_mpm.h>
#include <mpm_common.h>
#include <util_mutex.h>

#include "mod_comet.h"
#include "comet_i18n.h"
#include "comet_json.h"

static void comet_register_hooks(apr_pool_t *p);
static void *comet_dir_create(apr_pool_t *p, char *dir);
static void *comet_dir_merge(apr_pool_t *p, void *basev, void *addv);
static const command_rec comet_cmds[];

/* AP_DECLARE_MODULE would repeat the APLOG_USE_MODULE of mod_comet.h */
module AP_MODULE_DECLARE_DATA comet_module = {
    STANDARD20_MODULE_STUFF,
    comet_dir_create,            /* create per-directory config */
    comet_dir_merge,             /* merge per-directory config */
    NULL,                        /* create per-server config */
    NULL,                        /* merge per-server config */
    comet_cmds,                  /* directives */
    comet_register_hooks         /* hooks */
};

comet_proc_t comet_proc;

/* Defaults a user should not need to change. */
#define DEF_SHM_SIZE       (64 * 1024 * 1024)
#define DEF_CLASS_ID       "Pxxo_Widget_Comet"
#define DEF_BUFFER_LENGTH  100
#define DEF_TTL            apr_time_from_sec(3600)
#define DEF_MAX_SIZE       (64 * 1024)
#define DEF_HEARTBEAT      apr_time_from_sec(25)
#define DEF_LIFETIME       apr_time_from_sec(3600)
#define DEF_STREAM_LIMIT   (1024 * 1024)
#define DEF_CLIENT_BUFFER  (1024 * 1024)
#define DEF_PUBLISH_LINGER apr_time_from_msec(1)
#define DEF_MAX_SUBSCRIBERS 50000
#define HELD_POLL          apr_time_from_sec(1)

/* Server-wide settings, read before post_config. */
static apr_size_t conf_shm_size = DEF_SHM_SIZE;
static apr_uint32_t conf_max_channels = 0;

/* Userdata keys in the process pool: what survives a restart. */
#define KEY_SHM   "mod_comet/shm"
#define KEY_MUTEX "mod_comet/mutex"

/* The browser classes, generated from js/ by script/embed-assets. */
typedef struct comet_asset_t {
    const char *name;
    const char *data;
    apr_size_t len;
} comet_asset_t;
extern const comet_asset_t comet_assets[];

/*******************************************************************************
 * configuration
 ******************************************************************************/

#define UNSET (-1)
#define MERGE(a, b, f) ((a)->f == UNSET ? (b)->f : (a)->f)

static void *comet_dir_create(apr_pool_t *p, char *dir)
{
    comet_dir_conf_t *c = apr_pcalloc(p, sizeof(*c));

    /* the <Location> path, so a handler can find what follows it */
    c->base = dir ? apr_pstrdup(p, dir) : NULL;
    c->class_id = NULL;
    c->buffer_length = UNSET;
    c->ttl = UNSET;
    c->max_size = UNSET;
    c->heartbeat = UNSET;
    c->lifetime = UNSET;
    c->stream_limit = UNSET;
    c->client_buffer = UNSET;
    c->stream_mode = UNSET;
    c->transports = UNSET;
    c->publish_linger = UNSET;
    c->max_subscribers = UNSET;
    c->cookie = UNSET;
    c->response_limit = UNSET;
    c->socket_heartbeat = UNSET;
    return c;
}

static void *comet_dir_merge(apr_pool_t *p, void *basev, void *addv)
{
    comet_dir_conf_t *base = basev, *add = addv, *c = apr_pcalloc(p, sizeof(*c));

    c->base = add->base ? add->base : base->base;
    c->class_id = add->class_id ? add->class_id : base->class_id;
    c->buffer_length = MERGE(add, base, buffer_length);
    c->ttl = MERGE(add, base, ttl);
    c->max_size = MERGE(add, base, max_size);
    c->heartbeat = MERGE(add, base, heartbeat);
    c->lifetime = MERGE(add, base, lifetime);
    c->stream_limit = MERGE(add, base, stream_limit);
    c->client_buffer = MERGE(add, base, client_buffer);
    c->stream_mode = MERGE(add, base, stream_mode);
    c->transports = MERGE(add, base, transports);
    c->publish_linger = MERGE(add, base, publish_linger);
    c->max_subscribers = MERGE(add, base, max_subscribers);
    /* translations add up, the inner location's last */
    c->translate = !add->translate ? base->translate : !base->translate ? add->translate
                 : apr_array_append(p, base->translate, add->translate);
    comet_socket_dir_merge(c, base, add);
    return c;
}

/* Effective values, defaults applied. */
#define CONF_OR(c, f, d) ((c)->f == UNSET ? (d) : (c)->f)

static const char *set_shm_size(cmd_parms *cmd, void *dummy, const char *arg)
{
    apr_uint64_t v;
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    if (err) {
        return err;
    }
    if (!comet_parse_size(arg, &v) || v < 1024 * 1024 || v > ((apr_uint64_t)64 << 30)) {
        return "CometSharedMemory: a size from 1M to 64G, e.g. 64M";
    }
    conf_shm_size = (apr_size_t)v;
    return NULL;
}

static const char *set_max_channels(cmd_parms *cmd, void *dummy, const char *arg)
{
    apr_uint64_t v;
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    if (err) {
        return err;
    }
    if (!comet_parse_u64(arg, strlen(arg), &v) || v > 16777216) {
        return "CometMaxChannels: a number of channels (0: as many as CometSharedMemory holds)";
    }
    conf_max_channels = (apr_uint32_t)v;
    return NULL;
}

static const char *set_max_subscribers(cmd_parms *cmd, void *cv, const char *arg)
{
    apr_uint64_t v;

    if (!comet_parse_u64(arg, strlen(arg), &v) || v > 100000000) {
        return "CometMaxSubscribers: subscribers per channel (0: no limit)";
    }
    ((comet_dir_conf_t *)cv)->max_subscribers = (int)v;
    return NULL;
}

static const char *set_class_id(cmd_parms *cmd, void *cv, const char *arg)
{
    comet_dir_conf_t *c = cv;

    if (!comet_callback_valid(arg) || strchr(arg, '.')) {
        return "CometClassID: a JavaScript identifier, e.g. Pxxo_Widget_Comet";
    }
    c->class_id = arg;
    return NULL;
}

static const char *set_buffer_length(cmd_parms *cmd, void *cv, const char *arg)
{
    comet_dir_conf_t *c = cv;
    apr_uint64_t v;

    if (!comet_parse_u64(arg, strlen(arg), &v) || v < 1 || v > 1000000) {
        return "CometMessageBuffer: a number of messages from 1 to 1000000";
    }
    c->buffer_length = (int)v;
    return NULL;
}

static const char *set_time(cmd_parms *cmd, apr_interval_time_t *slot, const char *arg,
                            int zero_ok)
{
    apr_interval_time_t t;

    if (ap_timeout_parameter_parse(arg, &t, "s") != APR_SUCCESS || t < 0
        || (!zero_ok && t == 0)) {
        return apr_psprintf(cmd->pool, "%s: a duration such as 30, 30s, 500ms, 5mi or 1h%s",
                            cmd->cmd->name, zero_ok ? " (0: none)" : "");
    }
    *slot = t;
    return NULL;
}

static const char *set_ttl(cmd_parms *cmd, void *cv, const char *arg)
{
    return set_time(cmd, &((comet_dir_conf_t *)cv)->ttl, arg, 1);
}

static const char *set_heartbeat(cmd_parms *cmd, void *cv, const char *arg)
{
    return set_time(cmd, &((comet_dir_conf_t *)cv)->heartbeat, arg, 1);
}

static const char *set_lifetime(cmd_parms *cmd, void *cv, const char *arg)
{
    return set_time(cmd, &((comet_dir_conf_t *)cv)->lifetime, arg, 1);
}

static const char *set_size(cmd_parms *cmd, apr_off_t *slot, const char *arg,
                            apr_uint64_t min, apr_uint64_t max)
{
    apr_uint64_t v;

    if (!comet_parse_size(arg, &v) || v < min || v > max) {
        return apr_psprintf(cmd->pool, "%s: a size such as 64K or 1M, from %" APR_UINT64_T_FMT
                            " to %" APR_UINT64_T_FMT " bytes", cmd->cmd->name, min, max);
    }
    *slot = (apr_off_t)v;
    return NULL;
}

static const char *set_max_size(cmd_parms *cmd, void *cv, const char *arg)
{
    return set_size(cmd, &((comet_dir_conf_t *)cv)->max_size, arg, 1, 256 * 1024 * 1024);
}

static const char *set_publish_linger(cmd_parms *cmd, void *cv, const char *arg)
{
    return set_time(cmd, &((comet_dir_conf_t *)cv)->publish_linger, arg, 1);
}

static const char *set_stream_limit(cmd_parms *cmd, void *cv, const char *arg)
{
    return set_size(cmd, &((comet_dir_conf_t *)cv)->stream_limit, arg, 0, APR_UINT32_MAX);
}

static const char *set_client_buffer(cmd_parms *cmd, void *cv, const char *arg)
{
    return set_size(cmd, &((comet_dir_conf_t *)cv)->client_buffer, arg, 4096, APR_UINT32_MAX);
}

static const char *set_stream_mode(cmd_parms *cmd, void *cv, const char *arg)
{
    comet_dir_conf_t *c = cv;

    if (!strcasecmp(arg, "auto")) {
        c->stream_mode = COMET_MODE_AUTO;
    }
    else if (!strcasecmp(arg, "thread")) {
        c->stream_mode = COMET_MODE_THREAD;
    }
    else {
        return "CometStreamMode: auto or thread";
    }
    return NULL;
}

/* Channel transports a location may offer. */
static const comet_transport_t *const channel_transports[] = {
    &comet_transport_iframe, &comet_transport_sse, &comet_transport_stream,
    &comet_transport_longpoll, NULL
};

#define TRANSPORT_BIT(t) (1 << (t)->index)
#define ALL_TRANSPORTS (TRANSPORT_BIT(&comet_transport_iframe) \
                        | TRANSPORT_BIT(&comet_transport_sse) \
                        | TRANSPORT_BIT(&comet_transport_stream) \
                        | TRANSPORT_BIT(&comet_transport_longpoll))

static const char *set_transports(cmd_parms *cmd, void *cv, const char *arg)
{
    comet_dir_conf_t *c = cv;
    int i;

    if (c->transports == UNSET) {
        c->transports = 0;
    }
    for (i = 0; channel_transports[i]; i++) {
        if (!strcasecmp(arg, channel_transports[i]->name)) {
            c->transports |= TRANSPORT_BIT(channel_transports[i]);
            return NULL;
        }
    }
    return "CometTransports: any of iframe sse stream longpoll";
}

static const char *set_translate(cmd_parms *cmd, void *cv, const char *a1, const char *a2,
                                 const char *a3)
{
    comet_dir_conf_t *c = cv;
    comet_translation_t *t;
    const char *lang = a3 ? a1 : NULL, *key = a3 ? a2 : a1, *text = a3 ? a3 : a2;
    const char *k;

    if (lang && !comet_lang_find(lang, strlen(lang))) {
        return apr_psprintf(cmd->pool, "CometTranslate: %s is not a built-in language "
                            "(en, fr, de, es)", lang);
    }
    for (k = key; *k; k++) {
        if (!apr_isalnum(*k) && *k != '_') {
            return "CometTranslate: a key such as YOUR_NICK_IS (letters, digits, _)";
        }
    }
    if (!*key) {
        return "CometTranslate: a key expected";
    }
    if (!c->translate) {
        c->translate = apr_array_make(cmd->pool, 4, sizeof(comet_translation_t));
    }
    t = apr_array_push(c->translate);
    t->lang = lang;
    t->key = key;
    t->text = text;
    return NULL;
}

static const command_rec comet_cmds[] = {
    AP_INIT_TAKE1("CometSharedMemory", set_shm_size, NULL, RSRC_CONF,
                  "size of the shared memory holding every channel (default 64M)"),
    AP_INIT_TAKE1("CometMaxChannels", set_max_channels, NULL, RSRC_CONF,
                  "most channels at once (default 0: as many as CometSharedMemory holds)"),
    AP_INIT_TAKE1("CometMaxSubscribers", set_max_subscribers, NULL, RSRC_CONF | ACCESS_CONF,
                  "most subscribers of one channel, all children together (default 50000; "
                  "0: no limit)"),
    AP_INIT_TAKE1("CometClassID", set_class_id, NULL, RSRC_CONF | ACCESS_CONF,
                  "name of the browser class served as comet.js (default Pxxo_Widget_Comet)"),
    AP_INIT_TAKE1("CometMessageBuffer", set_buffer_length, NULL, RSRC_CONF | ACCESS_CONF,
                  "messages kept per channel for replay (default 100)"),
    AP_INIT_TAKE1("CometMessageTTL", set_ttl, NULL, RSRC_CONF | ACCESS_CONF,
                  "how long a message is kept for replay (default 1h; 0: until pushed out)"),
    AP_INIT_TAKE1("CometMaxMessageSize", set_max_size, NULL, RSRC_CONF | ACCESS_CONF,
                  "largest message a publisher may post (default 64K)"),
    AP_INIT_TAKE1("CometHeartbeat", set_heartbeat, NULL, RSRC_CONF | ACCESS_CONF,
                  "silence after which a stream gets a heartbeat (default 25s; 0: none)"),
    AP_INIT_TAKE1("CometMaxLifetime", set_lifetime, NULL, RSRC_CONF | ACCESS_CONF,
                  "age at which a stream ends and its client reconnects (default 1h; 0: none)"),
    AP_INIT_TAKE1("CometStreamLimit", set_stream_limit, NULL, RSRC_CONF | ACCESS_CONF,
                  "bytes after which an iframe stream is renewed (default 1M; 0: none)"),
    AP_INIT_TAKE1("CometClientBuffer", set_client_buffer, NULL, RSRC_CONF | ACCESS_CONF,
                  "bytes waiting for a slow client before it is dropped (default 1M)"),
    AP_INIT_TAKE1("CometStreamMode", set_stream_mode, NULL, RSRC_CONF | ACCESS_CONF,
                  "auto: an event loop per child writes the streams; thread: a worker "
                  "thread per stream (default auto)"),
    AP_INIT_TAKE1("CometPublishLinger", set_publish_linger, NULL, RSRC_CONF | ACCESS_CONF,
                  "how long a publish request's thread waits for the same connection's next "
                  "request before handing it back to the MPM (default 1ms; 0: not at all)"),
    AP_INIT_TAKE23("CometTranslate", set_translate, NULL, RSRC_CONF | ACCESS_CONF,
                   "[lang] KEY \"text\": replace one of the widgets' strings "
                   "(e.g. YOUR_NICK_IS \"My nick is %s\")"),
    AP_INIT_ITERATE("CometTransports", set_transports, NULL, RSRC_CONF | ACCESS_CONF,
                    "the transports subscribers may use here: iframe sse stream longpoll "
                    "(default all)"),
    /* mod_comet_socket.c */
    AP_INIT_RAW_ARGS("CometSocketBackend", comet_socket_set_backend, NULL,
                     RSRC_CONF | ACCESS_CONF, "the program or server each session talks to: "
                     "echo, close, exec:<program> [args], unix:<path> or tcp:<host>:<port>"),
    AP_INIT_FLAG("CometSocketCookie", comet_socket_set_cookie, NULL, RSRC_CONF | ACCESS_CONF,
                 "set the JSESSIONID cookie sticky load balancers need (default Off)"),
    AP_INIT_TAKE1("CometSocketResponseLimit", comet_socket_set_response_limit, NULL,
                  RSRC_CONF | ACCESS_CONF, "bytes after which a streaming response is "
                  "renewed (default 128K)"),
    AP_INIT_TAKE1("CometSocketHeartbeat", comet_socket_set_heartbeat, NULL,
                  RSRC_CONF | ACCESS_CONF, "silence after which a session gets a heartbeat "
                  "frame (default 25s)"),
    AP_INIT_TAKE1("CometSocketClientURL", comet_socket_set_client_url, NULL,
                  RSRC_CONF | ACCESS_CONF, "URL of sockjs.js for the iframe page"),
    AP_INIT_TAKE1("CometSocketMaxSessions", comet_socket_set_max_sessions, NULL, RSRC_CONF,
                  "most sessions open at once, server-wide (default 10000)"),
    AP_INIT_TAKE1("CometSocketDisconnectDelay", comet_socket_set_disconnect_delay, NULL,
                  RSRC_CONF, "a session without a receiver this long ends (default 5s)"),
    AP_INIT_TAKE1("CometSocketMaxQueue", comet_socket_set_max_queue, NULL, RSRC_CONF,
                  "bytes waiting per session and direction before the sender is held "
                  "back (default 1M)"),
    AP_INIT_TAKE1("CometProgramGrace", comet_socket_set_grace, NULL, RSRC_CONF,
                  "time a program gets after stdin EOF, then after SIGTERM (default 3s)"),
    AP_INIT_RAW_ARGS("CometChannelSource", comet_socket_set_source, NULL, RSRC_CONF,
                     "<channel> [ondemand] exec:<program> [args]: publish every line the "
                     "program prints"),
    AP_INIT_TAKE1("CometSourceRate", comet_socket_set_source_rate, NULL, RSRC_CONF,
                  "most lines a second a channel source may publish (default 1000)"),
    { NULL }
};

/*******************************************************************************
 * life cycle
 ******************************************************************************/

static void comet_log(void *baton, comet_log_level_t level, apr_status_t rv, const char *msg)
{
    static const int levels[] = { APLOG_ERR, APLOG_WARNING, APLOG_INFO, APLOG_DEBUG,
                                  APLOG_TRACE1 };
    server_rec *s = baton;

    ap_log_error(APLOG_MARK, levels[level], rv, s, COMET_LOGNO(00100) "%s", msg);
}

static int comet_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    conf_shm_size = DEF_SHM_SIZE;
    conf_max_channels = 0;
    comet_socket_pre_config(pconf);
    return ap_mutex_register(pconf, COMET_MUTEX_TYPE, NULL, APR_LOCK_DEFAULT, 0);
}

/* How many processes may hold subscribers at once: every process the MPM can
 * run, twice (old and new generation overlap during a graceful restart). */
static int comet_slot_count(void)
{
    int limit = 0, n;

    if (ap_mpm_query(AP_MPMQ_HARD_LIMIT_DAEMONS, &limit) != APR_SUCCESS || limit < 1) {
        limit = 16;
    }
    n = 2 * limit + 8;
    return n > 4096 ? 4096 : n;
}

static apr_status_t comet_instance_name(char *buf, apr_size_t len)
{
    unsigned char rnd[8];
    apr_status_t rv = apr_generate_random_bytes(rnd, sizeof(rnd));

    if (rv == APR_SUCCESS) {
        apr_snprintf(buf, len, "%d-%02x%02x%02x%02x%02x%02x%02x%02x", (int)getpid(),
                     rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
    }
    return rv;
}

static int comet_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                             server_rec *s)
{
    apr_pool_t *pproc = s->process->pool;
    apr_status_t rv;
    void *data = NULL;
    char instance[48];
    int nslots = comet_slot_count();

    /* the first pass only checks the configuration */
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    comet_proc.s = s;

    /* the lock: created once, kept across restarts so that children of two
     * generations never guard the same memory with two different locks */
    apr_pool_userdata_get(&data, KEY_MUTEX, pproc);
    if (data) {
        comet_proc.mutex = data;
    }
    else {
        rv = ap_global_mutex_create(&comet_proc.mutex, NULL, COMET_MUTEX_TYPE, NULL, s,
                                    pproc, 0);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, COMET_LOGNO(00101)
                         "cannot create the %s mutex", COMET_MUTEX_TYPE);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        apr_pool_userdata_set(comet_proc.mutex, KEY_MUTEX, apr_pool_cleanup_null, pproc);
    }

    /* the channels: kept across restarts as well */
    data = NULL;
    apr_pool_userdata_get(&data, KEY_SHM, pproc);
    if (data) {
        apr_shm_t *shm = data;
        void *base = apr_shm_baseaddr_get(shm);
        apr_size_t size = apr_shm_size_get(shm);
        rv = comet_store_shm_init(base, size, nslots, "", 0);
        if (rv == APR_SUCCESS) {
            comet_proc.shm = shm;
            comet_proc.base = base;
            comet_proc.size = size;
            if (size != conf_shm_size) {
                ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, COMET_LOGNO(00102)
                             "CometSharedMemory changed to %" APR_SIZE_T_FMT " bytes: the "
                             "running %" APR_SIZE_T_FMT " bytes stay in use until a full "
                             "restart", conf_shm_size, size);
            }
            ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, COMET_LOGNO(00103)
                         "kept %" APR_SIZE_T_FMT " bytes of channels across the restart",
                         size);
            comet_store_shm_set_max_channels(base, conf_max_channels);
            return comet_socket_post_config(pconf, s);
        }
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s, COMET_LOGNO(00104)
                     "the channels' shared memory does not fit this configuration "
                     "(ServerLimit changed?): starting with empty channels");
        /* the old segment stays with children of the old generation */
    }
    rv = comet_instance_name(instance, sizeof(instance));
    if (rv == APR_SUCCESS) {
        rv = apr_shm_create(&comet_proc.shm, comet_store_shm_size(conf_shm_size), NULL, pproc);
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, COMET_LOGNO(00105)
                     "cannot create %" APR_SIZE_T_FMT " bytes of shared memory "
                     "(CometSharedMemory)", conf_shm_size);
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
    comet_store_shm_set_max_channels(comet_proc.base, conf_max_channels);
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, COMET_LOGNO(00107)
                 "mod_comet %s: %" APR_SIZE_T_FMT " bytes of shared memory for up to %d "
                 "processes", COMET_VERSION, comet_proc.size, nslots);
    return comet_socket_post_config(pconf, s);
}

static apr_status_t comet_child_exit(void *data)
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

static void comet_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_status_t rv;
    int wake_fd = -1;

    if (!comet_proc.mutex || !comet_proc.base) {
        return;
    }
    comet_socket_child_init(pchild, s);
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
    apr_pool_cleanup_register(pchild, s, comet_child_exit, apr_pool_cleanup_null);
    rv = comet_reactor_create(&comet_proc.reactor, comet_proc.store, comet_proc.slot,
                              wake_fd, comet_log, s);
    if (rv == APR_SUCCESS) {
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

static void comet_child_stopping(apr_pool_t *pchild, int graceful)
{
    /* end the streams now: clients come back to the next generation */
    comet_reactor_quiesce(comet_proc.reactor);
}

/*******************************************************************************
 * request helpers
 ******************************************************************************/

/* The path of the <Location> that applies: the most specific section, as
 * core merged it (ours exists only where a Comet* directive appears). */
static const char *comet_location_base(request_rec *r, const comet_dir_conf_t *conf)
{
    core_dir_config *cd = ap_get_core_module_config(r->per_dir_config);

    if (cd && cd->d && !cd->r && cd->d[0] == '/') {
        return cd->d;
    }
    return conf->base && conf->base[0] == '/' ? conf->base : NULL;
}

/* What names the channel: what follows the innermost section's path; when
 * that section is the channel's own (<Location /comet-publish/news> to give
 * one channel other settings), the URL's last segment. */
static const char *comet_channel_path(request_rec *r, const comet_dir_conf_t *conf)
{
    const char *rest = comet_path_rest(r, conf), *slash;
    apr_size_t len = strlen(r->uri);

    if (*rest || len == 0 || r->uri[len - 1] == '/') {
        return rest;
    }
    slash = strrchr(r->uri, '/');
    return slash ? slash + 1 : r->uri;
}

/* What follows the <Location> path in the URL ("" for the location itself). */
const char *comet_path_rest(request_rec *r, const comet_dir_conf_t *conf)
{
    const char *uri = r->uri, *slash, *base = comet_location_base(r, conf);
    apr_size_t blen;

    if (base) {
        blen = strlen(base);
        while (blen > 1 && base[blen - 1] == '/') {
            blen--;
        }
        if (!strncmp(uri, base, blen) && (uri[blen] == '/' || uri[blen] == '\0')) {
            uri += blen;
            return *uri == '/' ? uri + 1 : uri;
        }
    }
    /* regex or unknown location: the last path segment */
    slash = strrchr(uri, '/');
    return slash ? slash + 1 : uri;
}

/* Value of a query argument, decoded; NULL if absent. */
const char *comet_query_arg(request_rec *r, const char *name)
{
    const char *q = r->args;
    apr_size_t nlen = strlen(name);

    while (q && *q) {
        const char *amp = strchr(q, '&');
        apr_size_t len = amp ? (apr_size_t)(amp - q) : strlen(q);
        if (len >= nlen && !strncmp(q, name, nlen) && (len == nlen || q[nlen] == '=')) {
            char *v = apr_pstrmemdup(r->pool, q + nlen + (len > nlen), len - nlen - (len > nlen));
            char *p;
            for (p = v; *p; p++) {
                if (*p == '+') {
                    *p = ' ';
                }
            }
            if (ap_unescape_url(v) != OK) {
                return "\x01";   /* undecodable: fails every validation */
            }
            return v;
        }
        q = amp ? amp + 1 : NULL;
    }
    return NULL;
}

static void comet_no_cache(request_rec *r)
{
    apr_table_setn(r->headers_out, "Cache-Control",
                   "no-store, no-cache, no-transform, must-revalidate, max-age=0");
}

/* Answer with a JSON body; the caller escaped what needs it. */
static int comet_json_reply(request_rec *r, int status, const char *json)
{
    r->status = status;
    ap_set_content_type(r, "application/json");
    comet_no_cache(r);
    ap_set_content_length(r, (apr_off_t)strlen(json) + 1);
    if (!r->header_only) {
        ap_rputs(json, r);
        ap_rputs("\n", r);
    }
    return OK;
}

static const char *request_json_str(request_rec *r, const char *s, apr_size_t len)
{
    comet_buf_t b = { 0 };
    const char *out;

    if (comet_json_escape(&b, s, len) < 0) {
        return "";
    }
    out = apr_pstrmemdup(r->pool, b.data ? b.data : "", b.len);
    comet_buf_free(&b);
    return out;
}

/* Answer an error: the status and a one-line explanation, also logged. */
int comet_error(request_rec *r, int status, int level, apr_status_t rv, const char *why)
{
    ap_log_rerror(APLOG_MARK, level, rv, r, COMET_LOGNO(00120) "%s: %s", r->uri, why);
    apr_table_setn(r->notes, "error-notes", ap_escape_html(r->pool, why));
    return status;
}

/*******************************************************************************
 * JavaScript assets
 ******************************************************************************/

static const comet_asset_t *comet_asset_find(const char *name)
{
    int i;

    for (i = 0; comet_assets[i].name; i++) {
        if (!strcmp(comet_assets[i].name, name)) {
            return &comet_assets[i];
        }
    }
    return NULL;
}

/* The strings of `lang` for this location, as a JSON object. */
static const char *comet_strings_json(request_rec *r, const comet_dir_conf_t *conf,
                                      const comet_lang_t *lang)
{
    const char **over = NULL;
    apr_size_t n = 0;
    comet_buf_t b = { 0 };
    const char *json;
    int i;

    if (conf->translate) {
        const comet_translation_t *t = (const comet_translation_t *)conf->translate->elts;
        over = apr_palloc(r->pool, 2 * sizeof(char *) * (apr_size_t)conf->translate->nelts);
        for (i = 0; i < conf->translate->nelts; i++) {
            if (!t[i].lang || comet_lang_find(t[i].lang, strlen(t[i].lang)) == lang) {
                over[2 * n] = t[i].key;
                over[2 * n + 1] = t[i].text;
                n++;
            }
        }
    }
    if (comet_lang_json(&b, lang, over, n) < 0) {
        comet_buf_free(&b);
        return "{}";
    }
    json = apr_pstrmemdup(r->pool, b.data, b.len);
    comet_buf_free(&b);
    return json;
}

/* The language for this request: the one asked, or Accept-Language's. */
static const comet_lang_t *comet_request_lang(request_rec *r)
{
    apr_table_mergen(r->headers_out, "Vary", "Accept-Language");
    return comet_lang_negotiate(apr_table_get(r->headers_in, "Accept-Language"));
}

/* GET <location>/i18n/<lang>.js|.json, or i18n.js|.json (negotiated). */
static int comet_serve_strings(request_rec *r, const comet_dir_conf_t *conf, const char *rest)
{
    const comet_lang_t *lang;
    const char *dot = strrchr(rest, '.'), *json, *class_id, *body;
    int js;

    if (!dot || (strcmp(dot, ".js") && strcmp(dot, ".json"))) {
        return comet_error(r, HTTP_NOT_FOUND, APLOG_DEBUG, 0,
                           "string tables: i18n/<lang>.js or .json");
    }
    js = !strcmp(dot, ".js");
    if (!strncmp(rest, "i18n/", 5)) {
        if (!(lang = comet_lang_find(rest + 5, (apr_size_t)(dot - rest - 5)))
            || ap_strchr_c(rest + 5, '/')) {
            return comet_error(r, HTTP_NOT_FOUND, APLOG_DEBUG, 0,
                               "no such language (built in: en, fr, de, es)");
        }
    }
    else {
        lang = comet_request_lang(r);
    }
    if (r->method_number != M_GET) {
        ap_allow_standard_methods(r, REPLACE_ALLOW, M_GET, -1);
        return HTTP_METHOD_NOT_ALLOWED;
    }
    json = comet_strings_json(r, conf, lang);
    class_id = conf->class_id ? conf->class_id : DEF_CLASS_ID;
    apr_table_setn(r->headers_out, "Cache-Control", "no-cache");
    apr_table_setn(r->headers_out, "Content-Language", lang->tag);
    if (js) {
        /* the table goes where the class finds it, loaded before or after */
        body = apr_psprintf(r->pool,
            "(function (g) {\nvar n = \"%s\", lang = \"%s\", s = %s;\n"
            "(g[n + \"_strings\"] = g[n + \"_strings\"] || {})[lang] = s;\n"
            "if (g[n] && g[n].useStrings) { g[n].useStrings(lang, s); }\n})(this);\n",
            class_id, lang->tag, json);
        ap_set_content_type(r, "application/javascript; charset=utf-8");
    }
    else {
        body = apr_psprintf(r->pool, "{\"lang\": \"%s\", \"strings\": %s}\n", lang->tag, json);
        ap_set_content_type(r, "application/json; charset=utf-8");
    }
    ap_set_content_length(r, (apr_off_t)strlen(body));
    if (!r->header_only) {
        ap_rputs(body, r);
    }
    return OK;
}

static unsigned comet_hash(const char *s)
{
    return comet_hash32(s, strlen(s));
}

/* The class, wrapped in a function that receives this location's settings. */
static int comet_serve_asset(request_rec *r, const comet_dir_conf_t *conf,
                             const comet_asset_t *a)
{
    const char *class_id = conf->class_id ? conf->class_id : DEF_CLASS_ID;
    const char *base = comet_location_base(r, conf);
    const char *etag, *head, *tail = "\n})(this);\n", *strings, *transports = "";
    const comet_lang_t *lang;
    int i;
    apr_interval_time_t hb = CONF_OR(conf, heartbeat, DEF_HEARTBEAT);

    if (r->method_number != M_GET) {
        ap_allow_standard_methods(r, REPLACE_ALLOW, M_GET, -1);
        return HTTP_METHOD_NOT_ALLOWED;
    }
    lang = comet_request_lang(r);
    strings = comet_strings_json(r, conf, lang);
    for (i = 0; channel_transports[i]; i++) {
        if (COMET_CONF(conf, transports, ALL_TRANSPORTS) & TRANSPORT_BIT(channel_transports[i])) {
            transports = apr_psprintf(r->pool, "%s%s\"%s\"", transports, *transports ? ", " : "",
                                      channel_transports[i]->name);
        }
    }
    /* everything the answer is made of, so that no edit keeps an old ETag */
    etag = apr_psprintf(r->pool, "\"%s-%s-%s-%08x\"", COMET_VERSION, class_id, lang->tag,
                        comet_hash32(a->data, a->len) ^ (unsigned)hb ^ comet_hash(strings)
                        ^ comet_hash(transports) ^ comet_hash(base ? base : ""));
    apr_table_setn(r->headers_out, "ETag", etag);
    apr_table_setn(r->headers_out, "Cache-Control", "no-cache");
    ap_set_content_type(r, "application/javascript; charset=utf-8");
    if (ap_meets_conditions(r) == HTTP_NOT_MODIFIED) {
        return HTTP_NOT_MODIFIED;
    }
    head = apr_psprintf(r->pool,
                        "/* mod_comet %s */\n(function (global) {\n"
                        "var COMET = { version: \"%s\", classId: \"%s\", base: \"%s\", "
                        "heartbeat: %" APR_INT64_T_FMT ", transports: [%s], lang: \"%s\", "
                        "strings: %s };\n",
                        COMET_VERSION, COMET_VERSION, class_id,
                        base ? request_json_str(r, base, strlen(base)) : "",
                        apr_time_as_msec(hb), transports, lang->tag, strings);
    ap_set_content_length(r, (apr_off_t)(strlen(head) + a->len + strlen(tail)));
    if (!r->header_only) {
        ap_rputs(head, r);
        ap_rwrite(a->data, (int)a->len, r);
        ap_rputs(tail, r);
    }
    return OK;
}

/*******************************************************************************
 * subscribers
 ******************************************************************************/

/* May the event loop write this connection's socket itself? Only if nothing
 * between the handler and the socket changes the bytes (TLS, compression,
 * HTTP/2 framing, rate limits...). */
int comet_can_own_socket(request_rec *r)
{
    conn_rec *c = r->connection;
    ap_filter_t *f;

    if (c->master || ap_ssl_conn_is_ssl(c) || !ap_get_conn_socket(c)) {
        return 0;
    }
    for (f = r->output_filters; f; f = f->next) {
        const char *n = f->frec->name;
        /* reqtimeout: mod_reqtimeout's output filter only watches for the
         * EOR bucket and passes the brigade on untouched */
        if (strcasecmp(n, "byterange") && strcasecmp(n, "content_length")
            && strcasecmp(n, "http_header") && strcasecmp(n, "http_outerror")
            && strcasecmp(n, "core") && strcasecmp(n, "log_input_output")
            && strcasecmp(n, "reqtimeout")) {
            ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, COMET_LOGNO(00130)
                          "output filter %s rewrites the stream: a worker thread "
                          "keeps it", n);
            return 0;
        }
    }
    return 1;
}

int comet_send(request_rec *r, apr_bucket_brigade *bb, const char *data, apr_size_t len)
{
    apr_status_t rv;

    apr_brigade_cleanup(bb);
    if (len) {
        apr_brigade_write(bb, NULL, NULL, data, len);
    }
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_flush_create(bb->bucket_alloc));
    rv = ap_pass_brigade(r->output_filters, bb);
    apr_brigade_cleanup(bb);
    return rv == APR_SUCCESS && !r->connection->aborted ? 0 : -1;
}

/* A stream that cannot be handed over (the child is stopping): its end
 * frame, so that the client comes back at once, to another child. */
static void comet_stream_end_now(request_rec *r, const comet_sub_spec_t *spec)
{
    comet_buf_t out = { 0 };
    apr_bucket_brigade *bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);

    if (spec->transport->end
        && spec->transport->end(&out, &spec->params, COMET_END_RECONNECT) == 0) {
        comet_send(r, bb, out.data, out.len);
    }
    comet_buf_free(&out);
}

/* A worker thread keeps the stream: TLS, HTTP/2, CometStreamMode thread. */
static int comet_hold_stream(request_rec *r, comet_sub_spec_t *spec, int *taken)
{
    comet_held_t *h = NULL;
    apr_bucket_brigade *bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    apr_socket_t *sock = r->connection->master ? NULL : ap_get_conn_socket(r->connection);
    apr_os_sock_t fd = -1;
    comet_buf_t out = { 0 };
    apr_status_t rv;

    if (sock) {
        apr_os_sock_get(&fd, sock);
    }
    spec->fd = -1;
    rv = comet_reactor_add(comet_proc.reactor, spec, &h);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, rv, r, COMET_LOGNO(00131)
                      "the subscriber loop is stopping: stream ends");
        comet_stream_end_now(r, spec);
        return OK;
    }
    *taken = 1;
    for (;;) {
        int state = AP_MPMQ_RUNNING;
        rv = comet_held_wait(h, (int)fd, HELD_POLL, &out);
        if (out.len && comet_send(r, bb, out.data, out.len) < 0) {
            break;
        }
        out.len = 0;
        if (rv == APR_EOF || rv == APR_ECONNABORTED) {
            break;
        }
        if (rv != APR_SUCCESS && rv != APR_TIMEUP) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, COMET_LOGNO(00132)
                          "waiting for messages failed");
            break;
        }
        if (ap_mpm_query(AP_MPMQ_MPM_STATE, &state) == APR_SUCCESS
            && state == AP_MPMQ_STOPPING) {
            /* this process ends: the client comes back to the next one */
            if (spec->transport->end
                && spec->transport->end(&out, &spec->params, COMET_END_RECONNECT) == 0) {
                comet_send(r, bb, out.data, out.len);
            }
            break;
        }
    }
    comet_buf_free(&out);
    comet_held_release(h);
    return OK;
}

/* `since`: one id for every channel, or "<channel>:<id>,..." (a channel not
 * named starts where it stands). 0, or -1 if malformed. */
static int comet_parse_since(const char *since, comet_sub_spec_t *spec, comet_id_t *all)
{
    apr_size_t i;
    const char *p = since;

    for (i = 0; i < spec->nchannels; i++) {
        spec->since[i] = COMET_ID_NONE;
    }
    if (!ap_strchr_c(since, ':')) {
        if (!comet_parse_u64(since, strlen(since), all)) {
            return -1;
        }
        for (i = 0; i < spec->nchannels; i++) {
            spec->since[i] = *all;
        }
        return 0;
    }
    while (*p) {
        const char *colon = ap_strchr_c(p, ':'), *comma;
        apr_uint64_t v;
        if (!colon) {
            return -1;
        }
        comma = ap_strchr_c(colon, ',');
        if (!comet_parse_u64(colon + 1, comma ? (apr_size_t)(comma - colon - 1)
                                              : strlen(colon + 1), &v)) {
            return -1;
        }
        for (i = 0; i < spec->nchannels; i++) {
            if (spec->channel_lens[i] == (apr_size_t)(colon - p)
                && !memcmp(spec->channels[i], p, spec->channel_lens[i])) {
                spec->since[i] = v;
            }
        }
        p = comma ? comma + 1 : colon + 1 + strlen(colon + 1);
    }
    return 0;
}

/* Undo the subscriptions of the first n channels of a stream not handed over. */
static void comet_unsubscribe_all(comet_sub_spec_t *spec, apr_size_t n)
{
    apr_size_t i;

    for (i = 0; i < n; i++) {
        comet_proc.store->unsubscribe(comet_proc.store, comet_proc.slot, &spec->refs[i], 1);
    }
}

static int comet_subscribe(request_rec *r, const comet_dir_conf_t *conf, const char *rest)
{
    comet_sub_spec_t spec;
    comet_stream_params_t params;
    const comet_transport_t *t = &comet_transport_iframe;
    const char *since = comet_query_arg(r, "since");
    const char *cb = comet_query_arg(r, "cb");
    const char *tname = comet_query_arg(r, "transport");
    const char *class_id = conf->class_id ? conf->class_id : DEF_CLASS_ID;
    conn_rec *c = r->connection;
    apr_bucket_brigade *bb;
    comet_buf_t prelude = { 0 };
    comet_id_t since_id = COMET_ID_NONE;
    const char *p, *cursors_json = NULL;
    int rc, rv;

    if (r->method_number != M_GET) {
        ap_allow_standard_methods(r, REPLACE_ALLOW, M_GET, -1);
        return HTTP_METHOD_NOT_ALLOWED;
    }
    memset(&spec, 0, sizeof(spec));
    memset(&params, 0, sizeof(params));
    /* one channel, or several joined by commas */
    for (p = rest; ; ) {
        const char *comma = strchr(p, ',');
        apr_size_t len = comma ? (apr_size_t)(comma - p) : strlen(p);
        if (spec.nchannels == COMET_SUB_CHANNELS_MAX) {
            return comet_error(r, HTTP_BAD_REQUEST, APLOG_INFO, 0,
                               "too many channels in one stream");
        }
        if (!comet_channel_valid(p, len)) {
            return comet_error(r, HTTP_BAD_REQUEST, APLOG_INFO, 0,
                               "invalid channel id: use 1 to 128 of A-Z a-z 0-9 _ -");
        }
        spec.channels[spec.nchannels] = p;
        spec.channel_lens[spec.nchannels] = len;
        spec.nchannels++;
        if (!comma) {
            break;
        }
        p = comma + 1;
    }
    if (tname) {
        if (!(t = comet_transport_find(tname)) || t->session) {
            return comet_error(r, HTTP_BAD_REQUEST, APLOG_INFO, 0,
                               "transport: iframe, sse, stream or longpoll");
        }
    }
    else {
        /* no choice made: what the client says it accepts */
        const char *accept = apr_table_get(r->headers_in, "Accept");
        if (accept && ap_strcasestr(accept, "text/event-stream")) {
            t = &comet_transport_sse;
        }
        else if (accept && ap_strcasestr(accept, "application/x-ndjson")) {
            t = &comet_transport_stream;
        }
    }
    if (!(COMET_CONF(conf, transports, ALL_TRANSPORTS) & TRANSPORT_BIT(t))) {
        return comet_error(r, HTTP_FORBIDDEN, APLOG_INFO, 0, apr_psprintf(r->pool,
                           "transport %s is not allowed here (CometTransports)", t->name));
    }
    if (t == &comet_transport_sse && !since) {
        /* an EventSource that reconnects says where it was */
        since = apr_table_get(r->headers_in, "Last-Event-ID");
    }
    if (t == &comet_transport_sse && spec.nchannels > 1) {
        t = &comet_transport_sse_multi;
    }
    if (since && comet_parse_since(since, &spec, &since_id) < 0) {
        return comet_error(r, HTTP_BAD_REQUEST, APLOG_INFO, 0,
                           "since: a message id, or <channel>:<id>,... for several channels");
    }
    if (cb && !comet_callback_valid(cb)) {
        return comet_error(r, HTTP_BAD_REQUEST, APLOG_INFO, 0,
                           "cb: a JavaScript name such as Pxxo_Widget_Comet.cb.c1 expected");
    }
    if (!comet_proc.reactor) {
        return comet_error(r, HTTP_SERVICE_UNAVAILABLE, APLOG_ERR, 0,
                           "this child has no subscriber loop (see earlier errors)");
    }
    /* Subscribe now, so that a full store is a 503 rather than a stream that
     * dies; and without `since`, start where each channel stands now and say
     * so in the first event: a client that reconnects before it saw any
     * message resumes from there, so nothing falls between two streams. */
    if (!comet_proc.slot) {
        return comet_error(r, HTTP_SERVICE_UNAVAILABLE, APLOG_ERR, 0,
                           "this child has no subscriber slot (see earlier errors)");
    }
    {
        apr_size_t i;
        const char *cursors = "{";
        for (i = 0; i < spec.nchannels; i++) {
            comet_id_t at = since ? spec.since[i] : since_id;
            comet_fetch_result_t res;
            apr_status_t srv = comet_proc.store->subscribe(comet_proc.store, comet_proc.slot,
                                                          spec.channels[i], spec.channel_lens[i],
                                                          1, (apr_uint32_t)CONF_OR(conf,
                                                          max_subscribers, DEF_MAX_SUBSCRIBERS),
                                                          &spec.refs[i]);
            if (srv != APR_SUCCESS) {
                comet_unsubscribe_all(&spec, i);
                return comet_error(r, HTTP_SERVICE_UNAVAILABLE, APLOG_WARNING, srv,
                                   srv == APR_ENOSPC ? "the channel store is full: raise "
                                   "CometSharedMemory"
                                   : srv == APR_EAGAIN ? apr_psprintf(r->pool, "channel %.*s: "
                                   "CometMaxSubscribers or CometMaxChannels reached",
                                   (int)spec.channel_lens[i], spec.channels[i])
                                   : "cannot subscribe");
            }
            if (at == COMET_ID_NONE) {
                at = comet_proc.store->fetch(comet_proc.store, &spec.refs[i], 0, COMET_ID_NONE,
                                             NULL, NULL, &res) == APR_SUCCESS ? res.last_id : 0;
            }
            spec.since[i] = at;
            cursors = apr_psprintf(r->pool, "%s%s\"%.*s\":%" APR_UINT64_T_FMT, cursors,
                                   i ? "," : "", (int)spec.channel_lens[i], spec.channels[i],
                                   at == COMET_ID_NONE ? 0 : at);
        }
        cursors_json = apr_pstrcat(r->pool, cursors, "}", NULL);
    }

    spec.presubscribed = 1;
    comet_stream_headers(r, t->content_type);
    if (r->header_only) {
        comet_unsubscribe_all(&spec, spec.nchannels);
        return OK;
    }

    params.callback = cb ? cb : apr_pstrcat(r->pool, class_id, ".dispatch", NULL);
    params.cursors = cursors_json;
    params.heartbeat = CONF_OR(conf, heartbeat, DEF_HEARTBEAT);
    params.retry = apr_time_from_sec(1);
    if (t->prelude(&prelude, &params) < 0) {
        comet_buf_free(&prelude);
        comet_unsubscribe_all(&spec, spec.nchannels);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    bb = apr_brigade_create(r->pool, c->bucket_alloc);
    rc = comet_send(r, bb, prelude.data, prelude.len);
    comet_buf_free(&prelude);
    if (rc < 0) {
        comet_unsubscribe_all(&spec, spec.nchannels);
        return OK;                /* the client left already */
    }

    spec.transport = t;
    spec.params = params;
    spec.heartbeat = params.heartbeat;
    spec.lifetime = CONF_OR(conf, lifetime, DEF_LIFETIME);
    spec.byte_limit = (apr_size_t)CONF_OR(conf, stream_limit, DEF_STREAM_LIMIT);
    rv = comet_stream_handoff(r, conf, &spec, &rc);
    if (!rc) {
        comet_unsubscribe_all(&spec, spec.nchannels);
    }
    return rv;
}

/* Prepare the response of a stream: no compression, no keep-alive, no
 * request timeouts, no caching anywhere. */
void comet_stream_headers(request_rec *r, const char *content_type)
{
    apr_table_setn(r->subprocess_env, "no-gzip", "1");
    apr_table_setn(r->subprocess_env, "no-brotli", "1");
    ap_remove_input_filter_byhandle(r->connection->input_filters, "reqtimeout");
    r->connection->keepalive = AP_CONN_CLOSE;
    ap_set_content_type(r, content_type);
    comet_no_cache(r);
    apr_table_setn(r->headers_out, "X-Accel-Buffering", "no");
}

int comet_stream_handoff(request_rec *r, const comet_dir_conf_t *conf, comet_sub_spec_t *spec,
                         int *taken)
{
    conn_rec *c = r->connection;

    *taken = 0;
    /* the headers must be on the wire before the loop writes the body */
    if (!r->sent_bodyct) {
        apr_bucket_brigade *bb = apr_brigade_create(r->pool, c->bucket_alloc);
        if (comet_send(r, bb, NULL, 0) < 0) {
            return OK;
        }
    }
    spec->queue_limit = (apr_size_t)CONF_OR(conf, client_buffer, DEF_CLIENT_BUFFER);
    spec->peer = r->useragent_ip;
    spec->chunked = r->chunked;
    if (!comet_proc.reactor) {
        comet_stream_end_now(r, spec);
        return comet_error(r, OK, APLOG_ERR, 0,
                           "this child has no subscriber loop (see earlier errors)");
    }
    if (CONF_OR(conf, stream_mode, COMET_MODE_AUTO) == COMET_MODE_AUTO
        && comet_can_own_socket(r)) {
        apr_os_sock_t fd;
        int dup_fd;
        apr_status_t rv;

        apr_os_sock_get(&fd, ap_get_conn_socket(c));
        dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (dup_fd < 0) {
            comet_stream_end_now(r, spec);
            return comet_error(r, OK, APLOG_ERR, errno, "cannot hand the stream over");
        }
        /* the socket is already non-blocking at the OS level in httpd 2.4,
         * make sure of it: the loop must never block */
        fcntl(dup_fd, F_SETFL, fcntl(dup_fd, F_GETFL) | O_NONBLOCK);
        spec->fd = dup_fd;
        rv = comet_reactor_add(comet_proc.reactor, spec, NULL);
        if (rv != APR_SUCCESS) {
            close(dup_fd);
            ap_log_rerror(APLOG_MARK, APLOG_INFO, rv, r, COMET_LOGNO(00133)
                          "the subscriber loop is stopping: stream ends");
            comet_stream_end_now(r, spec);
            return OK;
        }
        *taken = 1;
        /* The loop owns the socket now. Marking the connection aborted makes
         * httpd log the request and close only its own descriptor, without
         * a lingering shutdown that would end our stream. */
        ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r, "comet: stream handed to the loop");
        c->aborted = 1;
        return OK;
    }
    return comet_hold_stream(r, spec, taken);
}

static int comet_handler(request_rec *r)
{
    const comet_dir_conf_t *conf;
    const comet_asset_t *a;
    const char *rest;

    if (strcmp(r->handler, "comet")) {
        return DECLINED;
    }
    conf = ap_get_module_config(r->per_dir_config, &comet_module);
    rest = comet_channel_path(r, conf);
    if ((a = comet_asset_find(rest)) != NULL) {
        return comet_serve_asset(r, conf, a);
    }
    if (!strncmp(rest, "i18n/", 5) || !strncmp(rest, "i18n.", 5)) {
        return comet_serve_strings(r, conf, rest);
    }
    if (!*rest) {
        return comet_error(r, HTTP_NOT_FOUND, APLOG_DEBUG, 0,
                           "no channel: GET <location>/<channel>");
    }
    return comet_subscribe(r, conf, rest);
}

/*******************************************************************************
 * publishers
 ******************************************************************************/

/* Read the whole body, at most `max` bytes: an HTTP status on failure. */
int comet_read_body(request_rec *r, apr_off_t max, char **data, apr_size_t *len)
{
    apr_bucket_brigade *bb;
    apr_size_t got = 0;
    char *buf;
    int rc, seen_eos = 0;
    const char *cl = apr_table_get(r->headers_in, "Content-Length");

    if ((rc = ap_setup_client_block(r, REQUEST_CHUNKED_DECHUNK)) != OK) {
        return rc;
    }
    if (cl && r->remaining > max) {
        return HTTP_REQUEST_ENTITY_TOO_LARGE;
    }
    buf = apr_palloc(r->pool, (apr_size_t)max + 1);
    bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    do {
        apr_bucket *b;
        apr_status_t rv = ap_get_brigade(r->input_filters, bb, AP_MODE_READBYTES,
                                         APR_BLOCK_READ, HUGE_STRING_LEN);
        if (rv != APR_SUCCESS) {
            apr_brigade_destroy(bb);
            return ap_map_http_request_error(rv, HTTP_BAD_REQUEST);
        }
        for (b = APR_BRIGADE_FIRST(bb); b != APR_BRIGADE_SENTINEL(bb); b = APR_BUCKET_NEXT(b)) {
            const char *d;
            apr_size_t n;
            if (APR_BUCKET_IS_EOS(b)) {
                seen_eos = 1;
                break;
            }
            if (APR_BUCKET_IS_METADATA(b)) {
                continue;
            }
            if ((rv = apr_bucket_read(b, &d, &n, APR_BLOCK_READ)) != APR_SUCCESS) {
                apr_brigade_destroy(bb);
                return HTTP_BAD_REQUEST;
            }
            if (got + n > (apr_size_t)max) {
                apr_brigade_destroy(bb);
                return HTTP_REQUEST_ENTITY_TOO_LARGE;
            }
            memcpy(buf + got, d, n);
            got += n;
        }
        apr_brigade_cleanup(bb);
    } while (!seen_eos);
    apr_brigade_destroy(bb);
    buf[got] = '\0';
    *data = buf;
    *len = got;
    return OK;
}

/* A publisher often sends its next message as soon as it has the answer.
 * Send the answer now and wait a moment for that next request: if it comes,
 * httpd finds it buffered when this request ends and reads it on this
 * thread, instead of handing the connection to the listener and back. */
static void comet_publish_linger(request_rec *r, apr_interval_time_t linger)
{
    conn_rec *c = r->connection;
    apr_socket_t *sock = ap_get_conn_socket(c);
    apr_bucket_brigade *bb;
    apr_os_sock_t fd;
    struct pollfd pfd;

    if (linger <= 0 || c->keepalive == AP_CONN_CLOSE || c->master || !sock) {
        return;
    }
    ap_finalize_request_protocol(r);
    bb = apr_brigade_create(r->pool, c->bucket_alloc);
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_flush_create(c->bucket_alloc));
    if (ap_pass_brigade(c->output_filters, bb) != APR_SUCCESS || c->aborted) {
        return;
    }
    apr_os_sock_get(&fd, sock);
    pfd.fd = fd;
    pfd.events = POLLIN;
    pfd.revents = 0;
    (void)poll(&pfd, 1, (int)((linger + 999) / 1000));
}

static int comet_publish(request_rec *r, const comet_dir_conf_t *conf, const char *chan,
                         apr_size_t clen)
{
    comet_limits_t lim = { 0 };
    comet_publish_result_t res;
    char *data = NULL;
    apr_size_t len = 0;
    apr_status_t rv;
    int rc;

    lim.buffer_length = (apr_uint32_t)CONF_OR(conf, buffer_length, DEF_BUFFER_LENGTH);
    lim.ttl = CONF_OR(conf, ttl, DEF_TTL);
    lim.max_size = (apr_size_t)CONF_OR(conf, max_size, DEF_MAX_SIZE);
    rc = comet_read_body(r, (apr_off_t)lim.max_size, &data, &len);
    if (rc == HTTP_REQUEST_ENTITY_TOO_LARGE) {
        return comet_error(r, rc, APLOG_INFO, 0, apr_psprintf(r->pool,
                           "message larger than CometMaxMessageSize (%" APR_SIZE_T_FMT
                           " bytes)", lim.max_size));
    }
    if (rc != OK) {
        return comet_error(r, rc, APLOG_INFO, 0, "cannot read the message body");
    }
    rv = comet_proc.store->publish(comet_proc.store, chan, clen, data, len, 0, &lim, &res);
    if (rv == APR_ENOSPC) {
        return comet_error(r, HTTP_INSUFFICIENT_STORAGE, APLOG_ERR, rv,
                           "the channel store is full: raise CometSharedMemory, lower "
                           "CometMessageBuffer or CometMessageTTL");
    }
    if (rv == APR_EAGAIN) {
        return comet_error(r, HTTP_SERVICE_UNAVAILABLE, APLOG_WARNING, rv,
                           "CometMaxChannels reached: no new channel");
    }
    if (rv != APR_SUCCESS) {
        return comet_error(r, HTTP_INTERNAL_SERVER_ERROR, APLOG_ERR, rv, "publish failed");
    }
    ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r, "comet: published %" APR_UINT64_T_FMT
                  " (%" APR_SIZE_T_FMT " bytes) to %u subscribers", res.id, len,
                  res.subscribers);
    comet_json_reply(r, HTTP_CREATED, apr_psprintf(r->pool,
                     "{\"channel\": \"%s\", \"id\": %" APR_UINT64_T_FMT
                     ", \"subscribers\": %u}",
                     request_json_str(r, chan, clen), res.id, res.subscribers));
    comet_publish_linger(r, CONF_OR(conf, publish_linger, DEF_PUBLISH_LINGER));
    return OK;
}

static int comet_channel_get(request_rec *r, const char *chan, apr_size_t clen)
{
    comet_channel_info_t info;
    apr_status_t rv = comet_proc.store->info(comet_proc.store, chan, clen, &info);

    if (rv == APR_NOTFOUND) {
        return comet_error(r, HTTP_NOT_FOUND, APLOG_DEBUG, 0, "no such channel");
    }
    if (rv != APR_SUCCESS) {
        return comet_error(r, HTTP_INTERNAL_SERVER_ERROR, APLOG_ERR, rv, "channel info failed");
    }
    return comet_json_reply(r, HTTP_OK, apr_psprintf(r->pool,
        "{\"channel\": \"%s\", \"messages\": %u, \"bytes\": %" APR_SIZE_T_FMT
        ", \"subscribers\": %u, \"last_id\": %" APR_UINT64_T_FMT
        ", \"first_id\": %" APR_UINT64_T_FMT ", \"created\": %" APR_INT64_T_FMT
        ", \"last_publish\": %" APR_INT64_T_FMT "}",
        request_json_str(r, chan, clen), info.messages, info.bytes, info.subscribers,
        info.last_id, info.first_id, (apr_int64_t)apr_time_sec(info.created),
        (apr_int64_t)apr_time_sec(info.last_publish)));
}

static int comet_channel_delete(request_rec *r, const char *chan, apr_size_t clen)
{
    apr_uint32_t subs = 0;
    apr_status_t rv = comet_proc.store->remove(comet_proc.store, chan, clen, &subs);

    if (rv == APR_NOTFOUND) {
        return comet_error(r, HTTP_NOT_FOUND, APLOG_DEBUG, 0, "no such channel");
    }
    if (rv != APR_SUCCESS) {
        return comet_error(r, HTTP_INTERNAL_SERVER_ERROR, APLOG_ERR, rv, "delete failed");
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, COMET_LOGNO(00140)
                  "channel %s deleted, %u streams ended", request_json_str(r, chan, clen), subs);
    return comet_json_reply(r, HTTP_OK, apr_psprintf(r->pool,
                            "{\"channel\": \"%s\", \"deleted\": true, \"subscribers\": %u}",
                            request_json_str(r, chan, clen), subs));
}

static int comet_store_get(request_rec *r)
{
    comet_store_stats_t st;
    comet_reactor_counts_t rc = { 0 };
    apr_status_t rv = comet_proc.store->stats(comet_proc.store, &st);

    if (rv != APR_SUCCESS) {
        return comet_error(r, HTTP_INTERNAL_SERVER_ERROR, APLOG_ERR, rv, "store stats failed");
    }
    if (comet_proc.reactor) {
        comet_reactor_counts(comet_proc.reactor, &rc);
    }
    return comet_json_reply(r, HTTP_OK, apr_psprintf(r->pool,
        "{\"version\": \"%s\", \"store\": \"%s\", \"channels\": %u, \"channels_max\": %u, "
        "\"memory_used\": %" APR_UINT64_T_FMT ", \"memory_max\": %" APR_UINT64_T_FMT ", "
        "\"processes\": %u, \"processes_max\": %u, \"published\": %" APR_UINT64_T_FMT ", "
        "\"repairs\": %u, \"this_process\": {\"pid\": %d, \"subscribers\": %u, "
        "\"held\": %u, \"channels\": %u, \"delivered\": %" APR_UINT64_T_FMT ", "
        "\"dropped\": %" APR_UINT64_T_FMT "}}",
        COMET_VERSION, comet_proc.store->name, st.channels, st.channels_max,
        (apr_uint64_t)st.blocks_used * st.block_size,
        (apr_uint64_t)st.blocks_max * st.block_size, st.slots_used, st.slots_max,
        st.published, st.repairs, (int)getpid(), rc.subscribers, rc.held, rc.channels,
        rc.delivered, rc.dropped));
}

static int comet_publish_handler(request_rec *r)
{
    const comet_dir_conf_t *conf;
    const char *rest;
    apr_size_t len;

    if (strcmp(r->handler, "comet-publish")) {
        return DECLINED;
    }
    conf = ap_get_module_config(r->per_dir_config, &comet_module);
    if (!comet_proc.store) {
        return comet_error(r, HTTP_SERVICE_UNAVAILABLE, APLOG_ERR, 0,
                           "the channel store is not available (see earlier errors)");
    }
    rest = comet_channel_path(r, conf);
    len = strlen(rest);
    ap_allow_standard_methods(r, REPLACE_ALLOW, M_GET, M_POST, M_PUT, M_DELETE, -1);
    if (!*rest) {
        if (r->method_number != M_GET) {
            ap_allow_standard_methods(r, REPLACE_ALLOW, M_GET, -1);
            return HTTP_METHOD_NOT_ALLOWED;
        }
        return comet_store_get(r);
    }
    if (!comet_channel_valid(rest, len)) {
        return comet_error(r, HTTP_BAD_REQUEST, APLOG_INFO, 0,
                           "invalid channel id: use 1 to 128 of A-Z a-z 0-9 _ -");
    }
    switch (r->method_number) {
    case M_POST:
    case M_PUT:
        return comet_publish(r, conf, rest, len);
    case M_GET:
        return comet_channel_get(r, rest, len);
    case M_DELETE:
        return comet_channel_delete(r, rest, len);
    default:
        return HTTP_METHOD_NOT_ALLOWED;
    }
}

/*******************************************************************************
 * hooks
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
                      || !strcmp(h, "comet-socket"))) {
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

static void comet_register_hooks(apr_pool_t *p)
{
    ap_hook_pre_config(comet_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(comet_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(comet_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_stopping(comet_child_stopping, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_translate_name(comet_translate, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_map_to_storage(comet_map_to_storage, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_handler(comet_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(comet_publish_handler, NULL, NULL, APR_HOOK_MIDDLE);
    comet_socket_register_hooks(p);
}
