/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/* Escaping, writing and reading JSON; see comet_json.h. */

#include <string.h>

#include "comet_json.h"

/*******************************************************************************
 * UTF-8
 ******************************************************************************/

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid, with its
 * code point. Rejects overlong forms, surrogates and values past U+10FFFF. */
static apr_size_t utf8_decode(const unsigned char *s, apr_size_t avail, unsigned *cp)
{
    unsigned c = s[0];

    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        if (avail < 2 || (s[1] & 0xc0) != 0x80) {
            return 0;
        }
        *cp = ((c & 0x1f) << 6) | (s[1] & 0x3f);
        return 2;
    }
    if (c >= 0xe0 && c <= 0xef) {
        unsigned v;
        if (avail < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80) {
            return 0;
        }
        v = ((c & 0x0f) << 12) | ((s[1] & 0x3f) << 6) | (s[2] & 0x3f);
        if (v < 0x800 || (v >= 0xd800 && v <= 0xdfff)) {
            return 0;
        }
        *cp = v;
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        unsigned v;
        if (avail < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80
            || (s[3] & 0xc0) != 0x80) {
            return 0;
        }
        v = ((c & 0x07) << 18) | ((s[1] & 0x3f) << 12) | ((s[2] & 0x3f) << 6)
            | (s[3] & 0x3f);
        if (v < 0x10000 || v > 0x10ffff) {
            return 0;
        }
        *cp = v;
        return 4;
    }
    return 0;
}

int comet_json_utf8_valid(const char *s, apr_size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    apr_size_t i = 0, n;
    unsigned cp;

    while (i < len) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        if ((n = utf8_decode(u + i, len - i, &cp)) == 0) {
            return 0;
        }
        i += n;
    }
    return 1;
}

static int put_utf8(comet_buf_t *b, unsigned cp)
{
    char u[4];
    apr_size_t n;

    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    }
    else if (cp < 0x800) {
        u[0] = (char)(0xc0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    }
    else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    }
    else {
        u[0] = (char)(0xf0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    return comet_buf_append(b, u, n);
}

int comet_json_utf8_clean(comet_buf_t *out, const char *s, apr_size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    apr_size_t i = 0, n;
    unsigned cp;

    while (i < len) {
        n = u[i] < 0x80 ? 1 : utf8_decode(u + i, len - i, &cp);
        if (n == 0) {
            if (put_utf8(out, 0xfffd) < 0) {
                return -1;
            }
            i++;
            continue;
        }
        if (comet_buf_append(out, s + i, n) < 0) {
            return -1;
        }
        i += n;
    }
    return 0;
}

/*******************************************************************************
 * escaping
 ******************************************************************************/

static const char hexdig[] = "0123456789abcdef";

static char *put_u(char *p, unsigned cp)
{
    *p++ = '\\';
    *p++ = 'u';
    *p++ = hexdig[(cp >> 12) & 0xf];
    *p++ = hexdig[(cp >> 8) & 0xf];
    *p++ = hexdig[(cp >> 4) & 0xf];
    *p++ = hexdig[cp & 0xf];
    return p;
}

/* Invisible or line-breaking code points that some JavaScript engines and
 * SockJS clients mishandle when raw. */
static int needs_u_escape(unsigned cp)
{
    return (cp >= 0x200c && cp <= 0x200f) || (cp >= 0x2028 && cp <= 0x202f)
        || (cp >= 0x2060 && cp <= 0x206f) || (cp >= 0xfff0 && cp <= 0xffff);
}

int comet_json_escape(comet_buf_t *out, const char *in, apr_size_t len)
{
    const unsigned char *s = (const unsigned char *)in;
    apr_size_t i = 0;
    char *p;

    if (len == 0) {
        /* nothing to add, and an empty buffer has no data to point into */
        return 0;
    }
    if (comet_buf_reserve(out, COMET_JSON_ESCAPE_BOUND(len)) < 0) {
        return -1;
    }
    p = out->data + out->len;
    while (i < len) {
        unsigned c = s[i];
        if (c >= 0x20 && c < 0x7f) {
            switch (c) {
            case '"': *p++ = '\\'; *p++ = '"'; break;
            case '\\': *p++ = '\\'; *p++ = '\\'; break;
            case '<': case '>': case '&': case '\'':
                p = put_u(p, c);
                break;
            default:
                *p++ = (char)c;
            }
            i++;
        }
        else if (c < 0x80) {
            switch (c) {
            case '\n': *p++ = '\\'; *p++ = 'n'; break;
            case '\r': *p++ = '\\'; *p++ = 'r'; break;
            case '\t': *p++ = '\\'; *p++ = 't'; break;
            default: p = put_u(p, c);
            }
            i++;
        }
        else {
            unsigned cp;
            apr_size_t n = utf8_decode(s + i, len - i, &cp);
            if (n == 0) {
                p = put_u(p, 0xfffd);
                i++;
            }
            else if (needs_u_escape(cp)) {
                p = put_u(p, cp);
                i += n;
            }
            else {
                memcpy(p, s + i, n);
                p += n;
                i += n;
            }
        }
    }
    out->len = (apr_size_t)(p - out->data);
    return 0;
}

/*******************************************************************************
 * writing
 ******************************************************************************/

void comet_json_start(comet_json_t *j, comet_buf_t *out, comet_json_style_t style)
{
    memset(j, 0, sizeof(*j));
    j->out = out;
    j->style = style;
}

/* What goes before a value: a comma after a sibling, the key and a colon. */
static int json_value_begin(comet_json_t *j, const char *key, apr_size_t klen)
{
    int spaced = j->style == COMET_JSON_SPACED;

    if (j->failed) {
        return -1;
    }
    if (j->keyed) {
        j->keyed = 0;
        return 0;
    }
    if (j->depth) {
        if (j->filled[j->depth - 1] && comet_buf_puts(j->out, spaced ? ", " : ",") < 0) {
            return j->failed = -1;
        }
        j->filled[j->depth - 1] = 1;
    }
    if (key && (comet_buf_puts(j->out, "\"") < 0 || comet_json_escape(j->out, key, klen) < 0
                || comet_buf_puts(j->out, spaced ? "\": " : "\":") < 0)) {
        return j->failed = -1;
    }
    return 0;
}

#define VALUE_BEGIN(j, key) json_value_begin(j, key, key ? strlen(key) : 0)

void comet_json_key(comet_json_t *j, const char *key, apr_size_t len)
{
    if (json_value_begin(j, key, len) == 0) {
        j->keyed = 1;
    }
}

static void json_put(comet_json_t *j, const char *s, apr_size_t len)
{
    if (!j->failed && comet_buf_append(j->out, s, len) < 0) {
        j->failed = -1;
    }
}

void comet_json_open(comet_json_t *j, const char *key, char bracket)
{
    if (VALUE_BEGIN(j, key) < 0) {
        return;
    }
    if (j->depth == COMET_JSON_DEPTH_MAX) {
        j->failed = -1;
        return;
    }
    json_put(j, bracket == '[' ? "[" : "{", 1);
    j->closer[j->depth] = bracket == '[' ? ']' : '}';
    j->filled[j->depth] = 0;
    j->depth++;
}

void comet_json_close(comet_json_t *j)
{
    if (j->failed || !j->depth) {
        j->failed = -1;
        return;
    }
    j->depth--;
    json_put(j, (const char *)&j->closer[j->depth], 1);
}

void comet_json_str(comet_json_t *j, const char *key, const char *s, apr_size_t len)
{
    if (VALUE_BEGIN(j, key) < 0) {
        return;
    }
    json_put(j, "\"", 1);
    if (!j->failed && comet_json_escape(j->out, s, len) < 0) {
        j->failed = -1;
    }
    json_put(j, "\"", 1);
}

void comet_json_u64(comet_json_t *j, const char *key, apr_uint64_t v)
{
    if (VALUE_BEGIN(j, key) == 0 && comet_buf_put_u64(j->out, v) < 0) {
        j->failed = -1;
    }
}

void comet_json_i64(comet_json_t *j, const char *key, apr_int64_t v)
{
    if (VALUE_BEGIN(j, key) < 0) {
        return;
    }
    if (v < 0) {
        json_put(j, "-", 1);
    }
    if (!j->failed && comet_buf_put_u64(j->out, v < 0 ? 0 - (apr_uint64_t)v
                                                       : (apr_uint64_t)v) < 0) {
        j->failed = -1;
    }
}

void comet_json_bool(comet_json_t *j, const char *key, int v)
{
    if (VALUE_BEGIN(j, key) == 0) {
        json_put(j, v ? "true" : "false", v ? 4 : 5);
    }
}

void comet_json_raw(comet_json_t *j, const char *key, const char *json, apr_size_t len)
{
    if (VALUE_BEGIN(j, key) == 0) {
        json_put(j, json, len);
    }
}

int comet_json_finish(comet_json_t *j)
{
    return j->failed || j->depth ? -1 : 0;
}

/*******************************************************************************
 * reading
 ******************************************************************************/

static apr_size_t skip_ws(const char *s, apr_size_t i, apr_size_t len)
{
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) {
        i++;
    }
    return i;
}

static int hex4(const char *s, unsigned *out)
{
    unsigned v = 0;
    int k;

    for (k = 0; k < 4; k++) {
        char c = s[k];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

/* Decode the string starting after its opening quote at s[*i]; leaves *i
 * after the closing quote. */
static int parse_string(const char *s, apr_size_t *i, apr_size_t len, comet_buf_t *out)
{
    apr_size_t p = *i;

    out->len = 0;
    while (p < len) {
        unsigned char c = (unsigned char)s[p];
        if (c == '"') {
            *i = p + 1;
            return 0;
        }
        if (c < 0x20) {
            return -1;                /* raw control characters are not JSON */
        }
        if (c == '\\') {
            unsigned cp, lo;
            if (p + 1 >= len) {
                return -1;
            }
            switch (s[p + 1]) {
            case '"': cp = '"'; break;
            case '\\': cp = '\\'; break;
            case '/': cp = '/'; break;
            case 'b': cp = '\b'; break;
            case 'f': cp = '\f'; break;
            case 'n': cp = '\n'; break;
            case 'r': cp = '\r'; break;
            case 't': cp = '\t'; break;
            case 'u':
                if (p + 6 > len || !hex4(s + p + 2, &cp)) {
                    return -1;
                }
                if (cp >= 0xd800 && cp <= 0xdbff && p + 12 <= len && s[p + 6] == '\\'
                    && s[p + 7] == 'u' && hex4(s + p + 8, &lo) && lo >= 0xdc00 && lo <= 0xdfff) {
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    p += 6;
                }
                else if (cp >= 0xd800 && cp <= 0xdfff) {
                    cp = 0xfffd;      /* lone surrogate */
                }
                p += 4;
                break;
            default:
                return -1;
            }
            if (put_utf8(out, cp) < 0) {
                return -1;
            }
            p += 2;
            continue;
        }
        {
            unsigned cp;
            apr_size_t n = utf8_decode((const unsigned char *)s + p, len - p, &cp);
            if (n == 0) {
                if (put_utf8(out, 0xfffd) < 0) {
                    return -1;
                }
                p++;
            }
            else {
                if (comet_buf_append(out, s + p, n) < 0) {
                    return -1;
                }
                p += n;
            }
        }
    }
    return -1;                        /* unterminated */
}

int comet_json_parse_strings(const char *in, apr_size_t len, comet_buf_t *scratch,
                             comet_json_string_fn *fn, void *baton)
{
    apr_size_t i = skip_ws(in, 0, len);
    int rc;

    if (i >= len || in[i] != '[') {
        return -1;
    }
    i = skip_ws(in, i + 1, len);
    if (i < len && in[i] == ']') {
        return skip_ws(in, i + 1, len) == len ? 0 : -1;
    }
    for (;;) {
        if (i >= len || in[i] != '"') {
            return -1;
        }
        i++;
        if (parse_string(in, &i, len, scratch) < 0) {
            return -1;
        }
        if ((rc = fn(baton, scratch->data ? scratch->data : "", scratch->len)) != 0) {
            return rc;
        }
        i = skip_ws(in, i, len);
        if (i < len && in[i] == ',') {
            i = skip_ws(in, i + 1, len);
            continue;
        }
        if (i < len && in[i] == ']') {
            return skip_ws(in, i + 1, len) == len ? 0 : -1;
        }
        return -1;
    }
}
