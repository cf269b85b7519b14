/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/**
 * @file comet_config.h
 * @brief Every directive of mod_comet, in one place: the per-directory and
 *        the server-wide records, one table of kinds, ranges and defaults
 *        (comet_config.c), and one accessor that applies the defaults.
 *
 * A numeric setting is a row of comet_conf_id_t: each record keeps a value
 * per row, COMET_UNSET where its section does not set it. COMET_CONF(c, id)
 * reads a directory's record or a server's alike.
 */
#ifndef COMET_CONFIG_H
#define COMET_CONFIG_H

#include <apr_tables.h>

#include "mod_comet.h"
#include "comet_sup.h"
#include "comet_transport.h"

/** A setting its section does not set (it inherits, or takes the default). */
#define COMET_UNSET (-1)

/** A default that depends on the MPM's settings (see the setting). */
#define COMET_CONF_AUTO (-2)

/** The settings, numeric ones first. */
typedef enum {
    /* per directory */
    COMET_CONF_BUFFER_LENGTH = 0,     /**< CometMessageBuffer */
    COMET_CONF_TTL,                   /**< CometMessageTTL */
    COMET_CONF_MAX_MESSAGE,           /**< CometMaxMessageSize */
    COMET_CONF_HEARTBEAT,             /**< CometHeartbeat */
    COMET_CONF_LIFETIME,              /**< CometMaxLifetime */
    COMET_CONF_STREAM_LIMIT,          /**< CometStreamLimit */
    COMET_CONF_CLIENT_BUFFER,         /**< CometClientBuffer */
    COMET_CONF_PUBLISH_LINGER,        /**< CometPublishLinger */
    COMET_CONF_MAX_SUBSCRIBERS,       /**< CometMaxSubscribers */
    COMET_CONF_STREAM_MODE,           /**< CometStreamMode: COMET_MODE_* */
    COMET_CONF_TRANSPORTS,            /**< CometTransports: COMET_TRANSPORT_BIT()s */
    COMET_CONF_SOCKET_COOKIE,         /**< CometSocketCookie */
    COMET_CONF_RESPONSE_LIMIT,        /**< CometSocketResponseLimit */
    COMET_CONF_SOCKET_HEARTBEAT,      /**< CometSocketHeartbeat */
    COMET_CONF_SOCKET_WEBSOCKET,      /**< CometSocketWebSocket */
    COMET_CONF_WEBSOCKET_PUBLISH,     /**< CometWebSocketPublish */
    COMET_CONF_WEBSOCKET_DEFLATE,     /**< CometWebSocketCompression */
    COMET_CONF_BALANCE,               /**< CometBalance */
    /* server-wide */
    COMET_CONF_SHM_SIZE,              /**< CometSharedMemory */
    COMET_CONF_MAX_CHANNELS,          /**< CometMaxChannels */
    COMET_CONF_MAX_SESSIONS,          /**< CometSocketMaxSessions */
    COMET_CONF_DISCONNECT_DELAY,      /**< CometSocketDisconnectDelay */
    COMET_CONF_MAX_QUEUE,             /**< CometSocketMaxQueue */
    COMET_CONF_PROGRAM_GRACE,         /**< CometProgramGrace */
    COMET_CONF_SOURCE_RATE,           /**< CometSourceRate */
    COMET_CONF_MAX_THREAD_STREAMS,    /**< CometMaxThreadStreams (COMET_CONF_AUTO) */
    COMET_CONF_MOVE_STREAMS,          /**< CometMoveStreams */
    COMET_CONF_NUM_COUNT,
    /* per directory, strings */
    COMET_CONF_CLASS_ID = COMET_CONF_NUM_COUNT,   /**< CometClassID */
    COMET_CONF_BACKEND,               /**< CometSocketBackend */
    COMET_CONF_CLIENT_URL,            /**< CometSocketClientURL */
    COMET_CONF_COUNT
} comet_conf_id_t;

#define COMET_CONF_STR_COUNT (COMET_CONF_COUNT - COMET_CONF_NUM_COUNT)

#define COMET_MODE_AUTO   0           /**< the event loop writes plain HTTP/1 streams */
#define COMET_MODE_THREAD 1           /**< the handler thread writes every stream */

/** One CometTranslate line. */
typedef struct comet_translation_t {
    const char *lang;                 /**< NULL: every language */
    const char *key;
    const char *text;
} comet_translation_t;

/** Per-directory configuration. */
typedef struct comet_dir_conf_t {
    const char *base;                 /**< the section's path, to find the channel in the URL */
    apr_array_header_t *translate;    /**< CometTranslate: comet_translation_t */
    const char *const *backend_argv;  /**< CometSocketBackend exec: program and arguments */
    apr_int64_t num[COMET_CONF_NUM_COUNT];
    const char *str[COMET_CONF_STR_COUNT];
} comet_dir_conf_t;

/** Server-wide configuration (set in the main server, inherited by vhosts). */
typedef struct comet_server_conf_t {
    apr_array_header_t *sources;      /**< CometChannelSource: comet_source_t */
    const char *redis;                /**< CometRedis (NULL: this server alone) */
    const char *route;                /**< CometSocketRoute: NULL for none */
    apr_int64_t num[COMET_CONF_NUM_COUNT];
} comet_server_conf_t;

/** The value of a numeric setting of a directory's or a server's record,
 * its default where no section sets it. */
#define COMET_CONF(c, id) comet_config_num((c)->num, (id))

/** The value of a string setting of a directory's record, or its default. */
#define COMET_CONF_STR(c, id) comet_config_str((c)->str, (id))

/** See COMET_CONF. */
apr_int64_t comet_config_num(const apr_int64_t *num, comet_conf_id_t id);

/** See COMET_CONF_STR. */
const char *comet_config_str(const char *const *str, comet_conf_id_t id);

/** The transports a location may offer channels over (CometTransports). */
extern const comet_transport_t *const comet_config_transports[];

/** A transport's bit in COMET_CONF_TRANSPORTS (0: not a channel transport); SSE of
 * several channels and a compressed WebSocket count as SSE and WebSocket. */
apr_int64_t comet_config_transport_bit(const comet_transport_t *t);

/** Most CometChannelSource lines, and most words (program and arguments)
 * of one: what the supervisor takes of a new list (comet_supervisor.c). */
#define COMET_CONFIG_MAX_SOURCES 256
#define COMET_CONFIG_MAX_SOURCE_ARGS 32

/** A program the configuration names (exec: of CometSocketBackend or
 * CometChannelSource), where it names it. */
typedef struct comet_program_t {
    const char *directive;            /**< CometSocketBackend or CometChannelSource */
    const char *file;                 /**< the configuration file */
    int line;                         /**< its line */
    const char *const *argv;          /**< the program (absolute) and its arguments */
} comet_program_t;

/**
 * Every program the configuration being read names, in order
 * (comet_program_t), kept on its pool: comet_check.c checks them against
 * httpd's User once every directive is read.
 */
apr_array_header_t *comet_config_programs(apr_pool_t *pconf);

/** The directives (the module record's command table). */
extern const command_rec comet_config_cmds[];

/** Create a directory's record (httpd's create_dir_config). */
void *comet_config_dir_create(apr_pool_t *p, char *dir);

/** Merge a section into its parent's (httpd's merge_dir_config). */
void *comet_config_dir_merge(apr_pool_t *p, void *basev, void *addv);

/** Create a server's record (httpd's create_server_config). */
void *comet_config_server_create(apr_pool_t *p, server_rec *s);

/** A virtual host inherits the main server's settings (merge_server_config). */
void *comet_config_server_merge(apr_pool_t *p, void *basev, void *addv);

/** The configuration of the request's location. */
const comet_dir_conf_t *comet_config_dir(const request_rec *r);

/** A server's configuration. */
const comet_server_conf_t *comet_config_server(const server_rec *s);

/** The server's own per-directory settings (those outside any section). */
const comet_dir_conf_t *comet_config_server_dir(const server_rec *s);

#endif /* COMET_CONFIG_H */
