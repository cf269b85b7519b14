/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/*
 * WebSocket endpoints over wslay; see comet_ws.h.
 *
 *   comet_ws_feed(bytes) -> wslay_event_recv -> recv_cb (hands out `bytes`)
 *                                           -> on_msg (callback, replies)
 *                        -> wslay_event_send -> send_cb (appends to `out`)
 *
 * wslay does the reading of frames: unmasking (a client's frame must be
 * masked), fragments put back together, control frames between them, a
 * pong for each ping, the close handshake, the longest message. What it
 * leaves to us: text must be UTF-8 (1007), and what a message means.
 *
 * permessage-deflate (RFC 7692): wslay lets RSV1 through on data frames
 * once negotiated; the message is inflated here, by the thread's one
 * decompressor (no context takeover: each message stands alone).
 */

#include <ctype.h>
#include <string.h>
#include <zlib.h>

#include <openssl/evp.h>
#include <wslay/wslay.h>

#include "comet_json.h"
#include "comet_ws.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
/* RFC 6455, 5.5: a control frame's payload is at most 125 bytes */
#define REASON_MAX 123

/* hixie-76's state: the handshake's end, then frames */
typedef struct {
    apr_uint32_t key1, key2;
    unsigned char key3[8];
    apr_size_t key3_len;
    char *greeting;                   /* sent after the handshake's 16 bytes */
    apr_size_t glen, max;
    comet_buf_t msg;                  /* the frame being read */
    unsigned in_frame:1, saw_ff:1, closed:1, peer_closed:1;
} hixie_t;

struct comet_ws_t {
    /* made at the client's first bytes: many subscribers never send any,
     * and a context holds some 9 KB (its input buffer among them) */
    wslay_event_context_ptr ctx;
    apr_size_t max_message;
    int closed_early;                 /* our close went before there was a ctx */
    hixie_t *hx;                      /* or the draft of 2010 */
    comet_ws_message_fn *on_message;
    void *baton;
    int deflate;                      /* permessage-deflate negotiated */
    /* during comet_ws_feed: the bytes wslay has not taken yet, and where
     * its replies go */
    const char *in;
    apr_size_t in_len;
    comet_buf_t *out;
    int oom;
};

static ssize_t ws_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                       void *user_data)
{
    comet_ws_t *ws = user_data;
    apr_size_t n = ws->in_len < len ? ws->in_len : len;

    if (n == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    memcpy(buf, ws->in, n);
    ws->in += n;
    ws->in_len -= n;
    return (ssize_t)n;
}

/* Always takes everything, so that wslay never leaves half a frame. */
static ssize_t ws_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
                       int flags, void *user_data)
{
    comet_ws_t *ws = user_data;

    if (!ws->out || comet_buf_append(ws->out, (const char *)data, len) < 0) {
        ws->oom = 1;
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

/* Our side ends the connection: a close frame, and no more reading. */
static void ws_fail(comet_ws_t *ws, int code, const char *reason)
{
    wslay_event_queue_close(ws->ctx, (uint16_t)code, (const uint8_t *)reason, strlen(reason));
    wslay_event_shutdown_read(ws->ctx);
}

/*******************************************************************************
 * permessage-deflate
 ******************************************************************************/

/* The thread's (de)compressor: the loop's thread uses them, for each
 * message in turn (no context takeover), so one of each is enough. */
static __thread z_stream *tl_deflate, *tl_inflate;

/* The 4 bytes a sync flush ends with, which the sender strips (RFC 7692, 7.2.1). */
static const unsigned char DEFLATE_TAIL[4] = { 0x00, 0x00, 0xff, 0xff };

/* Inflate a message into out, up to max bytes.
 * @return 0, COMET_WS_TOO_BIG, COMET_WS_BAD_DATA, or COMET_WS_SERVER_ERROR */
static int ws_inflate(const char *data, apr_size_t len, apr_size_t max, comet_buf_t *out)
{
    z_stream *z = tl_inflate;
    int pass, zrv = Z_OK;

    if (!z) {
        if (!(z = calloc(1, sizeof(*z)))) {
            return COMET_WS_SERVER_ERROR;
        }
        if (inflateInit2(z, -15) != Z_OK) {
            free(z);
            return COMET_WS_SERVER_ERROR;
        }
        tl_inflate = z;
    }
    else if (inflateReset(z) != Z_OK) {
        return COMET_WS_SERVER_ERROR;
    }
    /* the message, then the tail its sender stripped */
    for (pass = 0; pass < 2; pass++) {
        z->next_in = (Bytef *)(pass ? DEFLATE_TAIL : (const unsigned char *)data);
        z->avail_in = pass ? sizeof(DEFLATE_TAIL) : (uInt)len;
        do {
            apr_size_t room = out->len + 4096 > max + 1 ? max + 1 - out->len : 4096;
            if (room == 0) {
                return COMET_WS_TOO_BIG;
            }
            if (comet_buf_reserve(out, room) < 0) {
                return COMET_WS_SERVER_ERROR;
            }
            z->next_out = (Bytef *)out->data + out->len;
            z->avail_out = (uInt)room;
            zrv = inflate(z, Z_SYNC_FLUSH);
            out->len += room - z->avail_out;
            if (out->len > max) {
                return COMET_WS_TOO_BIG;
            }
            if (zrv == Z_STREAM_END && (z->avail_in || !pass)) {
                /* a final block: the tail would follow nothing */
                return pass || z->avail_in ? COMET_WS_BAD_DATA : 0;
            }
            if (zrv != Z_OK && zrv != Z_BUF_ERROR && zrv != Z_STREAM_END) {
                return zrv == Z_MEM_ERROR ? COMET_WS_SERVER_ERROR : COMET_WS_BAD_DATA;
            }
            if (zrv == Z_BUF_ERROR && z->avail_out) {
                break;                /* no progress possible: all was read */
            }
        } while (z->avail_in || z->avail_out == 0);
    }
    return 0;
}

/* Is s (n bytes) a window size of the RFC: 8..15, no leading zero? */
static int window_bits_valid(const char *s, apr_size_t n)
{
    return (n == 1 && s[0] >= '8' && s[0] <= '9')
           || (n == 2 && s[0] == '1' && s[1] >= '0' && s[1] <= '5');
}

/* One offer, "permessage-deflate; p1; p2=v" (n bytes). @return 1 if taken */
static int deflate_offer_ok(const char *s, apr_size_t n)
{
    const char *end = s + n;
    unsigned seen = 0;
    int first = 1;

    while (s < end) {
        const char *p = s, *semi = memchr(s, ';', (apr_size_t)(end - s)), *eq;
        const char *pe = semi ? semi : end, *v = NULL, *ve = NULL;
        unsigned bit;

        s = semi ? semi + 1 : end;
        while (p < pe && (*p == ' ' || *p == '\t')) p++;
        while (pe > p && (pe[-1] == ' ' || pe[-1] == '\t')) pe--;
        if (first) {
            if ((apr_size_t)(pe - p) != 18 || strncasecmp(p, "permessage-deflate", 18)) {
                return 0;
            }
            first = 0;
            continue;
        }
        if ((eq = memchr(p, '=', (apr_size_t)(pe - p))) != NULL) {
            v = eq + 1;
            ve = pe;
            pe = eq;
            while (pe > p && (pe[-1] == ' ' || pe[-1] == '\t')) pe--;
            while (v < ve && (*v == ' ' || *v == '\t')) v++;
            if (ve - v >= 2 && *v == '"' && ve[-1] == '"') {
                v++;
                ve--;
            }
        }
#define PARAM(name) ((apr_size_t)(pe - p) == sizeof(name) - 1 && !strncasecmp(p, name, sizeof(name) - 1))
        if (PARAM("server_no_context_takeover") && !v) {
            bit = 1;
        }
        else if (PARAM("client_no_context_takeover") && !v) {
            bit = 2;
        }
        else if (PARAM("server_max_window_bits") && v
                 && window_bits_valid(v, (apr_size_t)(ve - v))) {
            /* a smaller window for our frames than the others get: no */
            if ((apr_size_t)(ve - v) != 2 || v[1] != '5') {
                return 0;
            }
            bit = 4;
        }
        else if (PARAM("client_max_window_bits")
                 && (!v || window_bits_valid(v, (apr_size_t)(ve - v)))) {
            bit = 8;                  /* any window: we inflate with the largest */
        }
        else {
            return 0;
        }
#undef PARAM
        if (seen & bit) {
            return 0;
        }
        seen |= bit;
    }
    return !first;
}

const char *comet_ws_deflate_answer(const char *extensions)
{
    const char *s = extensions;

    while (s && *s) {
        const char *comma = strchr(s, ',');
        apr_size_t n = comma ? (apr_size_t)(comma - s) : strlen(s);
        if (deflate_offer_ok(s, n)) {
            /* (server_max_window_bits=15 asked for is what we use) */
            return "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
        }
        s = comma ? comma + 1 : NULL;
    }
    return NULL;
}

void comet_ws_set_deflate(comet_ws_t *ws)
{
    ws->deflate = 1;
}

/* Append a frame's header: the first byte as given, then the length. */
static int frame_head(comet_buf_t *out, unsigned char b0, apr_size_t len)
{
    unsigned char h[10];
    apr_size_t n = 2;
    int i;

    h[0] = b0;
    if (len < 126) {
        h[1] = (unsigned char)len;
    }
    else if (len <= 0xffff) {
        h[1] = 126;
        h[2] = (unsigned char)(len >> 8);
        h[3] = (unsigned char)len;
        n = 4;
    }
    else {
        h[1] = 127;
        for (i = 0; i < 8; i++) {
            h[2 + i] = (unsigned char)((apr_uint64_t)len >> (56 - 8 * i));
        }
        n = 10;
    }
    return comet_buf_append(out, (const char *)h, n);
}

int comet_ws_frame_deflate(comet_buf_t *out, int opcode, const char *data, apr_size_t len)
{
    z_stream *z = tl_deflate;
    unsigned char *buf;
    apr_size_t cap, clen;
    int rc;

    if (len < COMET_WS_DEFLATE_MIN || len > (apr_size_t)UINT_MAX / 2) {
        return comet_ws_frame(out, opcode, data, len);
    }
    if (!z) {
        if (!(z = calloc(1, sizeof(*z)))) {
            return -1;
        }
        if (deflateInit2(z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
            free(z);
            return -1;
        }
        tl_deflate = z;
    }
    else if (deflateReset(z) != Z_OK) {
        return -1;
    }
    /* a sync flush of what deflateBound allows, and its empty block */
    cap = deflateBound(z, (uLong)len) + 16;
    if (!(buf = malloc(cap))) {
        return -1;
    }
    z->next_in = (Bytef *)data;
    z->avail_in = (uInt)len;
    z->next_out = buf;
    z->avail_out = (uInt)cap;
    rc = deflate(z, Z_SYNC_FLUSH);
    clen = cap - z->avail_out;
    if (rc != Z_OK || z->avail_in || clen < 4 || memcmp(buf + clen - 4, DEFLATE_TAIL, 4)) {
        free(buf);
        return rc == Z_MEM_ERROR ? -1 : comet_ws_frame(out, opcode, data, len);
    }
    clen -= 4;
    if (clen >= len) {
        rc = comet_ws_frame(out, opcode, data, len);     /* it did not pay */
    }
    else {
        rc = frame_head(out, (unsigned char)(0xc0 | (opcode & 0x0f)), clen) < 0
             || comet_buf_append(out, (const char *)buf, clen) < 0 ? -1 : 0;
    }
    free(buf);
    return rc;
}

void comet_ws_deflate_release(void)
{
    if (tl_deflate) {
        deflateEnd(tl_deflate);
        free(tl_deflate);
        tl_deflate = NULL;
    }
    if (tl_inflate) {
        inflateEnd(tl_inflate);
        free(tl_inflate);
        tl_inflate = NULL;
    }
}

/*******************************************************************************
 * RFC 6455
 ******************************************************************************/

static void ws_on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                      void *user_data)
{
    comet_ws_t *ws = user_data;
    int code;
    comet_buf_t plain = { 0 };
    const char *msg = (const char *)arg->msg;
    apr_size_t len = arg->msg_length;

    if ((arg->opcode != WSLAY_TEXT_FRAME && arg->opcode != WSLAY_BINARY_FRAME)
        || !wslay_event_get_read_enabled(ctx)) {
        return;                   /* ping, pong, close: wslay answers; or over */
    }
    if (wslay_get_rsv1(arg->rsv)) {
        code = ws_inflate(msg, len, ws->max_message, &plain);
        if (code) {
            comet_buf_free(&plain);
            ws_fail(ws, code, code == COMET_WS_TOO_BIG ? "message too big" : "bad deflate data");
            return;
        }
        msg = plain.data ? plain.data : "";
        len = plain.len;
    }
    if (arg->opcode == WSLAY_TEXT_FRAME && !comet_json_utf8_valid(msg, len)) {
        ws_fail(ws, COMET_WS_BAD_DATA, "invalid UTF-8");
    }
    else if (ws->on_message && (code = ws->on_message(ws->baton, arg->opcode, msg, len)) != 0) {
        ws_fail(ws, code, "");
    }
    comet_buf_free(&plain);
}

apr_status_t comet_ws_create(comet_ws_t **wsp, apr_size_t max_message,
                             comet_ws_message_fn *on_message, void *baton)
{
    comet_ws_t *ws = calloc(1, sizeof(*ws));

    if (!ws) {
        return APR_ENOMEM;
    }
    ws->max_message = max_message ? max_message : 1;
    ws->on_message = on_message;
    ws->baton = baton;
    *wsp = ws;
    return APR_SUCCESS;
}

/* wslay's context, at the first need. @return 0 or -1 (no memory) */
static int ws_ctx(comet_ws_t *ws)
{
    struct wslay_event_callbacks cb;

    if (ws->ctx) {
        return 0;
    }
    memset(&cb, 0, sizeof(cb));
    cb.recv_callback = ws_recv;
    cb.send_callback = ws_send;
    cb.on_msg_recv_callback = ws_on_msg;
    if (wslay_event_context_server_init(&ws->ctx, &cb, ws) != 0) {
        ws->ctx = NULL;
        return -1;
    }
    /* compressed: the inflated length is checked too (ws_inflate) */
    wslay_event_config_set_max_recv_msg_length(ws->ctx, ws->max_message);
    if (ws->deflate) {
        wslay_event_config_set_allowed_rsv_bits(ws->ctx, WSLAY_RSV1_BIT);
    }
    return 0;
}

void comet_ws_destroy(comet_ws_t *ws)
{
    if (ws) {
        if (ws->hx) {
            comet_buf_free(&ws->hx->msg);
            free(ws->hx->greeting);
            free(ws->hx);
        }
        if (ws->ctx) {
            wslay_event_context_free(ws->ctx);
        }
        free(ws);
    }
}

/*******************************************************************************
 * hixie-76
 ******************************************************************************/

apr_status_t comet_ws_create_hixie(comet_ws_t **wsp, apr_uint32_t key1, apr_uint32_t key2,
                                   const char *greeting, apr_size_t glen,
                                   apr_size_t max_message,
                                   comet_ws_message_fn *on_message, void *baton)
{
    comet_ws_t *ws = calloc(1, sizeof(*ws));
    hixie_t *hx = calloc(1, sizeof(*hx));

    if (!ws || !hx || (glen && !(hx->greeting = malloc(glen)))) {
        free(hx);
        free(ws);
        return APR_ENOMEM;
    }
    if (glen) {
        memcpy(hx->greeting, greeting, glen);
    }
    hx->glen = glen;
    hx->key1 = key1;
    hx->key2 = key2;
    hx->max = max_message;
    ws->hx = hx;
    ws->on_message = on_message;
    ws->baton = baton;
    *wsp = ws;
    return APR_SUCCESS;
}

int comet_ws_hixie_key(const char *key, apr_uint32_t *n)
{
    apr_uint64_t digits = 0;
    apr_uint32_t spaces = 0;

    for (; *key; key++) {
        if (*key >= '0' && *key <= '9') {
            digits = digits * 10 + (apr_uint64_t)(*key - '0');
            if (digits > 0xffffffffULL * 10) {
                return -1;
            }
        }
        else if (*key == ' ') {
            spaces++;
        }
    }
    if (!spaces || digits % spaces || digits / spaces > 0xffffffffULL) {
        return -1;
    }
    *n = (apr_uint32_t)(digits / spaces);
    return 0;
}

int comet_ws_hixie_frame(comet_buf_t *out, const char *data, apr_size_t len)
{
    return comet_buf_append(out, "\x00", 1) < 0 || comet_buf_append(out, data, len) < 0
           || comet_buf_append(out, "\xff", 1) < 0 ? -1 : 0;
}

/* The end of the handshake: MD5 of both keys' numbers (big-endian) and the
 * 8 bytes the client sent after its request; then the greeting. */
static int hixie_answer(hixie_t *hx, comet_buf_t *out)
{
    unsigned char in[16], md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    int i;

    for (i = 0; i < 4; i++) {
        in[i] = (unsigned char)(hx->key1 >> (24 - 8 * i));
        in[4 + i] = (unsigned char)(hx->key2 >> (24 - 8 * i));
    }
    memcpy(in + 8, hx->key3, 8);
    EVP_Digest(in, sizeof(in), md, &n, EVP_md5(), NULL);
    return comet_buf_append(out, (const char *)md, n) < 0
           || (hx->glen && comet_buf_append(out, hx->greeting, hx->glen) < 0) ? -1 : 0;
}

/* One byte of a frame. @return 0, 1 (the connection is over), -1 (memory) */
static int hixie_byte(comet_ws_t *ws, unsigned char c, comet_buf_t *out)
{
    hixie_t *hx = ws->hx;

    if (hx->in_frame) {
        if (c != 0xff) {
            if (hx->msg.len >= hx->max) {
                hx->closed = 1;       /* too long: no code to say so in this draft */
                return comet_buf_append(out, "\xff\x00", 2) < 0 ? -1 : 1;
            }
            return comet_buf_append(&hx->msg, (const char *)&c, 1) < 0 ? -1 : 0;
        }
        hx->in_frame = 0;
        if (!comet_json_utf8_valid(hx->msg.data, hx->msg.len)
            || (ws->on_message && ws->on_message(ws->baton, COMET_WS_TEXT, hx->msg.data,
                                                 hx->msg.len))) {
            hx->closed = 1;
            return comet_buf_append(out, "\xff\x00", 2) < 0 ? -1 : 1;
        }
        return 0;
    }
    if (c == 0xff && !hx->saw_ff) {
        hx->saw_ff = 1;
        return 0;
    }
    if (hx->saw_ff || c != 0x00) {
        /* 0xFF 0x00: the client closes (answered); anything else is not
         * a text frame: the end either way */
        hx->closed = 1;
        hx->peer_closed = hx->saw_ff && c == 0x00;
        return comet_buf_append(out, "\xff\x00", 2) < 0 ? -1 : 1;
    }
    hx->in_frame = 1;
    hx->msg.len = 0;
    return 0;
}

static apr_status_t hixie_feed(comet_ws_t *ws, const unsigned char *data, apr_size_t len,
                               comet_buf_t *out)
{
    hixie_t *hx = ws->hx;
    apr_size_t i = 0;

    if (hx->closed) {
        return APR_EOF;
    }
    if (hx->key3_len < 8) {
        while (hx->key3_len < 8 && i < len) {
            hx->key3[hx->key3_len++] = data[i++];
        }
        if (hx->key3_len == 8 && hixie_answer(hx, out) < 0) {
            return APR_ENOMEM;
        }
    }
    for (; i < len; i++) {
        int rc = hixie_byte(ws, data[i], out);
        if (rc < 0) {
            return APR_ENOMEM;
        }
        if (rc > 0) {
            return APR_EOF;
        }
    }
    return APR_SUCCESS;
}

/* What wslay wants to send, into out. */
static apr_status_t ws_flush(comet_ws_t *ws, comet_buf_t *out)
{
    ws->out = out;
    if (wslay_event_want_write(ws->ctx) && wslay_event_send(ws->ctx) != 0 && ws->oom) {
        ws->out = NULL;
        return APR_ENOMEM;
    }
    ws->out = NULL;
    return APR_SUCCESS;
}

apr_status_t comet_ws_feed(comet_ws_t *ws, const char *data, apr_size_t len,
                           comet_buf_t *out)
{
    apr_status_t rv;
    int rc = 0;

    if (ws->hx) {
        return hixie_feed(ws, (const unsigned char *)data, len, out);
    }
    if (ws->closed_early) {
        return APR_EOF;               /* what comes after our close: its answer */
    }
    if (ws_ctx(ws) < 0) {
        return APR_ENOMEM;
    }
    if (wslay_event_get_read_enabled(ws->ctx)) {
        ws->in = data;
        ws->in_len = len;
        ws->out = out;
        /* each call reads until recv_cb has nothing more to give */
        while (ws->in_len && wslay_event_want_read(ws->ctx) && rc == 0) {
            rc = wslay_event_recv(ws->ctx);
        }
        ws->in = NULL;
        ws->in_len = 0;
        if (rc != 0 && ws->oom) {
            return APR_ENOMEM;
        }
        if (rc != 0) {
            /* broken framing (unmasked, reserved bits, bad opcode...):
             * wslay queued no close of its own for these */
            if (!wslay_event_get_close_sent(ws->ctx)) {
                ws_fail(ws, rc == WSLAY_ERR_PROTO ? 1002 : COMET_WS_SERVER_ERROR, "");
            }
            wslay_event_shutdown_read(ws->ctx);
        }
    }
    if ((rv = ws_flush(ws, out)) != APR_SUCCESS) {
        return rv;
    }
    return comet_ws_closing(ws) || !wslay_event_get_read_enabled(ws->ctx)
           ? APR_EOF : APR_SUCCESS;
}

apr_status_t comet_ws_close(comet_ws_t *ws, int code, const char *reason, comet_buf_t *out)
{
    if (ws->hx) {
        if (!ws->hx->closed) {
            ws->hx->closed = 1;
            return comet_buf_append(out, "\xff\x00", 2) < 0 ? APR_ENOMEM : APR_SUCCESS;
        }
        return APR_SUCCESS;
    }
    if (!ws->ctx) {
        if (!ws->closed_early) {
            ws->closed_early = 1;
            return comet_ws_close_frame(out, code, reason) < 0 ? APR_ENOMEM : APR_SUCCESS;
        }
        return APR_SUCCESS;
    }
    if (!wslay_event_get_close_sent(ws->ctx)) {
        apr_size_t n = strlen(reason);
        wslay_event_queue_close(ws->ctx, (uint16_t)code, (const uint8_t *)reason,
                                n > REASON_MAX ? REASON_MAX : n);
    }
    wslay_event_shutdown_read(ws->ctx);
    return ws_flush(ws, out);
}

int comet_ws_peer_closed(const comet_ws_t *ws)
{
    return ws->hx ? ws->hx->peer_closed : ws->ctx ? wslay_event_get_close_received(ws->ctx) : 0;
}

int comet_ws_closing(const comet_ws_t *ws)
{
    if (ws->hx) {
        return ws->hx->closed;
    }
    if (!ws->ctx) {
        return ws->closed_early;
    }
    return wslay_event_get_close_sent(ws->ctx) || wslay_event_get_close_received(ws->ctx);
}

int comet_ws_frame(comet_buf_t *out, int opcode, const char *data, apr_size_t len)
{
    if (frame_head(out, (unsigned char)(0x80 | (opcode & 0x0f)), len) < 0
        || (len && comet_buf_append(out, data, len) < 0)) {
        return -1;
    }
    return 0;
}

int comet_ws_close_frame(comet_buf_t *out, int code, const char *reason)
{
    char p[2 + REASON_MAX];
    apr_size_t n = 0;

    if (code) {
        apr_size_t r = strlen(reason);
        if (r > REASON_MAX) {
            r = REASON_MAX;
        }
        p[0] = (char)((code >> 8) & 0xff);
        p[1] = (char)(code & 0xff);
        memcpy(p + 2, reason, r);
        n = 2 + r;
    }
    return comet_ws_frame(out, COMET_WS_CLOSE, p, n);
}

void comet_ws_accept_key(const char *key, char accept[29])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    char buf[128 + sizeof(WS_GUID)];
    apr_size_t n = strlen(key);
    unsigned int mdlen = 0;

    /* a key is 24 characters (16 bytes in base64): the handler checks */
    if (n > 128) {
        n = 128;
    }
    memcpy(buf, key, n);
    memcpy(buf + n, WS_GUID, sizeof(WS_GUID) - 1);
    EVP_Digest(buf, n + sizeof(WS_GUID) - 1, md, &mdlen, EVP_sha1(), NULL);
    EVP_EncodeBlock((unsigned char *)accept, md, (int)mdlen);
}
