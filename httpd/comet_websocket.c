/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/* The WebSocket handshake; see comet_websocket.h. */

#include <apr_lib.h>
#include <apr_strings.h>

#include <http_core.h>
#include <http_protocol.h>
#include <http_request.h>

#include "comet_websocket.h"
#include "comet_config.h"
#include "comet_takeover.h"
#include "comet_ws.h"

/* Does a comma-separated header value hold `token` (any case)? */
static int header_has(request_rec *r, const char *name, const char *token)
{
    const char *v = apr_table_get(r->headers_in, name);

    return v && ap_find_token(r->pool, v, token);
}

int comet_websocket_asked(request_rec *r)
{
    return header_has(r, "Upgrade", "websocket");
}

/* A key is 16 random bytes in base64: 22 characters and "==". */
static int key_valid(const char *key)
{
    apr_size_t i;

    if (!key || strlen(key) != 24 || strcmp(key + 22, "==")) {
        return 0;
    }
    for (i = 0; i < 22; i++) {
        if (!apr_isalnum(key[i]) && key[i] != '+' && key[i] != '/') {
            return 0;
        }
    }
    return 1;
}

int comet_websocket_hixie(request_rec *r, apr_uint32_t keys[2])
{
    const char *k1 = apr_table_get(r->headers_in, "Sec-WebSocket-Key1");
    const char *k2 = apr_table_get(r->headers_in, "Sec-WebSocket-Key2");

    return !apr_table_get(r->headers_in, "Sec-WebSocket-Version") && k1 && k2
           && comet_ws_hixie_key(k1, &keys[0]) == 0 && comet_ws_hixie_key(k2, &keys[1]) == 0;
}

int comet_websocket_check(request_rec *r, int stream_mode, int hixie, const char **why)
{
    const char *version = apr_table_get(r->headers_in, "Sec-WebSocket-Version");
    apr_uint32_t keys[2];

    if (r->method_number != M_GET) {
        *why = "WebSocket: GET only";
        return HTTP_METHOD_NOT_ALLOWED;
    }
    if (!comet_websocket_asked(r)) {
        *why = "Can \"Upgrade\" only to \"WebSocket\".";
        return HTTP_BAD_REQUEST;
    }
    if (!header_has(r, "Connection", "upgrade")) {
        *why = "\"Connection\" must be \"Upgrade\".";
        return HTTP_BAD_REQUEST;
    }
    if (r->proto_num < HTTP_VERSION(1, 1)) {
        *why = "Not a valid websocket request: HTTP/1.1 needed";
        return HTTP_BAD_REQUEST;
    }
    if (hixie && comet_websocket_hixie(r, keys)) {
        /* the draft of 2010: its keys checked, its handshake ends later */
    }
    else if (!version || strcmp(version, "13")) {
        /* RFC 6455, 4.4: the versions we speak */
        apr_table_setn(r->err_headers_out, "Sec-WebSocket-Version", "13");
        *why = "Unsupported WebSocket version: 13 only";
        return HTTP_UPGRADE_REQUIRED;
    }
    else if (!key_valid(apr_table_get(r->headers_in, "Sec-WebSocket-Key"))) {
        *why = "Not a valid websocket request: bad Sec-WebSocket-Key";
        return HTTP_BAD_REQUEST;
    }
    /* the loop reads the client's frames: a thread holding the stream
     * could only write */
    if (stream_mode != COMET_MODE_AUTO || !comet_takeover_possible(r)) {
        *why = "WebSocket needs the event loop (HTTP/1.1, CometStreamMode auto, "
               "no output filter rewriting the response)";
        return HTTP_NOT_IMPLEMENTED;
    }
    return OK;
}

const char *comet_websocket_deflate(request_rec *r, int enabled)
{
    const char *offer = apr_table_get(r->headers_in, "Sec-WebSocket-Extensions");
    const char *answer = enabled && offer ? comet_ws_deflate_answer(offer) : NULL;

    if (offer) {
        ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r, "websocket extensions offered: %s; %s",
                      offer, answer ? "permessage-deflate taken"
                                    : enabled ? "none taken" : "CometWebSocketCompression Off");
    }
    return answer;
}

int comet_websocket_upgrade(request_rec *r, int hixie, const char *extensions)
{
    conn_rec *c = r->connection;
    char accept[29];
    ap_filter_t *f, *next;

    apr_table_clear(r->headers_out);
    r->status = HTTP_SWITCHING_PROTOCOLS;
    if (hixie) {
        /* the draft of 2010: where and for whom, its own status line */
        const char *origin = apr_table_get(r->headers_in, "Origin");
        const char *host = apr_table_get(r->headers_in, "Host");
        apr_table_setn(r->headers_out, "Upgrade", "WebSocket");
        apr_table_setn(r->headers_out, "Connection", "Upgrade");
        if (origin) {
            apr_table_setn(r->headers_out, "Sec-WebSocket-Origin", origin);
        }
        apr_table_setn(r->headers_out, "Sec-WebSocket-Location",
                       apr_pstrcat(r->pool, ap_http_scheme(r)[4] == 's' ? "wss://" : "ws://",
                                   host ? host : r->server->server_hostname,
                                   r->unparsed_uri, NULL));
        r->status_line = "101 WebSocket Protocol Handshake";
    }
    else {
        comet_ws_accept_key(apr_table_get(r->headers_in, "Sec-WebSocket-Key"), accept);
        apr_table_setn(r->headers_out, "Upgrade", "websocket");
        apr_table_setn(r->headers_out, "Connection", "Upgrade");
        apr_table_setn(r->headers_out, "Sec-WebSocket-Accept", apr_pstrdup(r->pool, accept));
        if (extensions) {
            apr_table_setn(r->headers_out, "Sec-WebSocket-Extensions", extensions);
        }
        r->status_line = ap_get_status_line(r->status);
    }
    ap_send_interim_response(r, 1);
    if (c->aborted) {
        return -1;
    }
    /* what follows is frames: no HTTP response header, no chunks */
    for (f = r->output_filters; f; f = next) {
        next = f->next;
        if (!strcasecmp(f->frec->name, "http_header")) {
            ap_remove_output_filter(f);
        }
    }
    r->chunked = 0;
    r->sent_bodyct = 1;
    ap_remove_input_filter_byhandle(c->input_filters, "reqtimeout");
    c->keepalive = AP_CONN_CLOSE;
    apr_table_setn(r->subprocess_env, "no-gzip", "1");
    apr_table_setn(r->subprocess_env, "no-brotli", "1");
    return OK;
}
