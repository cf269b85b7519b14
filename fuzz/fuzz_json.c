/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/* The SockJS payload parser (comet_json.c): whatever the input, either -1 or
 * strings of valid UTF-8; what it accepts, written out again with
 * comet_json_escape, parses to the same strings; a callback that stops the
 * parse has its value returned. */
#include "comet_util.h"
#include "comet_json.h"
#include "fuzz.h"

#define MAX_STRINGS 4096

typedef struct {
    comet_buf_t doc;             /* the strings, escaped again, as a JSON array */
    size_t lens[MAX_STRINGS];
    comet_buf_t all;             /* every string, end to end */
    int n;
    int stop_at;                 /* stop (return 7) at this string, 0: never */
} collect_t;

static int collect(void *baton, const char *s, apr_size_t len)
{
    collect_t *c = baton;

    FUZZ_CHECK(fuzz_utf8_valid((const unsigned char *)s, len), "parse: strings are valid UTF-8");
    if (c->n < MAX_STRINGS) {
        c->lens[c->n] = len;
    }
    c->n++;
    comet_buf_puts(&c->doc, c->n > 1 ? ",\"" : "[\"");
    comet_json_escape(&c->doc, s, len);
    comet_buf_puts(&c->doc, "\"");
    comet_buf_append(&c->all, s, len);
    return c->stop_at && c->n == c->stop_at ? 7 : 0;
}

typedef struct {
    const collect_t *first;
    size_t off;
    int n;
} again_t;

static int again(void *baton, const char *s, apr_size_t len)
{
    again_t *a = baton;

    FUZZ_CHECK(a->n < a->first->n, "re-parse: no more strings than the first time");
    if (a->n < MAX_STRINGS) {
        FUZZ_CHECK(len == a->first->lens[a->n], "re-parse: same length");
    }
    FUZZ_CHECK(a->off + len <= a->first->all.len
               && (len == 0 || !memcmp(a->first->all.data + a->off, s, len)),
               "re-parse: same bytes");
    a->off += len;
    a->n++;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static collect_t c;
    comet_buf_t scratch = { 0 };
    int rc;

    comet_buf_free(&c.doc);
    comet_buf_free(&c.all);
    memset(&c, 0, sizeof(c));
    rc = comet_json_parse_strings((const char *)data, size, &scratch, collect, &c);
    FUZZ_CHECK(rc == 0 || rc == -1, "parse: 0 or -1");
    if (rc == 0) {
        again_t a = { &c, 0, 0 };
        if (c.n == 0) {
            comet_buf_puts(&c.doc, "[");
        }
        comet_buf_puts(&c.doc, "]");
        FUZZ_CHECK(comet_json_parse_strings(c.doc.data, c.doc.len, &scratch, again, &a) == 0,
                   "what was accepted, escaped again, is accepted");
        FUZZ_CHECK(a.n == c.n && a.off == c.all.len, "... with the same strings");
        if (c.n > 0) {
            /* a callback that stops the parse: its value comes back */
            collect_t *d = calloc(1, sizeof(*d));
            d->stop_at = 1 + (int)(size % (apr_size_t)c.n);
            FUZZ_CHECK(comet_json_parse_strings((const char *)data, size, &scratch, collect, d)
                       == 7 && d->n == d->stop_at, "a stopping callback's value is returned");
            comet_buf_free(&d->doc);
            comet_buf_free(&d->all);
            free(d);
        }
    }
    comet_buf_free(&scratch);
    return 0;
}
