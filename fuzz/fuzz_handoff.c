/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/* What a loop's wake socket takes from another child (comet_handoff.c): a
 * stream's datagram, or a batch of them.
 *  - comet_handoff_unpack never reads past the input; what it accepts has
 *    1 to COMET_SUB_CHANNELS_MAX channels, each a NUL-terminated string
 *    inside the input, and a transport that can move;
 *  - what it accepts packs again and unpacks to the same fields (its origin
 *    and start too);
 *  - comet_handoff_batch_open/take walk a batch without leaving it. */
#include <string.h>

#include "comet_handoff.h"
#include "fuzz.h"

static void check_spec(const uint8_t *data, size_t size, const comet_sub_spec_t *s)
{
    apr_size_t i;

    FUZZ_CHECK(s->transport && s->nchannels >= 1 && s->nchannels <= COMET_SUB_CHANNELS_MAX,
               "unpack: a transport, 1 to 16 channels");
    for (i = 0; i < s->nchannels; i++) {
        const uint8_t *p = (const uint8_t *)s->channels[i];
        FUZZ_CHECK(p >= data && p + s->channel_lens[i] < data + size
                   && p[s->channel_lens[i]] == '\0', "unpack: a channel inside the input");
    }
}

static void round_trip(const comet_sub_spec_t *a, int from)
{
    comet_sub_spec_t spec = *a, b;
    comet_buf_t buf = { 0 };
    int from2 = -1;
    apr_size_t i;

    spec.fd = 5;                  /* pack wants a socket of the loop's */
    spec.presubscribed = 1;
    FUZZ_CHECK(comet_handoff_pack(&buf, &spec, from) == 0, "pack: what unpacked packs again");
    FUZZ_CHECK(comet_handoff_unpack(buf.data, buf.len, &b, &from2) == APR_SUCCESS && from2 == from,
               "unpack: a packed stream reads back");
    FUZZ_CHECK(b.transport == a->transport && b.chunked == a->chunked && b.live == a->live
               && b.heartbeat == a->heartbeat && b.lifetime == a->lifetime
               && b.byte_limit == a->byte_limit && b.queue_limit == a->queue_limit
               && b.written == a->written && b.end_at == a->end_at && b.began == a->began
               && b.params.heartbeat == a->params.heartbeat && b.params.retry == a->params.retry
               && b.nchannels == a->nchannels, "round trip: the same fields");
    for (i = 0; i < b.nchannels; i++) {
        FUZZ_CHECK(b.channel_lens[i] == a->channel_lens[i]
                   && !memcmp(b.channels[i], a->channels[i], b.channel_lens[i])
                   && b.since[i] == a->since[i] && b.refs[i].idx == a->refs[i].idx
                   && b.refs[i].gen == a->refs[i].gen, "round trip: the same channels");
    }
    FUZZ_CHECK(!strcmp(b.peer, a->peer ? a->peer : "-"), "round trip: the same peer");
    FUZZ_CHECK((!b.params.callback && !a->params.callback)
               || (b.params.callback && a->params.callback
                   && !strcmp(b.params.callback, a->params.callback)),
               "round trip: the same callback");
    FUZZ_CHECK((!b.origin && !a->origin) || (b.origin && a->origin && !strcmp(b.origin, a->origin)),
               "round trip: the same origin");
    comet_buf_free(&buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *d = (const char *)data, *next, *rec, *end = d + size;
    comet_sub_spec_t spec;
    apr_uint32_t count;
    apr_size_t len, n = 0;
    int from = 0;

    if (comet_handoff_unpack(d, size, &spec, &from) == APR_SUCCESS) {
        check_spec(data, size, &spec);
        round_trip(&spec, from);
    }
    if (comet_handoff_batch_open(d, size, &count, &next) == APR_SUCCESS) {
        while (n < count && comet_handoff_batch_take(&next, end, &rec, &len) == APR_SUCCESS) {
            FUZZ_CHECK(rec >= d && rec + len <= end && next <= end, "batch: a record inside");
            if (comet_handoff_unpack(rec, len, &spec, &from) == APR_SUCCESS) {
                check_spec((const uint8_t *)rec, len, &spec);
                round_trip(&spec, from);
            }
            n++;
        }
    }
    return 0;
}
