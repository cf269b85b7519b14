/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/* The framing of every transport (comet_transport.c). Input: a transport, an
 * end reason, a message id, then callback NUL channel NUL data. Checks:
 *  - every frame of a transport other than SSE is valid UTF-8, and a message
 *    adds no '<', '>', line break or quote of its own: the frame of
 *    (channel, data) has as many as the frame of a harmless message (a quote
 *    after an odd number of backslashes is escaped, not counted);
 *  - SSE: the data cannot start a field or end the event: one blank line,
 *    at the end, and every line is "id: ", "event: " or "data: ";
 *  - WebSocket transports: a message is one whole unmasked text frame (or
 *    one 0x00..0xFF frame of the 2010 draft) whose payload is valid UTF-8
 *    (with permessage-deflate: a frame with RSV1 set inflates, with zlib
 *    here, to such a payload)
 *    and, but for the raw one, adds no structural character either. */
#include <string.h>
#include <zlib.h>

#include "comet_transport.h"
#include "fuzz.h"

static const char *const structural = "<>\n\r\"";

static void count(const comet_buf_t *b, size_t start, size_t *n)
{
    size_t i;
    const char *k;

    for (k = structural; *k; k++) {
        n[k - structural] = 0;
    }
    for (i = start; i < b->len; i++) {
        const char *hit = memchr(structural, b->data[i], 5);
        if (hit && *hit == '"') {
            /* a quote counts unless escaped: after an odd number of '\' */
            size_t bs = 0;
            while (i - bs > start && b->data[i - bs - 1] == '\\') {
                bs++;
            }
            if (bs % 2) {
                continue;
            }
        }
        if (hit) {
            n[hit - structural]++;
        }
    }
}

/* A compressed payload (RFC 7692: the sync flush's tail stripped), inflated. */
static void ws_inflate(const char *in, size_t len, comet_buf_t *out)
{
    static const unsigned char tail[4] = { 0, 0, 0xff, 0xff };
    comet_buf_t all = { 0 };
    z_stream z;
    int rc;

    memset(&z, 0, sizeof(z));
    FUZZ_CHECK(inflateInit2(&z, -15) == Z_OK, "ws: inflateInit2");
    comet_buf_append(&all, in, len);
    comet_buf_append(&all, (const char *)tail, sizeof(tail));
    comet_buf_reserve(out, len * 1100 + 64);
    z.next_in = (Bytef *)all.data;
    z.avail_in = (uInt)all.len;
    z.next_out = (Bytef *)out->data;
    z.avail_out = (uInt)(len * 1100 + 64);
    rc = inflate(&z, Z_SYNC_FLUSH);
    FUZZ_CHECK(rc == Z_OK && z.avail_in == 0, "ws: RSV1 payload inflates");
    out->len = len * 1100 + 64 - z.avail_out;
    inflateEnd(&z);
    comet_buf_free(&all);
}

/* A WebSocket message: one frame; its payload in *p (of *n bytes), inflated
 * into scratch if compressed (only where deflate is negotiated). */
static void ws_payload(const comet_buf_t *b, int hixie, int deflate, comet_buf_t *scratch,
                       const char **p, size_t *n)
{
    const unsigned char *u = (const unsigned char *)b->data;
    size_t h = 2, len;

    if (hixie) {
        FUZZ_CHECK(b->len >= 2 && u[0] == 0x00 && u[b->len - 1] == 0xff, "hixie: 0x00 .. 0xFF");
        FUZZ_CHECK(!memchr(b->data + 1, 0xff, b->len - 2), "hixie: no 0xFF inside");
        *p = b->data + 1;
        *n = b->len - 2;
        return;
    }
    FUZZ_CHECK(b->len >= 2 && (u[0] == 0x81 || (deflate && u[0] == 0xc1)) && !(u[1] & 0x80),
               "ws: FIN, text, not masked (RSV1 only with deflate)");
    len = u[1] & 0x7f;
    if (len == 126) {
        FUZZ_CHECK(b->len >= 4, "ws: 16-bit length");
        len = ((size_t)u[2] << 8) | u[3];
        h = 4;
    }
    else if (len == 127) {
        size_t k;
        FUZZ_CHECK(b->len >= 10, "ws: 64-bit length");
        for (len = 0, k = 0; k < 8; k++) {
            len = (len << 8) | u[2 + k];
        }
        h = 10;
    }
    FUZZ_CHECK(b->len == h + len, "ws: one whole frame");
    *p = b->data + h;
    *n = len;
    if (u[0] == 0xc1) {
        scratch->len = 0;
        ws_inflate(b->data + h, len, scratch);
        FUZZ_CHECK(scratch->len > len, "ws: compressed only when shorter");
        *p = scratch->data;
        *n = scratch->len;
    }
}

static void check_sse(const comet_buf_t *b, size_t start)
{
    size_t i = start, line;

    FUZZ_CHECK(b->len >= start + 2 && b->data[b->len - 1] == '\n' && b->data[b->len - 2] == '\n',
               "sse: an event ends with a blank line");
    while (i < b->len - 1) {
        line = i;
        while (i < b->len && b->data[i] != '\n') {
            FUZZ_CHECK(b->data[i] != '\r', "sse: no CR inside a line");
            i++;
        }
        FUZZ_CHECK(i > line, "sse: no blank line before the end");
        FUZZ_CHECK(!strncmp(b->data + line, "id: ", 4) || !strncmp(b->data + line, "event: ", 7)
                   || !strncmp(b->data + line, "data: ", 6), "sse: a known field");
        i++;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const comet_transport_t *t;
    comet_stream_params_t p;
    comet_buf_t out = { 0 }, ref = { 0 };
    comet_frame_msg_t msgs[3];
    size_t nt = 0, got[5], want[5], k;
    const char *cb = "cb", *chan = "c", *msg = "x";
    size_t chan_len = 1, msg_len = 1;
    comet_id_t id = 0;
    int sse, ws, hixie, raw, deflate, why;

    while (comet_transports[nt]) {
        nt++;
    }
    if (size < 10) {
        return 0;
    }
    t = comet_transports[data[0] % nt];
    why = data[1] % 3;
    memcpy(&id, data + 2, sizeof(id));
    data += 10;
    size -= 10;
    {
        const uint8_t *z1 = memchr(data, 0, size), *z2 = z1 ? memchr(z1 + 1, 0, size - (size_t)(z1 + 1 - data)) : NULL;
        char *c = fuzz_strndup(data, size);
        if (z1 && z2) {
            /* the handler validated the callback and the channel */
            if (comet_callback_valid(c)) {
                cb = c;
            }
            if (comet_channel_valid(c + (z1 + 1 - data), (apr_size_t)(z2 - z1 - 1))) {
                chan = c + (z1 + 1 - data);
                chan_len = (size_t)(z2 - z1 - 1);
            }
            msg = c + (z2 + 1 - data);
            msg_len = size - (size_t)(z2 + 1 - data);
        }
        else {
            msg = c;
            msg_len = size;
        }
        sse = !strcmp(t->name, "sse");
        ws = !strncmp(t->name, "websocket", 9);
        hixie = !strcmp(t->name, "websocket-hixie76");
        raw = !strcmp(t->name, "websocket-raw");
        deflate = t == &comet_transport_websocket_deflate
                  || t == &comet_transport_sockjs_websocket_deflate
                  || t == &comet_transport_sockjs_rawws_deflate;
        memset(&p, 0, sizeof(p));
        p.callback = cb;
        p.heartbeat = 25000000;
        p.cursors = "{\"c\":1}";

        if (t->prelude) {
            FUZZ_CHECK(t->prelude(&out, &p) == 0, "prelude");
        }
        if (t->open) {
            FUZZ_CHECK(t->open(&out, &p) == 0, "open");
        }
        /* a message against a harmless one */
        FUZZ_CHECK(t->message(&ref, id, "c", 1, "x", 1) == 0, "message");
        count(&ref, 0, want);
        FUZZ_CHECK(t->message(&out, id, chan, chan_len, msg, msg_len) == 0, "message");
        if (sse) {
            comet_buf_t one = { 0 };
            t->message(&one, id, chan, chan_len, msg, msg_len);
            check_sse(&one, 0);
            comet_buf_free(&one);
        }
        else if (ws) {
            comet_buf_t one = { 0 }, pay = { 0 }, rpay = { 0 }, z1 = { 0 }, z2 = { 0 };
            const char *pp;
            size_t pn;
            t->message(&one, id, chan, chan_len, msg, msg_len);
            ws_payload(&one, hixie, deflate, &z1, &pp, &pn);
            FUZZ_CHECK(fuzz_utf8_valid((const unsigned char *)pp, pn), "ws: text is UTF-8");
            if (!raw) {
                comet_buf_append(&pay, pp, pn);
                ws_payload(&ref, hixie, deflate, &z2, &pp, &pn);
                comet_buf_append(&rpay, pp, pn);
                count(&pay, 0, got);
                count(&rpay, 0, want);
                for (k = 0; k < 5; k++) {
                    FUZZ_CHECK(got[k] == want[k], "ws: a message adds no structural character");
                }
            }
            comet_buf_free(&pay);
            comet_buf_free(&rpay);
            comet_buf_free(&one);
            comet_buf_free(&z1);
            comet_buf_free(&z2);
        }
        else {
            comet_buf_t one = { 0 };
            t->message(&one, id, chan, chan_len, msg, msg_len);
            count(&one, 0, got);
            for (k = 0; k < 5; k++) {
                FUZZ_CHECK(got[k] == want[k], "a message adds no structural character");
            }
            comet_buf_free(&one);
        }
        if (t->batch) {
            comet_buf_t one = { 0 };
            for (k = 0; k < 3; k++) {
                msgs[k].id = id + k;
                msgs[k].chan = "c";
                msgs[k].clen = 1;
                msgs[k].data = "x";
                msgs[k].len = 1;
            }
            ref.len = 0;
            FUZZ_CHECK(t->batch(&ref, &p, msgs, 3) == 0, "batch");
            count(&ref, 0, want);
            msgs[1].chan = chan;
            msgs[1].clen = chan_len;
            msgs[1].data = msg;
            msgs[1].len = msg_len;
            FUZZ_CHECK(t->batch(&one, &p, msgs, 3) == 0, "batch");
            count(&one, 0, got);
            for (k = 0; k < 5; k++) {
                FUZZ_CHECK(got[k] == want[k], "a batch's message adds no structural character");
            }
            comet_buf_append(&out, one.data, one.len);
            comet_buf_free(&one);
        }
        if (t->heartbeat) {
            FUZZ_CHECK(t->heartbeat(&out, &p) == 0, "heartbeat");
        }
        if (t->close) {
            FUZZ_CHECK(t->close(&out, &p, COMET_SOCKJS_GO_AWAY, strlen(COMET_SOCKJS_GO_AWAY)) == 0,
                       "close");
        }
        if (t->end) {
            FUZZ_CHECK(t->end(&out, &p, (comet_end_t)why) == 0, "end");
        }
        if (!sse && !ws) {
            FUZZ_CHECK(fuzz_utf8_valid((const unsigned char *)out.data, out.len),
                       "every frame is valid UTF-8");
        }
        free(c);
    }
    comet_buf_free(&out);
    comet_buf_free(&ref);
    return 0;
}
