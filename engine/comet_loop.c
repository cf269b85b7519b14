/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/*
 * The event loop; see comet_loop.h.
 *
 *   epoll ---- data.ptr ----> comet_loop_io_t (in the caller's object)
 *     +-- eventfd (wake_io) -> wake callback
 *   heap[0..len): comet_loop_timer_t *, earliest first; t->idx = place + 1
 *
 * epoll hands back the io pointer itself, so there is no table by
 * descriptor. A callback may delete another io whose event is still waiting
 * in the same batch: a deleted io has no fn, and the dispatch skips it.
 */

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

#include "comet_loop.h"

/* most events taken from the kernel per epoll_wait */
#define EVENTS_MAX 256

struct comet_loop_t {
    int epfd;
    comet_loop_io_t wake_io;          /* the eventfd of comet_loop_wakeup */
    comet_loop_wake_fn *wake;
    void *baton;
    comet_loop_timer_t **heap;
    apr_size_t heap_len, heap_cap;
    struct epoll_event evs[EVENTS_MAX];
};

/*******************************************************************************
 * file events
 ******************************************************************************/

static apr_uint32_t to_epoll(apr_uint32_t events)
{
    return ((events & COMET_LOOP_READ) ? EPOLLIN : 0)
         | ((events & COMET_LOOP_WRITE) ? EPOLLOUT : 0)
         | ((events & COMET_LOOP_HUP) ? EPOLLRDHUP : 0);
}

static apr_uint32_t from_epoll(apr_uint32_t ev)
{
    return ((ev & EPOLLIN) ? COMET_LOOP_READ : 0)
         | ((ev & EPOLLOUT) ? COMET_LOOP_WRITE : 0)
         | ((ev & EPOLLRDHUP) ? COMET_LOOP_HUP : 0)
         | ((ev & (EPOLLERR | EPOLLHUP)) ? COMET_LOOP_ERROR : 0);
}

static apr_status_t io_ctl(comet_loop_t *l, int op, comet_loop_io_t *io, int fd,
                           apr_uint32_t events)
{
    struct epoll_event ev;

    ev.events = to_epoll(events);
    ev.data.ptr = io;
    return epoll_ctl(l->epfd, op, fd, &ev) < 0 ? errno : APR_SUCCESS;
}

apr_status_t comet_loop_io_add(comet_loop_t *l, comet_loop_io_t *io, int fd,
                               apr_uint32_t events, comet_loop_io_fn *fn)
{
    apr_status_t rv = io_ctl(l, EPOLL_CTL_ADD, io, fd, events);

    if (rv == APR_SUCCESS) {
        io->fn = fn;
        io->fd = fd;
        io->events = events;
    }
    return rv;
}

apr_status_t comet_loop_io_set(comet_loop_t *l, comet_loop_io_t *io, apr_uint32_t events)
{
    apr_status_t rv;

    if (!io->fn) {
        return APR_EINVAL;
    }
    if (events == io->events) {
        return APR_SUCCESS;
    }
    rv = io_ctl(l, EPOLL_CTL_MOD, io, io->fd, events);
    if (rv == APR_SUCCESS) {
        io->events = events;
    }
    return rv;
}

void comet_loop_io_del(comet_loop_t *l, comet_loop_io_t *io)
{
    if (!io->fn) {
        return;
    }
    /* fails only if the descriptor is closed already: then it is out anyway */
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, io->fd, NULL);
    io->fn = NULL;
    io->fd = -1;
    io->events = 0;
}

/*******************************************************************************
 * timers: a binary min-heap of timer pointers
 ******************************************************************************/

static void heap_swap(comet_loop_t *l, apr_size_t a, apr_size_t b)
{
    comet_loop_timer_t *t = l->heap[a];

    l->heap[a] = l->heap[b];
    l->heap[b] = t;
    l->heap[a]->idx = a + 1;
    l->heap[b]->idx = b + 1;
}

static void heap_up(comet_loop_t *l, apr_size_t i)
{
    while (i > 0) {
        apr_size_t parent = (i - 1) / 2;
        if (l->heap[parent]->when <= l->heap[i]->when) {
            break;
        }
        heap_swap(l, i, parent);
        i = parent;
    }
}

static void heap_down(comet_loop_t *l, apr_size_t i)
{
    for (;;) {
        apr_size_t left = 2 * i + 1, right = left + 1, m = i;
        if (left < l->heap_len && l->heap[left]->when < l->heap[m]->when) {
            m = left;
        }
        if (right < l->heap_len && l->heap[right]->when < l->heap[m]->when) {
            m = right;
        }
        if (m == i) {
            break;
        }
        heap_swap(l, i, m);
        i = m;
    }
}

apr_status_t comet_loop_timer_set(comet_loop_t *l, comet_loop_timer_t *t, apr_time_t when,
                                  comet_loop_timer_fn *fn)
{
    t->fn = fn;
    t->when = when;
    if (t->idx) {
        heap_down(l, t->idx - 1);
        heap_up(l, t->idx - 1);
        return APR_SUCCESS;
    }
    if (l->heap_len == l->heap_cap) {
        apr_size_t cap = l->heap_cap ? l->heap_cap * 2 : 256;
        comet_loop_timer_t **h = realloc(l->heap, cap * sizeof(*h));
        if (!h) {
            return APR_ENOMEM;
        }
        l->heap = h;
        l->heap_cap = cap;
    }
    l->heap[l->heap_len] = t;
    t->idx = ++l->heap_len;
    heap_up(l, t->idx - 1);
    return APR_SUCCESS;
}

void comet_loop_timer_cancel(comet_loop_t *l, comet_loop_timer_t *t)
{
    apr_size_t i;

    if (!t->idx) {
        return;
    }
    i = t->idx - 1;
    t->idx = 0;
    l->heap_len--;
    if (i != l->heap_len) {
        /* the last one takes its place, then finds its own */
        l->heap[i] = l->heap[l->heap_len];
        l->heap[i]->idx = i + 1;
        heap_down(l, i);
        heap_up(l, i);
    }
}

apr_size_t comet_loop_expire(comet_loop_t *l, apr_time_t now)
{
    apr_size_t n = 0;

    while (l->heap_len && l->heap[0]->when <= now) {
        comet_loop_timer_t *t = l->heap[0];
        comet_loop_timer_cancel(l, t);
        t->fn(l, t, now);
        n++;
    }
    return n;
}

/*******************************************************************************
 * the loop
 ******************************************************************************/

static void on_wake_io(comet_loop_t *l, comet_loop_io_t *io, apr_uint32_t events)
{
    apr_uint64_t v;

    if (read(io->fd, &v, sizeof(v)) < 0) {
        /* another turn emptied it: nothing to do then */
    }
    if (l->wake) {
        l->wake(l);
    }
}

apr_status_t comet_loop_create(comet_loop_t **lp, comet_loop_wake_fn *wake, void *baton)
{
    comet_loop_t *l = calloc(1, sizeof(*l));
    apr_status_t rv;
    int efd = -1;

    if (!l) {
        return APR_ENOMEM;
    }
    l->wake = wake;
    l->baton = baton;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    rv = l->epfd < 0 ? errno : APR_SUCCESS;
    if (rv == APR_SUCCESS && (efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
        rv = errno;
    }
    if (rv == APR_SUCCESS) {
        rv = comet_loop_io_add(l, &l->wake_io, efd, COMET_LOOP_READ, on_wake_io);
    }
    if (rv != APR_SUCCESS) {
        if (l->epfd >= 0) {
            close(l->epfd);
        }
        if (efd >= 0) {
            close(efd);
        }
        free(l);
        return rv;
    }
    *lp = l;
    return APR_SUCCESS;
}

void comet_loop_destroy(comet_loop_t *l)
{
    if (!l) {
        return;
    }
    close(l->wake_io.fd);
    close(l->epfd);
    free(l->heap);
    free(l);
}

void *comet_loop_baton(comet_loop_t *l)
{
    return l->baton;
}

void comet_loop_wakeup(comet_loop_t *l)
{
    apr_uint64_t one = 1;

    if (write(l->wake_io.fd, &one, sizeof(one)) < 0) {
        /* the counter is full: the loop is awake anyway */
    }
}

/* Milliseconds to wait for `until` (rounded up), -1: no limit. */
static int wait_ms(apr_time_t until, apr_time_t now)
{
    apr_time_t ms;

    if (until == COMET_LOOP_NEVER) {
        return -1;
    }
    if (until <= now) {
        return 0;
    }
    ms = (until - now + 999) / 1000;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

apr_status_t comet_loop_poll(comet_loop_t *l, apr_time_t deadline)
{
    apr_time_t until = deadline;
    int n, i;

    if (l->heap_len && l->heap[0]->when < until) {
        until = l->heap[0]->when;
    }
    n = epoll_wait(l->epfd, l->evs, EVENTS_MAX, wait_ms(until, apr_time_now()));
    if (n < 0) {
        return errno == EINTR ? APR_SUCCESS : errno;
    }
    for (i = 0; i < n; i++) {
        comet_loop_io_t *io = l->evs[i].data.ptr;
        apr_uint32_t events;

        if (!io->fn) {
            continue;                 /* deleted by an earlier callback */
        }
        events = from_epoll(l->evs[i].events) & (io->events | COMET_LOOP_ERROR);
        if (events) {
            io->fn(l, io, events);
        }
    }
    return APR_SUCCESS;
}

apr_status_t comet_loop_run(comet_loop_t *l, comet_loop_turn_fn *after)
{
    for (;;) {
        apr_status_t rv = comet_loop_poll(l, COMET_LOOP_NEVER);
        apr_time_t now;

        if (rv != APR_SUCCESS) {
            return rv;
        }
        now = apr_time_now();
        comet_loop_expire(l, now);
        if (after && after(l, now)) {
            return APR_SUCCESS;
        }
    }
}
