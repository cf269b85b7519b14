/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/* The shared-memory store (comet_store_shm.c) driven by the input: a small
 * anonymous segment, an APR global mutex, two "processes" (two opens of the
 * segment, each with a slot), and a sequence of publish, fetch, subscribe,
 * unsubscribe, drain, remove, maintain, sessions, receivers, acks, lists and
 * channel caps. Checks:
 *  - every fetch hands out messages in increasing id order, above `since`,
 *    each with the very bytes published under that id;
 *  - the figures stay within the segment (blocks, channels, slots) and no
 *    repair is ever needed (nobody died);
 *  - once the slots are released and every channel removed, no block and no
 *    channel is left: nothing leaks, whatever the sequence. */
#include <unistd.h>

#include <apr_general.h>
#include <apr_shm.h>
#include <apr_global_mutex.h>

#include "comet_store_shm.h"
#include "fuzz.h"

#define SEG_SIZE   (512 * 1024)
#define NCHAN      6
#define NPROC      2
#define MAX_MSGS   4096
#define MAX_LEN    6000

static apr_pool_t *root;
static apr_shm_t *shm;
static void *base;
static apr_global_mutex_t *mutex;
static char instance[32];

static const char *const names[NCHAN] = { "a", "b", "chan-c", "s:1", "s:2", "x_y" };

/* what was published: (channel, id) -> seed and length */
typedef struct {
    int chan;
    comet_id_t id;
    unsigned seed;
    apr_size_t len;
} pub_t;

typedef struct {
    pub_t pubs[MAX_MSGS];
    int npubs;
    comet_chan_ref_t refs[NCHAN];
    int have_ref[NCHAN];
    comet_id_t seen[NCHAN];
} model_t;

static model_t model;

static void fill(char *dst, unsigned seed, apr_size_t len)
{
    apr_size_t i;

    for (i = 0; i < len; i++) {
        seed = seed * 1103515245u + 12345u;
        dst[i] = (char)(seed >> 16);
    }
}

typedef struct {
    comet_id_t ids[64];
    apr_size_t lens[64];
    char *bufs[64];
    int n;
    int stop_after;
} sink_t;

static char *sink_alloc(void *baton, comet_id_t id, apr_uint32_t flags, apr_time_t published,
                        apr_size_t len)
{
    sink_t *k = baton;

    if (k->n == 64 || (k->stop_after && k->n == k->stop_after)) {
        return NULL;
    }
    FUZZ_CHECK(len <= MAX_LEN, "fetch: no message longer than any published");
    k->ids[k->n] = id;
    k->lens[k->n] = len;
    k->bufs[k->n] = malloc(len + 1);
    return k->bufs[k->n++];
}

static const pub_t *find_pub(int chan, comet_id_t id)
{
    int i;

    for (i = model.npubs - 1; i >= 0; i--) {
        if (model.pubs[i].chan == chan && model.pubs[i].id == id) {
            return &model.pubs[i];
        }
    }
    return NULL;
}

static void check_stats(comet_store_t *st)
{
    comet_store_stats_t s;

    FUZZ_CHECK(st->stats(st, &s) == APR_SUCCESS, "stats");
    FUZZ_CHECK(s.blocks_used <= s.blocks_max, "blocks within the segment");
    FUZZ_CHECK(s.channels <= s.channels_max, "channels within the table");
    FUZZ_CHECK(s.sessions <= s.channels, "sessions are channels");
    FUZZ_CHECK(s.slots_used <= s.slots_max, "slots within the table");
    FUZZ_CHECK(s.repairs == 0, "no repair: nobody died holding the lock");
}

static void list_fn(void *baton, const char *name, apr_size_t len)
{
    int *n = baton;
    int i, known = 0;

    for (i = 0; i < NCHAN; i++) {
        known |= strlen(names[i]) == len && !memcmp(names[i], name, len);
    }
    FUZZ_CHECK(known, "list: only names that were used");
    (*n)++;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    apr_initialize();
    if (apr_pool_create(&root, NULL) != APR_SUCCESS
        || apr_shm_create(&shm, SEG_SIZE, NULL, root) != APR_SUCCESS
        || apr_global_mutex_create(&mutex, NULL, APR_LOCK_DEFAULT, root) != APR_SUCCESS) {
        fprintf(stderr, "fuzz_store: setup failed\n");
        abort();
    }
    base = apr_shm_baseaddr_get(shm);
    snprintf(instance, sizeof(instance), "fuzz-%ld", (long)getpid());
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    comet_store_t *st[NPROC];
    int slot[NPROC], wfd[NPROC], i;
    size_t pos = 0;
    comet_limits_t lim;
    static char buf[MAX_LEN];

    if (!root) {
        LLVMFuzzerInitialize(NULL, NULL);
    }
    memset(base, 0, SEG_SIZE);
    FUZZ_CHECK(comet_store_shm_init(base, SEG_SIZE, 4, instance, 1) == APR_SUCCESS, "init");
    apr_pool_create(&p, root);
    for (i = 0; i < NPROC; i++) {
        FUZZ_CHECK(comet_store_shm_open(&st[i], p, base, mutex) == APR_SUCCESS, "open");
        FUZZ_CHECK(st[i]->slot_claim(st[i], &slot[i], &wfd[i]) == APR_SUCCESS, "slot");
    }
    memset(&model, 0, sizeof(model));

#define BYTE() (pos < size ? data[pos++] : 0)
    while (pos < size) {
        unsigned op = BYTE(), a = BYTE(), b = BYTE();
        int who = (int)(op >> 7) % NPROC, c = (int)(a % NCHAN);
        comet_store_t *s = st[who];
        const char *name = names[c];
        apr_size_t nlen = strlen(name);
        apr_status_t rv;

        switch (op % 14) {
        case 0: {   /* publish */
            comet_publish_result_t res;
            apr_size_t len = ((apr_size_t)b * 23) % MAX_LEN;
            unsigned seed = (unsigned)pos * 2654435761u;
            lim.buffer_length = 1 + (a >> 4) % 8;
            lim.ttl = (a & 0x80) ? apr_time_from_sec(3600) : 0;
            lim.max_size = (b & 0x80) ? 4096 : MAX_LEN;
            lim.max_bytes = (a & 0x40) ? 8192 : 0;
            fill(buf, seed, len);
            rv = s->publish(s, name, nlen, buf, len, (b & 1) && c >= 3 ? COMET_MSG_CLOSE : 0,
                            &lim, &res);
            if (!(rv == APR_SUCCESS || rv == APR_ENOSPC || rv == APR_EAGAIN || rv == APR_EINVAL
                  || rv == APR_EOF)) {
                fprintf(stderr, "publish to %s: status %d\n", name, rv);
            }
            /* APR_EOF: a session whose close message was published */
            FUZZ_CHECK(rv == APR_SUCCESS || rv == APR_ENOSPC || rv == APR_EAGAIN
                       || rv == APR_EINVAL || (rv == APR_EOF && c >= 3),
                       "publish: a documented status");
            if (rv == APR_EINVAL) {
                FUZZ_CHECK(len > lim.max_size, "publish: EINVAL only past max_size");
            }
            if (rv == APR_SUCCESS && model.npubs < MAX_MSGS) {
                pub_t *q = &model.pubs[model.npubs++];
                FUZZ_CHECK(!find_pub(c, res.id), "publish: a new id");
                q->chan = c;
                q->id = res.id;
                q->seed = seed;
                q->len = len;
            }
            break;
        }
        case 1:     /* fetch */
        case 2: {
            sink_t k;
            comet_fetch_result_t res;
            comet_id_t since;
            int j;
            if (!model.have_ref[c]) {
                break;
            }
            memset(&k, 0, sizeof(k));
            k.stop_after = b % 5;
            since = (b >> 5) == 0 ? 0 : (b >> 5) == 1 ? COMET_ID_NONE : model.seen[c];
            rv = s->fetch(s, &model.refs[c], (op & 0x40) ? slot[who] : 0, since, sink_alloc,
                          &k, &res);
            FUZZ_CHECK(rv == APR_SUCCESS, "fetch");
            FUZZ_CHECK((int)res.count == k.n, "fetch: count is what was handed out");
            for (j = 0; j < k.n; j++) {
                const pub_t *q = find_pub(c, k.ids[j]);
                FUZZ_CHECK(since != COMET_ID_NONE && k.ids[j] > since, "fetch: above since");
                FUZZ_CHECK(j == 0 || k.ids[j] > k.ids[j - 1], "fetch: in id order");
                FUZZ_CHECK(k.ids[j] <= res.last_id, "fetch: not past last_id");
                if (q) {
                    fill(buf, q->seed, q->len);
                    FUZZ_CHECK(k.lens[j] == q->len && !memcmp(k.bufs[j], buf, q->len),
                               "fetch: the bytes published under that id");
                }
                else {
                    /* published before the model filled up */
                    FUZZ_CHECK(model.npubs == MAX_MSGS, "fetch: an id that was published");
                }
                if (k.ids[j] > model.seen[c]) {
                    model.seen[c] = k.ids[j];
                }
                free(k.bufs[j]);
            }
            break;
        }
        case 3: {   /* info */
            comet_channel_info_t info;
            rv = s->info(s, name, nlen, &info);
            FUZZ_CHECK(rv == APR_SUCCESS || rv == APR_NOTFOUND, "info");
            if (rv == APR_SUCCESS) {
                FUZZ_CHECK(info.messages == 0 || (info.first_id && info.first_id <= info.last_id),
                           "info: first id <= last id");
            }
            break;
        }
        case 4: {   /* remove */
            apr_uint32_t subs;
            rv = s->remove(s, name, nlen, &subs);
            FUZZ_CHECK(rv == APR_SUCCESS || rv == APR_NOTFOUND, "remove");
            break;
        }
        case 5: {   /* subscribe */
            comet_chan_ref_t ref;
            rv = s->subscribe(s, slot[who], name, nlen, 1 + b % 3, (a >> 4) % 4, &ref, NULL);
            FUZZ_CHECK(rv == APR_SUCCESS || rv == APR_ENOSPC || rv == APR_EAGAIN, "subscribe");
            if (rv == APR_SUCCESS) {
                model.refs[c] = ref;
                model.have_ref[c] = 1;
            }
            break;
        }
        case 6:     /* unsubscribe */
            if (model.have_ref[c]) {
                FUZZ_CHECK(s->unsubscribe(s, slot[who], &model.refs[c], 1 + b % 3) == APR_SUCCESS,
                           "unsubscribe");
            }
            break;
        case 7: {   /* drain */
            comet_chan_ref_t refs[8];
            apr_size_t n = 0;
            int ovf = 0;
            char junk[64];
            FUZZ_CHECK(s->drain(s, slot[who], refs, 1 + b % 8, &n, &ovf) == APR_SUCCESS, "drain");
            FUZZ_CHECK(n <= 1 + (apr_size_t)(b % 8), "drain: within max");
            while (read(wfd[who], junk, sizeof(junk)) > 0) {
            }
            break;
        }
        case 8:     /* housekeeping, now or later */
            FUZZ_CHECK(s->maintain(s, apr_time_now() + apr_time_from_sec(b % 4 == 3 ? 7200 : b % 4))
                       == APR_SUCCESS, "maintain");
            break;
        case 9: {   /* a session */
            comet_chan_ref_t ref;
            int created;
            rv = s->session.open(s, name, nlen, b % 4, (apr_uint64_t)(a >> 6), &created, &ref);
            FUZZ_CHECK(rv == APR_SUCCESS || rv == APR_EAGAIN || rv == APR_ENOSPC
                       || rv == APR_EACCES, "session_open");
            if (rv == APR_SUCCESS) {
                model.refs[c] = ref;
                model.have_ref[c] = 1;
            }
            break;
        }
        case 10: {  /* a receiver comes or goes */
            comet_id_t acked;
            apr_uint32_t flags;
            if (!model.have_ref[c]) {
                break;
            }
            if (b & 1) {
                rv = s->session.claim(s, slot[who], &model.refs[c], 1 + (b >> 1) % 3, &acked,
                                       &flags);
                FUZZ_CHECK(rv == APR_SUCCESS || rv == APR_EBUSY || rv == APR_EAGAIN
                           || rv == APR_NOTFOUND || rv == APR_EINVAL, "receiver_claim");
            }
            else {
                (void)s->session.release(s, &model.refs[c], 1 + (b >> 1) % 3);
            }
            break;
        }
        case 11:    /* ack */
            if (model.have_ref[c]) {
                (void)s->session.ack(s, &model.refs[c], (b & 1) ? model.seen[c] : COMET_ID_NONE - 1,
                             ((b & 2) ? COMET_CHAN_OPENED : 0)
                             | ((b & 4) ? COMET_CHAN_ENDING : 0));
            }
            break;
        case 12: {  /* list */
            int n = 0;
            FUZZ_CHECK(s->session.list(s, (b & 1) ? "s:" : "", list_fn, &n) == APR_SUCCESS, "list");
            break;
        }
        case 13:    /* the channel cap */
            comet_store_shm_set_max_channels(base, b % 9);
            break;
        }
        check_stats(s);
    }
#undef BYTE

    /* everything goes: nothing may be left */
    comet_store_shm_set_max_channels(base, 0);
    for (i = 0; i < NPROC; i++) {
        FUZZ_CHECK(st[i]->slot_release(st[i], slot[i]) == APR_SUCCESS, "slot release");
    }
    for (i = 0; i < NCHAN; i++) {
        (void)st[0]->remove(st[0], names[i], strlen(names[i]), NULL);
    }
    {
        comet_store_stats_t s;
        st[0]->stats(st[0], &s);
        FUZZ_CHECK(s.channels == 0 && s.sessions == 0, "no channel left");
        FUZZ_CHECK(s.blocks_used == 0, "no block left");
        FUZZ_CHECK(s.slots_used == 0, "no slot left");
    }
    apr_pool_destroy(p);
    return 0;
}
