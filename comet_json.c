/* Licensed under the Apache License, Version 2.0 (the "License"); see README. */

/* The JSON array-of-strings parser; see comet_json.h. */

#include "comet_json.h"

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

/* Length of a valid UTF-8 sequence at s, or 0 (see comet_util.c). */
static apr_size_t utf8_len(const unsigned char *s, apr_size_t avail)
{
    unsigned c = s[0];

    if (c < 0x80) {
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        return avail >= 2 && (s[1] & 0xc0) == 0x80 ? 2 : 0;
    }
    if (c >= 0xe0 && c <= 0xef) {
        unsigned v;
        if (avail < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80) {
            return 0;
        }
        v = ((c & 0x0f) << 12) | ((s[1] & 0x3f) << 6) | (s[2] & 0x3f);
        return v < 0x800 || (v >= 0xd800 && v <= 0xdfff) ? 0 : 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        unsigned v;
        if (avail < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80
            || (s[3] & 0xc0) != 0x80) {
            return 0;
        }
        v = ((c & 0x07) << 18) | ((s[1] & 0x3f) << 12) | ((s[2] & 0x3f) << 6) | (s[3] & 0x3f);
        return v < 0x10000 || v > 0x10ffff ? 0 : 4;
    }
    return 0;
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
            apr_size_t n = utf8_len((const unsigned char *)s + p, len - p);
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
