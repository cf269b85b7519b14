/* Licensed under the Apache License, Version 2.0 (the "License"); see README. */

/* Framing of each transport; see comet_transport.h. */

#include <string.h>

#include "comet_transport.h"

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
 * event: f("o", heartbeat_ms) when open, f("m", id, data, channel) per
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

static int iframe_heartbeat(comet_buf_t *out)
{
    return comet_buf_puts(out, "<script>h();</script>\n");
}

static int iframe_end(comet_buf_t *out, comet_end_t why)
{
    int rv = 0;

    rv |= comet_buf_puts(out, "<script>e(\"");
    rv |= comet_buf_puts(out, end_reason(why));
    rv |= comet_buf_puts(out, "\");</script>\n</body></html>\n");
    return rv ? -1 : 0;
}

const comet_transport_t comet_transport_iframe = {
    "iframe", 0, "text/html; charset=utf-8", 1, 0,
    iframe_prelude, iframe_message, iframe_heartbeat, iframe_end
};

const comet_transport_t *const comet_transports[] = {
    &comet_transport_iframe,
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
