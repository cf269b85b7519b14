/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/* Unit tests of comet_loop.c on real descriptors: pipes, socket pairs, an
 * eventfd woken from another thread. */

#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/socket.h>

#include <apr_general.h>

#include "comet_loop.h"
#include "unit.h"

#define MS(n) apr_time_from_msec(n)

/* An io that records what it was told. */
typedef struct {
    comet_loop_io_t io;
    int calls;
    apr_uint32_t events;
    int drain;                        /* read what is there */
    comet_loop_io_t *victim;          /* delete this one when called */
} probe_t;

static void on_probe(comet_loop_t *l, comet_loop_io_t *io, apr_uint32_t events)
{
    probe_t *p = COMET_LOOP_CONTAINER(io, probe_t, io);
    char buf[64];

    p->calls++;
    p->events |= events;
    if (p->drain && read(io->fd, buf, sizeof(buf)) < 0) {
        /* nothing there */
    }
    if (p->victim) {
        comet_loop_io_del(l, p->victim);
    }
}

static void probe_reset(probe_t *p)
{
    p->calls = 0;
    p->events = 0;
}

static int nonblocking_pipe(int fds[2])
{
    if (pipe(fds) < 0) {
        return -1;
    }
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    fcntl(fds[1], F_SETFL, O_NONBLOCK);
    return 0;
}

static void test_io(void)
{
    comet_loop_t *l;
    probe_t p = { { 0 } };
    int fds[2];

    OK(comet_loop_create(&l, NULL, NULL) == APR_SUCCESS, "create a loop");
    OK(nonblocking_pipe(fds) == 0, "a pipe");
    OK(!comet_loop_io_watched(&p.io), "a zeroed io is not watched");
    OK(comet_loop_io_add(l, &p.io, fds[0], COMET_LOOP_READ, on_probe) == APR_SUCCESS,
       "watch the read end");
    OK(comet_loop_io_watched(&p.io) && p.io.fd == fds[0], "watched, on its descriptor");
    OK(comet_loop_poll(l, apr_time_now()) == APR_SUCCESS && p.calls == 0,
       "nothing to read: no callback");
    OK(write(fds[1], "x", 1) == 1, "write a byte");
    p.drain = 1;
    OK(comet_loop_poll(l, apr_time_now() + MS(1000)) == APR_SUCCESS && p.calls == 1
       && p.events == COMET_LOOP_READ, "readable: the callback with READ");
    probe_reset(&p);
    OK(comet_loop_poll(l, apr_time_now()) == APR_SUCCESS && p.calls == 0,
       "drained: no callback");

    OK(write(fds[1], "y", 1) == 1, "write again");
    comet_loop_io_del(l, &p.io);
    OK(!comet_loop_io_watched(&p.io) && p.io.fd == -1, "deleted: not watched");
    OK(comet_loop_poll(l, apr_time_now()) == APR_SUCCESS && p.calls == 0,
       "deleted: no callback although readable");
    comet_loop_io_del(l, &p.io);
    OK(1, "deleting twice is harmless");

    /* watched for nothing: a hang-up still comes */
    OK(comet_loop_io_add(l, &p.io, fds[0], 0, on_probe) == APR_SUCCESS, "watch for errors only");
    OK(comet_loop_poll(l, apr_time_now()) == APR_SUCCESS && p.calls == 0,
       "data waiting, not watched for: no callback");
    close(fds[1]);
    OK(comet_loop_poll(l, apr_time_now() + MS(1000)) == APR_SUCCESS && p.calls == 1
       && p.events == COMET_LOOP_ERROR, "writer gone: ERROR though not watched for");
    comet_loop_io_del(l, &p.io);
    close(fds[0]);
    comet_loop_destroy(l);
}

static void test_socket(void)
{
    comet_loop_t *l;
    probe_t p = { { 0 } };
    int sv[2];

    comet_loop_create(&l, NULL, NULL);
    OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0, "a socket pair");
    OK(comet_loop_io_add(l, &p.io, sv[0], COMET_LOOP_WRITE, on_probe) == APR_SUCCESS,
       "watch for writing");
    OK(comet_loop_poll(l, apr_time_now() + MS(1000)) == APR_SUCCESS && p.calls == 1
       && p.events == COMET_LOOP_WRITE, "writable: WRITE");
    probe_reset(&p);
    OK(comet_loop_io_set(l, &p.io, COMET_LOOP_READ | COMET_LOOP_HUP) == APR_SUCCESS
       && p.io.events == (COMET_LOOP_READ | COMET_LOOP_HUP), "modify: read and hang-up");
    OK(comet_loop_poll(l, apr_time_now()) == APR_SUCCESS && p.calls == 0,
       "nothing to read: no callback (no longer WRITE)");
    OK(write(sv[1], "ab", 2) == 2, "the peer writes");
    p.drain = 1;
    OK(comet_loop_poll(l, apr_time_now() + MS(1000)) == APR_SUCCESS && p.calls == 1
       && p.events == COMET_LOOP_READ, "READ");
    probe_reset(&p);
    shutdown(sv[1], SHUT_WR);
    OK(comet_loop_poll(l, apr_time_now() + MS(1000)) == APR_SUCCESS && p.calls == 1
       && (p.events & COMET_LOOP_HUP), "the peer shuts down its side: HUP");
    probe_reset(&p);
    p.drain = 0;
    OK(comet_loop_io_set(l, &p.io, 0) == APR_SUCCESS, "modify: nothing");
    OK(comet_loop_poll(l, apr_time_now()) == APR_SUCCESS && p.calls == 0,
       "half-closed, watched for nothing: no callback");
    close(sv[1]);
    OK(comet_loop_poll(l, apr_time_now() + MS(1000)) == APR_SUCCESS && p.calls == 1
       && (p.events & COMET_LOOP_ERROR), "the peer closes: ERROR");
    comet_loop_io_del(l, &p.io);
    OK(comet_loop_io_set(l, &p.io, COMET_LOOP_READ) != APR_SUCCESS,
       "modify a deleted io: refused");
    close(sv[0]);
    comet_loop_destroy(l);
}

/* Two ios ready in the same turn, each deleting the other when called: only
 * the first to be called may run. */
static void test_delete_in_turn(void)
{
    comet_loop_t *l;
    probe_t a = { { 0 } }, b = { { 0 } };
    int pa[2], pb[2];

    comet_loop_create(&l, NULL, NULL);
    nonblocking_pipe(pa);
    nonblocking_pipe(pb);
    a.victim = &b.io;
    b.victim = &a.io;
    comet_loop_io_add(l, &a.io, pa[0], COMET_LOOP_READ, on_probe);
    comet_loop_io_add(l, &b.io, pb[0], COMET_LOOP_READ, on_probe);
    OK(write(pa[1], "x", 1) == 1 && write(pb[1], "x", 1) == 1, "both readable");
    OK(comet_loop_poll(l, apr_time_now() + MS(1000)) == APR_SUCCESS, "one turn");
    OK(a.calls + b.calls == 1, "the io deleted by the first callback got no stale event "
       "(a %d, b %d)", a.calls, b.calls);
    OK(comet_loop_io_watched(a.calls ? &a.io : &b.io)
       && !comet_loop_io_watched(a.calls ? &b.io : &a.io), "the first still watched");
    comet_loop_io_del(l, &a.io);
    comet_loop_io_del(l, &b.io);
    close(pa[0]); close(pa[1]); close(pb[0]); close(pb[1]);
    comet_loop_destroy(l);
}

/* Timers that log the order they ran in. */
typedef struct {
    comet_loop_timer_t t;
    int id;
    int rearm;                        /* times left to set itself again */
    apr_interval_time_t every;
    comet_loop_timer_t *victim;       /* cancel this one when run */
} tick_t;

static int order[2048], norder;

static void on_tick(comet_loop_t *l, comet_loop_timer_t *t, apr_time_t now)
{
    tick_t *k = COMET_LOOP_CONTAINER(t, tick_t, t);

    if (norder < (int)(sizeof(order) / sizeof(order[0]))) {
        order[norder++] = k->id;
    }
    if (comet_loop_timer_armed(t)) {
        order[norder++] = -1;         /* must not be: popped before the call */
    }
    if (k->victim) {
        comet_loop_timer_cancel(l, k->victim);
    }
    if (k->rearm > 0) {
        k->rearm--;
        comet_loop_timer_set(l, t, now + k->every, on_tick);
    }
}

static void test_timers(void)
{
    comet_loop_t *l;
    tick_t k[4];
    apr_time_t t0 = apr_time_now();
    int i;

    memset(k, 0, sizeof(k));
    comet_loop_create(&l, NULL, NULL);
    for (i = 0; i < 4; i++) {
        k[i].id = i;
    }
    comet_loop_timer_set(l, &k[0].t, t0 + 30, on_tick);
    comet_loop_timer_set(l, &k[1].t, t0 + 10, on_tick);
    comet_loop_timer_set(l, &k[2].t, t0 + 20, on_tick);
    comet_loop_timer_set(l, &k[3].t, t0 + 40, on_tick);
    OK(comet_loop_timer_armed(&k[0].t) && comet_loop_timer_armed(&k[3].t), "armed");
    norder = 0;
    OK(comet_loop_expire(l, t0 + 5) == 0 && norder == 0, "none due yet");
    OK(comet_loop_expire(l, t0 + 30) == 3, "three due");
    OK(norder == 3 && order[0] == 1 && order[1] == 2 && order[2] == 0,
       "in order of time, each disarmed before its call");
    OK(!comet_loop_timer_armed(&k[1].t) && comet_loop_timer_armed(&k[3].t), "run: disarmed");

    /* move, cancel */
    comet_loop_timer_set(l, &k[0].t, t0 + 50, on_tick);
    comet_loop_timer_set(l, &k[1].t, t0 + 45, on_tick);
    comet_loop_timer_set(l, &k[3].t, t0 + 60, on_tick);
    comet_loop_timer_cancel(l, &k[1].t);
    comet_loop_timer_cancel(l, &k[1].t);
    OK(!comet_loop_timer_armed(&k[1].t), "cancelled (twice: harmless)");
    norder = 0;
    comet_loop_expire(l, t0 + 100);
    OK(norder == 2 && order[0] == 0 && order[1] == 3, "moved later, cancelled one not run");

    /* re-arm from the callback */
    k[2].rearm = 2;
    k[2].every = 10;
    comet_loop_timer_set(l, &k[2].t, t0 + 110, on_tick);
    norder = 0;
    OK(comet_loop_expire(l, t0 + 110) == 1 && comet_loop_timer_armed(&k[2].t)
       && k[2].t.when == t0 + 120, "re-armed by its callback, not run twice");
    k[2].every = 0;
    OK(comet_loop_expire(l, t0 + 135) == 2 && !comet_loop_timer_armed(&k[2].t),
       "set again at or before now: runs again in the same call");

    /* a callback cancels a timer due in the same call */
    k[0].victim = &k[1].t;
    comet_loop_timer_set(l, &k[0].t, t0 + 200, on_tick);
    comet_loop_timer_set(l, &k[1].t, t0 + 201, on_tick);
    norder = 0;
    OK(comet_loop_expire(l, t0 + 300) == 1 && norder == 1 && order[0] == 0,
       "a timer cancelled by an earlier callback does not run");
    comet_loop_destroy(l);
}

static void test_heap(void)
{
    comet_loop_t *l;
    static tick_t k[1000];
    int i, sorted = 1, none_armed = 1;
    apr_time_t last = 0;

    comet_loop_create(&l, NULL, NULL);
    srand(7);
    for (i = 0; i < 1000; i++) {
        k[i].id = i;
        comet_loop_timer_set(l, &k[i].t, 1000 + rand() % 500, on_tick);
    }
    for (i = 0; i < 1000; i += 3) {
        comet_loop_timer_set(l, &k[i].t, 1000 + rand() % 500, on_tick);   /* move */
    }
    for (i = 1; i < 1000; i += 7) {
        comet_loop_timer_cancel(l, &k[i].t);
    }
    norder = 0;
    comet_loop_expire(l, 2000);
    for (i = 0; i < norder; i++) {
        if (order[i] < 0 || k[order[i]].t.when < last) {
            sorted = 0;
        }
        last = order[i] < 0 ? last : k[order[i]].t.when;
    }
    for (i = 0; i < 1000; i++) {
        none_armed &= !comet_loop_timer_armed(&k[i].t);
    }
    OK(norder == 1000 - 143 && sorted && none_armed,
       "1000 timers, moved and cancelled: %d run in order of time", norder);
    comet_loop_destroy(l);
}

static int woken;

static void on_wake(comet_loop_t *l)
{
    woken++;
    *(int *)comet_loop_baton(l) += 1;
}

static void *waker(void *arg)
{
    usleep(50000);
    comet_loop_wakeup(arg);
    return NULL;
}

static void test_wakeup(void)
{
    comet_loop_t *l;
    pthread_t th;
    int baton = 0;
    apr_time_t t0;

    OK(comet_loop_create(&l, on_wake, &baton) == APR_SUCCESS && comet_loop_baton(l) == &baton,
       "a loop with a wake callback and a baton");
    OK(comet_loop_poll(l, apr_time_now()) == APR_SUCCESS && woken == 0, "not woken yet");
    t0 = apr_time_now();
    pthread_create(&th, NULL, waker, l);
    OK(comet_loop_poll(l, t0 + apr_time_from_sec(5)) == APR_SUCCESS && woken == 1
       && baton == 1, "woken from another thread");
    OK(apr_time_now() - t0 < apr_time_from_sec(4), "well before the deadline (%"
       APR_TIME_T_FMT " ms)", apr_time_as_msec(apr_time_now() - t0));
    pthread_join(th, NULL);
    comet_loop_wakeup(l);
    comet_loop_wakeup(l);
    OK(comet_loop_poll(l, apr_time_now() + MS(1000)) == APR_SUCCESS && woken == 2,
       "two wake-ups before a turn: one callback");
    OK(comet_loop_poll(l, apr_time_now()) == APR_SUCCESS && woken == 2, "and no more");
    comet_loop_destroy(l);
}

static int turns;

static int after_turn(comet_loop_t *l, apr_time_t now)
{
    return ++turns == 3;
}

static void test_timeouts(void)
{
    comet_loop_t *l;
    tick_t k;
    apr_time_t t0, took;

    memset(&k, 0, sizeof(k));
    comet_loop_create(&l, NULL, NULL);
    t0 = apr_time_now();
    OK(comet_loop_poll(l, t0 + MS(50)) == APR_SUCCESS, "poll with a deadline");
    took = apr_time_now() - t0;
    OK(took >= MS(49) && took < MS(1000), "waited until the deadline (%" APR_TIME_T_FMT
       " ms)", apr_time_as_msec(took));

    t0 = apr_time_now();
    comet_loop_timer_set(l, &k.t, t0 + MS(30), on_tick);
    OK(comet_loop_poll(l, COMET_LOOP_NEVER) == APR_SUCCESS, "poll without a deadline");
    took = apr_time_now() - t0;
    OK(took >= MS(29) && took < MS(1000), "woke for the timer (%" APR_TIME_T_FMT " ms)",
       apr_time_as_msec(took));
    norder = 0;
    OK(comet_loop_expire(l, apr_time_now()) == 1 && norder == 1, "which is then due");

    /* run: three turns paced by a repeating timer */
    k.rearm = 10;
    k.every = MS(10);
    comet_loop_timer_set(l, &k.t, apr_time_now() + MS(10), on_tick);
    norder = 0;
    t0 = apr_time_now();
    OK(comet_loop_run(l, after_turn) == APR_SUCCESS && turns == 3 && norder == 3,
       "run: turns until the hook says stop, a timer each turn");
    took = apr_time_now() - t0;
    OK(took >= MS(29) && took < MS(1000), "run waited for the timers (%" APR_TIME_T_FMT
       " ms)", apr_time_as_msec(took));
    comet_loop_destroy(l);
}

int main(void)
{
    apr_initialize();
    test_io();
    test_socket();
    test_delete_in_turn();
    test_timers();
    test_heap();
    test_wakeup();
    test_timeouts();
    apr_terminate();
    return UNIT_DONE();
}
