/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/* Unit tests of the reactor's held subscribers (streams a handler thread
 * writes), without httpd: a store in shared memory, a reactor on one of
 * its slots, and this thread playing the handler. */

#include <stdlib.h>
#include <unistd.h>

#include <apr_general.h>
#include <apr_shm.h>
#include <apr_global_mutex.h>

#include "comet_reactor.h"
#include "comet_store_shm.h"
#include "unit.h"

/* Receivers released as soon as added, in the race test. */
#define RACES 400

static apr_pool_t *pool;
static comet_store_t *st;
static int slot, wake_fd;

static void quiet_log(void *baton, comet_log_level_t level, apr_status_t rv, const char *msg)
{
    (void)baton;
    (void)level;
    (void)rv;
    (void)msg;
}

static void setup(void)
{
    apr_size_t size = comet_store_shm_size(8 << 20);
    apr_global_mutex_t *mutex;
    apr_shm_t *shm;
    apr_status_t rv;

    rv = apr_shm_create(&shm, size, NULL, pool);
    if (rv == APR_SUCCESS) {
        rv = comet_store_shm_init(apr_shm_baseaddr_get(shm), size, 4, "unit-reactor", 1);
    }
    if (rv == APR_SUCCESS) {
        rv = apr_global_mutex_create(&mutex, NULL, APR_LOCK_DEFAULT, pool);
    }
    if (rv == APR_SUCCESS) {
        rv = comet_store_shm_open(&st, pool, apr_shm_baseaddr_get(shm), mutex);
    }
    if (rv == APR_SUCCESS) {
        rv = st->slot_claim(st, &slot, &wake_fd);
    }
    if (rv != APR_SUCCESS) {
        printf("Bail out! store setup failed: %d\n", rv);
        exit(1);
    }
}

/* A session as mod_comet_socket.c makes one for a receiver: open, claimed
 * by `token`, its open frame delivered. */
static comet_chan_ref_t session_open(const char *name, apr_uint64_t token, comet_id_t *acked)
{
    comet_chan_ref_t ref;
    apr_uint32_t flags;
    int created;

    if (st->session.open(st, name, strlen(name), 0, 0, &created, &ref) != APR_SUCCESS
        || st->session.claim(st, slot, &ref, token, acked, &flags) != APR_SUCCESS
        || st->session.ack(st, &ref, *acked, COMET_CHAN_OPENED) != APR_SUCCESS) {
        printf("Bail out! cannot open session %s\n", name);
        exit(1);
    }
    return ref;
}

/* An xhr_streaming receiver of the session, held by this thread. */
static comet_held_t *receiver_add(comet_reactor_t *r, const char *name, apr_uint64_t token,
                                  comet_id_t acked)
{
    comet_sub_spec_t spec;
    comet_held_t *h = NULL;

    memset(&spec, 0, sizeof(spec));
    spec.transport = comet_transport_find("xhr_streaming");
    spec.fd = -1;
    spec.nchannels = 1;
    spec.channels[0] = name;
    spec.channel_lens[0] = strlen(name);
    spec.since[0] = acked;
    spec.queue_limit = 65536;
    spec.peer = "unit";
    spec.session = 1;
    spec.token = token;
    if (comet_reactor_add(r, &spec, &h) != APR_SUCCESS || !h) {
        printf("Bail out! cannot add a held receiver\n");
        exit(1);
    }
    return h;
}

/* Busy for about n iterations: shorter waits than a sleep gives. */
static void spin(int n)
{
    volatile int x = 0;

    while (n-- > 0) {
        x++;
    }
}

static char last_data[256];
static apr_uint32_t last_flags;

static char *keep_last(void *baton, comet_id_t id, apr_uint32_t flags, apr_time_t published,
                       apr_size_t len)
{
    (void)baton;
    (void)id;
    (void)published;
    if (len >= sizeof(last_data)) {
        return NULL;
    }
    memset(last_data, 0, sizeof(last_data));
    last_flags = flags;
    return last_data;
}

/* Wait up to 2 s for the session's channel to get its close message.
 * @return the message, or NULL */
static const char *session_closed(const comet_chan_ref_t *ref, comet_id_t since)
{
    int i;

    for (i = 0; i < 200; i++) {
        comet_fetch_result_t res;

        last_data[0] = '\0';
        last_flags = 0;
        st->fetch(st, ref, 0, since, keep_last, NULL, &res);
        if (res.count && (last_flags & COMET_MSG_CLOSE)) {
            return last_data;
        }
        usleep(10000);
    }
    return NULL;
}

/* Whether another receiver may claim the session now (the reactor let the
 * held one go), trying for up to 2 s. */
static int session_free(const comet_chan_ref_t *ref)
{
    int i;

    for (i = 0; i < 200; i++) {
        comet_id_t acked;
        apr_uint32_t flags;

        if (st->session.claim(st, slot, ref, 999, &acked, &flags) == APR_SUCCESS) {
            st->session.release(st, ref, 999);
            return 1;
        }
        usleep(10000);
    }
    return 0;
}

static void test_held_release(void)
{
    comet_reactor_t *r;
    comet_chan_ref_t early, later, done;
    comet_id_t a_early, a_later, a_done;
    comet_held_t *h_early, *h_later, *h_done;
    const char *got;

    OK(comet_reactor_create(&r, st, slot, wake_fd, quiet_log, NULL) == APR_SUCCESS,
       "a reactor on the slot");

    /* the handler gives the receiver up before the loop has even attached
     * it (its client took "o" from the handler and left at once): both
     * commands reach the loop together */
    early = session_open("early", 1, &a_early);
    h_early = receiver_add(r, "early", 1, a_early);
    comet_held_release(h_early, 1);
    OK(comet_reactor_start(r) == APR_SUCCESS, "the loop starts");
    got = session_closed(&early, a_early);
    IS_STR(got, COMET_SOCKJS_INTERRUPTED,
           "a receiver released (client gone) before it was attached: session interrupted");

    /* the usual order: attached, then its client goes */
    later = session_open("later", 2, &a_later);
    h_later = receiver_add(r, "later", 2, a_later);
    usleep(100000);
    comet_held_release(h_later, 1);
    got = session_closed(&later, a_later);
    IS_STR(got, COMET_SOCKJS_INTERRUPTED,
           "a receiver released (client gone) once attached: session interrupted");

    /* a receiver whose handler just ends (the stream is over): the session
     * goes on for the next receiver */
    done = session_open("done", 3, &a_done);
    h_done = receiver_add(r, "done", 3, a_done);
    usleep(100000);
    comet_held_release(h_done, 0);
    OK(session_free(&done), "a receiver released otherwise: the session is free again");
    OK(session_closed(&done, a_done) == NULL, "... and not interrupted");

    /* the same, as it comes: each released as soon as added, while the
     * loop runs, so the release meets the loop at every point of the
     * attachment (before, between it and the first flush, after) */
    {
        comet_chan_ref_t refs[RACES];
        comet_id_t acked[RACES];
        int i, interrupted = 0;

        for (i = 0; i < RACES; i++) {
            char name[32];
            snprintf(name, sizeof(name), "race%d", i);
            refs[i] = session_open(name, 100 + i, &acked[i]);
            h_done = receiver_add(r, name, 100 + i, acked[i]);
            spin(i % 40 * 2000);
            comet_held_release(h_done, 1);
        }
        for (i = 0; i < RACES; i++) {
            got = session_closed(&refs[i], acked[i]);
            interrupted += got && !strcmp(got, COMET_SOCKJS_INTERRUPTED);
        }
        OK(interrupted == RACES, "%d receivers released (client gone) as soon as added: "
           "%d sessions interrupted", RACES, interrupted);
    }

    comet_reactor_destroy(r);
}

int main(void)
{
    apr_initialize();
    apr_pool_create(&pool, NULL);
    setup();
    test_held_release();
    st->slot_release(st, slot);
    apr_pool_destroy(pool);
    apr_terminate();
    return UNIT_DONE();
}
