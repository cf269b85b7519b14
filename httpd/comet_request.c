/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/* Request helpers shared by the handlers; see comet_request.h. */

#include <apr_strings.h>

#include <http_core.h>
#include <http_protocol.h>

#include "comet_request.h"

int comet_request_error(request_rec *r, int status, int level, apr_status_t rv,
                        const char *why)
{
    ap_log_rerror(APLOG_MARK, level, rv, r, COMET_LOGNO(00120) "%s: %s", r->uri, why);
    apr_table_setn(r->notes, "error-notes", ap_escape_html(r->pool, why));
    return status;
}

int comet_request_refuse_method(request_rec *r, apr_int64_t allowed)
{
    /* what ap_allow_standard_methods(r, REPLACE_ALLOW, ...) does */
    ap_clear_method_list(r->allowed_methods);
    r->allowed_methods->method_mask = allowed;
    return HTTP_METHOD_NOT_ALLOWED;
}

/*******************************************************************************
 * the body
 ******************************************************************************/

/* Append the data of a brigade to buf[*got..max); 1 at its end (EOS), 0 if
 * more is to come, or an HTTP status. */
static int body_take(apr_bucket_brigade *bb, char *buf, apr_size_t max, apr_size_t *got)
{
    apr_bucket *b;

    for (b = APR_BRIGADE_FIRST(bb); b != APR_BRIGADE_SENTINEL(bb); b = APR_BUCKET_NEXT(b)) {
        const char *d;
        apr_size_t n;
        if (APR_BUCKET_IS_EOS(b)) {
            return 1;
        }
        if (APR_BUCKET_IS_METADATA(b)) {
            continue;
        }
        if (apr_bucket_read(b, &d, &n, APR_BLOCK_READ) != APR_SUCCESS) {
            return HTTP_BAD_REQUEST;
        }
        if (*got + n > max) {
            return HTTP_REQUEST_ENTITY_TOO_LARGE;
        }
        memcpy(buf + *got, d, n);
        *got += n;
    }
    return 0;
}

int comet_request_read_body(request_rec *r, apr_off_t max, char **data, apr_size_t *len)
{
    apr_bucket_brigade *bb;
    apr_size_t got = 0;
    char *buf;
    int rc;

    if ((rc = ap_setup_client_block(r, REQUEST_CHUNKED_DECHUNK)) != OK) {
        return rc;
    }
    if (apr_table_get(r->headers_in, "Content-Length") && r->remaining > max) {
        return HTTP_REQUEST_ENTITY_TOO_LARGE;
    }
    buf = apr_palloc(r->pool, (apr_size_t)max + 1);
    bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    do {
        apr_status_t rv = ap_get_brigade(r->input_filters, bb, AP_MODE_READBYTES,
                                         APR_BLOCK_READ, HUGE_STRING_LEN);
        rc = rv != APR_SUCCESS ? ap_map_http_request_error(rv, HTTP_BAD_REQUEST)
           : body_take(bb, buf, (apr_size_t)max, &got);
        apr_brigade_cleanup(bb);
    } while (rc == 0);
    apr_brigade_destroy(bb);
    if (rc != 1) {
        return rc;
    }
    buf[got] = '\0';
    *data = buf;
    *len = got;
    return OK;
}

/*******************************************************************************
 * the URL
 ******************************************************************************/

const char *comet_request_location(request_rec *r, const comet_dir_conf_t *conf)
{
    core_dir_config *cd = ap_get_core_module_config(r->per_dir_config);

    /* the most specific section, as core merged it (ours exists only where a
     * Comet* directive appears) */
    if (cd && cd->d && !cd->r && cd->d[0] == '/') {
        return cd->d;
    }
    return conf->base && conf->base[0] == '/' ? conf->base : NULL;
}

const char *comet_request_path_rest(request_rec *r, const comet_dir_conf_t *conf)
{
    const char *uri = r->uri, *slash, *base = comet_request_location(r, conf);
    apr_size_t blen;

    if (base) {
        blen = strlen(base);
        while (blen > 1 && base[blen - 1] == '/') {
            blen--;
        }
        if (!strncmp(uri, base, blen) && (uri[blen] == '/' || uri[blen] == '\0')) {
            uri += blen;
            return *uri == '/' ? uri + 1 : uri;
        }
    }
    /* regex or unknown location: the last path segment */
    slash = strrchr(uri, '/');
    return slash ? slash + 1 : uri;
}

const char *comet_request_channel_path(request_rec *r, const comet_dir_conf_t *conf)
{
    const char *rest = comet_request_path_rest(r, conf), *slash;
    apr_size_t len = strlen(r->uri);

    if (*rest || len == 0 || r->uri[len - 1] == '/') {
        return rest;
    }
    slash = strrchr(r->uri, '/');
    return slash ? slash + 1 : r->uri;
}

const char *comet_request_arg(request_rec *r, const char *name)
{
    const char *q = r->args;
    apr_size_t nlen = strlen(name);

    while (q && *q) {
        const char *amp = strchr(q, '&');
        apr_size_t len = amp ? (apr_size_t)(amp - q) : strlen(q);
        if (len >= nlen && !strncmp(q, name, nlen) && (len == nlen || q[nlen] == '=')) {
            char *v = apr_pstrmemdup(r->pool, q + nlen + (len > nlen), len - nlen - (len > nlen));
            char *p;
            for (p = v; *p; p++) {
                if (*p == '+') {
                    *p = ' ';
                }
            }
            if (ap_unescape_url(v) != OK) {
                return "\x01";   /* undecodable: fails every validation */
            }
            return v;
        }
        q = amp ? amp + 1 : NULL;
    }
    return NULL;
}

/*******************************************************************************
 * answers
 ******************************************************************************/

void comet_request_no_cache(request_rec *r)
{
    apr_table_setn(r->headers_out, "Cache-Control",
                   "no-store, no-cache, no-transform, must-revalidate, max-age=0");
}

int comet_request_text(request_rec *r, int status, const char *content_type,
                       const char *body, apr_size_t len)
{
    r->status = status;
    ap_set_content_type(r, content_type);
    ap_set_content_length(r, (apr_off_t)len);
    if (!r->header_only) {
        ap_rwrite(body, (int)len, r);
    }
    return OK;
}

int comet_request_json(request_rec *r, int status, comet_json_t *j)
{
    comet_buf_t *b = j->out;
    int rc = OK;

    if (comet_json_finish(j) < 0 || comet_buf_puts(b, "\n") < 0) {
        rc = comet_request_error(r, HTTP_INTERNAL_SERVER_ERROR, APLOG_ERR, APR_ENOMEM,
                                 "out of memory");
    }
    else {
        comet_request_no_cache(r);
        comet_request_text(r, status, "application/json", b->data, b->len);
    }
    comet_buf_free(b);
    return rc;
}

const char *comet_request_json_str(request_rec *r, const char *s, apr_size_t len)
{
    comet_buf_t b = { 0 };
    const char *out;

    if (comet_json_escape(&b, s, len) < 0) {
        return "";
    }
    out = apr_pstrmemdup(r->pool, b.data ? b.data : "", b.len);
    comet_buf_free(&b);
    return out;
}
