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
 */

#include <string.h>

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

static void ws_on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                      void *user_data)
{
    comet_ws_t *ws = user_data;
    int code;

    if ((arg->opcode != WSLAY_TEXT_FRAME && arg->opcode != WSLAY_BINARY_FRAME)
        || !wslay_event_get_read_enabled(ctx)) {
        return;                   /* ping, pong, close: wslay answers; or over */
    }
    if (arg->opcode == WSLAY_TEXT_FRAME
        && !comet_json_utf8_valid((const char *)arg->msg, arg->msg_length)) {
        ws_fail(ws, COMET_WS_BAD_DATA, "invalid UTF-8");
        return;
    }
    if (!ws->on_message) {
        return;
    }
    code = ws->on_message(ws->baton, arg->opcode, (const char *)arg->msg, arg->msg_length);
    if (code) {
        ws_fail(ws, code, "");
    }
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
    wslay_event_config_set_max_recv_msg_length(ws->ctx, ws->max_message);
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
    unsigned char h[10];
    apr_size_t n = 2;
    int i;

    h[0] = (unsigned char)(0x80 | (opcode & 0x0f));
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
    if (comet_buf_append(out, (const char *)h, n) < 0
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
