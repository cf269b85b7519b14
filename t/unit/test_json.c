/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/* Unit tests of the JSON writer and of the SockJS payload parser. */

#include <stdlib.h>

#include "comet_json.h"
#include "unit.h"

static char joined[1024];

static int collect(void *baton, const char *s, apr_size_t len)
{
    int *n = baton;
    apr_size_t have = strlen(joined);

    if (have + len + 2 < sizeof(joined)) {
        if (*n) {
            strcat(joined, "|");
            have++;
        }
        memcpy(joined + have, s, len);
        joined[have + len] = '\0';
    }
    (*n)++;
    return 0;
}

static int parse(const char *in, apr_size_t len, int *n)
{
    comet_buf_t scratch = { 0 };
    int rc;

    joined[0] = '\0';
    *n = 0;
    rc = comet_json_parse_strings(in, len, &scratch, collect, n);
    comet_buf_free(&scratch);
    return rc;
}

#define P(lit, n) parse(lit, sizeof(lit) - 1, n)

/* The writer: what the module's answers and frames are made of. */
static void test_writer(void)
{
    comet_buf_t b = { 0 };
    comet_json_t j;
    int i;

    comet_json_start(&j, &b, COMET_JSON_SPACED);
    comet_json_open(&j, NULL, '{');
    comet_json_str(&j, "channel", "n<e\"ws", 6);
    comet_json_u64(&j, "id", 18446744073709551615ULL);
    comet_json_i64(&j, "neg", -42);
    comet_json_bool(&j, "deleted", 1);
    comet_json_open(&j, "this", '{');
    comet_json_bool(&j, "no", 0);
    comet_json_close(&j);
    comet_json_open(&j, "list", '[');
    comet_json_u64(&j, NULL, 1);
    comet_json_str(&j, NULL, "", 0);
    comet_json_close(&j);
    comet_json_raw(&j, "raw", "{\"a\":1}", 7);
    comet_json_close(&j);
    OK(comet_json_finish(&j) == 0, "spaced: finished");
    comet_buf_append(&b, "", 1);
    IS_STR(b.data, "{\"channel\": \"n\\u003ce\\\"ws\", \"id\": 18446744073709551615, "
           "\"neg\": -42, \"deleted\": true, \"this\": {\"no\": false}, "
           "\"list\": [1, \"\"], \"raw\": {\"a\":1}}", "spaced: separators, escapes, nesting");
    comet_buf_free(&b);

    comet_json_start(&j, &b, COMET_JSON_COMPACT);
    comet_json_open(&j, NULL, '{');
    comet_json_u64(&j, "a", 1);
    comet_json_u64(&j, "b", 2);
    comet_json_key(&j, "c,d", 1);
    comet_json_u64(&j, NULL, 3);
    comet_json_close(&j);
    OK(comet_json_finish(&j) == 0, "compact: finished");
    comet_buf_append(&b, "", 1);
    IS_STR(b.data, "{\"a\":1,\"b\":2,\"c\":3}", "compact: no spaces; a key of some length");
    comet_buf_free(&b);

    comet_json_start(&j, &b, COMET_JSON_COMPACT);
    comet_json_open(&j, NULL, '[');
    OK(comet_json_finish(&j) == -1, "an open bracket is not finished");
    comet_json_close(&j);
    comet_json_close(&j);
    OK(comet_json_finish(&j) == -1, "one close too many fails");
    comet_buf_free(&b);

    comet_json_start(&j, &b, COMET_JSON_COMPACT);
    for (i = 0; i <= COMET_JSON_DEPTH_MAX; i++) {
        comet_json_open(&j, NULL, '[');
    }
    OK(comet_json_finish(&j) == -1, "nesting past COMET_JSON_DEPTH_MAX fails");
    comet_buf_free(&b);
}

int main(void)
{
    int n;

    test_writer();

    OK(P("[\"a\"]", &n) == 0 && n == 1 && !strcmp(joined, "a"), "one string");
    OK(P(" [ \"a\" , \"b\" ] ", &n) == 0 && n == 2 && !strcmp(joined, "a|b"), "two, white space");
    OK(P("[]", &n) == 0 && n == 0, "empty array");
    OK(P("[\"\"]", &n) == 0 && n == 1 && joined[0] == 0, "empty string");
    OK(P("[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]", &n) == 0 && !strcmp(joined, "\"\\/\b\f\n\r\t"),
       "simple escapes");
    OK(P("[\"\\u00e9\\u65e5\"]", &n) == 0 && !strcmp(joined, "\xc3\xa9\xe6\x97\xa5"), "\\u escapes");
    OK(P("[\"\\ud83d\\ude00\"]", &n) == 0 && !strcmp(joined, "\xf0\x9f\x98\x80"), "surrogate pair");
    OK(P("[\"\\ud83d\"]", &n) == 0 && !strcmp(joined, "\xef\xbf\xbd"), "lone surrogate replaced");
    OK(P("[\"a\xffz\"]", &n) == 0 && !strcmp(joined, "a\xef\xbf\xbdz"), "invalid UTF-8 replaced");
    OK(P("[\"\xe6\x97\xa5\"]", &n) == 0 && !strcmp(joined, "\xe6\x97\xa5"), "raw UTF-8 kept");
    OK(P("", &n) == -1, "empty text refused");
    OK(P("x", &n) == -1, "not an array");
    OK(P("[\"a\"", &n) == -1, "unterminated array");
    OK(P("[\"a]", &n) == -1, "unterminated string");
    OK(P("[\"a\",]", &n) == -1, "trailing comma");
    OK(P("[1]", &n) == -1, "a number refused");
    OK(P("[[\"a\"]]", &n) == -1, "nesting refused");
    OK(P("[\"a\"] x", &n) == -1, "trailing garbage");
    OK(P("[\"\\x\"]", &n) == -1, "unknown escape");
    OK(P("[\"\\u12\"]", &n) == -1, "short \\u");
    OK(P("[\"a\nb\"]", &n) == -1, "raw newline refused");
    OK(parse("[\"a\0b\"]", 7, &n) == -1, "raw NUL refused");
    return UNIT_DONE();
}
