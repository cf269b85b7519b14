/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/* The escaper (comet_json.c) and the validators (comet_util.c) against the input:
 *  - comet_json_escape: valid UTF-8 out whatever comes in, nothing raw that
 *    could end a <script>, a quoted string or an event-stream line, within
 *    its bound, and (for valid UTF-8) the JSON parser gives the input back;
 *  - comet_channel_valid, comet_callback_valid, comet_parse_u64 against
 *    independent models; comet_store_name_valid, comet_parse_size: no crash. */
#include <ctype.h>
#include <errno.h>

#include "comet_util.h"
#include "comet_json.h"
#include "fuzz.h"

static int is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static void check_escaped(const unsigned char *o, size_t n)
{
    size_t i;

    FUZZ_CHECK(fuzz_utf8_valid(o, n), "escape: output is valid UTF-8");
    for (i = 0; i < n; i++) {
        unsigned char c = o[i];
        if (c == '\\') {
            FUZZ_CHECK(i + 1 < n && strchr("\"\\/bfnrtu", o[i + 1]), "escape: a known escape");
            if (o[i + 1] == 'u') {
                FUZZ_CHECK(i + 5 < n && is_hex(o[i + 2]) && is_hex(o[i + 3]) && is_hex(o[i + 4])
                           && is_hex(o[i + 5]), "escape: \\u and four hex digits");
                i += 5;
            }
            else {
                i++;
            }
            continue;
        }
        FUZZ_CHECK(c >= 0x20 && c != 0x7f, "escape: no raw control");
        FUZZ_CHECK(!strchr("\"'<>&", c), "escape: no raw quote or markup");
        if (c == 0xe2 && i + 2 < n) {
            unsigned cp = ((c & 0x0fu) << 12) | ((o[i + 1] & 0x3fu) << 6) | (o[i + 2] & 0x3fu);
            FUZZ_CHECK(!(cp >= 0x200c && cp <= 0x200f) && !(cp >= 0x2028 && cp <= 0x202f)
                       && !(cp >= 0x2060 && cp <= 0x206f), "escape: no raw invisible separator");
        }
        if (c == 0xef && i + 2 < n) {
            unsigned cp = ((c & 0x0fu) << 12) | ((o[i + 1] & 0x3fu) << 6) | (o[i + 2] & 0x3fu);
            FUZZ_CHECK(cp < 0xfff0, "escape: no raw U+FFF0-U+FFFF");
        }
    }
}

typedef struct {
    const uint8_t *want;
    size_t want_len;
    int n;
} back_t;

static int back_fn(void *baton, const char *s, apr_size_t len)
{
    back_t *b = baton;

    b->n++;
    FUZZ_CHECK(len == b->want_len && !memcmp(s, b->want, len), "escape then parse: the input again");
    return 0;
}

static int model_channel(const uint8_t *s, size_t len)
{
    size_t i;

    if (len < 1 || len > COMET_CHANNEL_MAX) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if (!isalnum(s[i]) || s[i] >= 0x80) {
            if (s[i] != '_' && s[i] != '-') {
                return 0;
            }
        }
    }
    return 1;
}

static int ident_start(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$';
}

static int model_callback(const char *s)
{
    size_t len = strlen(s), i;
    int at_start = 1;

    if (len < 1 || len > COMET_CALLBACK_MAX) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (at_start) {
            if (!ident_start(c)) {
                return 0;
            }
            at_start = 0;
        }
        else if (c == '.') {
            at_start = 1;
        }
        else if (!ident_start(c) && !(c >= '0' && c <= '9')) {
            return 0;
        }
    }
    return !at_start;
}

static int model_u64(const char *s, size_t len, apr_uint64_t *out)
{
    apr_uint64_t v = 0;
    size_t i;

    if (len == 0 || len > 20) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return 0;
        }
        if (v > (APR_UINT64_MAX - (apr_uint64_t)(s[i] - '0')) / 10) {
            return 0;
        }
        v = v * 10 + (apr_uint64_t)(s[i] - '0');
    }
    *out = v;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    comet_buf_t out = { 0 }, scratch = { 0 }, doc = { 0 };
    char *s = fuzz_strndup(data, size);
    apr_uint64_t a = 0, b = 0;
    int va, vb;

    /* the escaper */
    FUZZ_CHECK(comet_json_escape(&out, (const char *)data, size) == 0, "escape: no error");
    FUZZ_CHECK(out.len <= COMET_JSON_ESCAPE_BOUND(size), "escape: within its bound");
    check_escaped((const unsigned char *)out.data, out.len);
    if (fuzz_utf8_valid(data, size)) {
        back_t bk = { data, size, 0 };
        comet_buf_puts(&doc, "[\"");
        comet_buf_append(&doc, out.data, out.len);
        comet_buf_puts(&doc, "\"]");
        FUZZ_CHECK(comet_json_parse_strings(doc.data, doc.len, &scratch, back_fn, &bk) == 0
                   && bk.n == 1, "escape then parse: one string");
    }

    /* validators against their models */
    FUZZ_CHECK(comet_channel_valid((const char *)data, size) == model_channel(data, size),
               "comet_channel_valid agrees with [A-Za-z0-9_-]{1,128}");
    FUZZ_CHECK(comet_callback_valid(s) == model_callback(s),
               "comet_callback_valid agrees with dotted identifiers");
    if (comet_store_name_valid((const char *)data, size)) {
        FUZZ_CHECK(size >= 1 && !memchr(data, '\0', size), "a store name has no NUL");
    }
    va = comet_parse_u64((const char *)data, size, &a);
    vb = model_u64((const char *)data, size, &b);
    FUZZ_CHECK(va == vb && (!va || a == b), "comet_parse_u64 agrees with the model");
    (void)comet_parse_size(s, &a);

    comet_buf_free(&out);
    comet_buf_free(&scratch);
    comet_buf_free(&doc);
    free(s);
    return 0;
}
