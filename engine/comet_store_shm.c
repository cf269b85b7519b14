/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/*
 * The shared-memory channel store.
 *
 * One segment, created by the parent before it forks and kept across graceful
 * restarts, holds every channel of the server. All of it is addressed by
 * 32-bit indices (0 means "none"), never by pointers, because each process
 * may map the segment at another address.
 *
 *  +-----------------------------------------------------------------------+
 *  | header      magic, layout, instance name, free lists, counters,       |
 *  |             `writer`: pid of a process in the middle of a change      |
 *  +-----------------------------------------------------------------------+
 *  | slots[1..nslots]   one per process holding subscribers               |
 *  |    state, pid | its process' counters (atomics, comet_store.h) |    |
 *  |    inbox ring of channel refs (head, tail, overflow)                 |
 *  +-----------------------------------------------------------------------+
 *  | buckets[nbuckets]  channel name hash -> first channel of the bucket   |
 *  +-----------------------------------------------------------------------+
 *  | chans[1..nchans]   name, generation, ids, message list (head..tail), |
 *  |                    subscriber list (first block), counters; sessions |
 *  |                    add a receiver, a delivered id and flags          |
 *  +-----------------------------------------------------------------------+
 *  | blocks[1..nblocks] 128 bytes each: a free list, then never used ones |
 *  |   message head:  next | next_msg | len | flags | id | published |  |
 *  |                  expires | first 88 bytes of the body               |
 *  |   continuation:  next | 124 more bytes of the body                   |
 *  |   subscribers:   next | n | 7 x (slot, count, fetched id)            |
 *  +-----------------------------------------------------------------------+
 *
 * A channel's messages form a list from the oldest (head) to the newest
 * (tail); a message is one head block chained to its continuation blocks.
 * Past its buffer length, a channel drops its oldest message only if every
 * process following it has fetched it (up to LAG_FACTOR times the length):
 * a child that gets no CPU for a moment does not lose messages for its
 * subscribers.
 * Fixed-size blocks never fragment, so a full segment means full.
 *
 * Nothing is written at start-up past the header: channels and blocks are
 * taken from the free lists first, then from the never-used tail (`fresh_*`),
 * so an idle 64 MB segment costs only the pages in use.
 *
 * Locking: one global mutex guards everything. A process about to change the
 * segment writes its pid into header->writer, and clears it as it unlocks. If
 * it dies in between (SIGKILL while publishing), the robust mutex passes to the
 * next process, which finds `writer` set and repairs: it rebuilds the free
 * lists, the hash chains and every channel's counters from what is reachable,
 * so a half-done change costs at most the message being written.
 *
 * Wake-ups: each slot owns an abstract AF_UNIX datagram socket named after the
 * server instance and the slot. A publisher queues the channel in the inbox of
 * every slot following it and sends one datagram to each slot whose inbox was
 * empty, so a busy child is not woken once per message. Binding that name
 * also proves a dead child gone: the kernel frees the name when the process
 * dies, whatever killed it.
 */

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <apr_atomic.h>
#include <apr_strings.h>

#include "comet_store_shm.h"

#define SHM_MAGIC        "COMETSH1"
#define SHM_VERSION      9
#define BLOCK_SIZE       128
#define INBOX_LEN        1024
#define SLOTS_MAX        4096
#define HEAD_DATA        88
#define CONT_DATA        124
#define SLOTLIST_ENTRIES 7
/* A channel keeps up to this many times its buffer length for a process
 * that has not fetched yet, before that process loses messages. */
#define LAG_FACTOR       16
#define NIL              0
/* An idle channel (no message, no subscriber) is kept this long, so that a
 * publisher's GET right after the last subscriber left still finds it. */
#define IDLE_GRACE       apr_time_from_sec(5)
/* Channels looked at per housekeeping call. */
#define MAINT_BATCH      512

#define SLOT_FREE        0
#define SLOT_ACTIVE      1

volatile int comet_store_shm_crash_point = 0;

/* Testing: die here, holding the lock, if the test asked for it. */
#define CRASH_POINT(n) do {                                             \
        if (comet_store_shm_crash_point == (n)) {                      \
            kill(getpid(), SIGKILL);                                    \
        }                                                               \
    } while (0)

/* Keep the compiler from moving stores across the `writer` marks: what must
 * be in memory if the process dies right there. */
#define COMPILER_FENCE() __atomic_signal_fence(__ATOMIC_SEQ_CST)

typedef struct {
    char magic[8];
    apr_uint32_t version;
    apr_uint32_t block_size;
    apr_uint64_t size;
    apr_uint32_t nslots, nchans, nbuckets, nblocks;
    apr_uint64_t off_slots, off_buckets, off_chans, off_blocks;
    char instance[64];

    /* mutable, under the lock */
    volatile apr_int32_t writer;
    apr_uint32_t free_block;      /* list of blocks given back */
    apr_uint32_t free_blocks;     /* length of that list */
    apr_uint32_t fresh_block;     /* first block never used */
    apr_uint32_t free_chan;       /* list of channel records given back */
    apr_uint32_t fresh_chan;      /* first channel record never used */
    apr_uint32_t chans_used;
    apr_uint32_t maint_cursor;
    apr_uint32_t slot_cursor;
    apr_uint32_t repairs;
    apr_uint32_t sessions;
    apr_uint32_t max_chans;       /* configured cap, 0: the table's size */
    apr_time_t next_maint;
    apr_uint64_t published;
    apr_uint64_t published_bytes;
    /* the counters of slots given back, so that totals never go down */
    apr_uint64_t gone_delivered, gone_delivered_bytes, gone_dropped, gone_gaps;
} shm_header_t;

typedef struct {
    apr_uint32_t state;
    apr_int32_t pid;
    apr_uint32_t head, tail;      /* ring positions, free running */
    apr_uint32_t overflow;
    apr_uint32_t held;            /* its streams that keep a thread */
    comet_slot_counters_t counters; /* written by its process (atomics);
                                     * `incoming` by senders too */
    comet_chan_ref_t ring[INBOX_LEN];
} shm_slot_t;

typedef struct {
    apr_uint32_t hnext;           /* next in bucket, or in the free list */
    apr_uint32_t gen;
    apr_uint32_t in_use;
    apr_uint32_t name_len;
    apr_uint32_t hash;
    apr_uint32_t head, tail, count;
    apr_uint32_t slots;           /* first subscriber-list block */
    apr_uint32_t subscribers;
    apr_uint64_t bytes;
    comet_id_t last_id;
    comet_id_t evicted_id;        /* newest id dropped from the buffer */
    apr_time_t created, last_publish, touched;
    /* sessions */
    apr_uint32_t flags;
    apr_uint32_t receiver_slot;
    apr_uint64_t receiver;        /* token of the receiver, 0: none */
    comet_id_t acked_id;
    apr_time_t detached_at;
    apr_uint64_t owner;           /* the client a session is bound to, 0: none */
    char name[COMET_CHANNEL_MAX];
} shm_chan_t;

typedef struct {
    apr_uint32_t next;
    char data[CONT_DATA];
} shm_block_t;

typedef struct {
    apr_uint32_t next;
    apr_uint32_t next_msg;
    apr_uint32_t len;
    apr_uint32_t flags;           /* COMET_MSG_* */
    comet_id_t id;
    apr_time_t published;
    apr_time_t expires;           /* 0: never */
    char data[HEAD_DATA];
} shm_msg_t;

typedef struct {
    apr_uint32_t next;
    apr_uint32_t n;               /* entries in use at the front */
    struct {
        apr_uint32_t slot;
        apr_uint32_t count;
        comet_id_t fetched;       /* newest id this slot's process fetched */
    } e[SLOTLIST_ENTRIES];
    char pad[BLOCK_SIZE - 8 - SLOTLIST_ENTRIES * 16];
} shm_slotlist_t;

typedef struct {
    comet_store_t pub;            /* first: the store handle */
    apr_pool_t *pool;
    shm_header_t *hdr;
    shm_slot_t *slots;            /* [1..nslots] */
    apr_uint32_t *buckets;
    shm_chan_t *chans;            /* [1..nchans] */
    shm_block_t *blocks;          /* [1..nblocks] */
    apr_global_mutex_t *mutex;
    int send_fd;                  /* unbound datagram socket to ring slots */
    int wake_fd[2];               /* slot claimed by this process, its socket */
} shm_store_t;

typedef char assert_block_size[(sizeof(shm_block_t) == BLOCK_SIZE
                                && sizeof(shm_msg_t) == BLOCK_SIZE
                                && sizeof(shm_slotlist_t) == BLOCK_SIZE) ? 1 : -1];

#define BLK(s, i)   (&(s)->blocks[(i) - 1])
#define MSG(s, i)   ((shm_msg_t *)BLK(s, i))
#define SLST(s, i)  ((shm_slotlist_t *)BLK(s, i))
#define CHAN(s, i)  (&(s)->chans[(i) - 1])
#define SLOT(s, i)  (&(s)->slots[(i) - 1])

static apr_size_t align8(apr_size_t n)
{
    return (n + 7) & ~(apr_size_t)7;
}

static apr_uint32_t msg_blocks(apr_size_t len)
{
    if (len <= HEAD_DATA) {
        return 1;
    }
    return 1 + (apr_uint32_t)((len - HEAD_DATA + CONT_DATA - 1) / CONT_DATA);
}

/*******************************************************************************
 * layout
 ******************************************************************************/

typedef struct {
    apr_uint32_t nslots, nchans, nbuckets, nblocks;
    apr_size_t off_slots, off_buckets, off_chans, off_blocks;
} layout_t;

static void layout_compute(layout_t *l, apr_size_t size, int nslots)
{
    apr_size_t fixed, n;

    l->nslots = (apr_uint32_t)nslots;
    /* one channel record per 4 KiB of segment: a channel buffers messages */
    n = size / 4096;
    l->nchans = (apr_uint32_t)(n < 64 ? 64 : n > (1u << 24) ? (1u << 24) : n);
    l->nbuckets = 1;
    while (l->nbuckets < l->nchans) {
        l->nbuckets <<= 1;
    }
    l->off_slots = align8(sizeof(shm_header_t));
    l->off_buckets = align8(l->off_slots + (apr_size_t)l->nslots * sizeof(shm_slot_t));
    l->off_chans = align8(l->off_buckets + (apr_size_t)l->nbuckets * sizeof(apr_uint32_t));
    l->off_blocks = align8(l->off_chans + (apr_size_t)l->nchans * sizeof(shm_chan_t));
    fixed = l->off_blocks;
    l->nblocks = size > fixed ? (apr_uint32_t)((size - fixed) / BLOCK_SIZE) : 0;
}

apr_size_t comet_store_shm_size(apr_size_t requested)
{
    return requested;
}

apr_status_t comet_store_shm_init(void *base, apr_size_t size, int nslots,
                                  const char *instance, int fresh)
{
    shm_header_t *hdr = base;
    layout_t l;
    if (nslots < 1 || nslots > SLOTS_MAX || strlen(instance) >= sizeof(hdr->instance)) {
        return APR_EINVAL;
    }
    layout_compute(&l, size, nslots);
    if (l.nblocks < 64) {
        return APR_ENOSPC;
    }
    if (!fresh) {
        if (memcmp(hdr->magic, SHM_MAGIC, 8) || hdr->version != SHM_VERSION
            || hdr->size != size || hdr->nslots != l.nslots
            || hdr->nchans != l.nchans || hdr->nblocks != l.nblocks) {
            return APR_EINVAL;
        }
        return APR_SUCCESS;
    }

    /* anonymous shared memory comes zeroed: write only the header, so that
     * pages are touched when first used, not now */
    memset(hdr, 0, sizeof(*hdr));
    memcpy(hdr->magic, SHM_MAGIC, 8);
    hdr->version = SHM_VERSION;
    hdr->block_size = BLOCK_SIZE;
    hdr->size = size;
    hdr->nslots = l.nslots;
    hdr->nchans = l.nchans;
    hdr->nbuckets = l.nbuckets;
    hdr->nblocks = l.nblocks;
    hdr->off_slots = l.off_slots;
    hdr->off_buckets = l.off_buckets;
    hdr->off_chans = l.off_chans;
    hdr->off_blocks = l.off_blocks;
    apr_cpystrn(hdr->instance, instance, sizeof(hdr->instance));

    memset((char *)base + l.off_slots, 0, l.off_chans - l.off_slots);
    hdr->free_chan = NIL;
    hdr->fresh_chan = 1;
    hdr->free_block = NIL;
    hdr->free_blocks = 0;
    hdr->fresh_block = 1;
    return APR_SUCCESS;
}

/*******************************************************************************
 * locking and repair
 ******************************************************************************/

static void repair(shm_store_t *s);

static void begin_change(shm_store_t *s)
{
    s->hdr->writer = (apr_int32_t)getpid();
    COMPILER_FENCE();
}

static void end_change(shm_store_t *s)
{
    COMPILER_FENCE();
    s->hdr->writer = 0;
}

/* Leaves `writer` at 0: a repair, if one was due, ends its change. */
static apr_status_t lock_store(shm_store_t *s)
{
    apr_status_t rv = apr_global_mutex_lock(s->mutex);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (s->hdr->writer != 0) {
        repair(s);
    }
    return APR_SUCCESS;
}

/* Ends the change, if one began (a no-op otherwise: `writer` is still 0), so
 * that no exit of a store function can leave the mark behind. */
static void unlock_store(shm_store_t *s)
{
    end_change(s);
    apr_global_mutex_unlock(s->mutex);
}

static int block_ok(shm_store_t *s, apr_uint32_t i)
{
    return i >= 1 && i < s->hdr->fresh_block;
}

static int marked(const unsigned char *mark, apr_uint32_t i)
{
    return (mark[(i - 1) >> 3] & (1u << ((i - 1) & 7))) != 0;
}

/* Mark block i; 0 if it is out of range or already marked (a cycle or a
 * block shared by two lists: the list is cut there). */
static int mark_block(shm_store_t *s, unsigned char *mark, apr_uint32_t i)
{
    if (!block_ok(s, i) || marked(mark, i)) {
        return 0;
    }
    mark[(i - 1) >> 3] |= (unsigned char)(1u << ((i - 1) & 7));
    return 1;
}

static int mark_message(shm_store_t *s, unsigned char *mark, apr_uint32_t m)
{
    apr_uint32_t want, b, n;

    if (!mark_block(s, mark, m)) {
        return 0;
    }
    want = msg_blocks(MSG(s, m)->len);
    for (b = MSG(s, m)->next, n = 1; n < want; n++, b = BLK(s, b)->next) {
        if (!mark_block(s, mark, b)) {
            return 0;
        }
    }
    return 1;
}

/* Keep the longest valid prefix of c's messages and recount them. */
static void repair_messages(shm_store_t *s, unsigned char *mark, shm_chan_t *c)
{
    apr_uint32_t m, prev = NIL;

    c->count = 0;
    c->bytes = 0;
    for (m = c->head; m != NIL; m = MSG(s, m)->next_msg) {
        if (!mark_message(s, mark, m)) {
            break;
        }
        c->count++;
        c->bytes += MSG(s, m)->len;
        prev = m;
    }
    if (prev == NIL) {
        c->head = NIL;
    }
    else {
        MSG(s, prev)->next_msg = NIL;
    }
    c->tail = prev;
    if (prev != NIL && MSG(s, prev)->id > c->last_id) {
        /* written and linked by the dead process, its id not recorded */
        c->last_id = MSG(s, prev)->id;
    }
}

/* Keep the valid prefix of c's subscriber list and recount its subscribers. */
static void repair_slotlist(shm_store_t *s, unsigned char *mark, shm_chan_t *c)
{
    apr_uint32_t l, prev = NIL;

    c->subscribers = 0;
    for (l = c->slots; l != NIL; l = SLST(s, l)->next) {
        apr_uint32_t k;
        if (!mark_block(s, mark, l) || SLST(s, l)->n > SLOTLIST_ENTRIES) {
            break;
        }
        for (k = 0; k < SLST(s, l)->n; k++) {
            c->subscribers += SLST(s, l)->e[k].count;
        }
        prev = l;
    }
    if (prev == NIL) {
        c->slots = NIL;
    }
    else {
        SLST(s, prev)->next = NIL;
    }
}

/* Rebuild channel record i and hash it again, or give it back if it holds no
 * valid channel (or if there is no mark table to check its blocks with). */
static void repair_chan(shm_store_t *s, unsigned char *mark, apr_uint32_t i)
{
    shm_header_t *hdr = s->hdr;
    shm_chan_t *c = CHAN(s, i);

    if (!c->in_use || c->name_len == 0 || c->name_len > COMET_CHANNEL_MAX || !mark) {
        if (c->in_use && mark) {
            c->gen++;
        }
        c->in_use = 0;
        c->hnext = hdr->free_chan;
        hdr->free_chan = i;
        return;
    }
    repair_messages(s, mark, c);
    repair_slotlist(s, mark, c);
    c->hash = comet_hash32(c->name, c->name_len);
    c->hnext = s->buckets[c->hash & (hdr->nbuckets - 1)];
    s->buckets[c->hash & (hdr->nbuckets - 1)] = i;
    hdr->chans_used++;
    if (c->flags & COMET_CHAN_SESSION) {
        hdr->sessions++;
    }
}

/* The free block list: whatever nobody reaches, in index order (every block
 * in use so far if there is no mark table). */
static void repair_free_blocks(shm_store_t *s, const unsigned char *mark)
{
    shm_header_t *hdr = s->hdr;
    apr_uint32_t i, prev = NIL;

    hdr->free_block = NIL;
    hdr->free_blocks = 0;
    for (i = 1; i < hdr->fresh_block; i++) {
        if (mark && marked(mark, i)) {
            continue;
        }
        BLK(s, i)->next = NIL;
        if (prev == NIL) {
            hdr->free_block = i;
        }
        else {
            BLK(s, prev)->next = i;
        }
        prev = i;
        hdr->free_blocks++;
    }
}

/* The process that held the lock died in the middle of a change: rebuild
 * every derived structure from what can still be reached. */
static void repair(shm_store_t *s)
{
    shm_header_t *hdr = s->hdr;
    unsigned char *mark = calloc((hdr->nblocks + 7) / 8, 1);
    apr_uint32_t i;

    hdr->writer = (apr_int32_t)getpid();
    memset(s->buckets, 0, hdr->nbuckets * sizeof(apr_uint32_t));
    hdr->free_chan = NIL;
    hdr->chans_used = 0;
    hdr->sessions = 0;
    if (hdr->fresh_chan < 1 || hdr->fresh_chan > hdr->nchans + 1) {
        hdr->fresh_chan = hdr->nchans + 1;
    }
    if (hdr->fresh_block < 1 || hdr->fresh_block > hdr->nblocks + 1) {
        hdr->fresh_block = hdr->nblocks + 1;
    }
    for (i = hdr->fresh_chan - 1; i >= 1; i--) {
        repair_chan(s, mark, i);
    }
    repair_free_blocks(s, mark);
    for (i = 1; i <= hdr->nslots; i++) {
        shm_slot_t *sl = SLOT(s, i);
        if (sl->tail - sl->head > INBOX_LEN) {
            sl->head = sl->tail;
            sl->overflow = 1;
        }
    }
    free(mark);
    hdr->repairs++;
    end_change(s);
}

/*******************************************************************************
 * blocks
 ******************************************************************************/

static apr_uint32_t blocks_available(shm_store_t *s)
{
    return s->hdr->free_blocks + (s->hdr->nblocks + 1 - s->hdr->fresh_block);
}

/* Take n chained blocks, given-back ones first; NIL if there are not enough. */
static apr_uint32_t blocks_alloc(shm_store_t *s, apr_uint32_t n)
{
    apr_uint32_t first = NIL, last = NIL, k;

    if (n == 0 || blocks_available(s) < n) {
        return NIL;
    }
    for (k = 0; k < n; k++) {
        apr_uint32_t b;
        if (s->hdr->free_block != NIL) {
            b = s->hdr->free_block;
            s->hdr->free_block = BLK(s, b)->next;
            s->hdr->free_blocks--;
        }
        else {
            b = s->hdr->fresh_block++;
        }
        BLK(s, b)->next = NIL;
        if (last == NIL) {
            first = b;
        }
        else {
            BLK(s, last)->next = b;
        }
        last = b;
    }
    return first;
}

/* Give back a chain of n blocks starting at first. */
static void blocks_free(shm_store_t *s, apr_uint32_t first, apr_uint32_t n)
{
    apr_uint32_t last = first, k;

    for (k = 1; k < n; k++) {
        last = BLK(s, last)->next;
    }
    BLK(s, last)->next = s->hdr->free_block;
    s->hdr->free_block = first;
    s->hdr->free_blocks += n;
}

/*******************************************************************************
 * channels
 ******************************************************************************/

static apr_uint32_t chan_find(shm_store_t *s, const char *name, apr_size_t len,
                              apr_uint32_t hash)
{
    apr_uint32_t i = s->buckets[hash & (s->hdr->nbuckets - 1)];

    while (i != NIL) {
        shm_chan_t *c = CHAN(s, i);
        if (c->hash == hash && c->name_len == len && !memcmp(c->name, name, len)) {
            return i;
        }
        i = c->hnext;
    }
    return NIL;
}

/* The configured cap on channels is reached (not the table's size). */
static int chans_capped(shm_store_t *s)
{
    return s->hdr->max_chans && s->hdr->chans_used >= s->hdr->max_chans;
}

static apr_uint32_t chan_create(shm_store_t *s, const char *name, apr_size_t len,
                                apr_uint32_t hash, apr_time_t now)
{
    apr_uint32_t i = s->hdr->free_chan;
    shm_chan_t *c;
    apr_uint32_t gen;

    if (s->hdr->max_chans && s->hdr->chans_used >= s->hdr->max_chans) {
        return NIL;
    }
    if (i != NIL) {
        c = CHAN(s, i);
        s->hdr->free_chan = c->hnext;
    }
    else if (s->hdr->fresh_chan <= s->hdr->nchans) {
        i = s->hdr->fresh_chan++;
        c = CHAN(s, i);
    }
    else {
        return NIL;
    }
    gen = c->gen;
    memset(c, 0, sizeof(*c));
    c->gen = gen + 1;
    c->name_len = (apr_uint32_t)len;
    memcpy(c->name, name, len);
    c->hash = hash;
    c->created = c->touched = now;
    c->hnext = s->buckets[hash & (s->hdr->nbuckets - 1)];
    COMPILER_FENCE();
    c->in_use = 1;
    s->buckets[hash & (s->hdr->nbuckets - 1)] = i;
    s->hdr->chans_used++;
    return i;
}

static void chans_collect(shm_store_t *s, apr_time_t now, apr_uint32_t from,
                          apr_uint32_t n);

/* The channel of that name, made if needed (reclaiming idle ones first if the
 * table is full); NIL if there is no room. */
static apr_uint32_t chan_find_or_create(shm_store_t *s, const char *name, apr_size_t len,
                                        apr_uint32_t hash, apr_time_t now)
{
    apr_uint32_t ci = chan_find(s, name, len, hash);

    if (ci == NIL) {
        ci = chan_create(s, name, len, hash, now);
        if (ci == NIL && !chans_capped(s)) {
            chans_collect(s, now, 1, s->hdr->nchans);
            ci = chan_create(s, name, len, hash, now);
        }
    }
    return ci;
}

static void chan_drop_head(shm_store_t *s, shm_chan_t *c)
{
    apr_uint32_t m = c->head;
    shm_msg_t *msg = MSG(s, m);

    c->head = msg->next_msg;
    if (c->head == NIL) {
        c->tail = NIL;
    }
    c->count--;
    c->bytes -= msg->len;
    if (msg->id > c->evicted_id) {
        c->evicted_id = msg->id;
    }
    blocks_free(s, m, msg_blocks(msg->len));
}

/* Drop expired messages from the front; lists are in publish order and a
 * channel's ttl rarely changes, so the expired ones are at the head. */
static void chan_expire(shm_store_t *s, shm_chan_t *c, apr_time_t now)
{
    while (c->head != NIL) {
        shm_msg_t *m = MSG(s, c->head);
        if (m->expires == 0 || m->expires > now) {
            break;
        }
        chan_drop_head(s, c);
    }
}

static void chan_free(shm_store_t *s, apr_uint32_t i)
{
    shm_chan_t *c = CHAN(s, i);
    apr_uint32_t *pp = &s->buckets[c->hash & (s->hdr->nbuckets - 1)];
    apr_uint32_t l;

    while (c->head != NIL) {
        chan_drop_head(s, c);
    }
    for (l = c->slots; l != NIL; ) {
        apr_uint32_t next = SLST(s, l)->next;
        blocks_free(s, l, 1);
        l = next;
    }
    c->slots = NIL;
    while (*pp != NIL && *pp != i) {
        pp = &CHAN(s, *pp)->hnext;
    }
    if (*pp == i) {
        *pp = c->hnext;
    }
    if (c->flags & COMET_CHAN_SESSION) {
        s->hdr->sessions--;
    }
    c->in_use = 0;
    c->gen++;
    c->hnext = s->hdr->free_chan;
    s->hdr->free_chan = i;
    s->hdr->chans_used--;
}

/* Reclaim channels that hold nothing and nobody follows. */
static int chan_idle(shm_chan_t *c, apr_time_t now)
{
    /* sessions are ended by their owner, not by housekeeping */
    return c->in_use && c->count == 0 && c->subscribers == 0
        && !(c->flags & COMET_CHAN_SESSION) && now - c->touched >= IDLE_GRACE;
}

static void chans_collect(shm_store_t *s, apr_time_t now, apr_uint32_t from,
                          apr_uint32_t n)
{
    apr_uint32_t k, i = from, used = s->hdr->fresh_chan - 1;

    for (k = 0; k < n && k < used; k++) {
        shm_chan_t *c;
        if (i < 1 || i > used) {
            i = 1;
        }
        c = CHAN(s, i);
        if (c->in_use) {
            chan_expire(s, c, now);
            if (chan_idle(c, now)) {
                chan_free(s, i);
            }
        }
        i++;
    }
    s->hdr->maint_cursor = i;
}

/*******************************************************************************
 * slots and wake-ups
 ******************************************************************************/

static socklen_t slot_addr(shm_store_t *s, int slot, struct sockaddr_un *sa)
{
    int n;

    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    /* abstract namespace: sun_path[0] == 0, freed by the kernel on exit */
    n = apr_snprintf(sa->sun_path + 1, sizeof(sa->sun_path) - 1, "mod_comet/%s/%d",
                     s->hdr->instance, slot);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

/* The oldest id some following process has not fetched past; max if none. */
static comet_id_t chan_min_fetched(shm_store_t *s, const shm_chan_t *c)
{
    comet_id_t min = (comet_id_t)-1;
    apr_uint32_t l;

    for (l = c->slots; l != NIL; l = SLST(s, l)->next) {
        shm_slotlist_t *lst = SLST(s, l);
        apr_uint32_t k;
        for (k = 0; k < lst->n; k++) {
            if (lst->e[k].count && lst->e[k].fetched < min) {
                min = lst->e[k].fetched;
            }
        }
    }
    return min;
}

/* Queue a channel in a slot's inbox; 1 if the slot must be woken. */
static int slot_push(shm_store_t *s, apr_uint32_t slot, comet_chan_ref_t ref)
{
    shm_slot_t *sl = SLOT(s, slot);
    int was_empty = (sl->head == sl->tail) && !sl->overflow;

    if (sl->state != SLOT_ACTIVE) {
        return 0;
    }
    if (sl->tail - sl->head >= INBOX_LEN) {
        sl->overflow = 1;
    }
    else {
        sl->ring[sl->tail % INBOX_LEN] = ref;
        sl->tail++;
    }
    return was_empty;
}

/* Queue the channel to every slot following it; fill wake[] with the slots to
 * ring once the lock is released. */
static int chan_notify(shm_store_t *s, apr_uint32_t ci, int *wake, int nwake)
{
    shm_chan_t *c = CHAN(s, ci);
    comet_chan_ref_t ref;
    apr_uint32_t l;
    int n = 0;

    ref.idx = ci;
    ref.gen = c->gen;
    for (l = c->slots; l != NIL; l = SLST(s, l)->next) {
        shm_slotlist_t *sl = SLST(s, l);
        apr_uint32_t k;
        for (k = 0; k < sl->n; k++) {
            if (sl->e[k].count && slot_push(s, sl->e[k].slot, ref) && n < nwake) {
                wake[n++] = (int)sl->e[k].slot;
            }
        }
    }
    return n;
}

static void wake_slots(shm_store_t *s, const int *wake, int n)
{
    int k;

    for (k = 0; k < n; k++) {
        struct sockaddr_un sa;
        socklen_t salen = slot_addr(s, wake[k], &sa);
        /* a full socket queue already holds a wake-up; a missing socket is a
         * dead child that housekeeping will reclaim */
        (void)sendto(s->send_fd, "!", 1, MSG_DONTWAIT, (struct sockaddr *)&sa, salen);
    }
}

static apr_status_t shm_slot_send(comet_store_t *st, int slot, const void *data,
                                  apr_size_t len, const int *fds, apr_size_t nfds)
{
    shm_store_t *s = (shm_store_t *)st;
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(COMET_SLOT_SEND_FDS * sizeof(int))];
    } ctl;
    struct sockaddr_un sa;
    struct iovec iov;
    struct msghdr m;

    if (slot < 1 || (apr_uint32_t)slot > s->hdr->nslots || nfds > COMET_SLOT_SEND_FDS) {
        return APR_EINVAL;
    }
    memset(&m, 0, sizeof(m));
    m.msg_namelen = slot_addr(s, slot, &sa);
    m.msg_name = &sa;
    iov.iov_base = (void *)data;
    iov.iov_len = len;
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    if (nfds) {
        memset(&ctl, 0, sizeof(ctl));
        m.msg_control = ctl.buf;
        m.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
        CMSG_FIRSTHDR(&m)->cmsg_level = SOL_SOCKET;
        CMSG_FIRSTHDR(&m)->cmsg_type = SCM_RIGHTS;
        CMSG_FIRSTHDR(&m)->cmsg_len = CMSG_LEN(nfds * sizeof(int));
        memcpy(CMSG_DATA(CMSG_FIRSTHDR(&m)), fds, nfds * sizeof(int));
    }
    /* counted before they go: the receiver may read them before sendmsg
     * returns, and takes them off then */
    apr_atomic_add32(&SLOT(s, slot)->counters.incoming, (apr_uint32_t)nfds);
    if (sendmsg(s->send_fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
        int e = errno;
        comet_counter_sub(&SLOT(s, slot)->counters.incoming, (apr_uint32_t)nfds);
        return e == EAGAIN || e == EWOULDBLOCK ? APR_EAGAIN : APR_FROM_OS_ERROR(e);
    }
    return APR_SUCCESS;
}

/* Add a slot's counters to the totals of slots gone, and zero them. */
static void slot_retire_counters(shm_store_t *s, shm_slot_t *sl)
{
    comet_slot_counters_t *c = &sl->counters;

    if (sl->state == SLOT_ACTIVE) {
        s->hdr->gone_delivered += apr_atomic_read64(&c->delivered);
        s->hdr->gone_delivered_bytes += apr_atomic_read64(&c->delivered_bytes);
        s->hdr->gone_dropped += apr_atomic_read64(&c->dropped);
        s->hdr->gone_gaps += apr_atomic_read64(&c->gaps);
    }
    memset(c, 0, sizeof(*c));
}

/* Remove every subscription of a slot (its process is gone). */
static void slot_forget(shm_store_t *s, apr_uint32_t slot)
{
    apr_uint32_t i;
    shm_slot_t *sl = SLOT(s, slot);

    for (i = 1; i < s->hdr->fresh_chan; i++) {
        shm_chan_t *c = CHAN(s, i);
        apr_uint32_t l;
        if (!c->in_use) {
            continue;
        }
        if (c->receiver && c->receiver_slot == slot) {
            c->flags &= ~COMET_CHAN_ENDING;
            c->receiver = 0;
            c->receiver_slot = 0;
            c->detached_at = apr_time_now();
        }
        for (l = c->slots; l != NIL; l = SLST(s, l)->next) {
            shm_slotlist_t *lst = SLST(s, l);
            apr_uint32_t k;
            for (k = 0; k < lst->n; k++) {
                if (lst->e[k].slot == slot) {
                    c->subscribers -= lst->e[k].count;
                    lst->e[k].count = 0;
                    c->touched = apr_time_now();
                }
            }
        }
    }
    slot_retire_counters(s, sl);
    sl->state = SLOT_FREE;
    sl->pid = 0;
    sl->head = sl->tail = 0;
    sl->overflow = 0;
    sl->held = 0;
}

/* Bind a fresh datagram socket to a slot's name; -1 with errno if taken. */
static int slot_bind(shm_store_t *s, int slot)
{
    struct sockaddr_un sa;
    socklen_t salen = slot_addr(s, slot, &sa);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int on = 1;

    if (fd < 0) {
        return -1;
    }
    /* the sender's credentials on every datagram, from the first one: a
     * stream handed over is taken from our own user only (slot_send) */
    (void)setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on));
    if (bind(fd, (struct sockaddr *)&sa, salen) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static int pid_dead(apr_int32_t pid)
{
    return pid <= 0 || (kill((pid_t)pid, 0) < 0 && errno == ESRCH);
}

/*******************************************************************************
 * messages
 ******************************************************************************/

/* Make room in c's buffer for a message of len bytes: drop what expired, then
 * the oldest messages past the buffer length, unless a process following the
 * channel has yet to fetch them (up to LAG_FACTOR times the length).
 * APR_EAGAIN if the message would take the channel past max_bytes. */
static apr_status_t chan_make_room(shm_store_t *s, shm_chan_t *c, apr_size_t len,
                                   const comet_limits_t *lim, apr_time_t now)
{
    apr_uint32_t len_max = lim->buffer_length ? lim->buffer_length : 1;
    comet_id_t fetched;

    chan_expire(s, c, now);
    if (lim->max_bytes && c->bytes + len > lim->max_bytes) {
        return APR_EAGAIN;
    }
    fetched = c->count >= len_max ? chan_min_fetched(s, c) : 0;
    while (c->count >= len_max) {
        if (MSG(s, c->head)->id > fetched
            && (apr_uint64_t)c->count < (apr_uint64_t)len_max * LAG_FACTOR) {
            break;                /* a process still needs it */
        }
        chan_drop_head(s, c);
    }
    return APR_SUCCESS;
}

/* A message written into blocks of its own, linked nowhere yet; NIL if the
 * segment has no room for it. */
static apr_uint32_t msg_new(shm_store_t *s, comet_id_t id, apr_uint32_t flags,
                            apr_time_t now, apr_interval_time_t ttl,
                            const char *data, apr_size_t len)
{
    apr_uint32_t nblk = msg_blocks(len), m, b;
    apr_size_t off, chunk;
    shm_msg_t *msg;

    m = blocks_alloc(s, nblk);
    if (m == NIL) {
        /* full: expired messages anywhere may make room */
        chans_collect(s, now, 1, s->hdr->nchans);
        m = blocks_alloc(s, nblk);
    }
    if (m == NIL) {
        return NIL;
    }
    msg = MSG(s, m);
    msg->next_msg = NIL;
    msg->len = (apr_uint32_t)len;
    msg->flags = flags;
    msg->id = id;
    msg->published = now;
    msg->expires = ttl > 0 ? now + ttl : 0;
    chunk = len < HEAD_DATA ? len : HEAD_DATA;
    memcpy(msg->data, data, chunk);
    off = chunk;
    for (b = msg->next; off < len; b = BLK(s, b)->next) {
        chunk = len - off < CONT_DATA ? len - off : CONT_DATA;
        memcpy(BLK(s, b)->data, data + off, chunk);
        off += chunk;
    }
    return m;
}

/* Link message m, fully written, at the tail of c, then count it: a repair
 * keeps what is linked and recounts. */
static void chan_append(shm_store_t *s, shm_chan_t *c, apr_uint32_t m, apr_time_t now)
{
    shm_msg_t *msg = MSG(s, m);

    CRASH_POINT(1);
    if (c->tail == NIL) {
        c->head = m;
    }
    else {
        MSG(s, c->tail)->next_msg = m;
    }
    CRASH_POINT(2);
    c->tail = m;
    c->count++;
    c->bytes += msg->len;
    c->last_id = msg->id;
    c->last_publish = c->touched = now;
    if (msg->flags & COMET_MSG_CLOSE) {
        c->flags |= COMET_CHAN_CLOSED;
    }
}

/* Copy a message's body, msg->len bytes, to dst. */
static void msg_read(shm_store_t *s, const shm_msg_t *msg, char *dst)
{
    apr_size_t off, chunk;
    apr_uint32_t b;

    chunk = msg->len < HEAD_DATA ? msg->len : HEAD_DATA;
    memcpy(dst, msg->data, chunk);
    off = chunk;
    for (b = msg->next; off < msg->len; b = BLK(s, b)->next) {
        chunk = msg->len - off < CONT_DATA ? msg->len - off : CONT_DATA;
        memcpy(dst + off, BLK(s, b)->data, chunk);
        off += chunk;
    }
}

/* Hand c's live messages above `since` to alloc, in id order, noting a gap
 * where some were dropped or expired; 0 if alloc stopped it before the end. */
static int chan_read(shm_store_t *s, const shm_chan_t *c, comet_id_t since, apr_time_t now,
                     comet_fetch_alloc_fn *alloc, void *baton, comet_fetch_result_t *res)
{
    apr_uint32_t m;

    res->gap = since < c->evicted_id;
    for (m = c->head; m != NIL; m = MSG(s, m)->next_msg) {
        shm_msg_t *msg = MSG(s, m);
        char *dst;

        if (msg->id <= since || (msg->expires && msg->expires <= now)) {
            if (msg->id > since) {
                res->gap = 1;
            }
            continue;
        }
        dst = alloc(baton, msg->id, msg->flags, msg->published, msg->len);
        if (!dst) {
            return 0;
        }
        msg_read(s, msg, dst);
        res->count++;
    }
    return 1;
}

/*******************************************************************************
 * subscriber lists
 ******************************************************************************/

static void slotlist_set(shm_slotlist_t *lst, apr_uint32_t k, apr_uint32_t slot,
                         apr_uint32_t n, comet_id_t fetched)
{
    lst->e[k].slot = slot;
    lst->e[k].count = n;
    lst->e[k].fetched = fetched;
}

/* Give `slot` an entry for n subscribers in c's list: a free one (a zero count
 * anywhere, or room in the last block), else a block of its own; APR_ENOSPC
 * if the segment is full. */
static apr_status_t slotlist_insert(shm_store_t *s, shm_chan_t *c, apr_uint32_t slot,
                                    apr_uint32_t n)
{
    apr_uint32_t l, last = NIL;
    shm_slotlist_t *lst;

    for (l = c->slots; l != NIL; l = SLST(s, l)->next) {
        apr_uint32_t k;
        lst = SLST(s, l);
        for (k = 0; k < lst->n; k++) {
            if (lst->e[k].count == 0) {
                slotlist_set(lst, k, slot, n, c->last_id);
                return APR_SUCCESS;
            }
        }
        if (lst->n < SLOTLIST_ENTRIES) {
            slotlist_set(lst, lst->n, slot, n, c->last_id);
            lst->n++;
            return APR_SUCCESS;
        }
        last = l;
    }
    l = blocks_alloc(s, 1);
    if (l == NIL) {
        return APR_ENOSPC;
    }
    lst = SLST(s, l);
    memset(lst, 0, BLOCK_SIZE);
    slotlist_set(lst, 0, slot, n, c->last_id);
    lst->n = 1;
    if (last == NIL) {
        c->slots = l;
    }
    else {
        SLST(s, last)->next = l;
    }
    return APR_SUCCESS;
}

/* Count n more subscribers of `slot` on c, in the slot's entry of the
 * channel's subscriber list if it has one. */
static apr_status_t slotlist_add(shm_store_t *s, shm_chan_t *c, apr_uint32_t slot,
                                 apr_uint32_t n)
{
    apr_uint32_t l;

    for (l = c->slots; l != NIL; l = SLST(s, l)->next) {
        shm_slotlist_t *lst = SLST(s, l);
        apr_uint32_t k;
        for (k = 0; k < lst->n; k++) {
            if (lst->e[k].slot == slot) {
                if (lst->e[k].count == 0) {
                    lst->e[k].fetched = c->last_id;
                }
                lst->e[k].count += n;
                return APR_SUCCESS;
            }
        }
    }
    return slotlist_insert(s, c, slot, n);
}

/* `slot`'s process has fetched everything c holds. */
static void slotlist_fetched(shm_store_t *s, const shm_chan_t *c, apr_uint32_t slot)
{
    apr_uint32_t l;

    for (l = c->slots; l != NIL; l = SLST(s, l)->next) {
        shm_slotlist_t *lst = SLST(s, l);
        apr_uint32_t k;
        for (k = 0; k < lst->n; k++) {
            if (lst->e[k].slot == slot && lst->e[k].fetched < c->last_id) {
                lst->e[k].fetched = c->last_id;
            }
        }
    }
}

/*******************************************************************************
 * the store functions
 ******************************************************************************/

static apr_status_t shm_publish(comet_store_t *st, const char *name, apr_size_t clen,
                                const char *data, apr_size_t len, apr_uint32_t flags,
                                const comet_limits_t *lim, comet_publish_result_t *res)
{
    shm_store_t *s = (shm_store_t *)st;
    apr_uint32_t hash = comet_hash32(name, clen), ci, m;
    apr_time_t now = apr_time_now();
    int wake[SLOTS_MAX];
    int nwake = 0;
    shm_chan_t *c;
    comet_id_t id;
    apr_status_t rv;

    if (len > lim->max_size || len > APR_UINT32_MAX || !comet_store_name_valid(name, clen)) {
        return APR_EINVAL;
    }
    if ((rv = lock_store(s)) != APR_SUCCESS) {
        return rv;
    }
    begin_change(s);
    ci = chan_find_or_create(s, name, clen, hash, now);
    if (ci == NIL) {
        rv = chans_capped(s) ? APR_EAGAIN : APR_ENOSPC;
        goto done;
    }
    c = CHAN(s, ci);
    if (c->flags & COMET_CHAN_CLOSED) {
        /* a closed session takes nothing more */
        rv = APR_EOF;
        goto done;
    }
    if ((rv = chan_make_room(s, c, len, lim, now)) != APR_SUCCESS) {
        goto done;
    }
    id = c->last_id + 1;
    if ((comet_id_t)now > id) {
        id = (comet_id_t)now;
    }
    /* in use: making room in a full segment reclaims idle channels, and
     * making room in this one may have left it empty */
    c->touched = now;
    m = msg_new(s, id, flags, now, lim->ttl, data, len);
    if (m == NIL) {
        rv = APR_ENOSPC;
        goto done;
    }
    chan_append(s, c, m, now);
    s->hdr->published++;
    s->hdr->published_bytes += len;
    nwake = chan_notify(s, ci, wake, SLOTS_MAX);
    res->id = id;
    res->subscribers = c->subscribers;
done:
    unlock_store(s);
    wake_slots(s, wake, nwake);
    return rv;
}

/* Link message m after `prev` (NIL: at the head) of c, then count it; the
 * message's own link first, so that a crash leaves the list whole. */
static void chan_insert(shm_store_t *s, shm_chan_t *c, apr_uint32_t prev, apr_uint32_t m,
                        apr_time_t now)
{
    shm_msg_t *msg = MSG(s, m);

    if (prev == c->tail) {          /* the newest (or the channel was empty) */
        chan_append(s, c, m, now);
        return;
    }
    msg->next_msg = prev == NIL ? c->head : MSG(s, prev)->next_msg;
    if (prev == NIL) {
        c->head = m;
    }
    else {
        MSG(s, prev)->next_msg = m;
    }
    c->count++;
    c->bytes += msg->len;
    c->touched = now;
}

static apr_status_t shm_import(comet_store_t *st, const char *name, apr_size_t clen,
                               comet_id_t id, const char *data, apr_size_t len,
                               apr_uint32_t flags, apr_time_t published,
                               const comet_limits_t *lim, comet_publish_result_t *res)
{
    shm_store_t *s = (shm_store_t *)st;
    apr_uint32_t hash = comet_hash32(name, clen), ci, m, prev, at;
    apr_time_t now = apr_time_now();
    int wake[SLOTS_MAX];
    int nwake = 0;
    shm_chan_t *c;
    apr_status_t rv;

    if (len > lim->max_size || len > APR_UINT32_MAX || !comet_store_name_valid(name, clen)
        || id == 0) {
        return APR_EINVAL;
    }
    if ((rv = lock_store(s)) != APR_SUCCESS) {
        return rv;
    }
    begin_change(s);
    ci = chan_find_or_create(s, name, clen, hash, now);
    if (ci == NIL) {
        rv = chans_capped(s) ? APR_EAGAIN : APR_ENOSPC;
        goto done;
    }
    c = CHAN(s, ci);
    /* where it goes: after the last message with a lower id */
    prev = NIL;
    for (at = c->head; at != NIL && MSG(s, at)->id < id; at = MSG(s, at)->next_msg) {
        prev = at;
    }
    if ((at != NIL && MSG(s, at)->id == id) || id <= c->evicted_id
        || (prev == NIL && c->head != NIL && lim->buffer_length
            && c->count >= lim->buffer_length)) {
        rv = APR_EEXIST;          /* had it, or too old to keep */
        goto done;
    }
    if ((rv = chan_make_room(s, c, len, lim, now)) != APR_SUCCESS) {
        goto done;
    }
    c->touched = now;
    m = msg_new(s, id, flags, published ? published : now, lim->ttl, data, len);
    if (m == NIL) {
        rv = APR_ENOSPC;
        goto done;
    }
    /* again: making room (or msg_new's collection) may have dropped some */
    prev = NIL;
    for (at = c->head; at != NIL && MSG(s, at)->id < id; at = MSG(s, at)->next_msg) {
        prev = at;
    }
    chan_insert(s, c, prev, m, now);
    s->hdr->published++;
    s->hdr->published_bytes += len;
    if (id == c->last_id) {
        nwake = chan_notify(s, ci, wake, SLOTS_MAX);
    }
    res->id = id;
    res->subscribers = c->subscribers;
done:
    unlock_store(s);
    wake_slots(s, wake, nwake);
    return rv;
}

static apr_status_t shm_fetch(comet_store_t *st, const comet_chan_ref_t *ref, int slot,
                              comet_id_t since, comet_fetch_alloc_fn *alloc,
                              void *baton, comet_fetch_result_t *res)
{
    shm_store_t *s = (shm_store_t *)st;
    apr_time_t now = apr_time_now();
    shm_chan_t *c;
    apr_status_t rv;

    memset(res, 0, sizeof(*res));
    if (ref->idx < 1 || ref->idx >= s->hdr->fresh_chan) {
        res->gone = 1;
        return APR_SUCCESS;
    }
    if ((rv = lock_store(s)) != APR_SUCCESS) {
        return rv;
    }
    c = CHAN(s, ref->idx);
    if (!c->in_use || c->gen != ref->gen) {
        res->gone = 1;
        goto done;
    }
    res->last_id = c->last_id;
    if (since == COMET_ID_NONE) {
        goto done;
    }
    if (chan_read(s, c, since, now, alloc, baton, res) && slot > 0) {
        /* this process has it all: what it fetched may go */
        slotlist_fetched(s, c, (apr_uint32_t)slot);
    }
done:
    unlock_store(s);
    return rv;
}

static apr_status_t shm_info(comet_store_t *st, const char *name, apr_size_t clen,
                             comet_channel_info_t *info)
{
    shm_store_t *s = (shm_store_t *)st;
    apr_time_t now = apr_time_now();
    apr_uint32_t ci, m;
    shm_chan_t *c;
    apr_status_t rv;

    memset(info, 0, sizeof(*info));
    if ((rv = lock_store(s)) != APR_SUCCESS) {
        return rv;
    }
    ci = chan_find(s, name, clen, comet_hash32(name, clen));
    if (ci == NIL) {
        rv = APR_NOTFOUND;
        goto done;
    }
    c = CHAN(s, ci);
    for (m = c->head; m != NIL; m = MSG(s, m)->next_msg) {
        shm_msg_t *msg = MSG(s, m);
        if (msg->expires && msg->expires <= now) {
            continue;
        }
        if (!info->first_id) {
            info->first_id = msg->id;
        }
        info->messages++;
        info->bytes += msg->len;
    }
    info->last_id = c->last_id;
    info->subscribers = c->subscribers;
    info->created = c->created;
    info->last_publish = c->last_publish;
    info->flags = c->flags;
    info->receiver = c->receiver != 0;
    info->detached_at = c->detached_at;
    info->acked_id = c->acked_id;
done:
    unlock_store(s);
    return rv;
}

static apr_status_t shm_remove(comet_store_t *st, const char *name, apr_size_t clen,
                               apr_uint32_t *subscribers)
{
    shm_store_t *s = (shm_store_t *)st;
    int wake[SLOTS_MAX];
    int nwake = 0;
    apr_uint32_t ci;
    apr_status_t rv;

    if ((rv = lock_store(s)) != APR_SUCCESS) {
        return rv;
    }
    ci = chan_find(s, name, clen, comet_hash32(name, clen));
    if (ci == NIL) {
        rv = APR_NOTFOUND;
        goto done;
    }
    begin_change(s);
    if (subscribers) {
        *subscribers = CHAN(s, ci)->subscribers;
    }
    /* the followers find the generation changed when they fetch */
    nwake = chan_notify(s, ci, wake, SLOTS_MAX);
    chan_free(s, ci);
done:
    unlock_store(s);
    wake_slots(s, wake, nwake);
    return rv;
}

static apr_status_t shm_subscribe(comet_store_t *st, int slot, const char *name,
                                  apr_size_t clen, apr_uint32_t n, apr_uint32_t max,
                                  comet_chan_ref_t *ref, comet_id_t *last)
{
    shm_store_t *s = (shm_store_t *)st;
    apr_uint32_t hash = comet_hash32(name, clen), ci;
    apr_time_t now = apr_time_now();
    shm_chan_t *c;
    apr_status_t rv;

    if (slot < 1 || (apr_uint32_t)slot > s->hdr->nslots || !comet_store_name_valid(name, clen)) {
        return APR_EINVAL;
    }
    if ((rv = lock_store(s)) != APR_SUCCESS) {
        return rv;
    }
    begin_change(s);
    ci = chan_find_or_create(s, name, clen, hash, now);
    if (ci == NIL) {
        rv = chans_capped(s) ? APR_EAGAIN : APR_ENOSPC;
        goto done;
    }
    c = CHAN(s, ci);
    if (max && c->subscribers + n > max) {
        c->touched = now;
        rv = APR_EAGAIN;
        goto done;
    }
    if ((rv = slotlist_add(s, c, (apr_uint32_t)slot, n)) != APR_SUCCESS) {
        goto done;
    }
    c->subscribers += n;
    c->touched = now;
    ref->idx = ci;
    ref->gen = c->gen;
    if (last) {
        *last = c->last_id;
    }
done:
    unlock_store(s);
    return rv;
}

static apr_status_t shm_unsubscribe(comet_store_t *st, int slot,
                                    const comet_chan_ref_t *ref, apr_uint32_t n)
{
    shm_store_t *s = (shm_store_t *)st;
    shm_chan_t *c;
    apr_uint32_t l;
    apr_status_t rv;

    if (ref->idx < 1 || ref->idx >= s->hdr->fresh_chan) {
        return APR_SUCCESS;
    }
    if ((rv = lock_store(s)) != APR_SUCCESS) {
        return rv;
    }
    c = CHAN(s, ref->idx);
    if (c->in_use && c->gen == ref->gen) {
        begin_change(s);
        for (l = c->slots; l != NIL; l = SLST(s, l)->next) {
            shm_slotlist_t *lst = SLST(s, l);
            apr_uint32_t k;
            for (k = 0; k < lst->n; k++) {
                if (lst->e[k].slot == (apr_uint32_t)slot && lst->e[k].count) {
                    apr_uint32_t d = n < lst->e[k].count ? n : lst->e[k].count;
                    lst->e[k].count -= d;
                    c->subscribers -= d;
                }
            }
        }
        if (c->subscribers == 0) {
            /* nobody left: give the list's blocks back */
            for (l = c->slots; l != NIL; ) {
                apr_uint32_t next = SLST(s, l)->next;
                blocks_free(s, l, 1);
                l = next;
            }
            c->slots = NIL;
        }
        c->touched = apr_time_now();
    }
    unlock_store(s);
    return APR_SUCCESS;
}

static apr_status_t shm_slot_claim(comet_store_t *st, int *slot, int *wake_fd)
{
    shm_store_t *s = (shm_store_t *)st;
    apr_uint32_t i, pass;
    apr_status_t rv;
    int fd = -1;

    if ((rv = lock_store(s)) != APR_SUCCESS) {
        return rv;
    }
    begin_change(s);
    /* first pass: free slots; second: slots whose process is gone (the bind
     * succeeds only if nobody holds the name any more) */
    for (pass = 0; pass < 2 && fd < 0; pass++) {
        for (i = 1; i <= s->hdr->nslots; i++) {
            shm_slot_t *sl = SLOT(s, i);
            if (pass == 0 && sl->state != SLOT_FREE) {
                continue;
            }
            if (pass == 1 && sl->state == SLOT_FREE) {
                continue;
            }
            fd = slot_bind(s, (int)i);
            if (fd < 0) {
                continue;
            }
            if (sl->state != SLOT_FREE) {
                slot_forget(s, i);
            }
            sl->state = SLOT_ACTIVE;
            sl->pid = (apr_int32_t)getpid();
            sl->head = sl->tail = 0;
            sl->overflow = 0;
            sl->held = 0;
            memset(&sl->counters, 0, sizeof(sl->counters));
            *slot = (int)i;
            *wake_fd = fd;
            break;
        }
    }
    unlock_store(s);
    if (fd < 0) {
        return APR_ENOSPC;
    }
    s->wake_fd[0] = *slot;
    s->wake_fd[1] = fd;
    return APR_SUCCESS;
}

static apr_status_t shm_slot_release(comet_store_t *st, int slot)
{
    shm_store_t *s = (shm_store_t *)st;
    apr_status_t rv;

    if (slot < 1 || (apr_uint32_t)slot > s->hdr->nslots) {
        return APR_EINVAL;
    }
    if ((rv = lock_store(s)) != APR_SUCCESS) {
        return rv;
    }
    begin_change(s);
    if (SLOT(s, slot)->pid == (apr_int32_t)getpid()) {
        slot_forget(s, (apr_uint32_t)slot);
    }
    unlock_store(s);
    if (s->wake_fd[0] == slot && s->wake_fd[1] >= 0) {
        close(s->wake_fd[1]);
        s->wake_fd[0] = 0;
        s->wake_fd[1] = -1;
    }
    return APR_SUCCESS;
}

static apr_status_t shm_slot_held(comet_store_t *st, int slot, int delta, apr_uint32_t *mine,
                                  apr_uint32_t *total)
{
    shm_store_t *s = (shm_store_t *)st;
    shm_slot_t *sl;
    apr_uint32_t i;
    apr_status_t rv;

    *mine = *total = 0;
    if (slot < 1 || (apr_uint32_t)slot > s->hdr->nslots) {
        return APR_EINVAL;
    }
    if ((rv = lock_store(s)) != APR_SUCCESS) {
        return rv;
    }
    sl = SLOT(s, slot);
    if (delta >= 0 || sl->held >= (apr_uint32_t)-delta) {
        sl->held += (apr_uint32_t)delta;
    }
    *mine = sl->held;
    for (i = 1; i <= s->hdr->nslots; i++) {
        if (SLOT(s, i)->state == SLOT_ACTIVE) {
            *total += SLOT(s, i)->held;
        }
    }
    unlock_store(s);
    return APR_SUCCESS;
}

static apr_status_t shm_drain(comet_store_t *st, int slot, comet_chan_ref_t *refs,
                              apr_size_t max, apr_size_t *n, int *overflow)
{
    shm_store_t *s = (shm_store_t *)st;
    shm_slot_t *sl;
    apr_size_t k = 0;
    apr_status_t rv;

    *n = 0;
    *overflow = 0;
    if (slot < 1 || (apr_uint32_t)slot > s->hdr->nslots) {
        return APR_EINVAL;
    }
    if ((rv = lock_store(s)) != APR_SUCCESS) {
        return rv;
    }
    sl = SLOT(s, slot);
    while (sl->head != sl->tail) {
        if (k == max) {
            sl->overflow = 1;
            sl->head = sl->tail;
            break;
        }
        refs[k++] = sl->ring[sl->head % INBOX_LEN];
        sl->head++;
    }
    *overflow = (int)sl->overflow;
    sl->overflow = 0;
    unlock_store(s);
    *n = k;
    return APR_SUCCESS;
}

static apr_status_t shm_maintain(comet_store_t *st, apr_time_t now)
{
    shm_store_t *s = (shm_store_t *)st;
    apr_uint32_t i, k;
    apr_status_t rv;

    /* unlocked peek: most calls find nothing due */
    if (now < s->hdr->next_maint) {
        return APR_SUCCESS;
    }
    if ((rv = lock_store(s)) != APR_SUCCESS) {
        return rv;
    }
    if (now < s->hdr->next_maint) {
        /* another process did it meanwhile */
        goto done;
    }
    begin_change(s);
    s->hdr->next_maint = now + apr_time_from_sec(1);
    chans_collect(s, now, s->hdr->maint_cursor, MAINT_BATCH);
    /* a few slots per call: children that died without releasing theirs */
    for (k = 0; k < 32 && k < s->hdr->nslots; k++) {
        i = s->hdr->slot_cursor % s->hdr->nslots + 1;
        s->hdr->slot_cursor = i;
        if (SLOT(s, i)->state == SLOT_ACTIVE && pid_dead(SLOT(s, i)->pid)) {
            slot_forget(s, i);
        }
    }
done:
    unlock_store(s);
    return rv;
}

static apr_status_t shm_stats(comet_store_t *st, comet_store_stats_t *out)
{
    shm_store_t *s = (shm_store_t *)st;
    apr_uint32_t i;
    apr_status_t rv;

    memset(out, 0, sizeof(*out));
    if ((rv = lock_store(s)) != APR_SUCCESS) {
        return rv;
    }
    out->channels = s->hdr->chans_used;
    out->channels_max = s->hdr->nchans;
    out->blocks_max = s->hdr->nblocks;
    out->blocks_used = s->hdr->nblocks - blocks_available(s);
    out->block_size = BLOCK_SIZE;
    out->size = s->hdr->size;
    out->slots_max = s->hdr->nslots;
    out->delivered = s->hdr->gone_delivered;
    out->delivered_bytes = s->hdr->gone_delivered_bytes;
    out->dropped = s->hdr->gone_dropped;
    out->gaps = s->hdr->gone_gaps;
    for (i = 1; i <= s->hdr->nslots; i++) {
        comet_slot_counters_t *c = &SLOT(s, i)->counters;
        if (SLOT(s, i)->state != SLOT_ACTIVE) {
            continue;
        }
        out->slots_used++;
        out->held += SLOT(s, i)->held;
        out->subscribers += apr_atomic_read32(&c->subscribers);
        out->backends += apr_atomic_read32(&c->backends);
        out->sources += apr_atomic_read32(&c->sources);
        out->delivered += apr_atomic_read64(&c->delivered);
        out->delivered_bytes += apr_atomic_read64(&c->delivered_bytes);
        out->dropped += apr_atomic_read64(&c->dropped);
        out->gaps += apr_atomic_read64(&c->gaps);
    }
    out->published = s->hdr->published;
    out->published_bytes = s->hdr->published_bytes;
    out->repairs = s->hdr->repairs;
    out->sessions = s->hdr->sessions;
    unlock_store(s);
    return APR_SUCCESS;
}

static comet_slot_counters_t *shm_slot_counters(comet_store_t *st, int slot)
{
    shm_store_t *s = (shm_store_t *)st;

    if (slot < 1 || (apr_uint32_t)slot > s->hdr->nslots) {
        return NULL;
    }
    return &SLOT(s, slot)->counters;
}

static apr_status_t shm_slot_list(comet_store_t *st, comet_slot_info_t *out, apr_size_t max,
                                  apr_size_t *n)
{
    shm_store_t *s = (shm_store_t *)st;
    apr_uint32_t i;
    apr_status_t rv;

    *n = 0;
    if ((rv = lock_store(s)) != APR_SUCCESS) {
        return rv;
    }
    for (i = 1; i <= s->hdr->nslots && *n < max; i++) {
        shm_slot_t *sl = SLOT(s, i);
        comet_slot_info_t *o;
        if (sl->state != SLOT_ACTIVE) {
            continue;
        }
        o = &out[(*n)++];
        o->slot = (int)i;
        o->pid = sl->pid;
        o->held = sl->held;
        o->counters.kind = apr_atomic_read32(&sl->counters.kind);
        o->counters.subscribers = apr_atomic_read32(&sl->counters.subscribers);
        o->counters.held = apr_atomic_read32(&sl->counters.held);
        o->counters.channels = apr_atomic_read32(&sl->counters.channels);
        o->counters.backends = apr_atomic_read32(&sl->counters.backends);
        o->counters.sources = apr_atomic_read32(&sl->counters.sources);
        o->counters.delivered = apr_atomic_read64(&sl->counters.delivered);
        o->counters.delivered_bytes = apr_atomic_read64(&sl->counters.delivered_bytes);
        o->counters.dropped = apr_atomic_read64(&sl->counters.dropped);
        o->counters.gaps = apr_atomic_read64(&sl->counters.gaps);
        o->counters.draining = apr_atomic_read32(&sl->counters.draining);
        o->counters.started = apr_atomic_read64(&sl->counters.started);
        o->counters.incoming = apr_atomic_read32(&sl->counters.incoming);
    }
    unlock_store(s);
    return APR_SUCCESS;
}

static apr_status_t shm_session_open(comet_store_t *st, const char *name, apr_size_t nlen,
                                     apr_uint32_t max, apr_uint64_t owner, int *created,
                                     comet_chan_ref_t *ref)
{
    shm_store_t *s = (shm_store_t *)st;
    apr_uint32_t hash = comet_hash32(name, nlen), ci;
    apr_time_t now = apr_time_now();
    apr_status_t rv;

    *created = 0;
    if (!comet_store_name_valid(name, nlen)) {
        return APR_EINVAL;
    }
    if ((rv = lock_store(s)) != APR_SUCCESS) {
        return rv;
    }
    ci = chan_find(s, name, nlen, hash);
    if (ci == NIL) {
        if (max && s->hdr->sessions >= max) {
            rv = APR_EAGAIN;
            goto done;
        }
        begin_change(s);
        ci = chan_create(s, name, nlen, hash, now);
        if (ci == NIL) {
            rv = APR_ENOSPC;
            goto done;
        }
        CHAN(s, ci)->flags = COMET_CHAN_SESSION;
        CHAN(s, ci)->detached_at = now;
        CHAN(s, ci)->owner = owner;
        s->hdr->sessions++;
        *created = 1;
    }
    else if (CHAN(s, ci)->owner && CHAN(s, ci)->owner != owner) {
        /* bound to another client: as good as unknown to this one */
        rv = APR_EACCES;
        goto done;
    }
    ref->idx = ci;
    ref->gen = CHAN(s, ci)->gen;
done:
    unlock_store(s);
    return rv;
}

/* The live channel a reference names, or NULL. */
static shm_chan_t *session_at(shm_store_t *s, const comet_chan_ref_t *ref)
{
    shm_chan_t *c;

    if (ref->idx < 1 || ref->idx >= s->hdr->fresh_chan) {
        return NULL;
    }
    c = CHAN(s, ref->idx);
    return c->in_use && c->gen == ref->gen ? c : NULL;
}

static apr_status_t shm_receiver_claim(comet_store_t *st, int slot, const comet_chan_ref_t *ref,
                                       apr_uint64_t token, comet_id_t *acked,
                                       apr_uint32_t *flags)
{
    shm_store_t *s = (shm_store_t *)st;
    shm_chan_t *c;
    apr_status_t rv;

    if ((rv = lock_store(s)) != APR_SUCCESS) {
        return rv;
    }
    c = session_at(s, ref);
    if (!c) {
        rv = APR_NOTFOUND;
    }
    else if (c->receiver && c->receiver != token) {
        rv = (c->flags & COMET_CHAN_ENDING) ? APR_EAGAIN : APR_EBUSY;
    }
    else {
        c->flags &= ~COMET_CHAN_ENDING;
        c->receiver = token;
        c->receiver_slot = (apr_uint32_t)slot;
        c->touched = apr_time_now();
        *acked = c->acked_id;
        *flags = c->flags;
    }
    unlock_store(s);
    return rv;
}

static apr_status_t shm_receiver_release(comet_store_t *st, const comet_chan_ref_t *ref,
                                         apr_uint64_t token)
{
    shm_store_t *s = (shm_store_t *)st;
    shm_chan_t *c;
    apr_status_t rv;

    if ((rv = lock_store(s)) != APR_SUCCESS) {
        return rv;
    }
    c = session_at(s, ref);
    if (c && c->receiver == token) {
        c->flags &= ~COMET_CHAN_ENDING;
        c->receiver = 0;
        c->receiver_slot = 0;
        c->detached_at = c->touched = apr_time_now();
    }
    unlock_store(s);
    return APR_SUCCESS;
}

static apr_status_t shm_ack(comet_store_t *st, const comet_chan_ref_t *ref, comet_id_t id,
                            apr_uint32_t flags)
{
    shm_store_t *s = (shm_store_t *)st;
    shm_chan_t *c;
    apr_status_t rv;

    if ((rv = lock_store(s)) != APR_SUCCESS) {
        return rv;
    }
    c = session_at(s, ref);
    if (!c) {
        rv = APR_NOTFOUND;
        goto done;
    }
    begin_change(s);
    {
        /* never past a close: every later receiver must learn of it */
        apr_uint32_t m;
        for (m = c->head; m != NIL; m = MSG(s, m)->next_msg) {
            if ((MSG(s, m)->flags & COMET_MSG_CLOSE) && id >= MSG(s, m)->id) {
                id = MSG(s, m)->id - 1;
                break;
            }
        }
    }
    if (id > c->acked_id) {
        c->acked_id = id;
    }
    while (c->head != NIL && MSG(s, c->head)->id <= c->acked_id) {
        chan_drop_head(s, c);
    }
    c->flags |= flags;
    c->touched = apr_time_now();
done:
    unlock_store(s);
    return rv;
}

static apr_status_t shm_list(comet_store_t *st, const char *prefix,
                             void (*fn)(void *baton, const char *name, apr_size_t len),
                             void *baton)
{
    shm_store_t *s = (shm_store_t *)st;
    apr_size_t plen = strlen(prefix);
    apr_uint32_t i, n = 0, cap = 64;
    char (*names)[COMET_CHANNEL_MAX + 1] = malloc(cap * sizeof(*names));
    apr_status_t rv;

    if (!names) {
        return APR_ENOMEM;
    }
    if ((rv = lock_store(s)) != APR_SUCCESS) {
        free(names);
        return rv;
    }
    for (i = 1; i < s->hdr->fresh_chan; i++) {
        shm_chan_t *c = CHAN(s, i);
        if (!c->in_use || c->name_len < plen || memcmp(c->name, prefix, plen)) {
            continue;
        }
        if (n == cap) {
            void *more = realloc(names, 2 * cap * sizeof(*names));
            if (!more) {
                break;
            }
            names = more;
            cap *= 2;
        }
        memcpy(names[n], c->name, c->name_len);
        names[n][c->name_len] = '\0';
        n++;
    }
    unlock_store(s);
    /* called without the lock: fn may use the store */
    for (i = 0; i < n; i++) {
        fn(baton, names[i], strlen(names[i]));
    }
    free(names);
    return APR_SUCCESS;
}

static apr_status_t shm_store_cleanup(void *data)
{
    shm_store_t *s = data;

    if (s->send_fd >= 0) {
        close(s->send_fd);
        s->send_fd = -1;
    }
    return APR_SUCCESS;
}

const char *comet_store_shm_instance(const void *base)
{
    return ((const shm_header_t *)base)->instance;
}

void comet_store_shm_set_max_channels(void *base, apr_uint32_t max)
{
    ((shm_header_t *)base)->max_chans = max;
}

apr_status_t comet_store_shm_open(comet_store_t **st, apr_pool_t *p, void *base,
                                  apr_global_mutex_t *mutex)
{
    shm_store_t *s = apr_pcalloc(p, sizeof(*s));
    shm_header_t *hdr = base;

    if (memcmp(hdr->magic, SHM_MAGIC, 8) || hdr->version != SHM_VERSION) {
        return APR_EINVAL;
    }
    s->pool = p;
    s->hdr = hdr;
    s->slots = (shm_slot_t *)((char *)base + hdr->off_slots);
    s->buckets = (apr_uint32_t *)((char *)base + hdr->off_buckets);
    s->chans = (shm_chan_t *)((char *)base + hdr->off_chans);
    s->blocks = (shm_block_t *)((char *)base + hdr->off_blocks);
    s->mutex = mutex;
    s->wake_fd[1] = -1;
    s->send_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->send_fd < 0) {
        return errno;
    }
    apr_pool_cleanup_register(p, s, shm_store_cleanup, apr_pool_cleanup_null);

    s->pub.name = "shm";
    s->pub.publish = shm_publish;
    s->pub.import = shm_import;
    s->pub.fetch = shm_fetch;
    s->pub.info = shm_info;
    s->pub.remove = shm_remove;
    s->pub.subscribe = shm_subscribe;
    s->pub.unsubscribe = shm_unsubscribe;
    s->pub.slot_claim = shm_slot_claim;
    s->pub.slot_release = shm_slot_release;
    s->pub.slot_held = shm_slot_held;
    s->pub.drain = shm_drain;
    s->pub.maintain = shm_maintain;
    s->pub.stats = shm_stats;
    s->pub.slot_counters = shm_slot_counters;
    s->pub.slot_list = shm_slot_list;
    s->pub.slot_send = shm_slot_send;
    s->pub.session.open = shm_session_open;
    s->pub.session.claim = shm_receiver_claim;
    s->pub.session.release = shm_receiver_release;
    s->pub.session.ack = shm_ack;
    s->pub.session.list = shm_list;
    *st = &s->pub;
    return APR_SUCCESS;
}
