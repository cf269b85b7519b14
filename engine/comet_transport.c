/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/* Framing of each transport; see comet_transport.h. */

#include <string.h>

#include <apr_strings.h>

#include "comet_json.h"
#include "comet_transport.h"
#include "comet_ws.h"

/* {"heartbeat": <ms>, "cursors": {...}}: what a channel stream opens with. */
static int open_object(comet_buf_t *out, const comet_stream_params_t *p)
{
    comet_json_t j;

    comet_json_start(&j, out, COMET_JSON_SPACED);
    comet_json_open(&j, NULL, '{');
    comet_json_u64(&j, "heartbeat", (apr_uint64_t)apr_time_as_msec(p->heartbeat));
    if (p->cursors) {
        comet_json_raw(&j, "cursors", p->cursors, strlen(p->cursors));
    }
    comet_json_close(&j);
    return comet_json_finish(&j);
}

static const char *end_reason(comet_end_t why)
{
    switch (why) {
    case COMET_END_DELETED: return "deleted";
    case COMET_END_TIMEOUT: return "timeout";
    default: return "reconnect";
    }
}

/*******************************************************************************
 * forever iframe
 *
 * The page in the hidden iframe calls a function of its parent page for each
 * event: f("o", heartbeat_ms, {channel: last id}) when open, f("m", id, data, channel) per
 * message, f("h") per heartbeat, f("e", reason) before the server ends the
 * stream. The callback path was validated by the handler; data and channel go
 * through comet_json_escape, so nothing can close the script or open markup.
 ******************************************************************************/

static int iframe_prelude(comet_buf_t *out, const comet_stream_params_t *p)
{
    apr_size_t start = out->len;
    int rv = 0;

    rv |= comet_buf_puts(out,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        "<meta name=\"robots\" content=\"noindex\"><title>mod_comet</title></head>"
        "<body>\n<script>\nvar f = null;\ntry { f = parent.");
    rv |= comet_buf_puts(out, p->callback);
    rv |= comet_buf_puts(out,
        "; } catch (x) {}\n"
        "function p(i, d, c) { if (f) f(\"m\", i, d, c); }\n"
        "function h() { if (f) f(\"h\"); }\n"
        "function e(r) { if (f) f(\"e\", r); }\n"
        "if (f) f(\"o\", ");
    rv |= comet_buf_put_u64(out, (apr_uint64_t)apr_time_as_msec(p->heartbeat));
    if (p->cursors) {
        /* through JSON.parse: in an object literal a channel named __proto__
         * would set the prototype instead of a property */
        rv |= comet_buf_puts(out, ", JSON.parse(\"");
        rv |= comet_json_escape(out, p->cursors, strlen(p->cursors));
        rv |= comet_buf_puts(out, "\")");
    }
    rv |= comet_buf_puts(out, ");\n</script>\n<!-- ");
    /* browsers start running an iframe's scripts only past ~1 KiB */
    while (!rv && out->len - start < COMET_IFRAME_PRELUDE_MIN + 16) {
        rv |= comet_buf_puts(out, "................................................................");
    }
    rv |= comet_buf_puts(out, " -->\n");
    return rv ? -1 : 0;
}

static int iframe_message(comet_buf_t *out, comet_id_t id, const char *chan,
                          apr_size_t clen, const char *data, apr_size_t len)
{
    int rv = 0;

    rv |= comet_buf_puts(out, "<script>p(");
    rv |= comet_buf_put_u64(out, id);
    rv |= comet_buf_puts(out, ",\"");
    rv |= comet_json_escape(out, data, len);
    rv |= comet_buf_puts(out, "\",\"");
    rv |= comet_json_escape(out, chan, clen);
    rv |= comet_buf_puts(out, "\");</script>\n");
    return rv ? -1 : 0;
}

static int iframe_heartbeat(comet_buf_t *out, const comet_stream_params_t *p)
{
    return comet_buf_puts(out, "<script>h();</script>\n");
}

static int iframe_end(comet_buf_t *out, const comet_stream_params_t *p, comet_end_t why)
{
    int rv = 0;

    rv |= comet_buf_puts(out, "<script>e(\"");
    rv |= comet_buf_puts(out, end_reason(why));
    rv |= comet_buf_puts(out, "\");</script>\n</body></html>\n");
    return rv ? -1 : 0;
}

const comet_transport_t comet_transport_iframe = {
    .name = "iframe", .index = 0, .content_type = "text/html; charset=utf-8",
    .accumulates = 1,
    .prelude = iframe_prelude, .message = iframe_message, .heartbeat = iframe_heartbeat,
    .end = iframe_end
};

/*******************************************************************************
 * Server-Sent Events
 *
 * Each line of a message (CR, LF or CRLF end a line) becomes one "data:" line,
 * so a message can never start a field of its own. One channel:
 *   id: <id>\ndata: ...\n\n
 * several: the channel names the event, the id carries every channel's cursor
 * (EventSource sends back only the last id, as Last-Event-ID):
 *   id: a:<id>,b:<id>\nevent: a\ndata: ...\n\n
 * Heartbeats are events too, so that a page can tell a silent stream from a
 * dead one (comments would not reach it). The control events are named
 * comet.open, comet.heartbeat and comet.end: with a dot, which no channel
 * id has, so that no channel of a multi-channel stream can pass for one.
 ******************************************************************************/

static int sse_data(comet_buf_t *out, const char *data, apr_size_t len)
{
    apr_size_t i = 0, start = 0;
    int rv = 0;

    for (i = 0; i <= len && !rv; i++) {
        if (i == len || data[i] == '\n' || data[i] == '\r') {
            rv |= comet_buf_puts(out, "data: ");
            rv |= comet_buf_append(out, data + start, i - start);
            rv |= comet_buf_puts(out, "\n");
            if (i < len && data[i] == '\r' && i + 1 < len && data[i + 1] == '\n') {
                i++;
            }
            start = i + 1;
        }
    }
    return rv ? -1 : 0;
}

static int sse_prelude(comet_buf_t *out, const comet_stream_params_t *p)
{
    int rv = 0;

    /* padding past 2 KiB for proxies and polyfills that wait for it */
    rv |= comet_buf_puts(out, ":");
    while (!rv && out->len < 2048) {
        rv |= comet_buf_puts(out, "                                                                ");
    }
    rv |= comet_buf_puts(out, "\nretry: ");
    rv |= comet_buf_put_u64(out, (apr_uint64_t)apr_time_as_msec(p->retry ? p->retry
                                                                  : apr_time_from_sec(1)));
    rv |= comet_buf_puts(out, "\nevent: comet.open\ndata: ");
    rv |= open_object(out, p);
    rv |= comet_buf_puts(out, "\n\n");
    return rv ? -1 : 0;
}

static int sse_message(comet_buf_t *out, comet_id_t id, const char *chan, apr_size_t clen,
                       const char *data, apr_size_t len)
{
    int rv = comet_buf_puts(out, "id: ");

    rv |= comet_buf_put_u64(out, id);
    rv |= comet_buf_puts(out, "\n");
    rv |= sse_data(out, data, len);
    rv |= comet_buf_puts(out, "\n");
    return rv ? -1 : 0;
}

static int sse_multi_message(comet_buf_t *out, comet_id_t id, const char *chan,
                             apr_size_t clen, const char *data, apr_size_t len)
{
    int rv = comet_buf_puts(out, "event: ");

    rv |= comet_buf_append(out, chan, clen);
    rv |= comet_buf_puts(out, "\n");
    rv |= sse_data(out, data, len);
    rv |= comet_buf_puts(out, "\n");
    return rv ? -1 : 0;
}

int comet_sse_id_line(comet_buf_t *out, const char *const *names, const apr_size_t *lens,
                      const comet_id_t *cursors, apr_size_t n)
{
    apr_size_t i;
    int rv = comet_buf_puts(out, "id: ");

    for (i = 0; i < n; i++) {
        if (i) {
            rv |= comet_buf_puts(out, ",");
        }
        rv |= comet_buf_append(out, names[i], lens[i]);
        rv |= comet_buf_puts(out, ":");
        rv |= comet_buf_put_u64(out, cursors[i] == COMET_ID_NONE ? 0 : cursors[i]);
    }
    rv |= comet_buf_puts(out, "\n");
    return rv ? -1 : 0;
}

static int sse_heartbeat(comet_buf_t *out, const comet_stream_params_t *p)
{
    return comet_buf_puts(out, "event: comet.heartbeat\ndata:\n\n");
}

static int sse_end(comet_buf_t *out, const comet_stream_params_t *p, comet_end_t why)
{
    int rv = comet_buf_puts(out, "event: comet.end\ndata: ");

    rv |= comet_buf_puts(out, end_reason(why));
    rv |= comet_buf_puts(out, "\n\n");
    return rv ? -1 : 0;
}

const comet_transport_t comet_transport_sse = {
    .name = "sse", .index = 6, .content_type = "text/event-stream; charset=utf-8",
    .prelude = sse_prelude, .message = sse_message, .heartbeat = sse_heartbeat,
    .end = sse_end
};

const comet_transport_t comet_transport_sse_multi = {
    .name = "sse", .index = 7, .content_type = "text/event-stream; charset=utf-8",
    .cursor_id = 1,
    .prelude = sse_prelude, .message = sse_multi_message, .heartbeat = sse_heartbeat,
    .end = sse_end
};

/*******************************************************************************
 * XHR/fetch streaming and long-polling: one JSON object per line
 *
 *   {"open": {"heartbeat": 25000, "cursors": {"news": 1795...}}}
 *   {"id": 1795..., "channel": "news", "data": "..."}
 *   (an empty line: heartbeat)
 *   {"end": "reconnect"}
 * A long-poll answers the open line and one batch of messages (or nothing
 * once the heartbeat interval passed), then closes.
 ******************************************************************************/

static int json_open(comet_buf_t *out, const comet_stream_params_t *p)
{
    int rv = comet_buf_puts(out, "{\"open\": ");

    rv |= open_object(out, p);
    rv |= comet_buf_puts(out, "}\n");
    return rv ? -1 : 0;
}

static int stream_prelude(comet_buf_t *out, const comet_stream_params_t *p)
{
    int rv = 0;

    /* a blank line past 2 KiB: some browsers and proxies hold back less */
    while (!rv && out->len < 2048) {
        rv |= comet_buf_puts(out, "                                                                ");
    }
    rv |= comet_buf_puts(out, "\n");
    return rv ? -1 : json_open(out, p);
}

static int json_message(comet_buf_t *out, comet_id_t id, const char *chan, apr_size_t clen,
                        const char *data, apr_size_t len)
{
    comet_json_t j;

    comet_json_start(&j, out, COMET_JSON_SPACED);
    comet_json_open(&j, NULL, '{');
    comet_json_u64(&j, "id", id);
    comet_json_str(&j, "channel", chan, clen);
    comet_json_str(&j, "data", data, len);
    comet_json_close(&j);
    return comet_json_finish(&j) || comet_buf_puts(out, "\n") ? -1 : 0;
}

static int json_heartbeat(comet_buf_t *out, const comet_stream_params_t *p)
{
    return comet_buf_puts(out, "\n");
}

static int json_end(comet_buf_t *out, const comet_stream_params_t *p, comet_end_t why)
{
    comet_json_t j;
    const char *reason = end_reason(why);

    comet_json_start(&j, out, COMET_JSON_SPACED);
    comet_json_open(&j, NULL, '{');
    comet_json_str(&j, "end", reason, strlen(reason));
    comet_json_close(&j);
    return comet_json_finish(&j) || comet_buf_puts(out, "\n") ? -1 : 0;
}

const comet_transport_t comet_transport_stream = {
    .name = "stream", .index = 8, .content_type = "application/x-ndjson; charset=utf-8",
    .accumulates = 1,
    .prelude = stream_prelude, .message = json_message, .heartbeat = json_heartbeat,
    .end = json_end
};

const comet_transport_t comet_transport_longpoll = {
    .name = "longpoll", .index = 9, .content_type = "application/x-ndjson; charset=utf-8",
    .oneshot = 1,
    .prelude = json_open, .message = json_message, .end = json_end
};

/*******************************************************************************
 * SockJS 0.3
 *
 * Frames: "o" open, "h" heartbeat, a[...] messages (a JSON array of strings),
 * c[code,"reason"] close. Each transport wraps them its own way; htmlfile and
 * jsonp pass the frame as a JSON string to a callback, so it is escaped twice.
 ******************************************************************************/

/* a["<message>"] */
static int sockjs_array(comet_buf_t *out, const comet_frame_msg_t *msgs, apr_size_t n)
{
    comet_json_t j;
    apr_size_t i;

    if (comet_buf_puts(out, "a") < 0) {
        return -1;
    }
    comet_json_start(&j, out, COMET_JSON_COMPACT);
    comet_json_open(&j, NULL, '[');
    for (i = 0; i < n; i++) {
        comet_json_str(&j, NULL, msgs[i].data, msgs[i].len);
    }
    comet_json_close(&j);
    return comet_json_finish(&j);
}

static int sockjs_close_frame(comet_buf_t *out, const char *data, apr_size_t len)
{
    int rv = comet_buf_puts(out, "c[");

    rv |= comet_buf_append(out, data, len);
    rv |= comet_buf_puts(out, "]");
    return rv ? -1 : 0;
}

/* Wrap the frame that fill() appends in before ... after. */
typedef int frame_fill_fn(comet_buf_t *out, const void *a, apr_size_t b);

static int wrap(comet_buf_t *out, const char *before, const char *after,
                frame_fill_fn *fill, const void *a, apr_size_t b)
{
    int rv = comet_buf_puts(out, before);

    rv |= fill(out, a, b);
    rv |= comet_buf_puts(out, after);
    return rv ? -1 : 0;
}

/* Same, with the frame JSON-escaped into a string literal. */
static int wrap_quoted(comet_buf_t *out, const char *before, const char *after,
                       frame_fill_fn *fill, const void *a, apr_size_t b)
{
    comet_buf_t frame = { 0 };
    int rv = fill(&frame, a, b);

    rv |= comet_buf_puts(out, before);
    rv |= comet_buf_puts(out, "\"");
    rv |= comet_json_escape(out, frame.data, frame.len);
    rv |= comet_buf_puts(out, "\"");
    rv |= comet_buf_puts(out, after);
    comet_buf_free(&frame);
    return rv ? -1 : 0;
}

static int fill_literal(comet_buf_t *out, const void *a, apr_size_t b)
{
    return comet_buf_puts(out, a);
}

static int fill_array(comet_buf_t *out, const void *a, apr_size_t b)
{
    return sockjs_array(out, a, b);
}

static int fill_close(comet_buf_t *out, const void *a, apr_size_t b)
{
    return sockjs_close_frame(out, a, b);
}

static int fill_one(comet_buf_t *out, const void *a, apr_size_t b)
{
    const comet_frame_msg_t *m = a;
    return sockjs_array(out, m, 1);
}

/* --- xhr (polling) and xhr_streaming: frame + "\n" --- */

static int xhr_streaming_prelude(comet_buf_t *out, const comet_stream_params_t *p)
{
    char h[COMET_SOCKJS_XHR_PRELUDE];

    /* some browsers expose a streaming response only past 2 KiB */
    memset(h, 'h', sizeof(h) - 1);
    h[sizeof(h) - 1] = '\n';
    return comet_buf_append(out, h, sizeof(h));
}

static int xhr_message(comet_buf_t *out, comet_id_t id, const char *chan, apr_size_t clen,
                       const char *data, apr_size_t len)
{
    comet_frame_msg_t m = { id, chan, clen, data, len };
    return wrap(out, "", "\n", fill_one, &m, 0);
}

static int xhr_heartbeat(comet_buf_t *out, const comet_stream_params_t *p)
{
    return comet_buf_puts(out, "h\n");
}

static int xhr_open(comet_buf_t *out, const comet_stream_params_t *p)
{
    return comet_buf_puts(out, "o\n");
}

static int xhr_batch(comet_buf_t *out, const comet_stream_params_t *p,
                     const comet_frame_msg_t *msgs, apr_size_t n)
{
    return wrap(out, "", "\n", fill_array, msgs, n);
}

static int xhr_close(comet_buf_t *out, const comet_stream_params_t *p, const char *data,
                     apr_size_t len)
{
    return wrap(out, "", "\n", fill_close, data, len);
}

const comet_transport_t comet_transport_sockjs_xhr = {
    .name = "xhr", .index = 1, .content_type = "application/javascript; charset=UTF-8",
    .oneshot = 1, .session = 1,
    .message = xhr_message, .heartbeat = xhr_heartbeat, .batch = xhr_batch,
    .open = xhr_open, .close = xhr_close
};

const comet_transport_t comet_transport_sockjs_xhr_streaming = {
    .name = "xhr_streaming", .index = 2,
    .content_type = "application/javascript; charset=UTF-8", .accumulates = 1, .session = 1,
    .prelude = xhr_streaming_prelude, .message = xhr_message, .heartbeat = xhr_heartbeat,
    .open = xhr_open, .close = xhr_close
};

/* --- eventsource: "data: " frame "\r\n\r\n" --- */

static int es_prelude(comet_buf_t *out, const comet_stream_params_t *p)
{
    return comet_buf_puts(out, "\r\n");
}

static int es_message(comet_buf_t *out, comet_id_t id, const char *chan, apr_size_t clen,
                      const char *data, apr_size_t len)
{
    comet_frame_msg_t m = { id, chan, clen, data, len };
    return wrap(out, "data: ", "\r\n\r\n", fill_one, &m, 0);
}

static int es_heartbeat(comet_buf_t *out, const comet_stream_params_t *p)
{
    return comet_buf_puts(out, "data: h\r\n\r\n");
}

static int es_open(comet_buf_t *out, const comet_stream_params_t *p)
{
    return comet_buf_puts(out, "data: o\r\n\r\n");
}

static int es_close(comet_buf_t *out, const comet_stream_params_t *p, const char *data,
                    apr_size_t len)
{
    return wrap(out, "data: ", "\r\n\r\n", fill_close, data, len);
}

const comet_transport_t comet_transport_sockjs_eventsource = {
    /* no charset: sockjs-protocol wants the type alone (the stream is
     * UTF-8 by definition) */
    .name = "eventsource", .index = 3, .content_type = "text/event-stream",
    .accumulates = 1, .session = 1,
    .prelude = es_prelude, .message = es_message, .heartbeat = es_heartbeat,
    .open = es_open, .close = es_close
};

/* --- htmlfile: <script>\np("frame");\n</script>\r\n --- */

static int htmlfile_prelude(comet_buf_t *out, const comet_stream_params_t *p)
{
    apr_size_t start = out->len;
    int rv = 0;

    rv |= comet_buf_puts(out,
        "<!doctype html>\n<html><head>\n"
        "  <meta http-equiv=\"X-UA-Compatible\" content=\"IE=edge\" />\n"
        "  <meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\" />\n"
        "</head><body><h2>Don't panic!</h2>\n  <script>\n"
        "    document.domain = document.domain;\n    var c = parent.");
    rv |= comet_buf_puts(out, p->callback);
    rv |= comet_buf_puts(out,
        ";\n    c.start();\n    function p(d) {c.message(d);};\n"
        "    window.onload = function() {c.stop();};\n  </script>\n");
    /* more than 1 KiB before the browser runs anything: spaces up to
     * 1037 bytes, then two CRLF, as sockjs-node pads it */
    while (!rv && out->len - start < COMET_IFRAME_PRELUDE_MIN + 13) {
        rv |= comet_buf_puts(out, " ");
    }
    rv |= comet_buf_puts(out, "\r\n\r\n");
    return rv ? -1 : 0;
}

static int htmlfile_message(comet_buf_t *out, comet_id_t id, const char *chan,
                            apr_size_t clen, const char *data, apr_size_t len)
{
    comet_frame_msg_t m = { id, chan, clen, data, len };
    return wrap_quoted(out, "<script>\np(", ");\n</script>\r\n", fill_one, &m, 0);
}

static int htmlfile_heartbeat(comet_buf_t *out, const comet_stream_params_t *p)
{
    return comet_buf_puts(out, "<script>\np(\"h\");\n</script>\r\n");
}

static int htmlfile_open(comet_buf_t *out, const comet_stream_params_t *p)
{
    return comet_buf_puts(out, "<script>\np(\"o\");\n</script>\r\n");
}

static int htmlfile_close(comet_buf_t *out, const comet_stream_params_t *p, const char *data,
                          apr_size_t len)
{
    return wrap_quoted(out, "<script>\np(", ");\n</script>\r\n", fill_close, data, len);
}

const comet_transport_t comet_transport_sockjs_htmlfile = {
    .name = "htmlfile", .index = 4, .content_type = "text/html; charset=UTF-8",
    .accumulates = 1, .session = 1,
    .prelude = htmlfile_prelude, .message = htmlfile_message,
    .heartbeat = htmlfile_heartbeat, .open = htmlfile_open, .close = htmlfile_close
};

/* --- jsonp (polling): / ** / cb("frame");\r\n --- */

static int jsonp_head(comet_buf_t *out, const comet_stream_params_t *p, char *before,
                      apr_size_t size)
{
    /* the comment defeats content sniffing as Flash (Rosetta Flash) */
    return apr_snprintf(before, size, "/**/%s(", p->callback) >= (int)size ? -1 : 0;
}

static int jsonp_frame(comet_buf_t *out, const comet_stream_params_t *p, frame_fill_fn *fill,
                       const void *a, apr_size_t b)
{
    char before[COMET_CALLBACK_MAX + 16];

    if (jsonp_head(out, p, before, sizeof(before)) < 0) {
        return -1;
    }
    return wrap_quoted(out, before, ");\r\n", fill, a, b);
}

static int jsonp_heartbeat(comet_buf_t *out, const comet_stream_params_t *p)
{
    return jsonp_frame(out, p, fill_literal, "h", 0);
}

static int jsonp_open(comet_buf_t *out, const comet_stream_params_t *p)
{
    return jsonp_frame(out, p, fill_literal, "o", 0);
}

static int jsonp_batch(comet_buf_t *out, const comet_stream_params_t *p,
                       const comet_frame_msg_t *msgs, apr_size_t n)
{
    return jsonp_frame(out, p, fill_array, msgs, n);
}

static int jsonp_close(comet_buf_t *out, const comet_stream_params_t *p, const char *data,
                       apr_size_t len)
{
    return jsonp_frame(out, p, fill_close, data, len);
}

const comet_transport_t comet_transport_sockjs_jsonp = {
    .name = "jsonp", .index = 5, .content_type = "application/javascript; charset=UTF-8",
    .oneshot = 1, .session = 1,
    .message = xhr_message, .heartbeat = jsonp_heartbeat, .batch = jsonp_batch,
    .open = jsonp_open, .close = jsonp_close
};

/*******************************************************************************
 * WebSocket: each frame of the transports above as one text frame
 *
 * A server's frames are not masked (RFC 6455, 5.1): a message's frame is the
 * same for every subscriber, built once like the others. Heartbeats of
 * channel streams are pings; the end of a stream is a close frame
 * (comet_ws.h), after the end line for channel streams.
 ******************************************************************************/

/* comet_ws_frame, or comet_ws_frame_deflate (permessage-deflate) */
typedef int ws_framer_fn(comet_buf_t *out, int opcode, const char *data, apr_size_t len);

/* What fill() appends, as one text frame made by `framer`. */
static int ws_text_by(comet_buf_t *out, frame_fill_fn *fill, const void *a, apr_size_t b,
                      int strip_newline, ws_framer_fn *framer)
{
    comet_buf_t frame = { 0 };
    int rv = fill(&frame, a, b);

    if (rv == 0 && strip_newline && frame.len && frame.data[frame.len - 1] == '\n') {
        frame.len--;
    }
    if (rv == 0) {
        rv = framer(out, COMET_WS_TEXT, frame.data, frame.len);
    }
    comet_buf_free(&frame);
    return rv ? -1 : 0;
}

static int ws_text(comet_buf_t *out, frame_fill_fn *fill, const void *a, apr_size_t b,
                   int strip_newline)
{
    return ws_text_by(out, fill, a, b, strip_newline, comet_ws_frame);
}

/* The close frame of a session's close message: its code, and the reason
 * when it is a plain JSON string (3000,"Go away!"). */
static int ws_close_of(comet_buf_t *out, const char *data, apr_size_t len)
{
    char reason[124];
    const char *comma = memchr(data, ',', len);
    apr_size_t n = 0;
    int code = 0;
    apr_size_t i;

    for (i = 0; i < len && data[i] >= '0' && data[i] <= '9' && code < 10000; i++) {
        code = code * 10 + (data[i] - '0');
    }
    if (code < 1000 || code > 4999) {
        code = COMET_WS_NORMAL;
    }
    if (comma && comma + 2 < data + len && comma[1] == '"' && data[len - 1] == '"') {
        const char *r = comma + 2, *e = data + len - 1;
        if (!memchr(r, '\\', (apr_size_t)(e - r))) {
            n = (apr_size_t)(e - r) < sizeof(reason) - 1 ? (apr_size_t)(e - r)
                                                         : sizeof(reason) - 1;
            memcpy(reason, r, n);
        }
    }
    reason[n] = '\0';
    return comet_ws_close_frame(out, code, reason);
}

static int ws_end_frame(comet_buf_t *out, comet_end_t why)
{
    return why == COMET_END_DELETED ? comet_ws_close_frame(out, COMET_WS_NORMAL, "deleted")
                                    : comet_ws_close_frame(out, COMET_WS_GOING_AWAY, "reconnect");
}

static int ws_ping(comet_buf_t *out, const comet_stream_params_t *p)
{
    return comet_ws_frame(out, COMET_WS_PING, NULL, 0);
}

/* --- channels: the stream transport's lines, one per text frame --- */

static int fill_json_open(comet_buf_t *out, const void *a, apr_size_t b)
{
    return json_open(out, a);
}

static int ws_json_open(comet_buf_t *out, const comet_stream_params_t *p)
{
    return ws_text(out, fill_json_open, p, 0, 1);
}

static int fill_json_message(comet_buf_t *out, const void *a, apr_size_t b)
{
    const comet_frame_msg_t *m = a;
    return json_message(out, m->id, m->chan, m->clen, m->data, m->len);
}

static int ws_json_message(comet_buf_t *out, comet_id_t id, const char *chan, apr_size_t clen,
                           const char *data, apr_size_t len)
{
    comet_frame_msg_t m = { id, chan, clen, data, len };
    return ws_text(out, fill_json_message, &m, 0, 1);
}

static int fill_json_end(comet_buf_t *out, const void *a, apr_size_t b)
{
    return json_end(out, NULL, (comet_end_t)b);
}

static int ws_json_end(comet_buf_t *out, const comet_stream_params_t *p, comet_end_t why)
{
    return ws_text(out, fill_json_end, NULL, why, 1) || ws_end_frame(out, why) ? -1 : 0;
}

const comet_transport_t comet_transport_websocket = {
    .name = "websocket", .index = 10, .content_type = "application/json",
    .prelude = ws_json_open, .message = ws_json_message, .heartbeat = ws_ping,
    .end = ws_json_end
};

/* permessage-deflate: the messages compressed (the rest is short) */
static int ws_json_message_z(comet_buf_t *out, comet_id_t id, const char *chan, apr_size_t clen,
                             const char *data, apr_size_t len)
{
    comet_frame_msg_t m = { id, chan, clen, data, len };
    return ws_text_by(out, fill_json_message, &m, 0, 1, comet_ws_frame_deflate);
}

const comet_transport_t comet_transport_websocket_deflate = {
    .name = "websocket", .index = 14, .content_type = "application/json",
    .prelude = ws_json_open, .message = ws_json_message_z, .heartbeat = ws_ping,
    .end = ws_json_end
};

/* --- SockJS over WebSocket: o, h, a[...], c[...] as text frames --- */

static int sjs_ws_open(comet_buf_t *out, const comet_stream_params_t *p)
{
    return comet_ws_frame(out, COMET_WS_TEXT, "o", 1);
}

static int sjs_ws_heartbeat(comet_buf_t *out, const comet_stream_params_t *p)
{
    /* and a ping: its answer tells the loop the client is there
     * (sockjs-client's "h" asks for none) */
    return comet_ws_frame(out, COMET_WS_TEXT, "h", 1) || comet_ws_frame(out, COMET_WS_PING, NULL, 0)
           ? -1 : 0;
}

static int sjs_ws_message(comet_buf_t *out, comet_id_t id, const char *chan, apr_size_t clen,
                          const char *data, apr_size_t len)
{
    comet_frame_msg_t m = { id, chan, clen, data, len };
    return ws_text(out, fill_one, &m, 0, 0);
}

static int sjs_ws_close(comet_buf_t *out, const comet_stream_params_t *p, const char *data,
                        apr_size_t len)
{
    return ws_text(out, fill_close, data, len, 0) || ws_close_of(out, data, len) ? -1 : 0;
}

static int sjs_ws_end(comet_buf_t *out, const comet_stream_params_t *p, comet_end_t why)
{
    return ws_end_frame(out, why);
}

const comet_transport_t comet_transport_sockjs_websocket = {
    .name = "websocket", .index = 11, .content_type = "application/json", .session = 1,
    .message = sjs_ws_message, .heartbeat = sjs_ws_heartbeat, .end = sjs_ws_end,
    .open = sjs_ws_open, .close = sjs_ws_close
};

static int sjs_ws_message_z(comet_buf_t *out, comet_id_t id, const char *chan, apr_size_t clen,
                            const char *data, apr_size_t len)
{
    comet_frame_msg_t m = { id, chan, clen, data, len };
    return ws_text_by(out, fill_one, &m, 0, 0, comet_ws_frame_deflate);
}

const comet_transport_t comet_transport_sockjs_websocket_deflate = {
    .name = "websocket", .index = 15, .content_type = "application/json", .session = 1,
    .message = sjs_ws_message_z, .heartbeat = sjs_ws_heartbeat, .end = sjs_ws_end,
    .open = sjs_ws_open, .close = sjs_ws_close
};

/* --- SockJS over the WebSocket draft of 2010 (hixie-76): 0x00 frame 0xFF --- */

static int hixie_fill(comet_buf_t *out, frame_fill_fn *fill, const void *a, apr_size_t b)
{
    comet_buf_t frame = { 0 };
    int rv = fill(&frame, a, b);

    if (rv == 0) {
        rv = comet_ws_hixie_frame(out, frame.data, frame.len);
    }
    comet_buf_free(&frame);
    return rv ? -1 : 0;
}

static int hixie_open(comet_buf_t *out, const comet_stream_params_t *p)
{
    return comet_ws_hixie_frame(out, "o", 1);
}

static int hixie_heartbeat(comet_buf_t *out, const comet_stream_params_t *p)
{
    return comet_ws_hixie_frame(out, "h", 1);
}

static int hixie_message(comet_buf_t *out, comet_id_t id, const char *chan, apr_size_t clen,
                         const char *data, apr_size_t len)
{
    comet_frame_msg_t m = { id, chan, clen, data, len };
    return hixie_fill(out, fill_one, &m, 0);
}

static int hixie_close(comet_buf_t *out, const comet_stream_params_t *p, const char *data,
                       apr_size_t len)
{
    return hixie_fill(out, fill_close, data, len) || comet_buf_append(out, "\xff\x00", 2)
           ? -1 : 0;
}

static int hixie_end(comet_buf_t *out, const comet_stream_params_t *p, comet_end_t why)
{
    return comet_buf_append(out, "\xff\x00", 2);
}

const comet_transport_t comet_transport_sockjs_hixie = {
    .name = "websocket-hixie76", .index = 13, .content_type = "application/octet-stream",
    .session = 1,
    .message = hixie_message, .heartbeat = hixie_heartbeat, .end = hixie_end,
    .open = hixie_open, .close = hixie_close
};

/* --- SockJS's raw WebSocket: each message as it is --- */

static int raw_ws_open(comet_buf_t *out, const comet_stream_params_t *p)
{
    return 0;
}

static int raw_ws_message_by(comet_buf_t *out, const char *data, apr_size_t len,
                             ws_framer_fn *framer)
{
    comet_buf_t clean = { 0 };
    int rv;

    if (comet_json_utf8_valid(data, len)) {
        return framer(out, COMET_WS_TEXT, data, len);
    }
    /* a text frame must be UTF-8, or the client fails the connection: a
     * program's bytes that are not get U+FFFD, as in the JSON of the others */
    rv = comet_json_utf8_clean(&clean, data, len);
    if (rv == 0) {
        rv = framer(out, COMET_WS_TEXT, clean.data, clean.len);
    }
    comet_buf_free(&clean);
    return rv;
}

static int raw_ws_message(comet_buf_t *out, comet_id_t id, const char *chan, apr_size_t clen,
                          const char *data, apr_size_t len)
{
    return raw_ws_message_by(out, data, len, comet_ws_frame);
}

static int raw_ws_message_z(comet_buf_t *out, comet_id_t id, const char *chan, apr_size_t clen,
                            const char *data, apr_size_t len)
{
    return raw_ws_message_by(out, data, len, comet_ws_frame_deflate);
}

static int raw_ws_close(comet_buf_t *out, const comet_stream_params_t *p, const char *data,
                        apr_size_t len)
{
    return ws_close_of(out, data, len);
}

const comet_transport_t comet_transport_sockjs_rawws = {
    .name = "websocket-raw", .index = 12, .content_type = "application/octet-stream",
    .session = 1,
    .message = raw_ws_message, .heartbeat = ws_ping, .end = sjs_ws_end,
    .open = raw_ws_open, .close = raw_ws_close
};

const comet_transport_t comet_transport_sockjs_rawws_deflate = {
    .name = "websocket-raw", .index = 16, .content_type = "application/octet-stream",
    .session = 1,
    .message = raw_ws_message_z, .heartbeat = ws_ping, .end = sjs_ws_end,
    .open = raw_ws_open, .close = raw_ws_close
};

/*******************************************************************************
 * the table
 ******************************************************************************/

const comet_transport_t *const comet_transports[] = {
    &comet_transport_iframe,
    &comet_transport_sse,
    &comet_transport_stream,
    &comet_transport_longpoll,
    &comet_transport_websocket,
    &comet_transport_sockjs_xhr,
    &comet_transport_sockjs_xhr_streaming,
    &comet_transport_sockjs_eventsource,
    &comet_transport_sockjs_htmlfile,
    &comet_transport_sockjs_jsonp,
    &comet_transport_sockjs_websocket,
    &comet_transport_sockjs_rawws,
    &comet_transport_sockjs_hixie,
    /* permessage-deflate: chosen by the handshake, never by name (the
     * plain ones above, of the same names, are found first) */
    &comet_transport_websocket_deflate,
    &comet_transport_sockjs_websocket_deflate,
    &comet_transport_sockjs_rawws_deflate,
    NULL
};

const comet_transport_t *comet_transport_find(const char *name)
{
    int i;

    for (i = 0; comet_transports[i]; i++) {
        if (!strcmp(comet_transports[i]->name, name)) {
            return comet_transports[i];
        }
    }
    return NULL;
}
