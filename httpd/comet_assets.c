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

/* The name a class is served under: CometClassID for comet.js; for
 * socket.js, that name with its trailing "Comet" turned into "Socket"
 * ("_Socket" appended when it has none), as socket.js computes it. */
static const char *class_name(request_rec *r, const comet_dir_conf_t *conf, int socket)
{
    const char *id = COMET_CONF_STR(conf, COMET_CONF_CLASS_ID);
    apr_size_t n = strlen(id);

    if (!socket) {
        return id;
    }
    if (n >= 5 && !strcmp(id + n - 5, "Comet")) {
        return apr_pstrcat(r->pool, apr_pstrmemdup(r->pool, id, n - 5), "Socket", NULL);
    }
    return apr_pstrcat(r->pool, id, "_Socket", NULL);
}

/* The class, wrapped in a function that receives this location's settings:
 * a classic script (comet.js), or with `esm` an ES module (comet.mjs)
 * that exports it by its name and as default. Both are the same file of
 * js/ between the same settings: the module's wrapper differs only in what
 * stands for `this` (undefined at a module's top), its own URL (no
 * document.currentScript in a module) and the export. */
static int serve_class(request_rec *r, const comet_dir_conf_t *conf, const comet_asset_t *a,
                       int esm)
{
    const char *class_id = COMET_CONF_STR(conf, COMET_CONF_CLASS_ID);
    const char *base = comet_request_location(r, conf);
    const char *etag, *head, *tail = "\n})(this);\n", *strings, *transports, *name;
    const comet_lang_t *lang;
    apr_interval_time_t hb = COMET_CONF(conf, COMET_CONF_HEARTBEAT);

    if (r->method_number != M_GET) {
        return comet_request_refuse_method(r, COMET_METHOD(M_GET));
    }
    lang = negotiate_lang(r);
    strings = strings_json(r, conf, lang);
    transports = transports_json(r, conf);
    /* everything the answer is made of, so that no edit keeps an old ETag */
    etag = apr_psprintf(r->pool, "\"%s-%s-%s%s-%08x\"", COMET_VERSION, class_id, lang->tag,
                        esm ? "-m" : "",
                        comet_hash32(a->data, a->len) ^ (unsigned)hb ^ hash_str(strings)
                        ^ hash_str(transports) ^ hash_str(base ? base : ""));
    apr_table_setn(r->headers_out, "ETag", etag);
    apr_table_setn(r->headers_out, "Cache-Control", "no-cache");
    if (esm) {
        /* what browsers expect of a module (the HTML standard's type for
         * JavaScript); Deno finds the types by this header */
        ap_set_content_type(r, "text/javascript; charset=utf-8");
        apr_table_setn(r->headers_out, "X-TypeScript-Types",
                       apr_pstrcat(r->pool, apr_pstrmemdup(r->pool, a->name, strlen(a->name) - 3),
                                   ".d.ts", NULL));
    }
    else {
        ap_set_content_type(r, "application/javascript; charset=utf-8");
    }
    if (ap_meets_conditions(r) == HTTP_NOT_MODIFIED) {
        return HTTP_NOT_MODIFIED;
    }
    head = apr_psprintf(r->pool,
                        "/* mod_comet %s */\n(function (global) {\n"
                        "var COMET = { version: \"%s\", classId: \"%s\", base: \"%s\", "
                        "heartbeat: %" APR_INT64_T_FMT ", transports: [%s], lang: \"%s\", "
                        "strings: %s%s };\n",
                        COMET_VERSION, COMET_VERSION, class_id,
                        base ? comet_request_json_str(r, base, strlen(base)) : "",
                        apr_time_as_msec(hb), transports, lang->tag, strings,
                        esm ? ", src: import.meta.url" : "");
    if (esm) {
        /* CometClassID is an identifier (comet_config.c checks it) */
        name = class_name(r, conf, !strcmp(a->name, "socket.js"));
        tail = apr_psprintf(r->pool, "\n})(globalThis);\nconst %s = globalThis.%s;\n"
                            "export { %s, %s as default };\n", name, name, name, name);
    }
    ap_set_content_length(r, (apr_off_t)(strlen(head) + a->len + strlen(tail)));
    if (!r->header_only) {
        ap_rputs(head, r);
        ap_rwrite(a->data, (int)a->len, r);
        ap_rputs(tail, r);
    }
    return OK;
}

/* A TypeScript declaration file of js/ (comet.d.ts, socket.d.ts), its
 * classes named as this location serves them: js/'s files say
 * Pxxo_Widget_Comet and Pxxo_Widget_Socket, the defaults. */
static int serve_types(request_rec *r, const comet_dir_conf_t *conf, const comet_asset_t *a)
{
    const char *from[2] = { "Pxxo_Widget_Comet", "Pxxo_Widget_Socket" }, *to[2], *p, *end, *hit;
    comet_buf_t b = { 0 };
    int i, rc, at;

    if (r->method_number != M_GET) {
        return comet_request_refuse_method(r, COMET_METHOD(M_GET));
    }
    to[0] = class_name(r, conf, 0);
    to[1] = class_name(r, conf, 1);
    for (p = a->data, end = a->data + a->len; p < end; ) {
        for (hit = NULL, at = 0, i = 0; i < 2; i++) {
            const char *h = strstr(p, from[i]);
            if (h && (!hit || h < hit)) {
                hit = h;
                at = i;
            }
        }
        if (!hit) {
            rc = comet_buf_append(&b, p, (apr_size_t)(end - p));
            p = end;
        }
        else {
            rc = comet_buf_append(&b, p, (apr_size_t)(hit - p)) < 0 ? -1 : comet_buf_puts(&b, to[at]);
            p = hit + strlen(from[at]);
        }
        if (rc < 0) {
            comet_buf_free(&b);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    apr_table_setn(r->headers_out, "Cache-Control", "no-cache");
    rc = comet_request_text(r, HTTP_OK, "application/typescript; charset=utf-8",
                            b.data ? b.data : "", b.len);
    comet_buf_free(&b);
    return rc;
}

int comet_assets_handle(request_rec *r, const comet_dir_conf_t *conf, const char *path)
{
    const char *dot = strrchr(path, '.');
    const comet_asset_t *a;

    if (dot && !strcmp(dot, ".mjs")) {
        /* the ES module of <name>.js */
        a = asset_find(apr_pstrcat(r->pool, apr_pstrmemdup(r->pool, path, (apr_size_t)(dot - path)),
                                   ".js", NULL));
        if (a) {
            return serve_class(r, conf, a, 1);
        }
    }
    else if ((a = asset_find(path))) {
        return dot && !strcmp(dot, ".ts") ? serve_types(r, conf, a) : serve_class(r, conf, a, 0);
    }
    if (!strncmp(path, "i18n/", 5) || !strncmp(path, "i18n.", 5)) {
        return serve_strings(r, conf, path);
    }
    return DECLINED;
}
