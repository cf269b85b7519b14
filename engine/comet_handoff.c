/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/* A stream handed to another child's loop; see comet_handoff.h.
 *
 * The datagram, little-endian as the host writes it (both ends are the same
 * binary on the same machine; the version guards a graceful restart to
 * another build):
 *
 *   "CMTH" u32 version  u32 from_slot  u32 transport  u32 flags
 *   i64 heartbeat  i64 lifetime  u64 byte_limit  u64 queue_limit
 *   i64 params.heartbeat  i64 params.retry  u64 written  i64 end_at
 *   str peer  str callback (length ~0: none)  u32 nchannels
 *   nchannels x { str name  u64 since  u32 ref.idx  u32 ref.gen }
 *
 *   str = u32 length, then the bytes and a NUL (so that the strings can be
 *         used where the datagram lies)
 */

#include <string.h>

#include "comet_handoff.h"

#define VERSION 3
#define NO_STRING 0xffffffffu
#define FLAG_CHUNKED 1u
#define FLAG_LIVE    2u           /* a running stream (spec->live) */

/* The transports of channel streams over HTTP: those that can move. */
static const comet_transport_t *const movable[] = {
    &comet_transport_iframe,
    &comet_transport_sse,
    &comet_transport_sse_multi,
    &comet_transport_stream,
    &comet_transport_longpoll,
};

static const comet_transport_t *transport_of(apr_uint32_t index)
{
    apr_size_t i;

    for (i = 0; i < sizeof(movable) / sizeof(movable[0]); i++) {
        if ((apr_uint32_t)movable[i]->index == index) {
            return movable[i];
        }
    }
    return NULL;
}

int comet_handoff_movable(const comet_sub_spec_t *spec)
{
    return spec->fd >= 0 && !spec->ops && !spec->websocket && !spec->session
           && !spec->input_len && spec->presubscribed && spec->transport
           && transport_of((apr_uint32_t)spec->transport->index) == spec->transport
           && spec->nchannels >= 1 && spec->nchannels <= COMET_SUB_CHANNELS_MAX;
}

static int put(comet_buf_t *b, const void *p, apr_size_t n)
{
    return comet_buf_append(b, p, n);
}

static int put32(comet_buf_t *b, apr_uint32_t v)
{
    return put(b, &v, sizeof(v));
}

static int put64(comet_buf_t *b, apr_uint64_t v)
{
    return put(b, &v, sizeof(v));
}

static int put_str(comet_buf_t *b, const char *s, apr_size_t n)
{
    if (!s) {
        return put32(b, NO_STRING);
    }
    return put32(b, (apr_uint32_t)n) || put(b, s, n) || put(b, "", 1);
}

int comet_handoff_pack(comet_buf_t *out, const comet_sub_spec_t *spec, int from_slot)
{
    const char *cb = spec->params.callback;
    apr_size_t i;
    int rc;

    if (!comet_handoff_movable(spec)) {
        return -1;
    }
    rc = put(out, COMET_HANDOFF_MAGIC, 4) || put32(out, VERSION)
         || put32(out, (apr_uint32_t)from_slot)
         || put32(out, (apr_uint32_t)spec->transport->index)
         || put32(out, (spec->chunked ? FLAG_CHUNKED : 0) | (spec->live ? FLAG_LIVE : 0))
         || put64(out, (apr_uint64_t)spec->heartbeat) || put64(out, (apr_uint64_t)spec->lifetime)
         || put64(out, spec->byte_limit) || put64(out, spec->queue_limit)
         || put64(out, (apr_uint64_t)spec->params.heartbeat)
         || put64(out, (apr_uint64_t)spec->params.retry)
         || put64(out, spec->written) || put64(out, (apr_uint64_t)spec->end_at)
         || put64(out, (apr_uint64_t)spec->began)
         || put_str(out, spec->peer ? spec->peer : "-", strlen(spec->peer ? spec->peer : "-"))
         || put_str(out, cb, cb ? strlen(cb) : 0)
         || put_str(out, spec->origin, spec->origin ? strlen(spec->origin) : 0)
         || put32(out, (apr_uint32_t)spec->nchannels);
    for (i = 0; !rc && i < spec->nchannels; i++) {
        rc = put_str(out, spec->channels[i], spec->channel_lens[i])
             || put64(out, spec->since[i]) || put32(out, spec->refs[i].idx)
             || put32(out, spec->refs[i].gen);
    }
    return rc ? -1 : 0;
}

int comet_handoff_batch_add(comet_buf_t *out, const comet_sub_spec_t *spec, int from_slot)
{
    comet_buf_t rec = { 0 };
    apr_uint32_t count = 0;
    apr_size_t was = out->len;
    int rc;

    if (comet_handoff_pack(&rec, spec, from_slot) < 0) {
        comet_buf_free(&rec);
        return -1;
    }
    if (!out->len) {
        rc = put(out, COMET_HANDOFF_BATCH_MAGIC, 4) || put32(out, 0);
    }
    else {
        rc = 0;
    }
    rc = rc || put32(out, (apr_uint32_t)rec.len) || put(out, rec.data, rec.len);
    comet_buf_free(&rec);
    if (rc) {
        out->len = was;
        return -1;
    }
    memcpy(&count, out->data + 4, sizeof(count));
    count++;
    memcpy(out->data + 4, &count, sizeof(count));
    return 0;
}

apr_status_t comet_handoff_batch_open(const char *data, apr_size_t len, apr_uint32_t *count,
                                      const char **next)
{
    if (len < 8 || memcmp(data, COMET_HANDOFF_BATCH_MAGIC, 4)) {
        return APR_EINVAL;
    }
    memcpy(count, data + 4, sizeof(*count));
    *next = data + 8;
    return APR_SUCCESS;
}

apr_status_t comet_handoff_batch_take(const char **next, const char *end, const char **rec,
                                      apr_size_t *rec_len)
{
    apr_uint32_t n;

    if (end - *next < 4) {
        return APR_EINVAL;
    }
    memcpy(&n, *next, sizeof(n));
    if ((apr_size_t)(end - *next) - 4 < n) {
        return APR_EINVAL;
    }
    *rec = *next + 4;
    *rec_len = n;
    *next += 4 + (apr_size_t)n;
    return APR_SUCCESS;
}

typedef struct {
    const char *p, *end;
    int bad;
} reader_t;

static const char *take(reader_t *r, apr_size_t n)
{
    const char *p = r->p;

    if (r->bad || (apr_size_t)(r->end - r->p) < n) {
        r->bad = 1;
        return NULL;
    }
    r->p += n;
    return p;
}

static apr_uint32_t get32(reader_t *r)
{
    apr_uint32_t v = 0;
    const char *p = take(r, sizeof(v));

    if (p) {
        memcpy(&v, p, sizeof(v));
    }
    return v;
}

static apr_uint64_t get64(reader_t *r)
{
    apr_uint64_t v = 0;
    const char *p = take(r, sizeof(v));

    if (p) {
        memcpy(&v, p, sizeof(v));
    }
    return v;
}

/* A string (NUL-terminated where it lies), or NULL for none. */
static const char *get_str(reader_t *r, apr_size_t *n)
{
    apr_uint32_t l = get32(r);
    const char *p;

    *n = 0;
    if (r->bad || l == NO_STRING) {
        return NULL;
    }
    if (!(p = take(r, (apr_size_t)l + 1)) || p[l] != '\0') {
        r->bad = 1;
        return NULL;
    }
    *n = l;
    return p;
}

apr_status_t comet_handoff_unpack(const char *data, apr_size_t len, comet_sub_spec_t *spec,
                                  int *from_slot)
{
    reader_t rd = { data, data + len, 0 };
    const char *peer, *cb;
    apr_size_t n, i, t;
    apr_uint32_t flags;

    memset(spec, 0, sizeof(*spec));
    spec->fd = -1;
    if (len < 4 || memcmp(data, COMET_HANDOFF_MAGIC, 4)) {
        return APR_EINVAL;
    }
    rd.p += 4;
    if (get32(&rd) != VERSION) {
        return APR_EINVAL;
    }
    *from_slot = (int)get32(&rd);
    t = get32(&rd);
    if (rd.bad || !(spec->transport = transport_of((apr_uint32_t)t))) {
        return APR_EINVAL;
    }
    flags = get32(&rd);
    spec->chunked = (flags & FLAG_CHUNKED) != 0;
    spec->live = (flags & FLAG_LIVE) != 0;
    spec->heartbeat = (apr_interval_time_t)get64(&rd);
    spec->lifetime = (apr_interval_time_t)get64(&rd);
    spec->byte_limit = (apr_size_t)get64(&rd);
    spec->queue_limit = (apr_size_t)get64(&rd);
    spec->params.heartbeat = (apr_interval_time_t)get64(&rd);
    spec->params.retry = (apr_interval_time_t)get64(&rd);
    spec->written = (apr_size_t)get64(&rd);
    spec->end_at = (apr_time_t)get64(&rd);
    spec->began = (apr_time_t)get64(&rd);
    peer = get_str(&rd, &n);
    spec->peer = peer;
    cb = get_str(&rd, &n);
    spec->params.callback = cb;
    spec->origin = get_str(&rd, &n);
    spec->nchannels = get32(&rd);
    if (rd.bad || spec->nchannels < 1 || spec->nchannels > COMET_SUB_CHANNELS_MAX) {
        return APR_EINVAL;
    }
    for (i = 0; i < spec->nchannels; i++) {
        spec->channels[i] = get_str(&rd, &spec->channel_lens[i]);
        spec->since[i] = get64(&rd);
        spec->refs[i].idx = get32(&rd);
        spec->refs[i].gen = get32(&rd);
        if (!spec->channels[i] && !rd.bad) {
            rd.bad = 1;
        }
    }
    return rd.bad || rd.p != rd.end ? APR_EINVAL : APR_SUCCESS;
}
