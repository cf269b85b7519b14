/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/**
 * @file comet_loop.h
 * @brief A small event loop (after redis' ae.c): file events, timers and a
 *        wake-up from other threads, on Linux epoll and an eventfd.
 *
 * Everything is intrusive: the caller embeds a comet_loop_io_t or a
 * comet_loop_timer_t in its own object, and gets that object back from the
 * pointer its callback receives with COMET_LOOP_CONTAINER. Watching a
 * descriptor or arming a timer allocates nothing (bar the timer heap growing).
 *
 *   comet_loop_poll(l, deadline)      wait for I/O until the earliest timer
 *     | epoll_wait                    or the deadline, then call the I/O
 *     +-> io->fn(l, io, events)       callbacks (and the wake-up callback)
 *   ... the caller's own steps ...
 *   comet_loop_expire(l, now)         pop each due timer, call t->fn
 *
 * A turn is split in steps so that a caller can put its own work between
 * them (the reactor fetches new messages after I/O and before timers);
 * comet_loop_run does poll + expire + a hook for the simpler ones.
 *
 * Only the thread that runs the loop may call these functions, except
 * comet_loop_wakeup. APR types only; no request handling in here.
 */
#ifndef COMET_LOOP_H
#define COMET_LOOP_H

#include <stddef.h>

#include <apr.h>
#include <apr_errno.h>
#include <apr_time.h>

typedef struct comet_loop_t comet_loop_t;
typedef struct comet_loop_io_t comet_loop_io_t;
typedef struct comet_loop_timer_t comet_loop_timer_t;

/** Readable. */
#define COMET_LOOP_READ   0x01
/** Writable. */
#define COMET_LOOP_WRITE  0x02
/** The peer shut down its side (EPOLLRDHUP). */
#define COMET_LOOP_HUP    0x04
/** Error or full hang-up: reported whether watched for or not. */
#define COMET_LOOP_ERROR  0x08

/** No deadline: comet_loop_poll waits for I/O or a timer only. */
#define COMET_LOOP_NEVER  APR_INT64_MAX

/** The object that embeds `member` at `ptr` (container_of). */
#define COMET_LOOP_CONTAINER(ptr, type, member) \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/** An I/O callback: `events` is what happened, COMET_LOOP_* bits. */
typedef void comet_loop_io_fn(comet_loop_t *l, comet_loop_io_t *io, apr_uint32_t events);

/** A timer callback; the timer is no longer armed and may be set again. */
typedef void comet_loop_timer_fn(comet_loop_t *l, comet_loop_timer_t *t, apr_time_t now);

/** The wake-up callback: another thread called comet_loop_wakeup. */
typedef void comet_loop_wake_fn(comet_loop_t *l);

/** What comet_loop_run calls after each turn; nonzero ends the run. */
typedef int comet_loop_turn_fn(comet_loop_t *l, apr_time_t now);

/**
 * A watched descriptor, embedded in the caller's object. Zeroed (or
 * deleted), it is not watched. Read-only for the caller.
 */
struct comet_loop_io_t {
    comet_loop_io_fn *fn;             /**< NULL: not watched */
    int fd;                           /**< -1 once deleted */
    apr_uint32_t events;              /**< COMET_LOOP_READ | WRITE | HUP */
};

/** A timer, embedded in the caller's object; zeroed, it is not armed. */
struct comet_loop_timer_t {
    apr_time_t when;                  /**< when it is due */
    apr_size_t idx;                   /**< place in the heap + 1; 0: not armed */
    comet_loop_timer_fn *fn;
};

/**
 * Create a loop.
 * @param wake   called on the loop's thread after comet_loop_wakeup; may be NULL
 * @param baton  the caller's, for comet_loop_baton
 */
apr_status_t comet_loop_create(comet_loop_t **l, comet_loop_wake_fn *wake, void *baton);

/** Close the loop's descriptors and free it; the watched ones stay open. */
void comet_loop_destroy(comet_loop_t *l);

/** The baton given to comet_loop_create. */
void *comet_loop_baton(comet_loop_t *l);

/**
 * Watch `fd` for `events` (COMET_LOOP_READ | WRITE | HUP; 0 for errors and
 * hang-ups only), level-triggered; `io` must not be watched already.
 */
apr_status_t comet_loop_io_add(comet_loop_t *l, comet_loop_io_t *io, int fd,
                               apr_uint32_t events, comet_loop_io_fn *fn);

/** Change what a watched descriptor is watched for. */
apr_status_t comet_loop_io_set(comet_loop_t *l, comet_loop_io_t *io, apr_uint32_t events);

/**
 * Stop watching (the descriptor is not closed); no-op if not watched. The
 * io gets no event later in the current turn, but its memory may be freed
 * only once the turn's callbacks have run.
 */
void comet_loop_io_del(comet_loop_t *l, comet_loop_io_t *io);

/** @return 1 if the io is watched, else 0. */
static APR_INLINE int comet_loop_io_watched(const comet_loop_io_t *io)
{
    return io->fn != NULL;
}

/**
 * Arm a timer at `when`, or move it there if armed.
 * @return APR_SUCCESS, or APR_ENOMEM (the timer is then not armed)
 */
apr_status_t comet_loop_timer_set(comet_loop_t *l, comet_loop_timer_t *t, apr_time_t when,
                                  comet_loop_timer_fn *fn);

/** Disarm a timer; no-op if not armed. */
void comet_loop_timer_cancel(comet_loop_t *l, comet_loop_timer_t *t);

/** @return 1 if the timer is armed, else 0. */
static APR_INLINE int comet_loop_timer_armed(const comet_loop_timer_t *t)
{
    return t->idx != 0;
}

/** Wake the loop up from any thread: its wake callback runs in comet_loop_poll. */
void comet_loop_wakeup(comet_loop_t *l);

/**
 * Wait for I/O until the earliest timer or `deadline` (COMET_LOOP_NEVER:
 * none; a time past: do not wait), then call the callbacks of what is ready.
 * Runs no timer.
 * @return APR_SUCCESS (also when a signal interrupted the wait), or the
 *         error of epoll_wait
 */
apr_status_t comet_loop_poll(comet_loop_t *l, apr_time_t deadline);

/**
 * Run every timer due at `now`, earliest first; a timer set again at or
 * before `now` by its callback runs again.
 * @return the number of timers run
 */
apr_size_t comet_loop_expire(comet_loop_t *l, apr_time_t now);

/**
 * Turn until `after` returns nonzero: poll (no deadline), expire, after.
 * @return APR_SUCCESS, or the error of comet_loop_poll
 */
apr_status_t comet_loop_run(comet_loop_t *l, comet_loop_turn_fn *after);

#endif /* COMET_LOOP_H */
