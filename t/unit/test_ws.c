/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/* Unit tests of the WebSocket endpoint (engine/comet_ws.c): client frames
 * built here byte by byte (masked, as RFC 6455 wants them), fed whole and
 * in single bytes; what comes out checked byte for byte. */

#include <stdlib.h>

#include "comet_ws.h"
#include "unit.h"

#define MAX 64

static char got[8][256];
static int ngot, refuse;

static int on_message(void *baton, int opcode, const char *data, apr_size_t len)
{
    if (ngot < 8 && len < sizeof(got[0])) {
        got[ngot][0] = opcode == COMET_WS_TEXT ? 't' : 'b';
        memcpy(got[ngot] + 1, data, len);
        got[ngot][len + 1] = '\0';
    }
    ngot++;
    return refuse;
}

/* A client frame: fin, opcode, masked payload (mask 0 = unmasked). */
static apr_size_t frame(char *out, int fin, int op, const char *p, apr_size_t len, int masked)
{
    static const unsigned char key[4] = { 0x12, 0x34, 0x56, 0x78 };
    apr_size_t n = 0, i;

    out[n++] = (char)((fin ? 0x80 : 0) | op);
    if (len < 126) {
        out[n++] = (char)((masked ? 0x80 : 0) | len);
    }
    else {
        out[n++] = (char)((masked ? 0x80 : 0) | 126);
        out[n++] = (char)(len >> 8);
        out[n++] = (char)(len & 0xff);
    }
    if (masked) {
        memcpy(out + n, key, 4);
        n += 4;
    }
    for (i = 0; i < len; i++) {
        out[n + i] = masked ? (char)(p[i] ^ key[i % 4]) : p[i];
    }
    return n + len;
}

/* Feed whole or byte by byte; the status of the last call. */
static apr_status_t feed(comet_ws_t *ws, const char *in, apr_size_t len, int bytewise,
                         comet_buf_t *out)
{
    apr_status_t rv = APR_SUCCESS;
    apr_size_t i;

    if (!bytewise) {
        return comet_ws_feed(ws, in, len, out);
    }
    for (i = 0; i < len; i++) {
        rv = comet_ws_feed(ws, in + i, 1, out);
    }
    return rv;
}

static comet_ws_t *endpoint(void)
{
    comet_ws_t *ws = NULL;

    ngot = 0;
    refuse = 0;
    OK(comet_ws_create(&ws, MAX, on_message, NULL) == APR_SUCCESS, "an endpoint");
    return ws;
}

/* the close frame in out: its code (0: none), or -1 */
static int close_code(const comet_buf_t *out)
{
    const unsigned char *u = (const unsigned char *)out->data;

    if (out->len == 2 && u[0] == 0x88 && u[1] == 0) {
        return 0;
    }
    if (out->len < 4 || u[0] != 0x88 || (u[1] & 0x7f) + 2u != out->len) {
        return -1;
    }
    return (u[2] << 8) | u[3];
}

static void run(int bytewise)
{
    const char *how = bytewise ? "byte by byte" : "whole";
    char in[1024];
    apr_size_t n;
    comet_buf_t out = { 0 };
    comet_ws_t *ws;
    apr_status_t rv;

    /* a text message, then a fragmented one with a ping in between */
    ws = endpoint();
    n = frame(in, 1, COMET_WS_TEXT, "hello", 5, 1);
    n += frame(in + n, 0, COMET_WS_TEXT, "fra", 3, 1);
    n += frame(in + n, 1, COMET_WS_PING, "p!", 2, 1);
    n += frame(in + n, 1, 0, "gment", 5, 1);
    rv = feed(ws, in, n, bytewise, &out);
    OK(rv == APR_SUCCESS, "%s: messages and a ping: go on", how);
    OK(ngot == 2, "%s: two messages (%d)", how, ngot);
    IS_STR(got[0], "thello", "%s: the first, unmasked", how);
    IS_STR(got[1], "tfragment", "%s: the fragments joined around the ping", how);
    OK(out.len == 4 && !memcmp(out.data, "\x8a\x02p!", 4), "%s: the pong, with the ping's payload",
       how);
    out.len = 0;

    /* the client closes: our close answers with its code */
    n = frame(in, 1, COMET_WS_CLOSE, "\x03\xe8" "bye", 5, 1);
    rv = feed(ws, in, n, bytewise, &out);
    OK(rv == APR_EOF, "%s: a close from the client ends it", how);
    OK(close_code(&out) == 1000, "%s: a close frame back, code 1000 (%d)", how, close_code(&out));
    OK(comet_ws_closing(ws), "%s: closing", how);
    out.len = 0;
    n = frame(in, 1, COMET_WS_TEXT, "late", 4, 1);
    OK(feed(ws, in, n, bytewise, &out) == APR_EOF && ngot == 2 && out.len == 0,
       "%s: nothing read after the close", how);
    comet_ws_destroy(ws);

    /* an unmasked frame: a protocol error, 1002 */
    ws = endpoint();
    n = frame(in, 1, COMET_WS_TEXT, "x", 1, 0);
    rv = feed(ws, in, n, bytewise, &out);
    OK(rv == APR_EOF && close_code(&out) == 1002 && ngot == 0,
       "%s: unmasked frame: closed with 1002 (%d)", how, close_code(&out));
    out.len = 0;
    comet_ws_destroy(ws);

    /* invalid UTF-8 in a text message: 1007 */
    ws = endpoint();
    n = frame(in, 1, COMET_WS_TEXT, "a\xc0\xafz", 4, 1);
    rv = feed(ws, in, n, bytewise, &out);
    OK(rv == APR_EOF && close_code(&out) == 1007 && ngot == 0,
       "%s: invalid UTF-8: closed with 1007 (%d)", how, close_code(&out));
    out.len = 0;
    comet_ws_destroy(ws);

    /* a message over the limit: 1009, even in fragments */
    ws = endpoint();
    memset(in + 512, 'a', 100);
    n = frame(in, 0, COMET_WS_TEXT, in + 512, 40, 1);
    n += frame(in + n, 1, 0, in + 512, 40, 1);
    rv = feed(ws, in, n, bytewise, &out);
    OK(rv == APR_EOF && close_code(&out) == 1009 && ngot == 0,
       "%s: 80 bytes over a limit of 64: closed with 1009 (%d)", how, close_code(&out));
    out.len = 0;
    comet_ws_destroy(ws);

    /* a control frame in pieces (not allowed): 1002 */
    ws = endpoint();
    n = frame(in, 0, COMET_WS_PING, "p", 1, 1);
    rv = feed(ws, in, n, bytewise, &out);
    /* (wslay closes these without a code) */
    OK(rv == APR_EOF && (close_code(&out) == 1002 || close_code(&out) == 0),
       "%s: fragmented ping: closed (%d)", how, close_code(&out));
    out.len = 0;
    comet_ws_destroy(ws);

    /* the handler refuses a message: its code */
    ws = endpoint();
    refuse = COMET_WS_POLICY;
    n = frame(in, 1, COMET_WS_BINARY, "\x00\x01", 2, 1);
    n += frame(in + n, 1, COMET_WS_TEXT, "next", 4, 1);
    rv = feed(ws, in, n, bytewise, &out);
    OK(rv == APR_EOF && close_code(&out) == 1008 && ngot == 1 && got[0][0] == 'b',
       "%s: refused by the handler: closed with its code 1008, nothing after (%d, %d)", how,
       close_code(&out), ngot);
    out.len = 0;
    comet_ws_destroy(ws);
    comet_buf_free(&out);
}

/* permessage-deflate (RFC 7692): the offers taken, the RFC's own bytes both
 * ways, limits, broken data */
static void deflate_tests(void)
{
    /* RFC 7692, 7.2.3.1: "Hello" compressed, as a client sends it (RSV1) */
    static const char hello_z[] = "\xf2\x48\xcd\xc9\xc9\x07\x00";
    const char *want = "permessage-deflate; server_no_context_takeover; "
                       "client_no_context_takeover";
    comet_buf_t out = { 0 }, in = { 0 };
    char buf[4096], big[3000];
    apr_size_t n;
    comet_ws_t *ws;
    int i;

    IS_STR(comet_ws_deflate_answer("permessage-deflate"), want, "a bare offer: taken");
    IS_STR(comet_ws_deflate_answer("permessage-deflate; client_max_window_bits"), want,
           "Chrome's offer (client_max_window_bits): taken");
    IS_STR(comet_ws_deflate_answer("x-webkit-deflate-frame, PerMessage-Deflate ; "
                                   "client_max_window_bits=10;server_no_context_takeover"),
           want, "the second offer of two, any case, spaces, parameters");
    IS_STR(comet_ws_deflate_answer("permessage-deflate; server_max_window_bits=15"), want,
           "server_max_window_bits=15: what we use");
    OK(!comet_ws_deflate_answer("permessage-deflate; server_max_window_bits=10"),
       "a smaller server window: not taken (our frames are shared)");
    IS_STR(comet_ws_deflate_answer("permessage-deflate; server_max_window_bits=10, "
                                   "permessage-deflate"), want,
           "... the next offer then");
    OK(!comet_ws_deflate_answer("permessage-deflate; client_max_window_bits=7")
       && !comet_ws_deflate_answer("permessage-deflate; client_max_window_bits=08")
       && !comet_ws_deflate_answer("permessage-deflate; server_max_window_bits")
       && !comet_ws_deflate_answer("permessage-deflate; foo")
       && !comet_ws_deflate_answer("permessage-deflate; server_no_context_takeover; "
                                   "server_no_context_takeover")
       && !comet_ws_deflate_answer("permessage-deflate; client_no_context_takeover=1")
       && !comet_ws_deflate_answer("x-webkit-deflate-frame")
       && !comet_ws_deflate_answer(""),
       "bad values, unknown or repeated parameters, other extensions: not taken");

    /* the client's compressed message */
    ws = endpoint();
    comet_ws_set_deflate(ws);
    n = frame(buf, 1, COMET_WS_TEXT, hello_z, 7, 1);
    buf[0] |= 0x40;
    OK(comet_ws_feed(ws, buf, n, &out) == APR_SUCCESS && out.len == 0 && ngot == 1,
       "RFC 7692's compressed \"Hello\": one message");
    IS_STR(got[0], "tHello", "... inflated");
    /* fragmented: RSV1 on the first frame only (7.2.3.2's example) */
    n = frame(buf, 0, COMET_WS_TEXT, hello_z, 3, 1);
    buf[0] |= 0x40;
    n += frame(buf + n, 1, 0, hello_z + 3, 4, 1);
    OK(comet_ws_feed(ws, buf, n, &out) == APR_SUCCESS && ngot == 2, "... and in two fragments");
    IS_STR(got[1], "tHello", "... inflated as one");
    n = frame(buf, 1, COMET_WS_TEXT, "plain", 5, 1);
    OK(comet_ws_feed(ws, buf, n, &out) == APR_SUCCESS && ngot == 3, "an uncompressed one between");
    IS_STR(got[2], "tplain", "... as it is");
    /* more than the limit once inflated: 1009 */
    memset(big, 'a', sizeof(big));
    comet_ws_frame_deflate(&in, COMET_WS_TEXT, big, MAX + 1);
    OK((unsigned char)in.data[0] == 0xc1 && in.len < MAX, "%d bytes of 'a' compress to %d",
       MAX + 1, (int)in.len);
    n = frame(buf, 1, COMET_WS_TEXT, in.data + 2, in.len - 2, 1);
    buf[0] |= 0x40;
    OK(comet_ws_feed(ws, buf, n, &out) == APR_EOF && close_code(&out) == COMET_WS_TOO_BIG
       && ngot == 3, "... past the longest message once inflated: 1009, not handed on");
    comet_ws_destroy(ws);
    out.len = 0;
    /* not deflate data */
    ws = endpoint();
    comet_ws_set_deflate(ws);
    n = frame(buf, 1, COMET_WS_TEXT, "\xff\xff\xff\xff", 4, 1);
    buf[0] |= 0x40;
    OK(comet_ws_feed(ws, buf, n, &out) == APR_EOF && close_code(&out) == COMET_WS_BAD_DATA
       && ngot == 0, "RSV1 with broken deflate data: 1007");
    comet_ws_destroy(ws);
    out.len = 0;
    /* RSV1 where it was not negotiated: 1002 (wslay) */
    ws = endpoint();
    n = frame(buf, 1, COMET_WS_TEXT, hello_z, 7, 1);
    buf[0] |= 0x40;
    OK(comet_ws_feed(ws, buf, n, &out) == APR_EOF && close_code(&out) == 1002 && ngot == 0,
       "RSV1 without permessage-deflate: 1002");
    comet_ws_destroy(ws);
    out.len = 0;
    /* RSV1 on a control frame: 1002 even with it */
    ws = endpoint();
    comet_ws_set_deflate(ws);
    n = frame(buf, 1, COMET_WS_PING, "", 0, 1);
    buf[0] |= 0x40;
    OK(comet_ws_feed(ws, buf, n, &out) == APR_EOF && close_code(&out) == 1002,
       "RSV1 on a ping: 1002");
    comet_ws_destroy(ws);
    out.len = 0;

    /* the server's frames: short ones plain, others compressed if shorter */
    in.len = 0;
    comet_ws_frame_deflate(&in, COMET_WS_TEXT, "Hello", 5);
    OK(in.len == 7 && !memcmp(in.data, "\x81\x05Hello", 7),
       "under COMET_WS_DEFLATE_MIN: a plain frame");
    for (i = 0; i < (int)sizeof(big); i++) {
        static const char line[] = "{\"id\": 1, \"data\": \"news\"}\n";
        big[i] = line[i % (sizeof(line) - 1)];
    }
    in.len = 0;
    comet_ws_frame_deflate(&in, COMET_WS_TEXT, big, sizeof(big));
    OK((unsigned char)in.data[0] == 0xc1 && (unsigned char)in.data[1] < 126 && in.len < 200,
       "3000 repetitive bytes: RSV1, %d bytes", (int)in.len);
    /* back through a client endpoint's inflater: the same bytes (as a
     * client would, with the frame masked) */
    ws = NULL;
    ngot = 0;
    OK(comet_ws_create(&ws, sizeof(big), NULL, NULL) == APR_SUCCESS, "an endpoint for them");
    comet_ws_set_deflate(ws);
    n = frame(buf, 1, COMET_WS_TEXT, in.data + 2, in.len - 2, 1);
    buf[0] |= 0x40;
    OK(comet_ws_feed(ws, buf, n, &out) == APR_SUCCESS && out.len == 0,
       "... which inflate within the limit");
    comet_ws_destroy(ws);
    {
        char noise[256];
        for (i = 0; i < (int)sizeof(noise); i++) {
            noise[i] = (char)(0x21 + (i * 7919 + (i >> 3) * 104729) % 90);
        }
        in.len = 0;
        comet_ws_frame_deflate(&in, COMET_WS_TEXT, noise, sizeof(noise));
        OK((unsigned char)in.data[0] == 0xc1 ? in.len < sizeof(noise) + 4
           : in.len == sizeof(noise) + 4, "what does not shrink goes plain (%d bytes)",
           (int)in.len);
    }
    comet_ws_deflate_release();
    comet_buf_free(&in);
    comet_buf_free(&out);
}

int main(void)
{
    comet_buf_t out = { 0 };
    char accept[29];
    comet_ws_t *ws;

    run(0);
    run(1);

    /* RFC 6455, 1.3's example */
    comet_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", accept);
    IS_STR(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "Sec-WebSocket-Accept of the RFC's key");

    /* server frames: lengths 0, 125, 126, 65536 */
    OK(comet_ws_frame(&out, COMET_WS_TEXT, "", 0) == 0 && out.len == 2
       && !memcmp(out.data, "\x81\x00", 2), "empty text frame");
    out.len = 0;
    {
        char *big = calloc(1, 65536);
        comet_ws_frame(&out, COMET_WS_TEXT, big, 125);
        OK(out.len == 127 && (unsigned char)out.data[1] == 125, "125 bytes: 7-bit length");
        out.len = 0;
        comet_ws_frame(&out, COMET_WS_TEXT, big, 126);
        OK(out.len == 130 && (unsigned char)out.data[1] == 126 && out.data[2] == 0
           && (unsigned char)out.data[3] == 126, "126 bytes: 16-bit length");
        out.len = 0;
        comet_ws_frame(&out, COMET_WS_BINARY, big, 65536);
        OK(out.len == 65546 && (unsigned char)out.data[0] == 0x82
           && (unsigned char)out.data[1] == 127 && out.data[7] == 1 && out.data[8] == 0,
           "65536 bytes: 64-bit length");
        out.len = 0;
        free(big);
    }
    comet_ws_close_frame(&out, 3000, "Go away!");
    OK(out.len == 12 && !memcmp(out.data, "\x88\x0a\x0b\xb8Go away!", 12),
       "close frame 3000 \"Go away!\"");
    out.len = 0;

    /* our side closes: a close frame once, reading over */
    ws = endpoint();
    OK(comet_ws_close(ws, 1001, "bye", &out) == APR_SUCCESS && close_code(&out) == 1001,
       "comet_ws_close: close frame 1001");
    out.len = 0;
    OK(comet_ws_close(ws, 1001, "bye", &out) == APR_SUCCESS && out.len == 0,
       "... not twice");
    comet_ws_destroy(ws);
    /* hixie-76: the SockJS suite's keys, and the 16 bytes it expects */
    {
        apr_uint32_t k1 = 0, k2 = 0;
        OK(comet_ws_hixie_key("4 @1  46546xW%0l 1 5", &k1) == 0 && k1 == 829309203u,
           "hixie key 1: digits over spaces (%u)", k1);
        OK(comet_ws_hixie_key("12998 5 Y3 1  .P00", &k2) == 0 && k2 == 259970620u,
           "hixie key 2 (%u)", k2);
        OK(comet_ws_hixie_key("123", &k1) < 0 && comet_ws_hixie_key("1 2 3", &k1) < 0,
           "hixie keys without a space, or not a multiple: refused");
        ngot = 0;
        refuse = 0;
        OK(comet_ws_create_hixie(&ws, 829309203u, 259970620u, "\x00o\xff", 3, MAX,
                                 on_message, NULL) == APR_SUCCESS, "a hixie-76 endpoint");
        out.len = 0;
        OK(comet_ws_feed(ws, "aaaa", 4, &out) == APR_SUCCESS && out.len == 0,
           "half of the 8 bytes: nothing yet");
        OK(comet_ws_feed(ws, "aaaa\x00[\"x\"]\xff", 11, &out) == APR_SUCCESS && out.len == 19
           && !memcmp(out.data, "\xca" "4\x00\xd8\xa5\x08G\x97,\xd5qZ\xba\xbf" "C{", 16)
           && !memcmp(out.data + 16, "\x00o\xff", 3),
           "the rest: the suite's 16 bytes, then the greeting");
        IS_STR(got[0], "t[\"x\"]", "a frame right behind: its message");
        out.len = 0;
        OK(comet_ws_feed(ws, "\xff\x00", 2, &out) == APR_EOF && out.len == 2
           && !memcmp(out.data, "\xff\x00", 2), "0xFF 0x00: closed, answered");
        comet_ws_destroy(ws);
    }
    deflate_tests();
    comet_buf_free(&out);
    return UNIT_DONE();
}
