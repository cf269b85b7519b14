/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/**
 * @file comet_json.h
 * @brief JSON, the one place mod_comet reads and writes it: the escaper that
 *        makes any bytes safe inside a JSON string, a <script> and an event
 *        stream; a writer for the objects the module answers with; and the
 *        strict, bounded parser of the one shape it reads (an array of
 *        strings, the payload of a SockJS send). Safe to fuzz. APR only.
 */
#ifndef COMET_JSON_H
#define COMET_JSON_H

#include "comet_util.h"

/*******************************************************************************
 * escaping
 ******************************************************************************/

/**
 * Append in[0..len) as the inside of a JSON string literal (no quotes) that is
 * also safe inside an HTML <script> block, a single- or double-quoted
 * JavaScript string and an event-stream line: quotes, backslash, controls,
 * < > & ' become escapes, as do U+2028/U+2029 and the other invisible ranges
 * SockJS asks for (U+200C-U+200F, U+202A-U+202F, U+2060-U+206F,
 * U+FFF0-U+FFFF); each byte of invalid UTF-8 becomes \ufffd.
 * The output is valid UTF-8 whatever the input.
 * @return 0 or -1 (out of memory)
 */
int comet_json_escape(comet_buf_t *out, const char *in, apr_size_t len);

/** Upper bound of the bytes comet_json_escape() appends for `len` bytes. */
#define COMET_JSON_ESCAPE_BOUND(len) ((len) * 6)

/*******************************************************************************
 * writing
 ******************************************************************************/

/** Separators: {"a": 1, "b": 2} (the module's answers) or {"a":1,"b":2}. */
typedef enum {
    COMET_JSON_SPACED = 0,
    COMET_JSON_COMPACT
} comet_json_style_t;

/** Deepest nesting the writer follows. */
#define COMET_JSON_DEPTH_MAX 16

/**
 * A JSON text being written at the end of a buffer. Commas and colons come
 * by themselves; every string goes through comet_json_escape. Once a write
 * fails (out of memory, nesting too deep) the later ones do nothing and
 * comet_json_finish says so.
 */
typedef struct comet_json_t {
    comet_buf_t *out;
    comet_json_style_t style;
    unsigned depth;
    unsigned char closer[COMET_JSON_DEPTH_MAX];   /**< '}' or ']' per level */
    unsigned char filled[COMET_JSON_DEPTH_MAX];   /**< a value was written there */
    int keyed;                        /**< comet_json_key wrote the next value's key */
    int failed;
} comet_json_t;

/** Start writing at the end of `out`. */
void comet_json_start(comet_json_t *j, comet_buf_t *out, comet_json_style_t style);

/**
 * Open an object ('{') or an array ('['), as the value of `key` inside an
 * object, or as an element or the whole text (key NULL).
 */
void comet_json_open(comet_json_t *j, const char *key, char bracket);

/** Close the innermost object or array. */
void comet_json_close(comet_json_t *j);

/**
 * The key of the next value, of `len` bytes (for keys that are not
 * NUL-terminated); that value is then written with key NULL.
 */
void comet_json_key(comet_json_t *j, const char *key, apr_size_t len);

/** A string value, escaped (see comet_json_escape); key as for open. */
void comet_json_str(comet_json_t *j, const char *key, const char *s, apr_size_t len);

/** An unsigned number; key as for open. */
void comet_json_u64(comet_json_t *j, const char *key, apr_uint64_t v);

/** A signed number; key as for open. */
void comet_json_i64(comet_json_t *j, const char *key, apr_int64_t v);

/** true or false; key as for open. */
void comet_json_bool(comet_json_t *j, const char *key, int v);

/** A value already written as JSON (trusted: not checked); key as for open. */
void comet_json_raw(comet_json_t *j, const char *key, const char *json, apr_size_t len);

/** @return 0 if every write went in and every bracket is closed, else -1. */
int comet_json_finish(comet_json_t *j);

/*******************************************************************************
 * reading
 ******************************************************************************/

/**
 * Is s[0..len) valid UTF-8 (no overlong form, no surrogate, nothing past
 * U+10FFFF)? @return 1 or 0
 */
int comet_json_utf8_valid(const char *s, apr_size_t len);

/**
 * Append s[0..len) with each byte of invalid UTF-8 replaced by U+FFFD.
 * @return 0 or -1 (out of memory)
 */
int comet_json_utf8_clean(comet_buf_t *out, const char *s, apr_size_t len);

/** Called with each decoded string (valid UTF-8); non-zero stops parsing. */
typedef int comet_json_string_fn(void *baton, const char *s, apr_size_t len);

/**
 * Parse `in` as a JSON array of strings, with optional white space around
 * tokens; escapes are decoded, \u surrogate pairs joined, lone surrogates and
 * invalid UTF-8 replaced by U+FFFD.
 * @param scratch  buffer for the decoded strings (reused, caller frees)
 * @return 0; -1 if the text is not such an array; or the callback's non-zero
 */
int comet_json_parse_strings(const char *in, apr_size_t len, comet_buf_t *scratch,
                             comet_json_string_fn *fn, void *baton);

#endif /* COMET_JSON_H */
