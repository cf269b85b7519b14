/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/* Helpers of the engine; see comet_util.h. */

#include <stdlib.h>
#include <string.h>

#include <apr_atomic.h>

#include "comet_util.h"

/*******************************************************************************
 * buffers
 ******************************************************************************/

int comet_buf_reserve(comet_buf_t *b, apr_size_t more)
{
    apr_size_t need, cap;
    char *p;

    if (more > ((apr_size_t)-1) / 2 - b->len) {
        return -1;
    }
    need = b->len + more;
    if (need <= b->cap) {
        return 0;
    }
    cap = b->cap ? b->cap : 64;
    while (cap < need) {
        cap *= 2;
    }
    p = realloc(b->data, cap);
    if (!p) {
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

int comet_buf_append(comet_buf_t *b, const void *data, apr_size_t len)
{
    if (comet_buf_reserve(b, len) < 0) {
        return -1;
    }
    if (len) {
        memcpy(b->data + b->len, data, len);
    }
    b->len += len;
    return 0;
}

int comet_buf_puts(comet_buf_t *b, const char *s)
{
    return comet_buf_append(b, s, strlen(s));
}

int comet_buf_put_u64(comet_buf_t *b, apr_uint64_t v)
{
    char tmp[24];
    int i = sizeof(tmp);

    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return comet_buf_append(b, tmp + i, sizeof(tmp) - i);
}

void comet_buf_free(comet_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void comet_counter_sub(volatile apr_uint32_t *c, apr_uint32_t n)
{
    apr_uint32_t v;

    do {
        v = apr_atomic_read32(c);
    } while (v && apr_atomic_cas32(c, v > n ? v - n : 0, v) != v);
}

apr_uint32_t comet_hash32(const char *s, apr_size_t len)
{
    apr_uint32_t h = 2166136261u;
    apr_size_t i;

    for (i = 0; i < len; i++) {
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    }
    return h;
}

/*******************************************************************************
 * validation
 ******************************************************************************/

int comet_channel_valid(const char *s, apr_size_t len)
{
    apr_size_t i;

    if (len == 0 || len > COMET_CHANNEL_MAX) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '_' || c == '-')) {
            return 0;
        }
    }
    return 1;
}

int comet_store_name_valid(const char *s, apr_size_t len)
{
    apr_size_t i;

    if (len == 0 || len > COMET_CHANNEL_MAX) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if (s[i] != ':' && !comet_channel_valid(s + i, 1)) {
            return 0;
        }
    }
    return 1;
}

static int js_ident_start(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$';
}

static int js_ident_char(unsigned char c)
{
    return js_ident_start(c) || (c >= '0' && c <= '9');
}

int comet_callback_valid(const char *s)
{
    apr_size_t i = 0;
    int at_start = 1;

    if (!s || !*s) {
        return 0;
    }
    for (i = 0; s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i >= COMET_CALLBACK_MAX) {
            return 0;
        }
        if (at_start) {
            if (!js_ident_start(c)) {
                return 0;
            }
            at_start = 0;
        }
        else if (c == '.') {
            at_start = 1;
        }
        else if (!js_ident_char(c)) {
            return 0;
        }
    }
    return !at_start;
}

int comet_parse_u64(const char *s, apr_size_t len, apr_uint64_t *out)
{
    apr_uint64_t v = 0;
    apr_size_t i;

    if (len == 0 || len > 20) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        unsigned d;
        if (s[i] < '0' || s[i] > '9') {
            return 0;
        }
        d = (unsigned)(s[i] - '0');
        if (v > (APR_UINT64_MAX - d) / 10) {
            return 0;
        }
        v = v * 10 + d;
    }
    *out = v;
    return 1;
}

int comet_parse_size(const char *s, apr_uint64_t *out)
{
    apr_size_t len = strlen(s), digits = len;
    apr_uint64_t v, mult = 1;

    if (len == 0) {
        return 0;
    }
    switch (s[len - 1]) {
    case 'k': case 'K': mult = 1024; digits--; break;
    case 'm': case 'M': mult = 1024 * 1024; digits--; break;
    case 'g': case 'G': mult = 1024 * 1024 * 1024; digits--; break;
    default: break;
    }
    if (!comet_parse_u64(s, digits, &v) || v > APR_UINT64_MAX / mult) {
        return 0;
    }
    *out = v * mult;
    return 1;
}
