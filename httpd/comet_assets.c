/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/* The browser classes and their strings; see comet_assets.h. */

#include <apr_strings.h>

#include <http_protocol.h>
#include <http_request.h>

#include "comet_assets.h"
#include "comet_i18n.h"
#include "comet_request.h"

static const comet_asset_t *asset_find(const char *name)
{
    int i;

    for (i = 0; comet_assets[i].name; i++) {
        if (!strcmp(comet_assets[i].name, name)) {
            return &comet_assets[i];
        }
    }
    return NULL;
}

/* The language for this request: Accept-Language's. */
static const comet_lang_t *negotiate_lang(request_rec *r)
{
    apr_table_mergen(r->headers_out, "Vary", "Accept-Language");
    return comet_lang_negotiate(apr_table_get(r->headers_in, "Accept-Language"));
}

/* The strings of `lang` for this location (CometTranslate applied), as a
 * JSON object. */
static const char *strings_json(request_rec *r, const comet_dir_conf_t *conf,
                                const comet_lang_t *lang)
{
    const char **over = NULL;
    apr_size_t n = 0;
    comet_buf_t b = { 0 };
    const char *json = "{}";
    int i;

    if (conf->translate) {
        const comet_translation_t *t = (const comet_translation_t *)conf->translate->elts;
        over = apr_palloc(r->pool, 2 * sizeof(char *) * (apr_size_t)conf->translate->nelts);
        for (i = 0; i < conf->translate->nelts; i++) {
            if (!t[i].lang || comet_lang_find(t[i].lang, strlen(t[i].lang)) == lang) {
                over[2 * n] = t[i].key;
                over[2 * n + 1] = t[i].text;
                n++;
            }
        }
    }
    if (comet_lang_json(&b, lang, over, n) == 0) {
        json = apr_pstrmemdup(r->pool, b.data, b.len);
    }
    comet_buf_free(&b);
    return json;
}

/* GET <location>/i18n/<lang>.js|.json, or i18n.js|.json (negotiated). */
static int serve_strings(request_rec *r, const comet_dir_conf_t *conf, const char *path)
{
    const comet_lang_t *lang;
    const char *dot = strrchr(path, '.'), *json, *body;
    comet_buf_t b = { 0 };
    comet_json_t j;
    int rc;

    if (!dot || (strcmp(dot, ".js") && strcmp(dot, ".json"))) {
        return comet_request_error(r, HTTP_NOT_FOUND, APLOG_DEBUG, 0,
                                   "string tables: i18n/<lang>.js or .json");
    }
    if (!strncmp(path, "i18n/", 5)) {
        if (!(lang = comet_lang_find(path + 5, (apr_size_t)(dot - path - 5)))
            || ap_strchr_c(path + 5, '/')) {
            return comet_request_error(r, HTTP_NOT_FOUND, APLOG_DEBUG, 0,
                                       "no such language (built in: en, fr, de, es)");
        }
    }
    else {
        lang = negotiate_lang(r);
    }
    if (r->method_number != M_GET) {
        return comet_request_refuse_method(r, COMET_METHOD(M_GET));
    }
    json = strings_json(r, conf, lang);
    apr_table_setn(r->headers_out, "Cache-Control", "no-cache");
    apr_table_setn(r->headers_out, "Content-Language", lang->tag);
    if (!strcmp(dot, ".js")) {
        /* the table goes where the class finds it, loaded before or after */
        body = apr_psprintf(r->pool,
            "(function (g) {\nvar n = \"%s\", lang = \"%s\", s = %s;\n"
            "(g[n + \"_strings\"] = g[n + \"_strings\"] || {})[lang] = s;\n"
            "if (g[n] && g[n].useStrings) { g[n].useStrings(lang, s); }\n})(this);\n",
            COMET_CONF_STR(conf, COMET_CONF_CLASS_ID), lang->tag, json);
        return comet_request_text(r, HTTP_OK, "application/javascript; charset=utf-8",
                                  body, strlen(body));
    }
    comet_json_start(&j, &b, COMET_JSON_SPACED);
    comet_json_open(&j, NULL, '{');
    comet_json_str(&j, "lang", lang->tag, strlen(lang->tag));
    comet_json_raw(&j, "strings", json, strlen(json));
    comet_json_close(&j);
    rc = comet_json_finish(&j) < 0 || comet_buf_puts(&b, "\n") < 0
       ? HTTP_INTERNAL_SERVER_ERROR
       : comet_request_text(r, HTTP_OK, "application/json; charset=utf-8", b.data, b.len);
    comet_buf_free(&b);
    return rc;
}

/* The names of the transports this location offers, as a JSON array's inside. */
static const char *transports_json(request_rec *r, const comet_dir_conf_t *conf)
{
    apr_int64_t bits = COMET_CONF(conf, COMET_CONF_TRANSPORTS);
    const char *list = "";
    int i;

    for (i = 0; comet_config_transports[i]; i++) {
        if (bits & comet_config_transport_bit(comet_config_transports[i])) {
            list = apr_psprintf(r->pool, "%s%s\"%s\"", list, *list ? ", " : "",
                                comet_config_transports[i]->name);
        }
    }
    return list;
}

static unsigned hash_str(const char *s)
{
    return comet_hash32(s, strlen(s));
}

/* The class, wrapped in a function that receives this location's settings. */
static int serve_class(request_rec *r, const comet_dir_conf_t *conf, const comet_asset_t *a)
{
    const char *class_id = COMET_CONF_STR(conf, COMET_CONF_CLASS_ID);
    const char *base = comet_request_location(r, conf);
    const char *etag, *head, *tail = "\n})(this);\n", *strings, *transports;
    const comet_lang_t *lang;
    apr_interval_time_t hb = COMET_CONF(conf, COMET_CONF_HEARTBEAT);

    if (r->method_number != M_GET) {
        return comet_request_refuse_method(r, COMET_METHOD(M_GET));
    }
    lang = negotiate_lang(r);
    strings = strings_json(r, conf, lang);
    transports = transports_json(r, conf);
    /* everything the answer is made of, so that no edit keeps an old ETag */
    etag = apr_psprintf(r->pool, "\"%s-%s-%s-%08x\"", COMET_VERSION, class_id, lang->tag,
                        comet_hash32(a->data, a->len) ^ (unsigned)hb ^ hash_str(strings)
                        ^ hash_str(transports) ^ hash_str(base ? base : ""));
    apr_table_setn(r->headers_out, "ETag", etag);
    apr_table_setn(r->headers_out, "Cache-Control", "no-cache");
    ap_set_content_type(r, "application/javascript; charset=utf-8");
    if (ap_meets_conditions(r) == HTTP_NOT_MODIFIED) {
        return HTTP_NOT_MODIFIED;
    }
    head = apr_psprintf(r->pool,
                        "/* mod_comet %s */\n(function (global) {\n"
                        "var COMET = { version: \"%s\", classId: \"%s\", base: \"%s\", "
                        "heartbeat: %" APR_INT64_T_FMT ", transports: [%s], lang: \"%s\", "
                        "strings: %s };\n",
                        COMET_VERSION, COMET_VERSION, class_id,
                        base ? comet_request_json_str(r, base, strlen(base)) : "",
                        apr_time_as_msec(hb), transports, lang->tag, strings);
    ap_set_content_length(r, (apr_off_t)(strlen(head) + a->len + strlen(tail)));
    if (!r->header_only) {
        ap_rputs(head, r);
        ap_rwrite(a->data, (int)a->len, r);
        ap_rputs(tail, r);
    }
    return OK;
}

int comet_assets_handle(request_rec *r, const comet_dir_conf_t *conf, const char *path)
{
    const comet_asset_t *a = asset_find(path);

    if (a) {
        return serve_class(r, conf, a);
    }
    if (!strncmp(path, "i18n/", 5) || !strncmp(path, "i18n.", 5)) {
        return serve_strings(r, conf, path);
    }
    return DECLINED;
}
