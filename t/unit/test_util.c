/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/* Unit tests of comet_util.c: validators, number parsing, the escaper. */

#include <stdlib.h>

#include "comet_util.h"
#include "comet_json.h"
#include "comet_transport.h"
#include "unit.h"

static char got[4096];

static const char *esc(const char *in, apr_size_t len)
{
    comet_buf_t b = { 0 };

    if (comet_json_escape(&b, in, len) < 0 || b.len >= sizeof(got)) {
        comet_buf_free(&b);
        return NULL;
    }
    memcpy(got, b.data ? b.data : "", b.len);
    got[b.len] = '\0';
    comet_buf_free(&b);
    return got;
}

#define ESC(lit) esc(lit, sizeof(lit) - 1)

static void test_channels(void)
{
    char long_id[COMET_CHANNEL_MAX + 2];

    OK(comet_channel_valid("news", 4), "plain channel id");
    OK(comet_channel_valid("A-z_09", 6), "letters, digits, - and _");
    OK(!comet_channel_valid("", 0), "empty id refused");
    OK(!comet_channel_valid("a.b", 3), "dot refused");
    OK(!comet_channel_valid("a/b", 3), "slash refused");
    OK(!comet_channel_valid("..", 2), "dot-dot refused");
    OK(!comet_channel_valid("a\0b", 3), "NUL refused");
    OK(!comet_channel_valid("caf\xc3\xa9", 5), "non-ASCII refused");
    memset(long_id, 'x', sizeof(long_id));
    OK(comet_channel_valid(long_id, COMET_CHANNEL_MAX), "128 bytes accepted");
    OK(!comet_channel_valid(long_id, COMET_CHANNEL_MAX + 1), "129 bytes refused");
}

static void test_callbacks(void)
{
    OK(comet_callback_valid("cb"), "identifier");
    OK(comet_callback_valid("Pxxo_Widget_Comet.cb.c12"), "dotted path");
    OK(comet_callback_valid("$x._y"), "$ and _");
    OK(!comet_callback_valid(""), "empty refused");
    OK(!comet_callback_valid("a..b"), "empty segment refused");
    OK(!comet_callback_valid("a."), "trailing dot refused");
    OK(!comet_callback_valid(".a"), "leading dot refused");
    OK(!comet_callback_valid("1a"), "digit first refused");
    OK(!comet_callback_valid("a.1b"), "digit first in segment refused");
    OK(!comet_callback_valid("alert(1)"), "call refused");
    OK(!comet_callback_valid("a b"), "space refused");
    OK(!comet_callback_valid("a;b"), "semicolon refused");
    OK(!comet_callback_valid("a[0]"), "brackets refused");
    {
        char big[COMET_CALLBACK_MAX + 2];
        memset(big, 'a', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        OK(!comet_callback_valid(big), "over %d bytes refused", COMET_CALLBACK_MAX);
        big[COMET_CALLBACK_MAX] = '\0';
        OK(comet_callback_valid(big), "%d bytes accepted", COMET_CALLBACK_MAX);
    }
}

static void test_numbers(void)
{
    apr_uint64_t v = 0;

    OK(comet_parse_u64("0", 1, &v) && v == 0, "0");
    OK(comet_parse_u64("1795666132000001", 16, &v) && v == 1795666132000001ULL, "an id");
    OK(comet_parse_u64("18446744073709551615", 20, &v) && v == APR_UINT64_MAX, "max u64");
    OK(!comet_parse_u64("18446744073709551616", 20, &v), "overflow refused");
    OK(!comet_parse_u64("-1", 2, &v), "sign refused");
    OK(!comet_parse_u64("1 ", 2, &v), "space refused");
    OK(!comet_parse_u64("", 0, &v), "empty refused");
    OK(!comet_parse_u64("12a", 3, &v), "letter refused");
    OK(comet_parse_size("64K", &v) && v == 65536, "64K");
    OK(comet_parse_size("2m", &v) && v == 2097152, "2m");
    OK(comet_parse_size("1G", &v) && v == 1073741824, "1G");
    OK(comet_parse_size("100", &v) && v == 100, "plain bytes");
    OK(!comet_parse_size("K", &v), "suffix alone refused");
    OK(!comet_parse_size("1T", &v), "unknown suffix refused");
    OK(!comet_parse_size("17179869184G", &v), "overflowing size refused");
}

static void test_escape(void)
{
    IS_STR(ESC("hello"), "hello", "plain text unchanged");
    IS_STR(ESC("a\"b\\c"), "a\\\"b\\\\c", "quote and backslash");
    IS_STR(ESC("</script><img src=x onerror=alert(1)>"),
           "\\u003c/script\\u003e\\u003cimg src=x onerror=alert(1)\\u003e",
           "no closing script tag survives");
    IS_STR(ESC("<!--"), "\\u003c!--", "no comment opener survives");
    IS_STR(ESC("it's & <b>"), "it\\u0027s \\u0026 \\u003cb\\u003e", "' & < >");
    IS_STR(ESC("a\nb\rc\td"), "a\\nb\\rc\\td", "newline, return, tab");
    IS_STR(esc("a\0b\x1f\x7f", 5), "a\\u0000b\\u001f\\u007f", "other controls");
    IS_STR(ESC("x\xe2\x80\xa8y\xe2\x80\xa9z"), "x\\u2028y\\u2029z", "U+2028 and U+2029");
    IS_STR(ESC("\xe2\x80\x8c\xef\xbf\xbf"), "\\u200c\\uffff", "invisible ranges");
    IS_STR(ESC("caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80"),
           "caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80", "valid UTF-8 kept");
    IS_STR(ESC("a\xffz"), "a\\ufffdz", "invalid byte replaced");
    IS_STR(ESC("\xc0\xaf"), "\\ufffd\\ufffd", "overlong form replaced");
    IS_STR(ESC("\xed\xa0\x80"), "\\ufffd\\ufffd\\ufffd", "encoded surrogate replaced");
    IS_STR(ESC("\xf4\x90\x80\x80"), "\\ufffd\\ufffd\\ufffd\\ufffd", "past U+10FFFF replaced");
    IS_STR(ESC("\xe6\x97"), "\\ufffd\\ufffd", "truncated sequence replaced");
    {
        /* worst case stays within the bound */
        char in[64];
        comet_buf_t b = { 0 };
        memset(in, 0xff, sizeof(in));
        comet_json_escape(&b, in, sizeof(in));
        OK(b.len == 6 * sizeof(in) && b.len <= COMET_JSON_ESCAPE_BOUND(sizeof(in)),
           "worst case is 6 bytes per byte");
        comet_buf_free(&b);
    }
}

static void test_iframe_frames(void)
{
    comet_buf_t b = { 0 };
    comet_stream_params_t p = { "parent_cb.c1", apr_time_from_sec(25), 0 };

    OK(comet_transport_iframe.prelude(&b, &p) == 0 && b.len > COMET_IFRAME_PRELUDE_MIN,
       "iframe prelude over 1 KiB");
    b.data[b.len - 1] = '\0';
    OK(strstr(b.data, "f = parent.parent_cb.c1;") != NULL, "prelude binds the callback");
    OK(strstr(b.data, "f(\"o\", 25000)") != NULL, "prelude announces the heartbeat");
    b.len = 0;
    comet_transport_iframe.message(&b, 42, "news", 4, "a</script>", 10);
    comet_buf_append(&b, "", 1);
    IS_STR(b.data, "<script>p(42,\"a\\u003c/script\\u003e\",\"news\");</script>\n", "message frame");
    b.len = 0;
    comet_transport_iframe.end(&b, &p, COMET_END_DELETED);
    comet_buf_append(&b, "", 1);
    IS_STR(b.data, "<script>e(\"deleted\");</script>\n</body></html>\n", "end frame");
    OK(comet_transport_find("iframe") == &comet_transport_iframe, "transport by name");
    OK(comet_transport_find("carrier-pigeon") == NULL, "unknown transport");
    comet_buf_free(&b);
}

/* a count others add to never wraps below zero */
static void test_counter(void)
{
    volatile apr_uint32_t c = 5;

    comet_counter_sub(&c, 2);
    OK(c == 3, "5 - 2 = 3 (%u)", c);
    comet_counter_sub(&c, 7);
    OK(c == 0, "3 - 7 stops at 0 (%u)", c);
    comet_counter_sub(&c, 1);
    OK(c == 0, "0 - 1 stays 0 (%u)", c);
}

int main(void)
{
    test_channels();
    test_callbacks();
    test_numbers();
    test_escape();
    test_iframe_frames();
    test_counter();
    return UNIT_DONE();
}
