/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/* Unit tests of a stream handed to another loop (comet_handoff.h,
 * comet_reactor_forward): the datagram packed and read back, what is not
 * one refused, then two reactors on two slots of one store, a stream
 * (one end of a socketpair) added to the busier and handed to the other,
 * which then delivers what is published, after the cursor, once. */

#include <stdlib.h>
#include <unistd.h>
#include <poll.h>
#include <sys/socket.h>

#include <apr_general.h>
#include <apr_shm.h>
#include <apr_global_mutex.h>

#include "comet_handoff.h"
#include "comet_store_shm.h"
#include "unit.h"

static apr_pool_t *pool;
static comet_store_t *st;

static void quiet_log(void *baton, comet_log_level_t level, apr_status_t rv, const char *msg)
{
    (void)baton;
    (void)level;
    (void)rv;
    if (getenv("UNIT_VERBOSE")) {
        printf("# log: %s\n", msg);
    }
}

static void setup(void)
{
    apr_size_t size = comet_store_shm_size(8 << 20);
    apr_global_mutex_t *mutex;
    apr_shm_t *shm;
    apr_status_t rv;

    rv = apr_shm_create(&shm, size, NULL, pool);
    if (rv == APR_SUCCESS) {
        rv = comet_store_shm_init(apr_shm_baseaddr_get(shm), size, 8, "unit-handoff", 1);
    }
    if (rv == APR_SUCCESS) {
        rv = apr_global_mutex_create(&mutex, NULL, APR_LOCK_DEFAULT, pool);
    }
    if (rv == APR_SUCCESS) {
        rv = comet_store_shm_open(&st, pool, apr_shm_baseaddr_get(shm), mutex);
    }
    if (rv != APR_SUCCESS) {
        printf("Bail out! store setup failed: %d\n", rv);
        exit(1);
    }
}

static void spec_init(comet_sub_spec_t *spec, const char *chan, int fd)
{
    memset(spec, 0, sizeof(*spec));
    spec->transport = comet_transport_find("stream");
    spec->fd = fd;
    spec->nchannels = 1;
    spec->channels[0] = chan;
    spec->channel_lens[0] = strlen(chan);
    spec->since[0] = 0;
    spec->heartbeat = apr_time_from_sec(30);
    spec->lifetime = apr_time_from_sec(600);
    spec->byte_limit = 1 << 20;
    spec->queue_limit = 65536;
    spec->peer = "192.0.2.7";
    spec->params.retry = apr_time_from_msec(1500);
    spec->presubscribed = 1;
}

static void test_pack(void)
{
    comet_sub_spec_t a, b;
    comet_buf_t buf = { 0 };
    int from = 0;
    apr_size_t cut;

    spec_init(&a, "news", 5);
    a.nchannels = 2;
    a.channels[1] = "sport";
    a.channel_lens[1] = 5;
    a.since[1] = 1234567890123ULL;
    a.refs[0].idx = 3;
    a.refs[0].gen = 9;
    a.refs[1].idx = 4;
    a.refs[1].gen = 10;
    a.chunked = 1;
    a.params.callback = "parent.cb";
    OK(comet_handoff_pack(&buf, &a, 2) == 0, "a stream is packed");
    OK(comet_handoff_unpack(buf.data, buf.len, &b, &from) == APR_SUCCESS && from == 2,
       "... and read back, from slot 2");
    OK(b.transport == a.transport && b.chunked && b.fd == -1 && b.nchannels == 2
       && b.heartbeat == a.heartbeat && b.lifetime == a.lifetime
       && b.byte_limit == a.byte_limit && b.queue_limit == a.queue_limit
       && b.params.retry == a.params.retry,
       "... transport, framing, limits and deadlines as they were");
    OK(b.channel_lens[1] == 5 && !strcmp(b.channels[1], "sport") && b.since[1] == a.since[1]
       && b.refs[1].idx == 4 && b.refs[1].gen == 10 && !strcmp(b.channels[0], "news"),
       "... each channel with its cursor and subscription");
    IS_STR(b.peer, "192.0.2.7", "... the peer");
    IS_STR(b.params.callback, "parent.cb", "... the callback");
    OK(!b.live, "... a new stream, not a running one");
    comet_buf_free(&buf);
    OK(!b.origin, "... no origin said, none read");
    comet_buf_free(&buf);
    a.live = 1;
    a.written = 777;
    a.end_at = apr_time_from_sec(1800000000);
    a.began = apr_time_from_sec(1799999000);
    a.origin = "3 8080 www.example.com /comet/a path";
    OK(comet_handoff_pack(&buf, &a, 2) == 0
       && comet_handoff_unpack(buf.data, buf.len, &b, &from) == APR_SUCCESS
       && b.live && b.written == 777 && b.end_at == a.end_at && b.began == a.began,
       "a running stream keeps the bytes it wrote, its deadline and its start");
    IS_STR(b.origin, "3 8080 www.example.com /comet/a path", "... and where it was opened");
    for (cut = 0; cut < buf.len; cut++) {
        if (comet_handoff_unpack(buf.data, cut, &b, &from) == APR_SUCCESS) {
            break;
        }
    }
    OK(cut == buf.len, "every truncation of it is refused");
    buf.data[0] = 'X';
    OK(comet_handoff_unpack(buf.data, buf.len, &b, &from) == APR_EINVAL, "a wake-up is not one");
    comet_buf_free(&buf);

    spec_init(&a, "news", -1);
    OK(comet_handoff_pack(&buf, &a, 2) < 0, "a held stream (no socket of the loop) cannot move");
    spec_init(&a, "news", 5);
    a.websocket = 1;
    OK(!comet_handoff_movable(&a), "nor a WebSocket");
    spec_init(&a, "news", 5);
    a.session = 1;
    OK(!comet_handoff_movable(&a), "nor a session's receiver");
    comet_buf_free(&buf);
}

static void test_batch(void)
{
    comet_sub_spec_t a, b;
    comet_buf_t buf = { 0 };
    const char *next, *rec;
    apr_uint32_t count = 0;
    apr_size_t len, n = 0;
    int from = 0, i, good = 0;
    const char *names[3] = { "one", "two", "three" };

    for (i = 0; i < 3; i++) {
        spec_init(&a, names[i], 5 + i);
        a.live = 1;
        a.since[0] = (comet_id_t)(100 + i);
        OK(comet_handoff_batch_add(&buf, &a, 4) == 0, "stream %d added to a batch", i + 1);
    }
    spec_init(&a, "held", -1);
    OK(comet_handoff_batch_add(&buf, &a, 4) < 0, "a stream that cannot move is not");
    OK(comet_handoff_batch_open(buf.data, buf.len, &count, &next) == APR_SUCCESS && count == 3,
       "the batch holds three");
    while (comet_handoff_batch_take(&next, buf.data + buf.len, &rec, &len) == APR_SUCCESS) {
        if (comet_handoff_unpack(rec, len, &b, &from) == APR_SUCCESS && from == 4 && b.live
            && !strcmp(b.channels[0], names[n]) && b.since[0] == 100 + n) {
            good++;
        }
        n++;
    }
    OK(n == 3 && good == 3, "... each read back in order, with its cursor (%d of %d)", good,
       (int)n);
    OK(comet_handoff_batch_open(buf.data, buf.len - 1, &count, &next) == APR_SUCCESS,
       "a batch cut short opens");
    n = 0;
    while (comet_handoff_batch_take(&next, buf.data + buf.len - 1, &rec, &len) == APR_SUCCESS) {
        n++;
    }
    OK(n == 2, "a batch cut short gives the whole records only (%d)", (int)n);
    OK(comet_handoff_batch_open(buf.data, 7, &count, &next) == APR_EINVAL
       && comet_handoff_batch_open("CMTH....", 8, &count, &next) == APR_EINVAL,
       "what is not a batch is refused");
    comet_buf_free(&buf);
}

/* Read what the client end has within `ms`, appended to out. */
static void client_read(int fd, char *out, apr_size_t max, int ms)
{
    struct pollfd p = { fd, POLLIN, 0 };
    apr_size_t len = strlen(out);

    while (len + 1 < max && poll(&p, 1, ms) > 0) {
        ssize_t n = read(fd, out + len, max - 1 - len);
        if (n <= 0) {
            break;
        }
        len += (apr_size_t)n;
        out[len] = '\0';
        ms = 100;
    }
}

/* Wait up to a second for a loop to hold n streams. @return how many it holds */
static apr_uint32_t wait_streams(comet_reactor_t *r, apr_uint32_t n)
{
    comet_reactor_counts_t c;
    int k;

    for (k = 0; k < 100; k++) {
        comet_reactor_counts(r, &c);
        if (c.subscribers == n) {
            break;
        }
        usleep(10000);
    }
    return c.subscribers;
}

static void test_forward(void)
{
    comet_reactor_t *ra, *rb;
    comet_limits_t lim = { 100, 0, 65536, 0 };
    comet_publish_result_t res;
    comet_sub_spec_t spec;
    comet_slot_info_t slots[8];
    char got[4096] = "";
    int sa, sb, wa, wb, sv[2], fill[2][2], i;
    apr_size_t n = 0;

    if (st->slot_claim(st, &sa, &wa) != APR_SUCCESS
        || st->slot_claim(st, &sb, &wb) != APR_SUCCESS
        || comet_reactor_create(&ra, st, sa, wa, quiet_log, NULL) != APR_SUCCESS
        || comet_reactor_create(&rb, st, sb, wb, quiet_log, NULL) != APR_SUCCESS
        || comet_reactor_start(ra) != APR_SUCCESS || comet_reactor_start(rb) != APR_SUCCESS) {
        printf("Bail out! two reactors\n");
        exit(1);
    }
    /* A holds two streams already, B none */
    for (i = 0; i < 2; i++) {
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, fill[i]) != 0) {
            printf("Bail out! socketpair\n");
            exit(1);
        }
        spec_init(&spec, "other", fill[i][0]);
        st->subscribe(st, sa, "other", 5, 1, 0, &spec.refs[0], NULL);
        OK(comet_reactor_add(ra, &spec, NULL) == APR_SUCCESS, "a stream on A (%d)", i + 1);
    }
    wait_streams(ra, 2);
    st->publish(st, "news", 4, "before", 6, 0, &lim, &res);

    /* a third: subscribed on A by its handler, its cursor before "after" */
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
        printf("Bail out! socketpair\n");
        exit(1);
    }
    spec_init(&spec, "news", sv[0]);
    spec.since[0] = res.id;
    OK(st->subscribe(st, sa, "news", 4, 1, 0, &spec.refs[0], NULL) == APR_SUCCESS,
       "a third stream's channel subscribed on A");
    st->publish(st, "news", 4, "meanwhile", 9, 0, &lim, &res);
    OK(comet_reactor_forward(ra, &spec) == APR_SUCCESS, "A hands it to B, which has fewer");
    close(sv[0]);
    OK(wait_streams(rb, 1) == 1, "B holds it");
    st->publish(st, "news", 4, "after", 5, 0, &lim, &res);
    client_read(sv[1], got, sizeof(got), 2000);
    OK(strstr(got, "\"meanwhile\"") && strstr(got, "\"after\"") && !strstr(got, "\"before\""),
       "its client gets what followed its cursor, through B");
    OK(strstr(got, "\"meanwhile\"") < strstr(got, "\"after\"")
       && !strstr(strstr(got, "\"after\"") + 1, "\"after\""), "... in order, once");
    if (!strstr(got, "\"after\"")) {
        printf("# got: %s\n", got);
    }
    st->slot_list(st, slots, 8, &n);
    for (i = 0; i < (int)n; i++) {
        if (slots[i].slot == sa) {
            OK(slots[i].counters.subscribers == 2, "A still counts its two (%u)",
               slots[i].counters.subscribers);
        }
    }
    {
        comet_channel_info_t info;
        OK(st->info(st, "news", 4, &info) == APR_SUCCESS && info.subscribers == 1,
           "the channel counts one subscriber: A's subscription went with the stream (%u)",
           info.subscribers);
    }
    /* equal counts: nothing moves */
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0) {
        spec_init(&spec, "news", sv[0]);
        OK(comet_reactor_forward(rb, &spec) == APR_EAGAIN, "B, with fewer, keeps what it gets");
        close(sv[0]);
        close(sv[1]);
    }
    comet_reactor_quiesce(rb, 0);
    st->slot_list(st, slots, 8, &n);
    for (i = 0; i < (int)n; i++) {
        if (slots[i].slot == sb) {
            OK(slots[i].counters.draining == 1, "a winding-down loop says so");
        }
    }
    comet_reactor_destroy(ra);
    comet_reactor_destroy(rb);
    st->slot_release(st, sa);
    st->slot_release(st, sb);
}

/* Streams that join a channel this loop already follows: one that starts
 * where the loop's record stands gets what comes next (nothing to replay),
 * one with an older cursor gets what it missed from the store first; each
 * message once, in order. */
static void test_join(void)
{
    comet_reactor_t *r;
    comet_limits_t lim = { 100, 0, 65536, 0 };
    comet_publish_result_t m0, m1, m2, m3;
    comet_sub_spec_t spec;
    char got[3][4096] = { "", "", "" };
    const char *want[3][3] = { { "\"one\"", "\"two\"", "\"three\"" },
                               { "\"two\"", "\"three\"", NULL },
                               { "\"one\"", "\"two\"", "\"three\"" } };
    int s, w, sv[3][2], i, j;
    comet_id_t last = 0;

    if (st->slot_claim(st, &s, &w) != APR_SUCCESS
        || comet_reactor_create(&r, st, s, w, quiet_log, NULL) != APR_SUCCESS
        || comet_reactor_start(r) != APR_SUCCESS) {
        printf("Bail out! a reactor\n");
        exit(1);
    }
    st->publish(st, "busy", 4, "zero", 4, 0, &lim, &m0);
    for (i = 0; i < 3; i++) {
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]) != 0) {
            printf("Bail out! socketpair\n");
            exit(1);
        }
        if (i == 1) {
            st->publish(st, "busy", 4, "one", 3, 0, &lim, &m1);
            client_read(sv[0][1], got[0], sizeof(got[0]), 2000);
        }
        spec_init(&spec, "busy", sv[i][0]);
        OK(st->subscribe(st, s, "busy", 4, 1, 0, &spec.refs[0], &last) == APR_SUCCESS,
           "stream %d subscribed by its handler", i + 1);
        /* the first two start where the channel stands, the third after "zero" */
        spec.since[0] = i < 2 ? last : m0.id;
        if (i == 1) {
            OK(last == m1.id, "the second starts at the last message, as the loop's record");
        }
        OK(comet_reactor_add(r, &spec, NULL) == APR_SUCCESS, "stream %d added", i + 1);
        wait_streams(r, (apr_uint32_t)i + 1);
        if (i == 2) {
            st->publish(st, "busy", 4, "two", 3, 0, &lim, &m2);
        }
    }
    st->publish(st, "busy", 4, "three", 5, 0, &lim, &m3);
    for (i = 0; i < 3; i++) {
        const char *at = got[i];
        int ok = 1;
        client_read(sv[i][1], got[i], sizeof(got[i]), 2000);
        for (j = 0; j < 3 && want[i][j]; j++) {
            const char *p = strstr(at, want[i][j]);
            if (!p || strstr(p + 1, want[i][j])) {
                ok = 0;
                break;
            }
            at = p;
        }
        OK(ok && !strstr(got[i], "\"zero\"") && (i != 1 || !strstr(got[i], "\"one\"")),
           "stream %d: what followed its cursor, once, in order", i + 1);
        if (!ok) {
            printf("# got: %s\n", got[i]);
        }
        close(sv[i][1]);
    }
    comet_reactor_destroy(r);
    st->slot_release(st, s);
}

/* A batch of running streams on one channel, adopted in one pass: each
 * gets what followed its own cursor, once and in order, whether its
 * replay comes from the store or from the one fetched for a stream before
 * it (cursors at, past and before the first one's). */
static void test_adopt_batch(void)
{
    comet_reactor_t *r;
    comet_limits_t lim = { 100, 0, 65536, 0 };
    comet_publish_result_t m[4];
    comet_sub_spec_t spec;
    comet_buf_t b = { 0 };
    char got[4][4096] = { "", "", "", "" };
    static const char *const body[4] = { "\"m0\"", "\"m1\"", "\"m2\"", "\"m3\"" };
    int s, w, sa, wa, sv[4][2], fds[4], i, j;
    comet_id_t since[4];

    if (st->slot_claim(st, &sa, &wa) != APR_SUCCESS || st->slot_claim(st, &s, &w) != APR_SUCCESS
        || comet_reactor_create(&r, st, s, w, quiet_log, NULL) != APR_SUCCESS
        || comet_reactor_start(r) != APR_SUCCESS) {
        printf("Bail out! a reactor\n");
        exit(1);
    }
    for (i = 0; i < 3; i++) {
        char data[8];
        snprintf(data, sizeof(data), "m%d", i);
        st->publish(st, "moved", 5, data, 2, 0, &lim, &m[i]);
    }
    /* after m0 (the first: from the store), after m1 (past it), after m0
     * again, and from the start (before it: from the store again) */
    since[0] = m[0].id;
    since[1] = m[1].id;
    since[2] = m[0].id;
    since[3] = 0;
    for (i = 0; i < 4; i++) {
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]) != 0) {
            printf("Bail out! socketpair\n");
            exit(1);
        }
        spec_init(&spec, "moved", sv[i][0]);
        spec.since[0] = since[i];
        st->subscribe(st, sa, "moved", 5, 1, 0, &spec.refs[0], NULL);
        comet_handoff_batch_add(&b, &spec, sa);
        fds[i] = sv[i][0];
    }
    OK(st->slot_send(st, s, b.data, b.len, fds, 4) == APR_SUCCESS, "four streams in one batch");
    comet_buf_free(&b);
    for (i = 0; i < 4; i++) {
        close(sv[i][0]);
    }
    OK(wait_streams(r, 4) == 4, "the loop took the four");
    {
        comet_channel_info_t info;
        OK(st->info(st, "moved", 5, &info) == APR_SUCCESS && info.subscribers == 4,
           "the channel counts the four once (%u)", info.subscribers);
    }
    st->publish(st, "moved", 5, "m3", 2, 0, &lim, &m[3]);
    for (i = 0; i < 4; i++) {
        const char *at = got[i];
        int ok = 1, first = i == 3 ? 0 : i == 1 ? 2 : 1;
        client_read(sv[i][1], got[i], sizeof(got[i]), 2000);
        for (j = 0; j < 4; j++) {
            const char *p = strstr(got[i], body[j]);
            if (j < first ? p != NULL : (!p || p < at || strstr(p + 1, body[j]))) {
                ok = 0;
            }
            at = p ? p : at;
        }
        OK(ok, "stream %d: m%d to m3, once, in order", i + 1, first);
        if (!ok) {
            printf("# got: %s\n", got[i]);
        }
        close(sv[i][1]);
    }
    comet_reactor_destroy(r);
    st->slot_release(st, s);
    st->slot_release(st, sa);
}

static apr_uint32_t incoming_of(int slot)
{
    comet_slot_info_t slots[8];
    apr_size_t n = 0, i;

    st->slot_list(st, slots, 8, &n);
    for (i = 0; i < n; i++) {
        if (slots[i].slot == slot) {
            return slots[i].counters.incoming;
        }
    }
    return 99;
}

/* What is on its way to a loop counts in its slot's `incoming` (the
 * balance of a connect burst sees it before the loop has read it); the
 * loop takes it off as it reads, even what it refuses. */
static void test_incoming(void)
{
    comet_reactor_t *r;
    int slot, wake, sv[2], k;
    char poke;

    if (st->slot_claim(st, &slot, &wake) != APR_SUCCESS
        || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
        printf("Bail out! a slot\n");
        exit(1);
    }
    OK(incoming_of(slot) == 0, "a slot claimed has nothing coming");
    OK(st->slot_send(st, slot, "CMTH", 4, &sv[0], 1) == APR_SUCCESS
       && st->slot_send(st, slot, "CMTH", 4, &sv[0], 1) == APR_SUCCESS,
       "two sockets sent to it");
    OK(incoming_of(slot) == 2, "... count as coming until read (%u)", incoming_of(slot));
    OK(st->slot_send(st, 0, "CMTH", 4, &sv[0], 1) == APR_EINVAL, "no slot 0");
    if (comet_reactor_create(&r, st, slot, wake, quiet_log, NULL) != APR_SUCCESS
        || comet_reactor_start(r) != APR_SUCCESS) {
        printf("Bail out! a reactor\n");
        exit(1);
    }
    for (k = 0; k < 200 && incoming_of(slot); k++) {
        usleep(10000);
    }
    OK(incoming_of(slot) == 0, "its loop read them (not understood): none coming (%u)",
       incoming_of(slot));
    close(sv[0]);
    OK(read(sv[1], &poke, 1) == 0, "... and closed them: the client sees the end");
    close(sv[1]);
    comet_reactor_destroy(r);
    st->slot_release(st, slot);
}

/* A stopping loop (quiesce with move) hands its running streams to a loop
 * that starts after it was told to stop, as a graceful restart's next
 * generation does: the clients see no end, no close, and what follows. */
static void test_move(void)
{
    comet_reactor_t *ra, *rc = NULL;
    comet_reactor_counts_t ca, cc;
    comet_limits_t lim = { 100, 0, 65536, 0 };
    comet_publish_result_t res;
    comet_sub_spec_t spec;
    comet_channel_info_t info;
    char got[2][4096] = { "", "" };
    int sa, sc, wa, wc, sv[2][2], i, k;
    struct pollfd p;

    if (st->slot_claim(st, &sa, &wa) != APR_SUCCESS
        || comet_reactor_create(&ra, st, sa, wa, quiet_log, NULL) != APR_SUCCESS
        || comet_reactor_start(ra) != APR_SUCCESS) {
        printf("Bail out! a reactor\n");
        exit(1);
    }
    for (i = 0; i < 2; i++) {
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]) != 0) {
            printf("Bail out! socketpair\n");
            exit(1);
        }
        spec_init(&spec, i ? "quiet" : "moving", sv[i][0]);
        spec.presubscribed = 0;
        spec.since[0] = COMET_ID_NONE;
        if (i) {
            spec.transport = comet_transport_find("longpoll");
        }
        OK(comet_reactor_add(ra, &spec, NULL) == APR_SUCCESS, "a %s on A",
           i ? "long-poll" : "stream");
    }
    ca.subscribers = wait_streams(ra, 2);
    st->publish(st, "moving", 6, "first", 5, 0, &lim, &res);
    client_read(sv[0][1], got[0], sizeof(got[0]), 1000);
    OK(strstr(got[0], "\"first\"") != NULL, "the stream gets a message on A");

    comet_reactor_quiesce(ra, 1);
    usleep(200000);
    comet_reactor_counts(ra, &ca);
    OK(ca.subscribers == 2, "A, told to stop with no live loop to take them, keeps its streams");
    st->publish(st, "moving", 6, "waiting", 7, 0, &lim, &res);

    /* the next generation's loop starts */
    if (st->slot_claim(st, &sc, &wc) != APR_SUCCESS
        || comet_reactor_create(&rc, st, sc, wc, quiet_log, NULL) != APR_SUCCESS
        || comet_reactor_start(rc) != APR_SUCCESS) {
        printf("Bail out! a second reactor\n");
        exit(1);
    }
    for (k = 0; k < 300; k++) {
        comet_reactor_counts(rc, &cc);
        comet_reactor_counts(ra, &ca);
        if (cc.subscribers == 2 && ca.subscribers == 0) {
            break;
        }
        usleep(10000);
    }
    OK(cc.subscribers == 2 && ca.subscribers == 0, "C took both, A holds none (%u, %u)",
       cc.subscribers, ca.subscribers);
    st->publish(st, "moving", 6, "after", 5, 0, &lim, &res);
    st->publish(st, "quiet", 5, "answer", 6, 0, &lim, &res);
    client_read(sv[0][1], got[0], sizeof(got[0]), 2000);
    client_read(sv[1][1], got[1], sizeof(got[1]), 2000);
    OK(strstr(got[0], "\"waiting\"") && strstr(got[0], "\"after\"")
       && strstr(got[0], "\"waiting\"") < strstr(got[0], "\"after\"")
       && !strstr(strstr(got[0], "\"first\"") + 1, "\"first\""),
       "the stream goes on through C: what was published while it moved, then the rest, once");
    OK(!strstr(got[0], "reconnect"), "... no end frame");
    p.fd = sv[0][1];
    p.events = POLLIN;
    p.revents = 0;
    OK(poll(&p, 1, 100) == 0, "... and its connection open");
    OK(strstr(got[1], "\"answer\"") != NULL, "the long-poll gets its answer through C");
    if (!strstr(got[0], "\"after\"") || !strstr(got[1], "\"answer\"")) {
        printf("# got: %s | %s\n", got[0], got[1]);
    }
    OK(st->info(st, "moving", 6, &info) == APR_SUCCESS && info.subscribers == 1,
       "the channel counts the stream once (%u)", info.subscribers);
    comet_reactor_destroy(ra);
    comet_reactor_destroy(rc);
    st->slot_release(st, sa);
    st->slot_release(st, sc);
    for (i = 0; i < 2; i++) {
        close(sv[i][1]);
    }
}

/* a next generation's settings: "/gone" serves no stream, the others beat
 * every 200 ms and live 2 seconds from their start */
static int resolve(void *baton, const char *origin, const comet_sub_spec_t *spec,
                   comet_resolved_t *out)
{
    (void)spec;
    ++*(int *)baton;
    if (!strcmp(origin, "/same")) {
        return 0;
    }
    out->gone = !strcmp(origin, "/gone");
    out->heartbeat = apr_time_from_msec(200);
    out->lifetime = apr_time_from_sec(2);
    out->byte_limit = 1 << 20;
    out->queue_limit = 65536;
    return 1;
}

/* Streams moved to a loop whose resolver says what their location is now:
 * one ends with its end frame, one takes the new heartbeat (never further
 * apart than its client was told: 30 s before, 200 ms now) and lifetime,
 * counted from when it began. */
static void test_resolve(void)
{
    static const char *origins[3] = { "/gone", "/beat", "/same" };
    comet_reactor_t *ra, *rc;
    comet_reactor_counts_t ca, cc;
    comet_sub_spec_t spec;
    char got[3][4096] = { "", "", "" };
    int sa, sc, wa, wc, sv[3][2], i, k, asked = 0;
    apr_time_t t0;

    if (st->slot_claim(st, &sa, &wa) != APR_SUCCESS
        || comet_reactor_create(&ra, st, sa, wa, quiet_log, NULL) != APR_SUCCESS
        || comet_reactor_start(ra) != APR_SUCCESS) {
        printf("Bail out! a reactor\n");
        exit(1);
    }
    t0 = apr_time_now();
    for (i = 0; i < 3; i++) {
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]) != 0) {
            printf("Bail out! socketpair\n");
            exit(1);
        }
        spec_init(&spec, "settings", sv[i][0]);
        spec.transport = comet_transport_find("sse");
        spec.presubscribed = 0;
        spec.since[0] = COMET_ID_NONE;
        spec.origin = origins[i];
        OK(comet_reactor_add(ra, &spec, NULL) == APR_SUCCESS, "a stream from %s on A", origins[i]);
    }
    ca.subscribers = wait_streams(ra, 3);
    for (i = 0; i < 3; i++) {
        client_read(sv[i][1], got[i], sizeof(got[i]), 500);
        got[i][0] = '\0';        /* the prelude */
    }
    comet_reactor_quiesce(ra, 1);
    if (st->slot_claim(st, &sc, &wc) != APR_SUCCESS
        || comet_reactor_create(&rc, st, sc, wc, quiet_log, NULL) != APR_SUCCESS) {
        printf("Bail out! a second reactor\n");
        exit(1);
    }
    comet_reactor_set_resolve(rc, resolve, &asked);
    if (comet_reactor_start(rc) != APR_SUCCESS) {
        printf("Bail out! a second reactor\n");
        exit(1);
    }
    for (k = 0; k < 300; k++) {
        comet_reactor_counts(ra, &ca);
        if (ca.subscribers == 0) {
            break;
        }
        usleep(10000);
    }
    OK(ca.subscribers == 0 && asked == 3, "C took the three, asking where each is from (%d)",
       asked);
    client_read(sv[0][1], got[0], sizeof(got[0]), 2000);
    OK(strstr(got[0], "event: comet.end") && strstr(got[0], "reconnect"),
       "the one whose location is gone ends with its end frame");
    client_read(sv[1][1], got[1], sizeof(got[1]), 700);
    OK(strstr(got[1], "event: comet.heartbeat") != NULL,
       "the one moved takes the new heartbeat (200 ms, where it had 30 s)");
    client_read(sv[1][1], got[1], sizeof(got[1]), 3000);
    OK(strstr(got[1], "event: comet.end") && apr_time_now() - t0 < apr_time_from_msec(2900),
       "... and the new lifetime, counted from its start: it ends within its 2 seconds");
    client_read(sv[2][1], got[2], sizeof(got[2]), 300);
    OK(!strstr(got[2], "event: comet"), "the one the resolver leaves keeps its own settings");
    comet_reactor_counts(rc, &cc);
    OK(cc.subscribers == 1, "C holds that one (%u)", cc.subscribers);
    if (!strstr(got[1], "comet.heartbeat")) {
        printf("# got: %s | %s\n", got[0], got[1]);
    }
    comet_reactor_destroy(ra);
    comet_reactor_destroy(rc);
    st->slot_release(st, sa);
    st->slot_release(st, sc);
    for (i = 0; i < 3; i++) {
        close(sv[i][1]);
    }
}

int main(void)
{
    apr_initialize();
    apr_pool_create(&pool, NULL);
    setup();
    test_pack();
    test_batch();
    test_forward();
    test_join();
    test_adopt_batch();
    test_move();
    test_incoming();
    test_resolve();
    apr_pool_destroy(pool);
    apr_terminate();
    return UNIT_DONE();
}
