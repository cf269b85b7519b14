/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/* Requests to the supervisor; see comet_sup.h. */

#include <string.h>

#include <apr_strings.h>

#include "comet_sup.h"

apr_size_t comet_sup_channel(char *buf, apr_size_t size, char kind, const char *sid)
{
    return (apr_size_t)apr_snprintf(buf, size, "%c:%s", kind, sid);
}

int comet_sup_escape(comet_buf_t *b, const char *s, apr_size_t len)
{
    apr_size_t i;
    int rv = 0;

    for (i = 0; i < len && !rv; i++) {
        if (s[i] == '\\') {
            rv = comet_buf_puts(b, "\\\\");
        }
        else if (s[i] == '\n') {
            rv = comet_buf_puts(b, "\\n");
        }
        else if (s[i] == '\r') {
            rv = comet_buf_puts(b, "\\r");
        }
        else {
            rv = comet_buf_append(b, s + i, 1);
        }
    }
    return rv;
}

apr_size_t comet_sup_unescape(char *s, apr_size_t len)
{
    apr_size_t i, o = 0;

    for (i = 0; i < len; i++) {
        if (s[i] == '\\' && i + 1 < len) {
            i++;
            s[o++] = s[i] == 'n' ? '\n' : s[i] == 'r' ? '\r' : s[i];
        }
        else {
            s[o++] = s[i];
        }
    }
    return o;
}

comet_limits_t comet_sup_ctl_limits(void)
{
    comet_limits_t lim = { 1000, apr_time_from_sec(60), 1 << 20, 0 };
    return lim;
}

/* One "<word> <escaped value>" line; 0 or -1 (out of memory). */
static int put_line(comet_buf_t *b, const char *word, const char *value)
{
    if (comet_buf_puts(b, word) < 0 || comet_buf_puts(b, " ") < 0
        || comet_sup_escape(b, value, strlen(value)) < 0) {
        return -1;
    }
    return comet_buf_puts(b, "\n");
}

/* Publish a request built in `b` (freed); APR_ENOMEM if building it failed. */
static apr_status_t ctl_publish(comet_store_t *st, comet_buf_t *b, int failed,
                                comet_publish_result_t *res)
{
    comet_limits_t lim = comet_sup_ctl_limits();
    apr_status_t rv = APR_ENOMEM;

    if (!failed) {
        rv = st->publish(st, COMET_SUP_CTL, sizeof(COMET_SUP_CTL) - 1, b->data, b->len, 0,
                         &lim, res);
    }
    comet_buf_free(b);
    return rv;
}

apr_status_t comet_sup_open(comet_store_t *st, const char *sid, const char *backend,
                            const char *const *argv, const char *const *env)
{
    comet_buf_t b = { 0 };
    comet_publish_result_t res;
    apr_status_t rv;
    int e = put_line(&b, "open", sid);

    e |= put_line(&b, "backend", backend);
    for (; argv && *argv; argv++) {
        e |= put_line(&b, "arg", *argv);
    }
    for (; env && *env; env++) {
        e |= put_line(&b, "env", *env);
    }
    rv = ctl_publish(st, &b, e, &res);
    if (rv == APR_SUCCESS && res.subscribers == 0) {
        /* nobody follows the control channel: no supervisor is running */
        return APR_ENOPROC;
    }
    return rv;
}

apr_status_t comet_sup_send(comet_store_t *st, const char *sid, const char *data,
                            apr_size_t len, apr_size_t max_size, apr_size_t max_queue)
{
    char up[COMET_CHANNEL_MAX + 8];
    comet_limits_t lim = { (apr_uint32_t)-1, 0, max_size, max_queue };
    comet_publish_result_t res;
    apr_size_t n = comet_sup_channel(up, sizeof(up), 'u', sid);

    return st->publish(st, up, n, data, len, 0, &lim, &res);
}

apr_status_t comet_sup_hangup(comet_store_t *st, const char *sid)
{
    char up[COMET_CHANNEL_MAX + 8];
    comet_limits_t lim = { (apr_uint32_t)-1, 0, 64, 0 };
    comet_publish_result_t res;
    apr_size_t n = comet_sup_channel(up, sizeof(up), 'u', sid);

    /* the upstream's last message: nothing follows it (sess_pump_up) */
    return st->publish(st, up, n, "", 0, COMET_MSG_CLOSE, &lim, &res);
}

apr_status_t comet_sup_configure(comet_store_t *st, const comet_source_t *sources,
                                 apr_size_t n, const char *redis)
{
    comet_buf_t b = { 0 };
    comet_publish_result_t res;
    apr_size_t i;
    int e = comet_buf_puts(&b, "sources\n");

    e |= put_line(&b, "redis", redis ? redis : "");

    for (i = 0; i < n; i++) {
        const char *const *a;
        e |= comet_buf_puts(&b, "source ");
        e |= comet_buf_puts(&b, sources[i].channel);
        e |= comet_buf_puts(&b, sources[i].on_demand ? " 1\n" : " 0\n");
        for (a = sources[i].argv; *a; a++) {
            e |= put_line(&b, "arg", *a);
        }
    }
    return ctl_publish(st, &b, e, &res);
}
