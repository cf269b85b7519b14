/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/* Accept-Language negotiation and the string tables (comet_i18n.c): any
 * header picks a built-in language; any tag finds one or none; a table with
 * overrides taken from the input is a balanced JSON object in valid UTF-8,
 * nothing raw in its strings. */
#include "comet_util.h"
#include "comet_i18n.h"
#include "fuzz.h"

static int is_builtin(const comet_lang_t *l)
{
    int i;

    for (i = 0; comet_langs[i].tag; i++) {
        if (l == &comet_langs[i]) {
            return 1;
        }
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_strndup(data, size);
    const comet_lang_t *l = comet_lang_negotiate(s), *f;
    const char *over[8];
    apr_size_t n = 0, i;
    comet_buf_t out = { 0 };
    const char *p = s, *end = s + size;
    int depth = 0, in_str = 0;

    FUZZ_CHECK(l && is_builtin(l), "negotiate: a built-in language, always");
    f = comet_lang_find((const char *)data, size);
    FUZZ_CHECK(!f || is_builtin(f), "find: a built-in language or none");
    FUZZ_CHECK(comet_lang_text(l, "CONNECTED") != NULL, "every language has CONNECTED");

    /* overrides: NUL-separated key, text, key, text... (CometTranslate's
     * arguments, which may be any bytes of the configuration file) */
    while (p < end && n < 8) {
        over[n++] = p;
        p += strlen(p) + 1;
    }
    n &= ~(apr_size_t)1;
    FUZZ_CHECK(comet_lang_json(&out, l, over, n / 2) == 0, "table: no error");
    FUZZ_CHECK(fuzz_utf8_valid((const unsigned char *)out.data, out.len), "table: valid UTF-8");
    for (i = 0; i < out.len; i++) {
        char c = out.data[i];
        if (in_str) {
            if (c == '\\') {
                i++;
            }
            else if (c == '"') {
                in_str = 0;
            }
            else {
                FUZZ_CHECK(c != '<' && (unsigned char)c >= 0x20, "table: nothing raw in a string");
            }
        }
        else if (c == '"') {
            in_str = 1;
        }
        else if (c == '{') {
            depth++;
        }
        else if (c == '}') {
            depth--;
        }
    }
    FUZZ_CHECK(!in_str && depth == 0, "table: a balanced object");
    comet_buf_free(&out);
    free(s);
    return 0;
}
