/* Licensed under the Apache License, Version 2.0 (the "License"); see README. */

/* Unit tests of the SockJS payload parser. */

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

int main(void)
{
    int n;

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
