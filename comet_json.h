/* Licensed under the Apache License, Version 2.0 (the "License"); see README. */

/**
 * @file comet_json.h
 * @brief The one JSON shape mod_comet reads: an array of strings, the
 *        payload of a SockJS send. A strict, bounded parser, safe to fuzz.
 */
#ifndef COMET_JSON_H
#define COMET_JSON_H

#include "comet_util.h"

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
