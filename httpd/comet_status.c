/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/* mod_comet's figures: mod_status' section, ?auto, JSON, Prometheus; see
 * comet_status.h. Every output is made from one table of figures, so that
 * the four say the same things under the names each world expects. */

#include <stddef.h>

#include "comet_status.h"
#include "comet_proc.h"
#include "comet_request.h"

/* after httpd.h: apr_optional_hooks.h needs apu.h, which it does not include */
#include <apr_optional_hooks.h>
#include <apr_strings.h>

#include <http_protocol.h>
#include <http_request.h>
#include <mod_status.h>

/* What the outputs show, read once per request. */
typedef struct {
    apr_uint64_t channels, channels_max;
    apr_uint64_t subscribers, thread_streams;
    apr_uint64_t published, published_bytes;
    apr_uint64_t delivered, delivered_bytes, dropped, gaps;
    apr_uint64_t shm_used, shm_size;
    apr_uint64_t sessions, backends, sources;
    apr_uint64_t processes, processes_max, repairs;
} totals_t;

/* One child's figures. */
typedef struct {
    apr_uint64_t subscribers, thread_streams, channels;
    apr_uint64_t delivered, delivered_bytes, dropped;
} child_t;

typedef struct {
    totals_t t;
    comet_slot_info_t *slots;     /* live slots, the supervisor's included */
    apr_size_t nslots;
    const comet_slot_info_t *sup; /* the supervisor's slot, or NULL */
} snap_t;

/* Prometheus: the family is a per-child one, not a server-wide value. */
#define F_PER_CHILD 0x1

/* A figure, under each of its names. */
typedef struct {
    const char *prom;             /* Prometheus name (comet_ prefix included) */
    const char *type;             /* "gauge" or "counter" */
    const char *help;
    const char *key;              /* ?auto: Comet<key> */
    const char *json;             /* JSON key */
    const char *label;            /* mod_status' page */
    apr_size_t off;               /* in totals_t or child_t */
    int flags;
} figure_t;

#define TOT(f) offsetof(totals_t, f)
#define CHI(f) offsetof(child_t, f)

static const figure_t totals[] = {
    { "comet_channels", "gauge", "Channels in the store.",
      "Channels", "channels", "Channels", TOT(channels), 0 },
    { "comet_channels_max", "gauge", "Most channels the store can hold.",
      "ChannelsMax", "channels_max", "Channels at most", TOT(channels_max), 0 },
    { "comet_subscribers", "gauge", "Streams open.",
      "Subscribers", "subscribers", "Subscribers", TOT(subscribers), F_PER_CHILD },
    { "comet_thread_streams", "gauge", "Streams keeping a handler thread.",
      "ThreadStreams", "thread_streams", "Of which keeping a thread",
      TOT(thread_streams), F_PER_CHILD },
    { "comet_messages_published_total", "counter", "Messages published.",
      "MessagesPublished", "messages_published", "Messages published", TOT(published), 0 },
    { "comet_message_bytes_published_total", "counter", "Bytes of the messages published.",
      "MessageBytesPublished", "message_bytes_published", "Bytes published",
      TOT(published_bytes), 0 },
    { "comet_deliveries_total", "counter",
      "Messages queued to streams, every child, those gone included.",
      "Deliveries", "deliveries", "Deliveries", TOT(delivered), 0 },
    { "comet_message_bytes_delivered_total", "counter",
      "Bytes of the messages queued to streams, every child, those gone included.",
      "MessageBytesDelivered", "message_bytes_delivered", "Bytes delivered",
      TOT(delivered_bytes), 0 },
    { "comet_streams_dropped_slow_total", "counter",
      "Streams dropped because their client read too slowly (CometClientBuffer).",
      "StreamsDroppedSlow", "streams_dropped_slow", "Streams dropped for slowness",
      TOT(dropped), 0 },
    { "comet_message_gaps_total", "counter",
      "Times a child found messages gone from a channel before it read them.",
      "MessageGaps", "message_gaps", "Message gaps", TOT(gaps), 0 },
    { "comet_shm_used_bytes", "gauge", "Bytes of shared memory holding messages now.",
      "ShmUsed", "shm_used", "Shared memory used (bytes)", TOT(shm_used), 0 },
    { "comet_shm_size_bytes", "gauge", "Bytes of shared memory for messages.",
      "ShmTotal", "shm_total", "Shared memory for messages (bytes)", TOT(shm_size), 0 },
    { "comet_sessions", "gauge", "SockJS sessions.",
      "Sessions", "sessions", "SockJS sessions", TOT(sessions), 0 },
    { "comet_backends", "gauge", "Backends of sessions running (programs, sockets).",
      "Backends", "backends", "Backends running", TOT(backends), 0 },
    { "comet_sources", "gauge", "Channel sources running.",
      "Sources", "sources", "Channel sources running", TOT(sources), 0 },
    { "comet_processes", "gauge", "Processes holding a slot of the store.",
      "Processes", "processes", "Processes", TOT(processes), 0 },
    { "comet_processes_max", "gauge", "Slots of the store.",
      "ProcessesMax", "processes_max", "Processes at most", TOT(processes_max), 0 },
    { "comet_store_repairs_total", "counter",
      "Times the store was repaired after a process died holding its lock.",
      "StoreRepairs", "store_repairs", "Store repairs", TOT(repairs), 0 },
};

static const figure_t per_child[] = {
    { "comet_subscribers", "gauge", "Streams open, per child.",
      NULL, "subscribers", "Subscribers", CHI(subscribers), 0 },
    { "comet_thread_streams", "gauge", "Streams keeping a handler thread, per child.",
      NULL, "thread_streams", "Keeping a thread", CHI(thread_streams), 0 },
    { "comet_child_channels", "gauge", "Channels a child's streams follow.",
      NULL, "channels", "Channels", CHI(channels), 0 },
    { "comet_child_deliveries_total", "counter", "Messages queued to streams, per child.",
      NULL, "deliveries", "Deliveries", CHI(delivered), 0 },
    { "comet_child_message_bytes_delivered_total", "counter",
      "Bytes of the messages queued to streams, per child.",
      NULL, "message_bytes_delivered", "Bytes delivered", CHI(delivered_bytes), 0 },
    { "comet_child_streams_dropped_slow_total", "counter",
      "Streams dropped because their client read too slowly, per child.",
      NULL, "streams_dropped_slow", "Dropped for slowness", CHI(dropped), 0 },
};

#define NFIGS(a) (sizeof(a) / sizeof((a)[0]))

static apr_uint64_t fig_value(const void *base, const figure_t *f)
{
    return *(const apr_uint64_t *)((const char *)base + f->off);
}

static void child_of(const comet_slot_info_t *si, child_t *c)
{
    c->subscribers = si->counters.subscribers;
    c->thread_streams = si->held;
    c->channels = si->counters.channels;
    c->delivered = si->counters.delivered;
    c->delivered_bytes = si->counters.delivered_bytes;
    c->dropped = si->counters.dropped;
}

static int is_child(const comet_slot_info_t *si)
{
    return si->counters.kind == COMET_SLOT_CHILD;
}

/* Read the store's figures and its slots'. Subscribers and thread streams
 * are added up from the same list of slots that is shown, so that the
 * children's add up to the total whatever moved in between. */
static apr_status_t snap_take(request_rec *r, snap_t *sn)
{
    comet_store_t *store = comet_proc.store;
    comet_store_stats_t st;
    apr_size_t i, max;
    apr_status_t rv;

    memset(sn, 0, sizeof(*sn));
    if (!store) {
        return APR_ENOTIMPL;
    }
    if ((rv = store->stats(store, &st)) != APR_SUCCESS) {
        return rv;
    }
    /* room for children started since */
    max = st.slots_used + 16 < st.slots_max ? st.slots_used + 16 : st.slots_max;
    sn->slots = apr_pcalloc(r->pool, (max ? max : 1) * sizeof(*sn->slots));
    if ((rv = store->slot_list(store, sn->slots, max, &sn->nslots)) != APR_SUCCESS) {
        return rv;
    }
    for (i = 0; i < sn->nslots; i++) {
        const comet_slot_info_t *si = &sn->slots[i];
        if (!is_child(si)) {
            sn->sup = si;
            continue;
        }
        sn->t.subscribers += si->counters.subscribers;
        sn->t.thread_streams += si->held;
    }
    sn->t.channels = st.channels;
    sn->t.channels_max = st.channels_max;
    sn->t.published = st.published;
    sn->t.published_bytes = st.published_bytes;
    sn->t.delivered = st.delivered;
    sn->t.delivered_bytes = st.delivered_bytes;
    sn->t.dropped = st.dropped;
    sn->t.gaps = st.gaps;
    sn->t.shm_used = (apr_uint64_t)st.blocks_used * st.block_size;
    sn->t.shm_size = (apr_uint64_t)st.blocks_max * st.block_size;
    sn->t.sessions = st.sessions;
    sn->t.backends = st.backends;
    sn->t.sources = st.sources;
    sn->t.processes = st.slots_used;
    sn->t.processes_max = st.slots_max;
    sn->t.repairs = st.repairs;
    return APR_SUCCESS;
}

/*******************************************************************************
 * mod_status
 ******************************************************************************/

/* ?auto: `CometXxx: n` lines, then one line per child, whose value lists
 * the child's figures under their JSON names. */
static void status_auto(request_rec *r, const snap_t *sn)
{
    apr_size_t i, k;

    for (k = 0; k < NFIGS(totals); k++) {
        ap_rprintf(r, "Comet%s: %" APR_UINT64_T_FMT "\n", totals[k].key,
                   fig_value(&sn->t, &totals[k]));
    }
    for (i = 0; i < sn->nslots; i++) {
        const comet_slot_info_t *si = &sn->slots[i];
        child_t c;
        if (!is_child(si)) {
            continue;
        }
        child_of(si, &c);
        ap_rprintf(r, "CometChild%d: pid=%d", si->slot, (int)si->pid);
        for (k = 0; k < NFIGS(per_child); k++) {
            ap_rprintf(r, " %s=%" APR_UINT64_T_FMT, per_child[k].json,
                       fig_value(&c, &per_child[k]));
        }
        ap_rputs("\n", r);
    }
    if (sn->sup) {
        ap_rprintf(r, "CometSupervisorPid: %d\n", (int)sn->sup->pid);
    }
}

static void status_html(request_rec *r, const snap_t *sn, int flags)
{
    apr_size_t i, k;

    ap_rputs("<hr />\n<h2><a id=\"comet\">mod_comet</a> " COMET_VERSION "</h2>\n<dl>\n", r);
    for (k = 0; k < NFIGS(totals); k++) {
        ap_rprintf(r, "<dt>%s: %" APR_UINT64_T_FMT "</dt>\n", totals[k].label,
                   fig_value(&sn->t, &totals[k]));
    }
    if (sn->sup) {
        ap_rprintf(r, "<dt>Supervisor: pid %d</dt>\n", (int)sn->sup->pid);
    }
    ap_rputs("</dl>\n", r);
    if (flags & AP_STATUS_NOTABLE) {
        for (i = 0; i < sn->nslots; i++) {
            child_t c;
            if (!is_child(&sn->slots[i])) {
                continue;
            }
            child_of(&sn->slots[i], &c);
            ap_rprintf(r, "<p>Child %d (pid %d):", sn->slots[i].slot, (int)sn->slots[i].pid);
            for (k = 0; k < NFIGS(per_child); k++) {
                ap_rprintf(r, " %s %" APR_UINT64_T_FMT "%s", per_child[k].label,
                           fig_value(&c, &per_child[k]), k + 1 < NFIGS(per_child) ? "," : "");
            }
            ap_rputs("</p>\n", r);
        }
        return;
    }
    ap_rputs("<table border=\"0\" id=\"comet-children\"><tr><th>Child</th><th>PID</th>", r);
    for (k = 0; k < NFIGS(per_child); k++) {
        ap_rprintf(r, "<th>%s</th>", per_child[k].label);
    }
    ap_rputs("</tr>\n", r);
    for (i = 0; i < sn->nslots; i++) {
        child_t c;
        if (!is_child(&sn->slots[i])) {
            continue;
        }
        child_of(&sn->slots[i], &c);
        ap_rprintf(r, "<tr><td>%d</td><td>%d</td>", sn->slots[i].slot, (int)sn->slots[i].pid);
        for (k = 0; k < NFIGS(per_child); k++) {
            ap_rprintf(r, "<td>%" APR_UINT64_T_FMT "</td>", fig_value(&c, &per_child[k]));
        }
        ap_rputs("</tr>\n", r);
    }
    ap_rputs("</table>\n", r);
}

static int status_hook(request_rec *r, int flags)
{
    snap_t sn;
    apr_status_t rv = snap_take(r, &sn);

    if (rv != APR_SUCCESS) {
        if (rv != APR_ENOTIMPL) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, COMET_LOGNO(00400)
                          "cannot read the store's figures for mod_status");
        }
        if (!(flags & AP_STATUS_SHORT)) {
            ap_rputs("<hr />\n<h2>mod_comet</h2>\n<p>No figures: the channel store is "
                     "not open in this process (see the error log).</p>\n", r);
        }
        return OK;
    }
    if (flags & AP_STATUS_SHORT) {
        status_auto(r, &sn);
    }
    else {
        status_html(r, &sn, flags);
    }
    return OK;
}

/*******************************************************************************
 * SetHandler comet-status
 ******************************************************************************/

static int answer_json(request_rec *r, const snap_t *sn)
{
    comet_buf_t b = { 0 };
    comet_json_t j;
    apr_size_t i, k;

    comet_json_start(&j, &b, COMET_JSON_SPACED);
    comet_json_open(&j, NULL, '{');
    comet_json_str(&j, "version", COMET_VERSION, strlen(COMET_VERSION));
    comet_json_str(&j, "store", comet_proc.store->name, strlen(comet_proc.store->name));
    for (k = 0; k < NFIGS(totals); k++) {
        comet_json_u64(&j, totals[k].json, fig_value(&sn->t, &totals[k]));
    }
    comet_json_open(&j, "children", '[');
    for (i = 0; i < sn->nslots; i++) {
        child_t c;
        if (!is_child(&sn->slots[i])) {
            continue;
        }
        child_of(&sn->slots[i], &c);
        comet_json_open(&j, NULL, '{');
        comet_json_u64(&j, "child", (apr_uint64_t)sn->slots[i].slot);
        comet_json_i64(&j, "pid", sn->slots[i].pid);
        for (k = 0; k < NFIGS(per_child); k++) {
            comet_json_u64(&j, per_child[k].json, fig_value(&c, &per_child[k]));
        }
        comet_json_close(&j);
    }
    comet_json_close(&j);
    if (sn->sup) {
        comet_json_open(&j, "supervisor", '{');
        comet_json_i64(&j, "pid", sn->sup->pid);
        comet_json_close(&j);
    }
    else {
        comet_json_raw(&j, "supervisor", "null", 4);
    }
    comet_json_close(&j);
    return comet_request_json(r, HTTP_OK, &j);
}

/* One family of the text exposition format: HELP, TYPE, then its samples. */
static void prom_head(comet_buf_t *b, const figure_t *f)
{
    comet_buf_puts(b, "# HELP ");
    comet_buf_puts(b, f->prom);
    comet_buf_puts(b, " ");
    comet_buf_puts(b, f->help);
    comet_buf_puts(b, "\n# TYPE ");
    comet_buf_puts(b, f->prom);
    comet_buf_puts(b, " ");
    comet_buf_puts(b, f->type);
    comet_buf_puts(b, "\n");
}

static int answer_prometheus(request_rec *r, const snap_t *sn)
{
    comet_buf_t b = { 0 };
    apr_size_t i, k;
    int rc;

    /* the version and store as labels of a constant, as Prometheus does */
    comet_buf_puts(&b, "# HELP comet_info mod_comet's version and store.\n"
                       "# TYPE comet_info gauge\ncomet_info{version=\"");
    comet_buf_puts(&b, COMET_VERSION);
    comet_buf_puts(&b, "\",store=\"");
    comet_buf_puts(&b, comet_proc.store->name);
    comet_buf_puts(&b, "\"} 1\n");
    for (k = 0; k < NFIGS(totals); k++) {
        if (totals[k].flags & F_PER_CHILD) {
            continue;
        }
        prom_head(&b, &totals[k]);
        comet_buf_puts(&b, totals[k].prom);
        comet_buf_puts(&b, " ");
        comet_buf_put_u64(&b, fig_value(&sn->t, &totals[k]));
        comet_buf_puts(&b, "\n");
    }
    for (k = 0; k < NFIGS(per_child); k++) {
        prom_head(&b, &per_child[k]);
        for (i = 0; i < sn->nslots; i++) {
            char labels[64];
            child_t c;
            if (!is_child(&sn->slots[i])) {
                continue;
            }
            child_of(&sn->slots[i], &c);
            apr_snprintf(labels, sizeof(labels), "{child=\"%d\",pid=\"%d\"} ",
                         sn->slots[i].slot, (int)sn->slots[i].pid);
            comet_buf_puts(&b, per_child[k].prom);
            comet_buf_puts(&b, labels);
            comet_buf_put_u64(&b, fig_value(&c, &per_child[k]));
            comet_buf_puts(&b, "\n");
        }
    }
    if (!b.data) {
        return comet_request_error(r, HTTP_INTERNAL_SERVER_ERROR, APLOG_ERR, APR_ENOMEM,
                                   "out of memory");
    }
    comet_request_no_cache(r);
    rc = comet_request_text(r, HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
                            b.data, b.len);
    comet_buf_free(&b);
    return rc;
}

/* Prometheus' format when asked by name, or when the client takes the
 * text format and not JSON (Prometheus' own Accept). */
static int wants_prometheus(request_rec *r, int *bad)
{
    const char *format = comet_request_arg(r, "format");
    const char *accept = apr_table_get(r->headers_in, "Accept");

    *bad = 0;
    if (format) {
        if (!strcmp(format, "prometheus")) {
            return 1;
        }
        *bad = strcmp(format, "json") != 0;
        return 0;
    }
    return accept && (ap_strcasestr(accept, "text/plain")
                      || ap_strcasestr(accept, "application/openmetrics-text"))
        && !ap_strcasestr(accept, "application/json");
}

static int comet_status_handler(request_rec *r)
{
    snap_t sn;
    apr_status_t rv;
    int bad, prom;

    if (strcmp(r->handler, "comet-status")) {
        return DECLINED;
    }
    if (r->method_number != M_GET) {
        return comet_request_refuse_method(r, COMET_METHOD(M_GET));
    }
    apr_table_mergen(r->headers_out, "Vary", "Accept");
    prom = wants_prometheus(r, &bad);
    if (bad) {
        return comet_request_error(r, HTTP_BAD_REQUEST, APLOG_INFO, 0,
                                   "format: json or prometheus");
    }
    if ((rv = snap_take(r, &sn)) != APR_SUCCESS) {
        return comet_request_error(r, HTTP_SERVICE_UNAVAILABLE, APLOG_ERR, rv,
                                   "cannot read the channel store's figures");
    }
    return prom ? answer_prometheus(r, &sn) : answer_json(r, &sn);
}

void comet_status_register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_handler(comet_status_handler, NULL, NULL, APR_HOOK_MIDDLE);
    APR_OPTIONAL_HOOK(ap, status_hook, status_hook, NULL, NULL, APR_HOOK_MIDDLE);
}
