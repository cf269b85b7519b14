/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/* What a WebSocket client sends (comet_ws_feed), in pieces cut where the
 * input's first byte says:
 *  - each message handed on is at most the limit, and a text one is valid
 *    UTF-8 (checked against fuzz.h's own validator);
 *  - what goes back is a sequence of whole, unmasked server frames: pongs
 *    and at most one close, control payloads of 125 bytes at most;
 *  - once the endpoint says APR_EOF it says so again and hands on nothing;
 *  - the draft of 2010 (hixie-76, first byte >= 0x80): the same for its
 *    messages, and it answers its handshake once, then at most a close;
 *  - permessage-deflate (RFC 6455 endpoints whose first byte has 0x40):
 *    compressed messages (RSV1) inflate within the limit, or end it. */
#include "comet_ws.h"
#include "fuzz.h"

#define MAX_MESSAGE 1024

static int ended;

static int on_message(void *baton, int opcode, const char *data, apr_size_t len)
{
    FUZZ_CHECK(!ended, "no message after the end");
    FUZZ_CHECK(len <= MAX_MESSAGE, "a message within the limit");
    FUZZ_CHECK(opcode == COMET_WS_TEXT || opcode == COMET_WS_BINARY, "data opcodes only");
    if (opcode == COMET_WS_TEXT) {
        FUZZ_CHECK(fuzz_utf8_valid((const unsigned char *)data, len), "text is UTF-8");
    }
    /* a message starting with 'X' makes the handler refuse it */
    return len && data[0] == 'X' ? COMET_WS_POLICY : 0;
}

/* The frames we answered: whole, unmasked, at most one close. */
static void check_out(const comet_buf_t *out, int *closes)
{
    size_t i = 0;

    while (i < out->len) {
        const unsigned char *h = (const unsigned char *)out->data + i;
        size_t avail = out->len - i, len, hl = 2;
        int op;

        FUZZ_CHECK(avail >= 2, "a whole frame header");
        op = h[0] & 0x0f;
        FUZZ_CHECK(h[0] & 0x80, "FIN set");
        FUZZ_CHECK(!(h[1] & 0x80), "server frames are not masked");
        FUZZ_CHECK(op == COMET_WS_PONG || op == COMET_WS_CLOSE, "only pong and close");
        len = h[1] & 0x7f;
        FUZZ_CHECK(len <= 125, "control payload at most 125 bytes");
        FUZZ_CHECK(avail >= hl + len, "a whole frame");
        if (op == COMET_WS_CLOSE) {
            FUZZ_CHECK(++*closes == 1, "one close frame");
            FUZZ_CHECK(len != 1, "a close code is two bytes");
        }
        i += hl + len;
    }
}

/* hixie-76: the 16 bytes and the greeting once, then at most 0xFF 0x00. */
static void check_hixie_out(const comet_buf_t *out, size_t *answered, int *closes)
{
    size_t i = 0;

    if (*answered < 19 && out->len) {
        size_t n = out->len < 19 - *answered ? out->len : 19 - *answered;
        FUZZ_CHECK(*answered + n <= 19, "the handshake's answer once");
        if (*answered + n == 19) {
            FUZZ_CHECK(!memcmp(out->data + n - 3, "\x00o\xff", 3), "then the greeting");
        }
        *answered += n;
        i = n;
    }
    if (i < out->len) {
        FUZZ_CHECK(out->len - i == 2 && !memcmp(out->data + i, "\xff\x00", 2),
                   "a close, nothing else");
        FUZZ_CHECK(++*closes == 1, "one close");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    comet_ws_t *ws;
    size_t off = 1, step, answered = 0;
    int closes = 0, hixie;

    if (size < 1) {
        return 0;
    }
    hixie = data[0] >= 0x80;
    if ((hixie ? comet_ws_create_hixie(&ws, 12345, 67890, "\x00o\xff", 3, MAX_MESSAGE,
                                       on_message, NULL)
               : comet_ws_create(&ws, MAX_MESSAGE, on_message, NULL)) != APR_SUCCESS) {
        return 0;
    }
    if (!hixie && (data[0] & 0x40)) {
        comet_ws_set_deflate(ws);
    }
    ended = 0;
    step = (size_t)(data[0] % 17) + 1;
    while (off < size) {
        comet_buf_t out = { 0 };
        size_t n = size - off < step ? size - off : step;
        apr_status_t rv = comet_ws_feed(ws, (const char *)data + off, n, &out);

        FUZZ_CHECK(rv == APR_SUCCESS || rv == APR_EOF, "success or the end");
        FUZZ_CHECK(!ended || rv == APR_EOF, "the end stays the end");
        if (hixie) {
            check_hixie_out(&out, &answered, &closes);
        }
        else {
            check_out(&out, &closes);
        }
        comet_buf_free(&out);
        ended = rv == APR_EOF;
        off += n;
    }
    comet_ws_destroy(ws);
    return 0;
}
