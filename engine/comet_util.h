/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/**
 * @file comet_util.h
 * @brief Small helpers of the engine: log levels, growable buffers,
 *        validators and number parsing. APR and libc only.
 */
#ifndef COMET_UTIL_H
#define COMET_UTIL_H

#include <apr.h>
#include <apr_pools.h>
#include <apr_time.h>

/** Longest channel id, in bytes. */
#define COMET_CHANNEL_MAX 128
/** Longest JavaScript callback path accepted from a query string. */
#define COMET_CALLBACK_MAX 128

/** Message ids: strictly increasing per channel, seeded from the clock. */
typedef apr_uint64_t comet_id_t;
/** "No id": a subscriber without `since` only wants new messages. */
#define COMET_ID_NONE ((comet_id_t)-1)

/** Log levels of the engine, mapped by the caller onto its own. */
typedef enum {
    COMET_LOG_ERR = 0,
    COMET_LOG_WARN,
    COMET_LOG_INFO,
    COMET_LOG_DEBUG,
    COMET_LOG_TRACE
} comet_log_level_t;

/** Where the engine's log lines go (the reactor's, the supervisor's). */
typedef void comet_log_fn(void *baton, comet_log_level_t level, apr_status_t rv,
                          const char *msg);

/*******************************************************************************
 * growable byte buffer (malloc based: used on hot paths, never from pools)
 ******************************************************************************/

/** A heap buffer; all members may be read, only comet_buf_* may grow it. */
typedef struct comet_buf_t {
    char *data;
    apr_size_t len;
    apr_size_t cap;
} comet_buf_t;

/**
 * Make room for `more` bytes past len.
 * @return 0, or -1 when out of memory (the buffer is unchanged)
 */
int comet_buf_reserve(comet_buf_t *b, apr_size_t more);

/** Append `len` bytes; @return 0 or -1 (out of memory). */
int comet_buf_append(comet_buf_t *b, const void *data, apr_size_t len);

/** Append a NUL-terminated string; @return 0 or -1. */
int comet_buf_puts(comet_buf_t *b, const char *s);

/** Append a decimal unsigned 64-bit number; @return 0 or -1. */
int comet_buf_put_u64(comet_buf_t *b, apr_uint64_t v);

/** Release the buffer's memory and zero it. */
void comet_buf_free(comet_buf_t *b);

/** Take n off a shared counter, stopping at zero (apr_atomic_*): a count
 * that other processes add to may be reset under them (a slot claimed
 * anew), and must not wrap. */
void comet_counter_sub(volatile apr_uint32_t *c, apr_uint32_t n);

/** FNV-1a of len bytes: names in hash tables, ETags. Not for secrets. */
apr_uint32_t comet_hash32(const char *s, apr_size_t len);

/*******************************************************************************
 * validation and parsing
 ******************************************************************************/

/** @return 1 if s[0..len) is a channel id: [A-Za-z0-9_-]{1,128}, else 0. */
int comet_channel_valid(const char *s, apr_size_t len);

/**
 * @return 1 if s[0..len) may name a channel in the store: a channel id, or an
 * internal name with ':' (sessions), which no URL can reach; else 0.
 */
int comet_store_name_valid(const char *s, apr_size_t len);

/**
 * @return 1 if s is a JavaScript property path safe to paste into a script:
 * identifiers ([A-Za-z_$][A-Za-z0-9_$]*) joined by single dots, at most
 * COMET_CALLBACK_MAX bytes; else 0.
 */
int comet_callback_valid(const char *s);

/**
 * Parse a decimal unsigned 64-bit number: digits only, no sign, no spaces,
 * no overflow. @return 1 on success, else 0.
 */
int comet_parse_u64(const char *s, apr_size_t len, apr_uint64_t *out);

/**
 * Parse a size with an optional K, M or G suffix (powers of 1024).
 * @return 1 on success, else 0.
 */
int comet_parse_size(const char *s, apr_uint64_t *out);

#endif /* COMET_UTIL_H */
