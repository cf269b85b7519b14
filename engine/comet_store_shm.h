/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/**
 * @file comet_store_shm.h
 * @brief The shared-memory store (comet_store_shm.c): one segment created by
 *        httpd's parent before it forks, holding every channel of the server.
 *        What only this implementation has: laying out and adopting the
 *        segment, opening it in a process, its settings and a crash hook for
 *        tests. Everything else goes through comet_store.h.
 */
#ifndef COMET_STORE_SHM_H
#define COMET_STORE_SHM_H

#include <apr_global_mutex.h>

#include "comet_store.h"

/**
 * Bytes of shared memory needed for the given segment size: the segment is
 * carved into fixed tables (slots, channels) and message blocks.
 */
apr_size_t comet_store_shm_size(apr_size_t requested);

/**
 * Lay out a fresh segment at `base`, or adopt one laid out earlier by the
 * same module version (graceful restart).
 * @param base      start of the shared memory, `size` bytes
 * @param nslots    how many processes may hold subscribers at once
 * @param instance  name prefix of the wake sockets; unique per server
 * @param fresh     1 to lay out anew, 0 to adopt (APR_EINVAL if the layout
 *                  does not match)
 */
apr_status_t comet_store_shm_init(void *base, apr_size_t size, int nslots,
                                  const char *instance, int fresh);

/**
 * Open the store in the calling process.
 * @param mutex  the lock shared by every process (child-initialised)
 */
apr_status_t comet_store_shm_open(comet_store_t **st, apr_pool_t *p, void *base,
                                  apr_global_mutex_t *mutex);

/**
 * Set the most channels the store may hold at once (0: as many as the
 * segment has room for); takes effect at once in every process.
 */
void comet_store_shm_set_max_channels(void *base, apr_uint32_t max);

/** The name this segment was laid out under (unique per server start). */
const char *comet_store_shm_instance(const void *base);

/**
 * Testing only: when set to n, a publish kills its own process with SIGKILL
 * at crash point n while holding the lock (1: message written, not linked;
 * 2: linked, counters not updated), to prove that the others recover.
 */
extern volatile int comet_store_shm_crash_point;

#endif /* COMET_STORE_SHM_H */
