/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/*
 * The directives; see comet_config.h. Every numeric directive is a row of
 * `settings` below (its kind, its range, its default) and shares one setter;
 * the others have a setter of their own. The command table comes last.
 */

#include <apr_strings.h>
#include <apr_lib.h>

#include <http_core.h>

#include "comet_config.h"
#include "comet_redis.h"
#include "comet_i18n.h"

/*******************************************************************************
 * the table of settings
 ******************************************************************************/

typedef enum {
    KIND_COUNT,                       /* a whole number */
    KIND_SIZE,                        /* bytes, with K, M or G */
    KIND_DURATION,                    /* ap_timeout_parameter_parse(), seconds by default */
    KIND_OTHER                        /* a setter of its own */
} kind_t;

typedef struct {
    kind_t kind;
    int server;                       /* server-wide: main server only */
    apr_int64_t def, min, max;
    const char *zero;                 /* what 0 means, for the error text */
} setting_t;

#define SEC(n) apr_time_from_sec(n)
#define FOREVER APR_INT64_MAX
#define K 1024
#define M (1024 * 1024)

/* The transports of a channel stream, in the order of their bits. */
const comet_transport_t *const comet_config_transports[] = {
    &comet_transport_iframe, &comet_transport_sse, &comet_transport_stream,
    &comet_transport_longpoll, &comet_transport_websocket, NULL
};
#define ALL_TRANSPORTS 0x1f

apr_int64_t comet_config_transport_bit(const comet_transport_t *t)
{
    int i;

    /* the variants a request turns into: SSE of several channels, a
     * WebSocket that compresses */
    if (t == &comet_transport_sse_multi) {
        t = &comet_transport_sse;
    }
    else if (t == &comet_transport_websocket_deflate) {
        t = &comet_transport_websocket;
    }
    for (i = 0; comet_config_transports[i]; i++) {
        if (comet_config_transports[i] == t) {
            return (apr_int64_t)1 << i;
        }
    }
    return 0;
}

static const setting_t settings[COMET_CONF_NUM_COUNT] = {
    [COMET_CONF_BUFFER_LENGTH]    = { KIND_COUNT,    0, 100,      1,    1000000 },
    [COMET_CONF_TTL]              = { KIND_DURATION, 0, SEC(3600), 0,   FOREVER },
    [COMET_CONF_MAX_MESSAGE]      = { KIND_SIZE,     0, 64 * K,   1,    256 * M },
    [COMET_CONF_HEARTBEAT]        = { KIND_DURATION, 0, SEC(25),  0,    FOREVER },
    [COMET_CONF_LIFETIME]         = { KIND_DURATION, 0, SEC(3600), 0,   FOREVER },
    [COMET_CONF_STREAM_LIMIT]     = { KIND_SIZE,     0, 1 * M,    0,    APR_UINT32_MAX },
    [COMET_CONF_CLIENT_BUFFER]    = { KIND_SIZE,     0, 1 * M,    4 * K, APR_UINT32_MAX },
    [COMET_CONF_PUBLISH_LINGER]   = { KIND_DURATION, 0, apr_time_from_msec(1), 0, FOREVER },
    [COMET_CONF_MAX_SUBSCRIBERS]  = { KIND_COUNT,    0, 50000,    0,    100000000, "no limit" },
    [COMET_CONF_STREAM_MODE]      = { KIND_OTHER,    0, COMET_MODE_AUTO },
    [COMET_CONF_TRANSPORTS]       = { KIND_OTHER,    0, ALL_TRANSPORTS },
    [COMET_CONF_SOCKET_COOKIE]    = { KIND_OTHER,    0, 0 },
    [COMET_CONF_RESPONSE_LIMIT]   = { KIND_SIZE,     0, 128 * K,  1 * K, APR_UINT32_MAX },
    [COMET_CONF_SOCKET_HEARTBEAT] = { KIND_DURATION, 0, SEC(25),  1,    FOREVER },
    [COMET_CONF_SOCKET_WEBSOCKET] = { KIND_OTHER,    0, 1 },
    [COMET_CONF_WEBSOCKET_PUBLISH] = { KIND_OTHER,   0, 0 },
    [COMET_CONF_WEBSOCKET_DEFLATE] = { KIND_OTHER,   0, 1 },
    [COMET_CONF_BALANCE]          = { KIND_OTHER,    0, 1 },
    [COMET_CONF_SHM_SIZE]         = { KIND_SIZE,     1, 64 * M,   1 * M, (apr_int64_t)64 << 30 },
    [COMET_CONF_MAX_CHANNELS]     = { KIND_COUNT,    1, 0,        0,    16777216,
                                      "as many as CometSharedMemory holds" },
    [COMET_CONF_MAX_SESSIONS]     = { KIND_COUNT,    1, 10000,    1,    10000000 },
    [COMET_CONF_DISCONNECT_DELAY] = { KIND_DURATION, 1, SEC(5),   1,    FOREVER },
    [COMET_CONF_MAX_QUEUE]        = { KIND_SIZE,     1, 1 * M,    1 * K, APR_UINT32_MAX },
    [COMET_CONF_PROGRAM_GRACE]    = { KIND_DURATION, 1, SEC(3),   1,    FOREVER },
    [COMET_CONF_SOURCE_RATE]      = { KIND_COUNT,    1, 1000,     1,    1000000 },
    [COMET_CONF_MAX_THREAD_STREAMS] = { KIND_COUNT,  1, COMET_CONF_AUTO, 0, 1000000 },
    [COMET_CONF_MOVE_STREAMS]     = { KIND_OTHER,    1, 1 },
};

static const char *const str_defaults[COMET_CONF_STR_COUNT] = {
    [COMET_CONF_CLASS_ID - COMET_CONF_NUM_COUNT] = "Pxxo_Widget_Comet",
    [COMET_CONF_BACKEND - COMET_CONF_NUM_COUNT] = "echo",
    [COMET_CONF_CLIENT_URL - COMET_CONF_NUM_COUNT] =
        "https://cdn.jsdelivr.net/npm/sockjs-client@1/dist/sockjs.min.js",
};

apr_int64_t comet_config_num(const apr_int64_t *num, comet_conf_id_t id)
{
    return num[id] == COMET_UNSET ? settings[id].def : num[id];
}

const char *comet_config_str(const char *const *str, comet_conf_id_t id)
{
    const char *v = str[id - COMET_CONF_NUM_COUNT];

    return v ? v : str_defaults[id - COMET_CONF_NUM_COUNT];
}

/*******************************************************************************
 * records
 ******************************************************************************/

void *comet_config_dir_create(apr_pool_t *p, char *dir)
{
    comet_dir_conf_t *c = apr_pcalloc(p, sizeof(*c));
    int i;

    /* the section's path, so a handler can find what follows it */
    c->base = dir ? apr_pstrdup(p, dir) : NULL;
    for (i = 0; i < COMET_CONF_NUM_COUNT; i++) {
        c->num[i] = COMET_UNSET;
    }
    return c;
}

void *comet_config_dir_merge(apr_pool_t *p, void *basev, void *addv)
{
    const comet_dir_conf_t *base = basev, *add = addv;
    comet_dir_conf_t *c = apr_pcalloc(p, sizeof(*c));
    int i;

    c->base = add->base ? add->base : base->base;
    for (i = 0; i < COMET_CONF_NUM_COUNT; i++) {
        c->num[i] = add->num[i] != COMET_UNSET ? add->num[i] : base->num[i];
    }
    for (i = 0; i < COMET_CONF_STR_COUNT; i++) {
        c->str[i] = add->str[i] ? add->str[i] : base->str[i];
    }
    c->backend_argv = add->str[COMET_CONF_BACKEND - COMET_CONF_NUM_COUNT]
                    ? add->backend_argv : base->backend_argv;
    /* translations add up, the inner section's last */
    c->translate = !add->translate ? base->translate : !base->translate ? add->translate
                 : apr_array_append(p, base->translate, add->translate);
    return c;
}

void *comet_config_server_create(apr_pool_t *p, server_rec *s)
{
    comet_server_conf_t *c = apr_pcalloc(p, sizeof(*c));
    int i;

    c->sources = apr_array_make(p, 4, sizeof(comet_source_t));
    for (i = 0; i < COMET_CONF_NUM_COUNT; i++) {
        c->num[i] = COMET_UNSET;
    }
    return c;
}

void *comet_config_server_merge(apr_pool_t *p, void *basev, void *addv)
{
    const comet_server_conf_t *base = basev, *add = addv;
    comet_server_conf_t *c = apr_pcalloc(p, sizeof(*c));
    int i;

    /* server-wide directives are refused in a virtual host: it has the
     * main server's */
    c->sources = base->sources;
    c->redis = base->redis;
    c->route = base->route;
    for (i = 0; i < COMET_CONF_NUM_COUNT; i++) {
        c->num[i] = add->num[i] != COMET_UNSET ? add->num[i] : base->num[i];
    }
    return c;
}

const comet_dir_conf_t *comet_config_dir(const request_rec *r)
{
    return ap_get_module_config(r->per_dir_config, &comet_module);
}

const comet_server_conf_t *comet_config_server(const server_rec *s)
{
    return ap_get_module_config(s->module_config, &comet_module);
}

const comet_dir_conf_t *comet_config_server_dir(const server_rec *s)
{
    return ap_get_module_config(s->lookup_defaults, &comet_module);
}

/*******************************************************************************
 * setters
 ******************************************************************************/

static comet_conf_id_t cmd_id(const cmd_parms *cmd)
{
    return (comet_conf_id_t)(apr_uintptr_t)cmd->info;
}

/* Where a setting goes: the section's record, or the main server's. */
static const char *setting_slot(cmd_parms *cmd, void *cv, apr_int64_t **slot)
{
    comet_conf_id_t id = cmd_id(cmd);

    if (settings[id].server) {
        const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
        if (err) {
            return err;
        }
        *slot = &((comet_server_conf_t *)ap_get_module_config(cmd->server->module_config,
                                                              &comet_module))->num[id];
        return NULL;
    }
    *slot = &((comet_dir_conf_t *)cv)->num[id];
    return NULL;
}

/* Digits and one of httpd's units: ap_timeout_parameter_parse() reads only
 * the first letters, and takes "soon" for 0 seconds. */
static int duration_syntax(const char *arg)
{
    const char *u = arg;

    while (apr_isdigit(*u)) {
        u++;
    }
    return u > arg && (!*u || !strcmp(u, "s") || !strcmp(u, "ms") || !strcmp(u, "mi")
                       || !strcmp(u, "min") || !strcmp(u, "h"));
}

static int parse_setting(const setting_t *row, const char *arg, apr_int64_t *v)
{
    apr_uint64_t u;
    apr_interval_time_t t;

    switch (row->kind) {
    case KIND_COUNT:
        if (!comet_parse_u64(arg, strlen(arg), &u) || u > (apr_uint64_t)row->max) {
            return 0;
        }
        *v = (apr_int64_t)u;
        break;
    case KIND_SIZE:
        if (!comet_parse_size(arg, &u) || u > (apr_uint64_t)row->max) {
            return 0;
        }
        *v = (apr_int64_t)u;
        break;
    case KIND_DURATION:
        if (!duration_syntax(arg)
            || ap_timeout_parameter_parse(arg, &t, "s") != APR_SUCCESS || t < 0) {
            return 0;
        }
        *v = t;
        break;
    default:
        return 0;
    }
    return *v >= row->min;
}

/* What was wrong and what to give instead (httpd adds the file and line). */
static const char *setting_error(cmd_parms *cmd, const setting_t *row, const char *arg)
{
    const char *name = cmd->cmd->name;

    switch (row->kind) {
    case KIND_SIZE:
        return apr_psprintf(cmd->pool, "%s: '%s' is not a size it takes: give one such as "
                            "64K or 1M, from %" APR_INT64_T_FMT " to %" APR_INT64_T_FMT
                            " bytes", name, arg, row->min, row->max);
    case KIND_DURATION:
        return apr_psprintf(cmd->pool, "%s: '%s' is not a duration it takes: give one such "
                            "as 30, 30s, 500ms, 5mi or 1h%s", name, arg,
                            row->min == 0 ? " (0: none)" : " (more than 0)");
    default:
        return apr_psprintf(cmd->pool, "%s: '%s' is not a number it takes: give one from %"
                            APR_INT64_T_FMT " to %" APR_INT64_T_FMT "%s%s%s", name, arg,
                            row->min, row->max, row->zero ? " (0: " : "",
                            row->zero ? row->zero : "", row->zero ? ")" : "");
    }
}

/* Every numeric directive: a count, a size or a duration in its range. */
static const char *set_number(cmd_parms *cmd, void *cv, const char *arg)
{
    const setting_t *row = &settings[cmd_id(cmd)];
    apr_int64_t *slot, v;
    const char *err = setting_slot(cmd, cv, &slot);

    if (err) {
        return err;
    }
    if (!parse_setting(row, arg, &v)) {
        return setting_error(cmd, row, arg);
    }
    *slot = v;
    return NULL;
}

static const char *set_flag(cmd_parms *cmd, void *cv, int flag)
{
    apr_int64_t *slot;
    const char *err = setting_slot(cmd, cv, &slot);

    if (!err) {
        *slot = flag;
    }
    return err;
}

static const char *set_stream_mode(cmd_parms *cmd, void *cv, const char *arg)
{
    comet_dir_conf_t *c = cv;

    if (!strcasecmp(arg, "auto")) {
        c->num[COMET_CONF_STREAM_MODE] = COMET_MODE_AUTO;
    }
    else if (!strcasecmp(arg, "thread")) {
        c->num[COMET_CONF_STREAM_MODE] = COMET_MODE_THREAD;
    }
    else {
        return "CometStreamMode: auto or thread";
    }
    return NULL;
}

static const char *set_transports(cmd_parms *cmd, void *cv, const char *arg)
{
    apr_int64_t *bits = &((comet_dir_conf_t *)cv)->num[COMET_CONF_TRANSPORTS];
    int i;

    if (*bits == COMET_UNSET) {
        *bits = 0;
    }
    for (i = 0; comet_config_transports[i]; i++) {
        if (!strcasecmp(arg, comet_config_transports[i]->name)) {
            *bits |= (apr_int64_t)1 << i;
            return NULL;
        }
    }
    return "CometTransports: any of iframe sse stream longpoll websocket";
}

static const char *set_class_id(cmd_parms *cmd, void *cv, const char *arg)
{
    if (!comet_callback_valid(arg) || strchr(arg, '.')) {
        return "CometClassID: a JavaScript identifier, e.g. Pxxo_Widget_Comet";
    }
    ((comet_dir_conf_t *)cv)->str[COMET_CONF_CLASS_ID - COMET_CONF_NUM_COUNT] = arg;
    return NULL;
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

/* The programs of this configuration, for the checks that need httpd's
 * User (comet_check.c): kept on the configuration pool, so each reading of
 * the configuration starts a new list. */
#define KEY_PROGRAMS "mod_comet/programs"

apr_array_header_t *comet_config_programs(apr_pool_t *pconf)
{
    void *list = NULL;

    apr_pool_userdata_get(&list, KEY_PROGRAMS, pconf);
    if (!list) {
        list = apr_array_make(pconf, 8, sizeof(comet_program_t));
        apr_pool_userdata_setn(list, KEY_PROGRAMS, apr_pool_cleanup_null, pconf);
    }
    return list;
}

/* "/path/prog a b" -> argv; the program must be an absolute path. */
static const char *parse_exec(cmd_parms *cmd, const char *spec, const char *const **argv)
{
    comet_program_t *prog;
    char **args;

    if (apr_tokenize_to_argv(spec, &args, cmd->pool) != APR_SUCCESS || !args[0]) {
        return apr_psprintf(cmd->pool, "%s: a program expected after exec:, e.g. "
                            "exec:/usr/local/bin/chat-backend", cmd->cmd->name);
    }
    if (args[0][0] != '/') {
        return apr_psprintf(cmd->pool, "%s: exec:%s: give the program's absolute path, "
                            "e.g. exec:/usr/local/bin/%s", cmd->cmd->name, args[0], args[0]);
    }
    *argv = (const char *const *)args;
    prog = apr_array_push(comet_config_programs(cmd->pool));
    prog->directive = cmd->cmd->name;
    prog->file = cmd->directive && cmd->directive->filename ? cmd->directive->filename
               : "(command line)";
    prog->line = cmd->directive ? cmd->directive->line_num : 0;
    prog->argv = *argv;
    return NULL;
}

/* "unix:<path>" or "tcp:<host>:<port>" as the supervisor can connect. */
static const char *check_server(cmd_parms *cmd, const char *spec)
{
    const char *colon, *p;
    long port = 0;

    if (!strncmp(spec, "unix:", 5)) {
        /* sockaddr_un's sun_path: 108 bytes on Linux, the NUL included */
        return strlen(spec + 5) < 108 ? NULL
             : "CometSocketBackend: unix:<path>: a path of at most 107 bytes";
    }
    colon = strrchr(spec + 4, ':');
    for (p = colon + 1; apr_isdigit(*p) && port <= 65535; p++) {
        port = port * 10 + (*p - '0');
    }
    if (colon == spec + 4 || colon - (spec + 4) > 255 || *p || port < 1 || port > 65535) {
        return apr_psprintf(cmd->pool, "CometSocketBackend: %s: give tcp:<host>:<port>, a "
                            "host and a port from 1 to 65535, e.g. tcp:127.0.0.1:9000", spec);
    }
    return NULL;
}

static const char *set_backend(cmd_parms *cmd, void *cv, const char *args)
{
    comet_dir_conf_t *c = cv;
    const char **backend = &c->str[COMET_CONF_BACKEND - COMET_CONF_NUM_COUNT];
    const char *err;

    while (apr_isspace(*args)) {
        args++;
    }
    if (!strncmp(args, "exec:", 5)) {
        if ((err = parse_exec(cmd, args + 5, &c->backend_argv)) != NULL) {
            return err;
        }
        *backend = "exec";
        return NULL;
    }
    if (!strcmp(args, "echo") || !strcmp(args, "close") || !strncmp(args, "unix:/", 6)
        || (!strncmp(args, "tcp:", 4) && strrchr(args + 4, ':'))) {
        if (strcmp(args, "echo") && strcmp(args, "close")
            && (err = check_server(cmd, args)) != NULL) {
            return err;
        }
        *backend = args;
        c->backend_argv = NULL;
        return NULL;
    }
    return apr_psprintf(cmd->pool, "CometSocketBackend: '%s' is not a backend: give echo, "
                        "close, exec:<program> [args], unix:<absolute path> or "
                        "tcp:<host>:<port>", args);
}

static const char *set_client_url(cmd_parms *cmd, void *cv, const char *arg)
{
    if (ap_strchr_c(arg, '"') || ap_strchr_c(arg, '<') || ap_strchr_c(arg, '>')) {
        return "CometSocketClientURL: a URL without quotes or angle brackets";
    }
    ((comet_dir_conf_t *)cv)->str[COMET_CONF_CLIENT_URL - COMET_CONF_NUM_COUNT] = arg;
    return NULL;
}

/* CometRedis: checked now, so that a typo stops the configuration test
 * rather than leave a server on its own. */
static const char *set_redis(cmd_parms *cmd, void *cv, const char *url)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    comet_server_conf_t *sc = ap_get_module_config(cmd->server->module_config, &comet_module);
    comet_redis_url_t u;

    (void)cv;
    if (err) {
        return err;
    }
    if (comet_redis_url_parse(cmd->pool, url, &u, &err) != APR_SUCCESS) {
        return apr_psprintf(cmd->pool, "CometRedis: %s (give redis://[user:password@]host"
                            "[:port][/db], unix:/path/to/redis.sock or "
                            "sentinel://host:port[,host:port...]/<master>)", err);
    }
    sc->redis = url;
    return NULL;
}

/* A name mod_proxy_balancer reads back after the first dot of the cookie:
 * no dot, nothing a cookie value may not carry. */
static const char *set_route(cmd_parms *cmd, void *cv, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    if (err) {
        return err;
    }
    if (!comet_channel_valid(arg, strlen(arg))) {
        return apr_psprintf(cmd->pool, "CometSocketRoute: '%s' is not a route: give the "
                            "route= of this server's BalancerMember, 1 to %d of A-Z a-z 0-9 "
                            "_ - (e.g. web1)", arg, COMET_CHANNEL_MAX);
    }
    ((comet_server_conf_t *)ap_get_module_config(cmd->server->module_config,
                                                 &comet_module))->route = arg;
    return NULL;
}

static const char *set_source(cmd_parms *cmd, void *cv, const char *args)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    comet_server_conf_t *sc = ap_get_module_config(cmd->server->module_config, &comet_module);
    const char *name;
    comet_source_t *src;
    int on_demand = 0, n;

    if (err) {
        return err;
    }
    name = ap_getword_white(cmd->pool, &args);
    if (!comet_channel_valid(name, strlen(name))) {
        return apr_psprintf(cmd->pool, "CometChannelSource: '%s' is not a channel a source "
                            "can publish to: give a channel id first, 1 to %d of A-Z a-z "
                            "0-9 _ - (e.g. news_fr)", name, COMET_CHANNEL_MAX);
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
        return apr_psprintf(cmd->pool, "CometChannelSource %s: '%s' is not a program: give "
                            "<channel> [ondemand] exec:<program> [args]", name, args);
    }
    /* what the supervisor takes of a new list at a graceful restart
     * (comet_supervisor.c, sources_from_ctl) */
    if (sc->sources->nelts >= COMET_CONFIG_MAX_SOURCES) {
        return apr_psprintf(cmd->pool, "CometChannelSource %s: at most %d channel sources",
                            name, COMET_CONFIG_MAX_SOURCES);
    }
    src = apr_array_push(sc->sources);
    src->channel = name;
    src->on_demand = on_demand;
    if ((err = parse_exec(cmd, args + 5, &src->argv)) != NULL) {
        return err;
    }
    for (n = 0; src->argv[n]; n++) {
    }
    if (n > COMET_CONFIG_MAX_SOURCE_ARGS) {
        return apr_psprintf(cmd->pool, "CometChannelSource %s: at most %d words (the program "
                            "and its arguments), not %d", name, COMET_CONFIG_MAX_SOURCE_ARGS, n);
    }
    return NULL;
}

/*******************************************************************************
 * the directives
 ******************************************************************************/

#define NUM(name, id, where, help) \
    AP_INIT_TAKE1(name, set_number, (void *)(apr_uintptr_t)(id), where, help)
#define DIR_CONF (RSRC_CONF | ACCESS_CONF)

const command_rec comet_config_cmds[] = {
    /* the store */
    NUM("CometSharedMemory", COMET_CONF_SHM_SIZE, RSRC_CONF,
        "size of the shared memory holding every channel (default 64M)"),
    NUM("CometMaxChannels", COMET_CONF_MAX_CHANNELS, RSRC_CONF,
        "most channels at once (default 0: as many as CometSharedMemory holds)"),
    NUM("CometMaxSubscribers", COMET_CONF_MAX_SUBSCRIBERS, DIR_CONF,
        "most subscribers of one channel, all children together (default 50000; 0: no limit)"),
    NUM("CometMessageBuffer", COMET_CONF_BUFFER_LENGTH, DIR_CONF,
        "messages kept per channel for replay (default 100)"),
    NUM("CometMessageTTL", COMET_CONF_TTL, DIR_CONF,
        "how long a message is kept for replay (default 1h; 0: until pushed out)"),
    NUM("CometMaxMessageSize", COMET_CONF_MAX_MESSAGE, DIR_CONF,
        "largest message a publisher may post (default 64K)"),
    /* streams */
    AP_INIT_TAKE1("CometClassID", set_class_id, NULL, DIR_CONF,
                  "name of the browser class served as comet.js (default Pxxo_Widget_Comet)"),
    NUM("CometHeartbeat", COMET_CONF_HEARTBEAT, DIR_CONF,
        "silence after which a stream gets a heartbeat (default 25s; 0: none)"),
    NUM("CometMaxLifetime", COMET_CONF_LIFETIME, DIR_CONF,
        "age at which a stream ends and its client reconnects (default 1h; 0: none)"),
    NUM("CometStreamLimit", COMET_CONF_STREAM_LIMIT, DIR_CONF,
        "bytes after which an iframe stream is renewed (default 1M; 0: none)"),
    NUM("CometClientBuffer", COMET_CONF_CLIENT_BUFFER, DIR_CONF,
        "bytes waiting for a slow client before it is dropped (default 1M)"),
    AP_INIT_TAKE1("CometStreamMode", set_stream_mode, NULL, DIR_CONF,
                  "auto: an event loop per child writes the streams; thread: a worker "
                  "thread per stream (default auto)"),
    NUM("CometPublishLinger", COMET_CONF_PUBLISH_LINGER, DIR_CONF,
        "how long a publish request's thread waits for the same connection's next "
        "request before handing it back to the MPM (default 1ms; 0: not at all)"),
    AP_INIT_TAKE23("CometTranslate", set_translate, NULL, DIR_CONF,
                   "[lang] KEY \"text\": replace one of the widgets' strings "
                   "(e.g. YOUR_NICK_IS \"My nick is %s\")"),
    AP_INIT_ITERATE("CometTransports", set_transports, NULL, DIR_CONF,
                    "the transports subscribers may use here: iframe sse stream longpoll "
                    "(default all)"),
    /* sockets */
    AP_INIT_RAW_ARGS("CometSocketBackend", set_backend, NULL, DIR_CONF,
                     "the program or server each session talks to: echo, close, "
                     "exec:<program> [args], unix:<path> or tcp:<host>:<port>"),
    AP_INIT_FLAG("CometSocketCookie", set_flag, (void *)(apr_uintptr_t)COMET_CONF_SOCKET_COOKIE,
                 DIR_CONF, "set the JSESSIONID cookie sticky load balancers need "
                 "(default Off)"),
    AP_INIT_FLAG("CometSocketWebSocket", set_flag,
                 (void *)(apr_uintptr_t)COMET_CONF_SOCKET_WEBSOCKET, DIR_CONF,
                 "offer the websocket transport (On, the default) or not"),
    AP_INIT_FLAG("CometWebSocketPublish", set_flag,
                 (void *)(apr_uintptr_t)COMET_CONF_WEBSOCKET_PUBLISH, DIR_CONF,
                 "publish what a channel's WebSocket subscriber sends to its channel "
                 "(default Off: such messages close the connection, 1008)"),
    AP_INIT_FLAG("CometWebSocketCompression", set_flag,
                 (void *)(apr_uintptr_t)COMET_CONF_WEBSOCKET_DEFLATE, DIR_CONF,
                 "take a WebSocket client's permessage-deflate offer (On, the default) "
                 "or not"),
    AP_INIT_FLAG("CometBalance", set_flag, (void *)(apr_uintptr_t)COMET_CONF_BALANCE,
                 DIR_CONF, "hand a new plain-HTTP stream to the child with fewer streams "
                 "(default On)"),
    AP_INIT_FLAG("CometMoveStreams", set_flag, (void *)(apr_uintptr_t)COMET_CONF_MOVE_STREAMS,
                 RSRC_CONF, "at a child's graceful stop, hand its plain-HTTP streams to live "
                 "children instead of ending them (default On)"),
    NUM("CometSocketResponseLimit", COMET_CONF_RESPONSE_LIMIT, DIR_CONF,
        "bytes after which a streaming response is renewed (default 128K)"),
    NUM("CometSocketHeartbeat", COMET_CONF_SOCKET_HEARTBEAT, DIR_CONF,
        "silence after which a session gets a heartbeat frame (default 25s)"),
    AP_INIT_TAKE1("CometSocketClientURL", set_client_url, NULL, DIR_CONF,
                  "URL of sockjs.js for the iframe page"),
    AP_INIT_TAKE1("CometSocketRoute", set_route, NULL, RSRC_CONF,
                  "this server's route for a sticky load balancer: JSESSIONID (CometSocketCookie) "
                  "ends in .<route> (default none)"),
    NUM("CometSocketMaxSessions", COMET_CONF_MAX_SESSIONS, RSRC_CONF,
        "most sessions open at once, server-wide (default 10000)"),
    NUM("CometSocketDisconnectDelay", COMET_CONF_DISCONNECT_DELAY, RSRC_CONF,
        "a session without a receiver this long ends (default 5s)"),
    NUM("CometMaxThreadStreams", COMET_CONF_MAX_THREAD_STREAMS, RSRC_CONF,
        "streams that may keep a worker thread each (HTTP/2, output filters, "
        "CometStreamMode thread): per child, or for the whole server under prefork "
        "(default: three quarters of the threads)"),
    NUM("CometSocketMaxQueue", COMET_CONF_MAX_QUEUE, RSRC_CONF,
        "bytes waiting per session and direction before the sender is held back "
        "(default 1M)"),
    /* programs */
    NUM("CometProgramGrace", COMET_CONF_PROGRAM_GRACE, RSRC_CONF,
        "time a program gets after stdin EOF, then after SIGTERM (default 3s)"),
    AP_INIT_TAKE1("CometRedis", set_redis, NULL, RSRC_CONF,
                  "redis://[user:password@]host[:port][/db] or unix:/path: share every "
                  "channel with the other servers on this Redis (default none)"),
    AP_INIT_RAW_ARGS("CometChannelSource", set_source, NULL, RSRC_CONF,
                     "<channel> [ondemand] exec:<program> [args]: publish every line the "
                     "program prints"),
    NUM("CometSourceRate", COMET_CONF_SOURCE_RATE, RSRC_CONF,
        "most lines a second a channel source may publish (default 1000)"),
    { NULL }
};
