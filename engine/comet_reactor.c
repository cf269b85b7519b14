/* Licensed under the Apache License, Version 2.0 (the "License"); see README. */

/*
 * The per-process event loop; see comet_reactor.h.
 *
 *   handler threads --add--> [cmd queue + eventfd] --+
 *   publishers --store inbox + wake socket-----------+--> epoll loop
 *                                                    |      |
 *       local channels (name/idx hash) <-------------+      v
 *         links: subscriber x channel, cursor      subscribers: queue of frames
 *                                                   -> writev (owned socket)
 *                                                   -> held buffer (handler)
 *
 * Everything below the command queue runs on the reactor thread alone, so the
 * local structures need no locks. Subscribers and channels are freed only in
 * the reap step at the end of each loop turn, never while a list that might
 * point to them is being walked (nor while the loop may still hand out an
 * event of the turn for a subscriber's socket).
 *
 * One turn, in this order (delivery before heartbeats and ends):
 *   comet_loop_poll: socket events, wake socket (on_wake), commands (on_cmd)
 *   pull_dirty:      fetch what the wake-ups named, hand it out
 *   comet_loop_expire: subscriber timers (heartbeat, lifetime, close grace)
 *   begin_drain if stopping, flush_all, move_step while a stopping child's
 *   streams move, reap, store maintenance once a second
 */

#define _GNU_SOURCE 1           /* struct ucred */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <apr_atomic.h>
#include <apr_strings.h>

#include "comet_handoff.h"
#include "comet_loop.h"
#include "comet_reactor.h"

#define IOV_MAX_WRITE    64
#define LCHAN_BUCKETS    4096
#define CLOSE_GRACE      apr_time_from_sec(5)
#define WS_LINGER        apr_time_from_sec(2)
/* WebSocket: a client silent this long (in heartbeats), not even answering
 * the pings sent once it is silent for one, is gone: a peer that vanished
 * would otherwise hold its socket until TCP gives up, minutes later */
#define WS_IDLE(hb)      ((hb) * 5 / 2)
#define MAINT_EVERY      apr_time_from_sec(1)
/* a stopping child's streams wait this long for a live child to take them
 * (a graceful restart's next generation is up within a second or two) */
#define MOVE_WAIT        apr_time_from_sec(5)
#define MOVE_RETRY       apr_time_from_msec(5)
#define WAKE_READ_MAX    8
#define MOVE_SETTLE      apr_time_from_msec(250)
/* first to children started since the stop (see move_targets) */
#define MOVE_PREFER_NEW  apr_time_from_msec(1500)
#define READ_DISCARD_MAX 65536
#define BATCH_MAX        256

typedef struct sub_t sub_t;
typedef struct lchan_t lchan_t;

/* A message fetched from the store, shared by every subscriber it goes to. */
typedef struct lmsg_t {
    struct lmsg_t *next;          /* in a fetch batch */
    unsigned refs;
    comet_id_t id;
    apr_uint32_t flags;           /* COMET_MSG_* */
    apr_size_t len;
    comet_buf_t frame[COMET_TRANSPORTS_MAX];
    char data[];
} lmsg_t;

/* One piece of output waiting for a subscriber's socket. */
typedef struct qnode_t {
    struct qnode_t *next;
    lmsg_t *msg;                  /* frame shared with others, or NULL */
    char *own;                    /* or bytes of this subscriber (malloc) */
    const char *p;
    apr_size_t len;
    apr_size_t off;               /* bytes of hdr + p + trailer already sent */
    comet_id_t ack_id;            /* sessions: delivered once this is written */
    unsigned char hlen;           /* chunk header length (0: not chunked) */
    char hdr[18];
} qnode_t;

/* A subscriber following a channel. */
typedef struct link_t {
    sub_t *sub;
    lchan_t *ch;
    comet_id_t cursor;            /* newest id queued to this subscriber */
    comet_id_t since;             /* asked by the client: replay after this */
    struct link_t *prev, *next;   /* in ch->links */
} link_t;

struct lchan_t {
    lchan_t *hnext_name, *hnext_idx, *dnext, *unext;
    lmsg_t *pending;              /* fetched, not yet handed out */
    comet_chan_ref_t ref;
    comet_id_t cursor;            /* newest id fetched by this process */
    link_t *links;
    apr_uint32_t nlinks;
    apr_uint32_t unsub;           /* links removed, not yet told to the store */
    apr_uint32_t hash;
    unsigned dirty:1;
    unsigned gone:1;
    unsigned in_unsub:1;
    unsigned has_recent:1;
    /* during one pass of on_cmd: the last replay fetched from the store,
     * messages after recent_since up to recent_upto, for the next streams
     * joining with a cursor at or past recent_since (a restart hands a
     * loop thousands of streams of one channel at once) */
    lmsg_t *recent;
    comet_id_t recent_since, recent_upto;
    lchan_t *rnext;
    apr_size_t name_len;
    char name[COMET_CHANNEL_MAX];
};

struct comet_held_t {
    pthread_mutex_t mu;
    comet_reactor_t *r;
    sub_t *sub;                   /* reactor side only; NULL once reaped */
    comet_held_t *rnext;          /* in the reactor's release list */
    int efd;
    int refs;                     /* reactor + handler */
    int ended;                    /* the reactor is done with it */
    int gone;                     /* the handler is done with it */
    int client_left;              /* ... for its client went (sub_interrupted) */
    apr_size_t limit;
    comet_buf_t pending;
};

struct sub_t {
    comet_loop_io_t io;           /* the owned socket, while open */
    comet_loop_timer_t timer;     /* at sub_deadline */
    sub_t *prev, *next;           /* all subscribers */
    sub_t *fnext;                 /* flush list */
    sub_t *cnext;                 /* reap list */
    comet_reactor_t *r;
    int fd;                       /* owned socket, or -1 */
    const comet_conn_ops_t *ops;  /* between the queue and fd (TLS), or NULL */
    void *conn;
    comet_held_t *held;
    const comet_transport_t *t;
    unsigned chunked:1, closing:1, closed:1, in_flush:1, sent_batch:1;
    unsigned session:1;           /* the receiver of a session: acks, releases */
    unsigned said_close:1;        /* WebSocket: a close frame is queued */
    unsigned lingering:1;         /* WebSocket: all sent, reading until the client closes */
    unsigned ws_done:1;           /* WebSocket: the client's close came (or its end) */
    unsigned pings:1;             /* WebSocket: heartbeats ping, silence ends it */
    unsigned resumable:1;         /* its client's going does not end the session */
    unsigned presubscribed:1;     /* the handler subscribed: links carry refs */
    apr_uint64_t token;
    comet_id_t acked_pending, acked_sent;
    lmsg_t **batch;               /* oneshot: messages for the one frame */
    apr_size_t nbatch;
    comet_stream_params_t params;
    char *callback;               /* copy of params.callback (malloc), if any */
    apr_size_t nlinks;
    qnode_t *qhead, *qtail;
    apr_size_t queued;            /* bytes waiting */
    apr_size_t written;           /* frame bytes handed to the socket */
    apr_size_t byte_limit, queue_limit;
    apr_interval_time_t heartbeat;
    apr_time_t last_write, end_at, close_at;
    apr_time_t last_read, last_ping; /* pings: from the client, to it */
    comet_ws_t *ws;               /* WebSocket: what the client sends is read */
    void *upstream_baton;         /* of ws's message callback: ours to free */
    void (*on_end)(void *baton);  /* at the end, with upstream_baton */
    char *input;                  /* read ahead by httpd, fed at attach (malloc) */
    apr_size_t input_len;
    char *origin;                 /* spec->origin (malloc), if any */
    apr_time_t began;
    char peer[48];
    link_t links[];               /* one per channel followed */
};

struct comet_reactor_t {
    comet_store_t *store;
    int slot;
    comet_loop_t *loop;
    comet_loop_io_t wake_io;      /* the store's wake socket of our slot */
    pthread_t thread;
    int started;
    comet_log_fn *log;
    void *log_baton;
    comet_reactor_resolve_fn *resolve;
    void *resolve_baton;

    pthread_mutex_t cmd_mu;
    sub_t *cmd_head;              /* subscribers to add (via cnext) */
    comet_held_t *rel_head;       /* held subscribers their handler gave up */
    int exited;                   /* the loop is over: no more commands */
    apr_uint32_t stopping;        /* set by quiesce/destroy (apr_atomic_*) */
    apr_uint32_t move;            /* set by quiesce: streams move on (apr_atomic_*) */
    apr_uint64_t told_at;         /* when quiesce was called (apr_atomic_*) */
    int draining;
    apr_time_t drain_until;
    /* moving streams to live children (begin_drain with move) */
    int moving;
    apr_time_t move_began, move_until; /* then what has not moved ends */
    apr_time_t move_first;        /* the first batch went */
    apr_time_t settle_until;      /* the loop reads its socket until then */
    apr_uint32_t moved, move_failed;

    sub_t *subs;
    sub_t *flush_head;
    sub_t *reap_head;
    lchan_t *dirty_head, **dirty_tail;
    lchan_t *unsub_head;
    lchan_t *recent_head;         /* channels holding a replay this pass */
    lchan_t *by_name[LCHAN_BUCKETS];
    lchan_t *by_idx[LCHAN_BUCKETS];
    qnode_t *qfree;
    apr_time_t next_maint;
    lmsg_t *batch, **batch_tail;

    /* written by the loop thread alone, read by any (apr_atomic_*): the
     * slot's counters in the store, where every process sees them (own:
     * when the store keeps none) */
    comet_slot_counters_t *cnt;
    comet_slot_counters_t own_cnt;
    apr_time_t gap_logged;
};

static void rlog(comet_reactor_t *r, comet_log_level_t level, apr_status_t rv,
                 const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    if (!r->log) {
        return;
    }
    va_start(ap, fmt);
    apr_vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    r->log(r->log_baton, level, rv, msg);
}

/*******************************************************************************
 * messages and queue nodes
 ******************************************************************************/

static void lmsg_unref(lmsg_t *m)
{
    if (m && --m->refs == 0) {
        int i;
        for (i = 0; i < COMET_TRANSPORTS_MAX; i++) {
            comet_buf_free(&m->frame[i]);
        }
        free(m);
    }
}

/* Drop a fetched chain (linked by next): one reference of each. */
static void lmsg_chain_unref(lmsg_t *m)
{
    lmsg_t *next;

    for (; m; m = next) {
        next = m->next;
        lmsg_unref(m);
    }
}

static char *batch_alloc(void *baton, comet_id_t id, apr_uint32_t flags,
                         apr_time_t published, apr_size_t len)
{
    comet_reactor_t *r = baton;
    lmsg_t *m = calloc(1, sizeof(*m) + (len ? len : 1));

    (void)published;
    if (!m) {
        return NULL;
    }
    m->refs = 1;                  /* the batch's reference */
    m->id = id;
    m->flags = flags;
    m->len = len;
    *r->batch_tail = m;
    r->batch_tail = &m->next;
    return m->data;
}

static void batch_begin(comet_reactor_t *r)
{
    r->batch = NULL;
    r->batch_tail = &r->batch;
}

/* The messages fetched since batch_begin, now the caller's. */
static lmsg_t *batch_take(comet_reactor_t *r)
{
    lmsg_t *m = r->batch;

    r->batch = NULL;
    r->batch_tail = &r->batch;
    return m;
}

static void batch_end(comet_reactor_t *r)
{
    lmsg_chain_unref(r->batch);
    r->batch = NULL;
    r->batch_tail = &r->batch;
}

static qnode_t *qnode_get(comet_reactor_t *r)
{
    qnode_t *q = r->qfree;

    if (q) {
        r->qfree = q->next;
        memset(q, 0, sizeof(*q));
        return q;
    }
    return calloc(1, sizeof(*q));
}

static void qnode_put(comet_reactor_t *r, qnode_t *q)
{
    lmsg_unref(q->msg);
    free(q->own);
    q->msg = NULL;
    q->own = NULL;
    q->next = r->qfree;
    r->qfree = q;
}

static apr_size_t qnode_total(const qnode_t *q)
{
    return q->hlen + q->len + (q->hlen ? 2 : 0);
}

/*******************************************************************************
 * timers: each subscriber's next deadline
 ******************************************************************************/

/* The next heartbeat: after a heartbeat's silence towards the client; with
 * pings, also after one from it (the ping asks for an answer), even while
 * messages flow. */
static apr_time_t sub_beat_at(const sub_t *s)
{
    apr_time_t at = s->last_write + s->heartbeat;

    if (s->pings) {
        apr_time_t quiet = (s->last_read > s->last_ping ? s->last_read : s->last_ping)
                           + s->heartbeat;
        if (quiet < at) {
            at = quiet;
        }
    }
    return at;
}

static apr_time_t sub_deadline(const sub_t *s)
{
    apr_time_t d = 0;

    if (s->closing) {
        return s->close_at;
    }
    if (s->end_at) {
        d = s->end_at;
    }
    if (s->heartbeat) {
        apr_time_t hb = sub_beat_at(s);
        if (!d || hb < d) {
            d = hb;
        }
        if (s->pings && s->last_read + WS_IDLE(s->heartbeat) < d) {
            d = s->last_read + WS_IDLE(s->heartbeat);
        }
    }
    return d;
}

static void sub_on_timer(comet_loop_t *l, comet_loop_timer_t *t, apr_time_t now);

/* (Re)arm a subscriber's timer after its deadline may have moved. */
static void sub_schedule(sub_t *s)
{
    apr_time_t d = sub_deadline(s);

    if (!d) {
        comet_loop_timer_cancel(s->r->loop, &s->timer);
        return;
    }
    /* out of memory: no timer, the stream still works */
    comet_loop_timer_set(s->r->loop, &s->timer, d, sub_on_timer);
}

/*******************************************************************************
 * local channels
 ******************************************************************************/

static lchan_t *lchan_by_name(comet_reactor_t *r, const char *name, apr_size_t len,
                              apr_uint32_t hash)
{
    lchan_t *c = r->by_name[hash % LCHAN_BUCKETS];

    for (; c; c = c->hnext_name) {
        if (c->hash == hash && c->name_len == len && !memcmp(c->name, name, len)) {
            return c;
        }
    }
    return NULL;
}

static lchan_t *lchan_by_ref(comet_reactor_t *r, const comet_chan_ref_t *ref)
{
    lchan_t *c = r->by_idx[ref->idx % LCHAN_BUCKETS];

    for (; c; c = c->hnext_idx) {
        if (c->ref.idx == ref->idx) {
            return c;
        }
    }
    return NULL;
}

static void lchan_unhash(comet_reactor_t *r, lchan_t *c)
{
    lchan_t **pp = &r->by_name[c->hash % LCHAN_BUCKETS];

    while (*pp && *pp != c) {
        pp = &(*pp)->hnext_name;
    }
    if (*pp) {
        *pp = c->hnext_name;
    }
    pp = &r->by_idx[c->ref.idx % LCHAN_BUCKETS];
    while (*pp && *pp != c) {
        pp = &(*pp)->hnext_idx;
    }
    if (*pp) {
        *pp = c->hnext_idx;
    }
}

static void lchan_mark_dirty(comet_reactor_t *r, lchan_t *c)
{
    if (!c->dirty) {
        c->dirty = 1;
        c->dnext = NULL;
        *r->dirty_tail = c;
        r->dirty_tail = &c->dnext;
    }
}

/*******************************************************************************
 * subscribers: output
 ******************************************************************************/

static void sub_close(sub_t *s, int hard);
static void sub_interrupted(sub_t *s);

static void sub_free(sub_t *s)
{
    comet_ws_destroy(s->ws);
    free(s->upstream_baton);
    free(s->input);
    free(s->batch);
    free(s->callback);
    free(s->origin);
    free(s);
}

static void sub_want_flush(comet_reactor_t *r, sub_t *s)
{
    if (!s->in_flush && !s->closed) {
        s->in_flush = 1;
        s->fnext = r->flush_head;
        r->flush_head = s;
    }
}

static void sub_push(sub_t *s, qnode_t *q)
{
    if (s->chunked && q->len) {
        q->hlen = (unsigned char)apr_snprintf(q->hdr, sizeof(q->hdr), "%" APR_UINT64_T_HEX_FMT "\r\n",
                                              (apr_uint64_t)q->len);
    }
    q->next = NULL;
    if (s->qtail) {
        s->qtail->next = q;
    }
    else {
        s->qhead = q;
    }
    s->qtail = q;
    s->queued += qnode_total(q);
}

/* Queue bytes of this subscriber alone (prelude, heartbeat, end). */
static int sub_queue_own(sub_t *s, const comet_buf_t *b)
{
    qnode_t *q;

    if (!b->len) {
        return 0;
    }
    q = qnode_get(s->r);
    if (!q) {
        return -1;
    }
    q->own = malloc(b->len);
    if (!q->own) {
        qnode_put(s->r, q);
        return -1;
    }
    memcpy(q->own, b->data, b->len);
    q->p = q->own;
    q->len = b->len;
    sub_push(s, q);
    return 0;
}

static int sub_queue_msg(sub_t *s, lmsg_t *m, const lchan_t *ch)
{
    comet_buf_t *f = &m->frame[s->t->index];
    qnode_t *q;

    if (!f->len && s->t->message(f, m->id, ch->name, ch->name_len, m->data, m->len) < 0) {
        return -1;
    }
    q = qnode_get(s->r);
    if (!q) {
        return -1;
    }
    m->refs++;
    q->msg = m;
    q->p = f->data;
    q->len = f->len;
    sub_push(s, q);
    s->sent_batch = 1;
    apr_atomic_inc64(&s->r->cnt->delivered);
    apr_atomic_add64(&s->r->cnt->delivered_bytes, m->len);
    return 0;
}

/* End a stream normally: its end frame, then close once written. */
static void sub_end(sub_t *s, comet_end_t why)
{
    comet_buf_t b = { 0 };

    if (s->closing || s->closed) {
        return;
    }
    if (s->t->end && !s->said_close && s->t->end(&b, &s->params, why) == 0) {
        sub_queue_own(s, &b);
    }
    comet_buf_free(&b);
    if (s->chunked) {
        /* the zero-length chunk that ends the body: a header of "0" and
         * the empty line, no bytes (sub_push would frame them again) */
        qnode_t *q = qnode_get(s->r);
        if (q) {
            q->p = "";
            q->len = 0;
            memcpy(q->hdr, "0\r\n", 3);
            q->hlen = 3;
            sub_push(s, q);
        }
    }
    s->closing = 1;
    s->close_at = apr_time_now() + CLOSE_GRACE;
    if (s->session && s->nlinks && s->links[0].ch && !s->links[0].ch->gone) {
        /* the client comes back as soon as it reads the end: its next
         * receiver must wait for this one's last ack and release, or it
         * would be refused as a second connection */
        s->r->store->session.ack(s->r->store, &s->links[0].ch->ref, s->acked_sent, COMET_CHAN_ENDING);
    }
    sub_schedule(s);
    sub_want_flush(s->r, s);
}

/* Sessions: tell the store what reached the client, so that the next
 * receiver starts after it and the memory goes. */
static void sub_ack(sub_t *s)
{
    apr_status_t rv;

    if (!s->session || s->acked_pending <= s->acked_sent || !s->nlinks || !s->links[0].ch) {
        return;
    }
    rv = s->r->store->session.ack(s->r->store, &s->links[0].ch->ref, s->acked_pending, 0);
    if (rv != APR_SUCCESS && rv != APR_NOTFOUND) {
        rlog(s->r, COMET_LOG_ERR, rv, "comet: cannot record delivery to %s", s->peer);
    }
    s->acked_sent = s->acked_pending;
}

/* Queue bytes of this subscriber alone that deliver messages up to ack_id. */
static int sub_queue_acked(sub_t *s, const comet_buf_t *b, comet_id_t ack_id)
{
    if (sub_queue_own(s, b) < 0) {
        return -1;
    }
    if (s->qtail) {
        s->qtail->ack_id = ack_id;
    }
    return 0;
}

/* Oneshot transports: the messages gathered so far, as one frame. */
static void sub_flush_batch(sub_t *s)
{
    comet_frame_msg_t msgs[BATCH_MAX];
    comet_buf_t b = { 0 };
    apr_size_t i;
    apr_uint64_t bytes = 0;
    comet_id_t last = 0;

    for (i = 0; i < s->nbatch; i++) {
        msgs[i].id = s->batch[i]->id;
        msgs[i].chan = s->links[0].ch ? s->links[0].ch->name : "";
        msgs[i].clen = s->links[0].ch ? s->links[0].ch->name_len : 0;
        msgs[i].data = s->batch[i]->data;
        msgs[i].len = s->batch[i]->len;
        bytes += msgs[i].len;
        last = msgs[i].id;
    }
    if (s->t->batch(&b, &s->params, msgs, s->nbatch) == 0) {
        sub_queue_acked(s, &b, last);
        apr_atomic_add64(&s->r->cnt->delivered, s->nbatch);
        apr_atomic_add64(&s->r->cnt->delivered_bytes, bytes);
    }
    comet_buf_free(&b);
    for (i = 0; i < s->nbatch; i++) {
        lmsg_unref(s->batch[i]);
    }
    s->nbatch = 0;
    s->sent_batch = 1;
}

/* SSE of several channels: an id line with every channel's cursor. */
static int sub_queue_cursors(sub_t *s)
{
    const char *names[COMET_SUB_CHANNELS_MAX];
    apr_size_t lens[COMET_SUB_CHANNELS_MAX], i;
    comet_id_t cursors[COMET_SUB_CHANNELS_MAX];
    comet_buf_t b = { 0 };
    int rv;

    for (i = 0; i < s->nlinks; i++) {
        names[i] = s->links[i].ch ? s->links[i].ch->name : "";
        lens[i] = s->links[i].ch ? s->links[i].ch->name_len : 0;
        cursors[i] = s->links[i].cursor;
    }
    rv = comet_sse_id_line(&b, names, lens, cursors, s->nlinks);
    if (rv == 0) {
        rv = sub_queue_own(s, &b);
    }
    comet_buf_free(&b);
    return rv;
}

/* Hand one message to a subscriber, as its transport wants it; the link's
 * cursor moves past it.
 * @return 0, or -1 if out of memory */
static int sub_take(sub_t *s, lmsg_t *m, link_t *l)
{
    const lchan_t *c = l->ch;

    if (s->t->accumulates && s->byte_limit && s->written + s->queued >= s->byte_limit) {
        /* this response is full: the rest waits for the next one (the
         * client resumes after what it got) */
        sub_end(s, COMET_END_RECONNECT);
        return 0;
    }

    if (m->flags & COMET_MSG_CLOSE) {
        comet_buf_t b = { 0 };
        if (!s->session || !s->t->close) {
            return 0;
        }
        if (s->nbatch) {
            /* messages first; the close waits for the next poll */
            s->sent_batch = 1;
            return 0;
        }
        if (s->t->close(&b, &s->params, m->data, m->len) == 0) {
            sub_queue_own(s, &b);
            /* WebSocket: that was the close frame; the end adds none */
            s->said_close = s->ws != NULL;
        }
        comet_buf_free(&b);
        sub_end(s, COMET_END_RECONNECT);
        return 0;
    }
    if (s->t->oneshot && s->t->batch) {
        if (!s->batch && !(s->batch = malloc(BATCH_MAX * sizeof(*s->batch)))) {
            return -1;
        }
        if (s->nbatch == BATCH_MAX) {
            return 0;                 /* the rest goes in the next poll */
        }
        m->refs++;
        s->batch[s->nbatch++] = m;
        l->cursor = m->id;
        return 0;
    }
    l->cursor = m->id;
    if (s->t->cursor_id && sub_queue_cursors(s) < 0) {
        return -1;
    }
    if (sub_queue_msg(s, m, c) < 0) {
        return -1;
    }
    if (s->session && s->qtail) {
        s->qtail->ack_id = m->id;
    }
    return 0;
}

/* Tell the handler thread of a held subscriber to look at it. */
static void held_signal(comet_held_t *h)
{
    apr_uint64_t one = 1;

    if (write(h->efd, &one, sizeof(one)) < 0) {
        /* the counter cannot overflow in practice; the handler polls anyway */
    }
}

/* Move the queue into a held subscriber's buffer, under its lock.
 * @return -1 if its handler is gone, 1 if the buffer is over its limit, 0 */
static int held_move(sub_t *s)
{
    comet_held_t *h = s->held;
    qnode_t *q;
    int over = 0;

    pthread_mutex_lock(&h->mu);
    if (h->gone) {
        pthread_mutex_unlock(&h->mu);
        return -1;
    }
    while ((q = s->qhead) != NULL) {
        if (comet_buf_append(&h->pending, q->p, q->len) < 0) {
            over = 1;
            break;
        }
        if (q->ack_id > s->acked_pending) {
            s->acked_pending = q->ack_id;
        }
        s->written += q->len;
        s->queued -= qnode_total(q);
        s->qhead = q->next;
        qnode_put(s->r, q);
    }
    if (!s->qhead) {
        s->qtail = NULL;
    }
    if (h->pending.len > h->limit) {
        over = 1;
    }
    if (s->closing && !s->qhead) {
        h->ended = 1;
    }
    pthread_mutex_unlock(&h->mu);
    return over;
}

/* Move queued bytes to the handler thread of a held subscriber. */
static void held_flush(sub_t *s)
{
    int rc = held_move(s);

    if (rc < 0) {
        /* its handler gave up before the release reached us */
        if (s->held->client_left) {
            sub_interrupted(s);
        }
        sub_close(s, 1);
        return;
    }
    held_signal(s->held);
    s->last_write = apr_time_now();
    sub_ack(s);
    if (rc > 0) {
        rlog(s->r, COMET_LOG_INFO, APR_ENOSPC,
             "comet: dropping held subscriber %s: its client reads too slowly", s->peer);
        apr_atomic_inc64(&s->r->cnt->dropped);
        sub_close(s, 1);
    }
    else if (s->closing && !s->qhead) {
        sub_close(s, 0);
    }
}

/* The iovecs of what waits, from where the socket stopped: each node's
 * chunk header, bytes and chunk trailer. @return how many */
static int sub_iov(const sub_t *s, struct iovec *iov)
{
    const qnode_t *q;
    int n = 0;

    for (q = s->qhead; q && n < IOV_MAX_WRITE - 3; q = q->next) {
        apr_size_t off = q->off;
        if (q->hlen) {
            if (off < q->hlen) {
                iov[n].iov_base = (char *)q->hdr + off;
                iov[n++].iov_len = q->hlen - off;
                off = 0;
            }
            else {
                off -= q->hlen;
            }
        }
        if (off < q->len) {
            iov[n].iov_base = (char *)q->p + off;
            iov[n++].iov_len = q->len - off;
            off = 0;
        }
        else {
            off -= q->len;
        }
        if (q->hlen) {
            iov[n].iov_base = (char *)"\r\n" + off;
            iov[n++].iov_len = 2 - off;
        }
    }
    return n;
}

/* Drop from the queue the `w` bytes the socket took. */
static void sub_consume(sub_t *s, apr_size_t w)
{
    qnode_t *q;

    while (w > 0 && (q = s->qhead) != NULL) {
        apr_size_t left = qnode_total(q) - q->off;
        if (w >= left) {
            w -= left;
            if (q->ack_id > s->acked_pending) {
                s->acked_pending = q->ack_id;
            }
            s->written += q->len;
            s->queued -= qnode_total(q);
            s->qhead = q->next;
            qnode_put(s->r, q);
        }
        else {
            q->off += w;
            w = 0;
        }
    }
    if (!s->qhead) {
        s->qtail = NULL;
    }
}

/* Through the connection's functions (TLS): as sub_write. */
static int sub_write_conn(sub_t *s)
{
    while (s->qhead) {
        struct iovec iov[IOV_MAX_WRITE];
        apr_size_t w = 0;
        apr_status_t rv = s->ops->write(s->conn, iov, sub_iov(s, iov), &w);

        if (rv != APR_SUCCESS) {
            rlog(s->r, COMET_LOG_DEBUG, rv, "comet: %s write to %s failed", s->ops->name,
                 s->peer);
            sub_interrupted(s);       /* its client left before the end */
            sub_close(s, 1);
            return -1;
        }
        if (w == 0) {
            break;
        }
        s->last_write = apr_time_now();
        sub_consume(s, w);
    }
    return 0;
}

/* Write what the socket takes now. @return -1 if it failed (closed), 0 */
static int sub_write(sub_t *s)
{
    if (s->ops) {
        return sub_write_conn(s);
    }
    while (s->qhead) {
        struct iovec iov[IOV_MAX_WRITE];
        ssize_t w = writev(s->fd, iov, sub_iov(s, iov));

        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                break;
            }
            rlog(s->r, COMET_LOG_DEBUG, errno, "comet: write to %s failed", s->peer);
            sub_interrupted(s);       /* its client left before the end */
            sub_close(s, 1);
            return -1;
        }
        s->last_write = apr_time_now();
        sub_consume(s, (apr_size_t)w);
    }
    return 0;
}

/* Watch the socket for room only while bytes wait (in the queue, or in
 * the connection: a TLS record, a goodbye to say). */
static void sub_watch_out(sub_t *s)
{
    if (s->lingering && !s->ws_done) {
        return;
    }
    int wait = s->qhead || (s->ops && (s->ops->want_write(s->conn) || s->closing));

    comet_loop_io_set(s->r->loop, &s->io,
                      COMET_LOOP_READ | COMET_LOOP_HUP | (wait ? COMET_LOOP_WRITE : 0));
}

/* A stream whose last frame went: say goodbye if its connection has one
 * (TLS close_notify), then close. */
static void sub_finish(sub_t *s)
{
    apr_status_t rv;

    if (s->ws && !s->ws_done) {
        /* WebSocket: our close frame is out; the client answers with its
         * own, then the server closes (RFC 6455, 7.1.1). Closing first,
         * with its bytes unread, would make the kernel reset the
         * connection, and the client could lose the close frame: read
         * until its close comes, for a while. */
        if (!s->lingering) {
            s->lingering = 1;
            s->close_at = apr_time_now() + WS_LINGER;
            comet_loop_io_set(s->r->loop, &s->io, COMET_LOOP_READ | COMET_LOOP_HUP);
            sub_schedule(s);
        }
        return;
    }
    rv = s->ops ? s->ops->shutdown(s->conn) : APR_SUCCESS;
    if (rv == APR_EAGAIN) {
        return;                   /* again when the socket has room */
    }
    sub_close(s, rv != APR_SUCCESS);
}

/* Drop a client that reads too slowly; close a stream whose end is out. */
static void sub_check_queue(sub_t *s)
{
    if (s->queued > s->queue_limit && !s->closing) {
        rlog(s->r, COMET_LOG_INFO, APR_ENOSPC,
             "comet: dropping subscriber %s: %" APR_SIZE_T_FMT " bytes wait for a client "
             "that reads too slowly (CometClientBuffer)", s->peer, s->queued);
        apr_atomic_inc64(&s->r->cnt->dropped);
        sub_close(s, 1);
        return;
    }
    if (s->closing && !s->qhead) {
        sub_finish(s);
    }
}

/* Write what the socket (or the handler of a held one) takes now. */
static void sub_flush(sub_t *s)
{
    if (s->closed) {
        return;
    }
    if (s->held) {
        held_flush(s);
        return;
    }
    if (sub_write(s) < 0) {
        return;
    }
    sub_ack(s);
    sub_check_queue(s);
    if (!s->closed) {
        sub_watch_out(s);
    }
}

/* After new output: apply the stream's limits, then write. */
static void sub_after_output(sub_t *s)
{
    if (s->closed) {
        return;
    }
    if (s->nbatch && !s->closing) {
        sub_flush_batch(s);
    }
    if (!s->closing) {
        if (s->t->oneshot && s->sent_batch) {
            sub_end(s, COMET_END_RECONNECT);
        }
        else if (s->t->accumulates && s->byte_limit
                 && s->written + s->queued >= s->byte_limit) {
            sub_end(s, COMET_END_RECONNECT);
        }
    }
    sub_flush(s);
    if (!s->closed) {
        sub_schedule(s);
    }
}

static void flush_all(comet_reactor_t *r)
{
    while (r->flush_head) {
        sub_t *s = r->flush_head;
        r->flush_head = s->fnext;
        s->in_flush = 0;
        sub_after_output(s);
    }
}

/*******************************************************************************
 * subscribers: life cycle
 ******************************************************************************/

/* Stop writing and schedule the free; hard: drop unsent bytes. */
static void sub_close(sub_t *s, int hard)
{
    comet_reactor_t *r = s->r;

    if (s->closed) {
        return;
    }
    s->closed = 1;
    comet_loop_timer_cancel(r->loop, &s->timer);
    if (s->fd >= 0) {
        comet_loop_io_del(r->loop, &s->io);
        if (s->ops) {
            s->ops->destroy(s->conn, hard);
            s->ops = NULL;
        }
        close(s->fd);
        s->fd = -1;
    }
    if (s->held) {
        pthread_mutex_lock(&s->held->mu);
        s->held->ended = 1;
        pthread_mutex_unlock(&s->held->mu);
        held_signal(s->held);
    }
    s->cnext = r->reap_head;
    r->reap_head = s;
}

static void held_unref(comet_held_t *h)
{
    int left;

    pthread_mutex_lock(&h->mu);
    left = --h->refs;
    pthread_mutex_unlock(&h->mu);
    if (left == 0) {
        close(h->efd);
        comet_buf_free(&h->pending);
        pthread_mutex_destroy(&h->mu);
        free(h);
    }
}

/* Take a link out of its channel; the store hears of it in lchan_reap. */
static void link_leave(comet_reactor_t *r, link_t *l)
{
    lchan_t *c = l->ch;

    if (l->prev) {
        l->prev->next = l->next;
    }
    else {
        c->links = l->next;
    }
    if (l->next) {
        l->next->prev = l->prev;
    }
    c->nlinks--;
    c->unsub++;
    if (!c->in_unsub) {
        c->in_unsub = 1;
        c->unext = r->unsub_head;
        r->unsub_head = c;
    }
}

/* Free a closed subscriber: its session's claim, links, queue, handle. */
static void sub_reap(comet_reactor_t *r, sub_t *s)
{
    apr_size_t i;
    qnode_t *q;

    if (s->session && s->nlinks && s->links[0].ch && !s->links[0].ch->gone) {
        sub_ack(s);
        r->store->session.release(r->store, &s->links[0].ch->ref, s->token);
    }
    if (s->on_end) {
        s->on_end(s->upstream_baton);
    }
    for (i = 0; i < s->nbatch; i++) {
        lmsg_unref(s->batch[i]);
    }
    s->nbatch = 0;
    for (i = 0; i < s->nlinks; i++) {
        if (s->links[i].ch) {
            link_leave(r, &s->links[i]);
        }
    }
    while ((q = s->qhead) != NULL) {
        s->qhead = q->next;
        qnode_put(r, q);
    }
    if (s->prev) {
        s->prev->next = s->next;
    }
    else {
        r->subs = s->next;
    }
    if (s->next) {
        s->next->prev = s->prev;
    }
    if (s->held) {
        apr_atomic_dec32(&r->cnt->held);
        s->held->sub = NULL;
        held_unref(s->held);
    }
    apr_atomic_dec32(&r->cnt->subscribers);
    sub_free(s);
}

/* Tell the store how many left each channel; free those nobody follows. */
static void lchan_reap(comet_reactor_t *r)
{
    lchan_t *c;

    while ((c = r->unsub_head) != NULL) {
        r->unsub_head = c->unext;
        c->in_unsub = 0;
        if (!c->gone && c->unsub) {
            apr_status_t rv = r->store->unsubscribe(r->store, r->slot, &c->ref, c->unsub);
            if (rv != APR_SUCCESS) {
                rlog(r, COMET_LOG_ERR, rv, "comet: cannot unsubscribe from channel %.*s",
                     (int)c->name_len, c->name);
            }
        }
        c->unsub = 0;
        if (c->nlinks == 0 && !c->dirty) {
            lchan_unhash(r, c);
            apr_atomic_dec32(&r->cnt->channels);
            free(c);
        }
    }
}

/* Free closed subscribers, then the channels they leave. */
static void reap(comet_reactor_t *r)
{
    sub_t *s;

    while ((s = r->reap_head) != NULL) {
        r->reap_head = s->cnext;
        sub_reap(r, s);
    }
    lchan_reap(r);
}

/* Deliver one of a channel's messages to the links that lack it. */
static void deliver_one(comet_reactor_t *r, lchan_t *c, lmsg_t *m)
{
    link_t *l;

    for (l = c->links; l; l = l->next) {
        sub_t *s = l->sub;
        if (s->closed || s->closing || m->id <= l->cursor) {
            continue;
        }
        if (sub_take(s, m, l) < 0) {
            rlog(r, COMET_LOG_ERR, APR_ENOMEM, "comet: out of memory, dropping %s", s->peer);
            sub_close(s, 1);
            continue;
        }
        sub_want_flush(r, s);
    }
}

typedef struct {
    lmsg_t *m;
    lchan_t *c;
} pending_t;

static int pending_cmp(const void *a, const void *b)
{
    comet_id_t x = ((const pending_t *)a)->m->id, y = ((const pending_t *)b)->m->id;
    return x < y ? -1 : x > y;
}

/* Fetch what is new on a channel into c->pending; the number fetched. */
static apr_size_t lchan_fetch(comet_reactor_t *r, lchan_t *c)
{
    comet_fetch_result_t res;
    apr_status_t rv;
    link_t *l;

    batch_begin(r);
    rv = r->store->fetch(r->store, &c->ref, r->slot, c->cursor, batch_alloc, r, &res);
    if (rv != APR_SUCCESS) {
        rlog(r, COMET_LOG_ERR, rv, "comet: cannot fetch channel %.*s",
             (int)c->name_len, c->name);
        batch_end(r);
        return 0;
    }
    if (res.gone) {
        c->gone = 1;
        for (l = c->links; l; l = l->next) {
            sub_end(l->sub, COMET_END_DELETED);
        }
        batch_end(r);
        return 0;
    }
    if (res.gap && c->cursor) {
        /* the buffer turned over before this process could read it: its
         * streams miss messages (their clients can catch up with `since`
         * only if the buffer still holds them) */
        apr_atomic_inc64(&r->cnt->gaps);
        if (apr_time_now() - r->gap_logged > apr_time_from_sec(10)) {
            r->gap_logged = apr_time_now();
            rlog(r, COMET_LOG_WARN, 0, "comet: channel %.*s published faster than this "
                 "process could read it: messages skipped (raise CometMessageBuffer)",
                 (int)c->name_len, c->name);
        }
    }
    if (res.last_id > c->cursor) {
        c->cursor = res.last_id;
    }
    c->pending = batch_take(r);
    return res.count;
}

static void lchan_release_pending(lchan_t *c)
{
    lmsg_chain_unref(c->pending);
    c->pending = NULL;
}

/* Fetch every channel a wake-up named.
 * @return those that got messages (linked by dnext); *n: how many messages */
static lchan_t *fetch_dirty(comet_reactor_t *r, apr_size_t *n)
{
    lchan_t *fetched = NULL, *c;

    while ((c = r->dirty_head) != NULL) {
        r->dirty_head = c->dnext;
        c->dirty = 0;
        if (c->nlinks && !c->gone) {
            apr_size_t got = lchan_fetch(r, c);
            if (got) {
                *n += got;
                c->dnext = fetched;
                fetched = c;
            }
        }
        else if (c->nlinks == 0 && !c->in_unsub) {
            /* its last subscriber left while it waited here */
            c->in_unsub = 1;
            c->unext = r->unsub_head;
            r->unsub_head = c;
        }
    }
    r->dirty_tail = &r->dirty_head;
    return fetched;
}

/* Hand out the messages of several channels (n in all) in id order. */
static void deliver_sorted(comet_reactor_t *r, lchan_t *fetched, apr_size_t n)
{
    pending_t *all = malloc(n * sizeof(*all));
    apr_size_t k = 0, i;
    lchan_t *c;
    lmsg_t *m;

    if (!all) {
        /* out of memory: channel by channel, as fetched */
        for (c = fetched; c; c = c->dnext) {
            for (m = c->pending; m; m = m->next) {
                deliver_one(r, c, m);
            }
        }
        return;
    }
    for (c = fetched; c; c = c->dnext) {
        for (m = c->pending; m && k < n; m = m->next) {
            all[k].m = m;
            all[k].c = c;
            k++;
        }
    }
    qsort(all, k, sizeof(*all), pending_cmp);
    for (i = 0; i < k; i++) {
        deliver_one(r, all[i].c, all[i].m);
    }
    free(all);
}

/* Fetch every channel a wake-up named, then hand the messages out in id
 * order across channels: ids follow the clock, so a stream of several
 * channels sees them in the order they were published. */
static void pull_dirty(comet_reactor_t *r)
{
    apr_size_t n = 0;
    lchan_t *fetched = fetch_dirty(r, &n), *c;
    lmsg_t *m;

    if (!fetched) {
        return;
    }
    if (!fetched->dnext) {
        for (m = fetched->pending; m; m = m->next) {
            deliver_one(r, fetched, m);
        }
        lchan_release_pending(fetched);
        return;
    }
    deliver_sorted(r, fetched, n);
    for (c = fetched; c; c = c->dnext) {
        lchan_release_pending(c);
    }
}

typedef struct {
    lmsg_t *m;
    link_t *l;
} replay_t;

static int replay_cmp(const void *a, const void *b)
{
    comet_id_t x = ((const replay_t *)a)->m->id, y = ((const replay_t *)b)->m->id;
    return x < y ? -1 : x > y;
}

/* Every replayed message with its link, in id order across channels (as
 * live messages come). @return the array (malloc) and *np its length;
 * NULL with *np > 0 when out of memory */
static replay_t *replay_sort(sub_t *s, lmsg_t **replay, apr_size_t *np)
{
    replay_t *all;
    apr_size_t i, n = 0, k = 0;
    lmsg_t *m;

    for (i = 0; i < s->nlinks; i++) {
        for (m = replay[i]; m; m = m->next) {
            n++;
        }
    }
    *np = n;
    all = n ? malloc(n * sizeof(*all)) : NULL;
    if (!all) {
        return NULL;
    }
    for (i = 0; i < s->nlinks; i++) {
        for (m = replay[i]; m; m = m->next) {
            all[k].m = m;
            all[k].l = &s->links[i];
            k++;
        }
    }
    if (s->nlinks > 1 && n > 1) {
        qsort(all, n, sizeof(*all), replay_cmp);
    }
    return all;
}

/* Hand out each channel's replay to a new subscriber, then set its cursors
 * where each channel stood; frees the replays. */
static void sub_replay(comet_reactor_t *r, sub_t *s, lmsg_t **replay, const comet_id_t *upto,
                       const int *borrowed)
{
    apr_size_t i, n, k;
    replay_t *all = replay_sort(s, replay, &n);

    if (n && !all) {
        rlog(r, COMET_LOG_ERR, APR_ENOMEM, "comet: out of memory, dropping %s", s->peer);
        sub_close(s, 1);
    }
    for (k = 0; all && k < n; k++) {
        link_t *l = all[k].l;
        if (!l->ch || s->closing || s->closed || all[k].m->id <= l->cursor) {
            continue;
        }
        if (sub_take(s, all[k].m, l) < 0) {
            rlog(r, COMET_LOG_ERR, APR_ENOMEM, "comet: out of memory, dropping %s", s->peer);
            sub_close(s, 1);
            break;
        }
    }
    /* the client resumes from what it got: cursors move to where each
     * channel stood only if it got everything (and back from an id of
     * the future: the channel's own ids count from here) */
    for (i = 0; i < s->nlinks && !s->closing && !s->closed; i++) {
        if (upto[i] != COMET_ID_NONE) {
            s->links[i].cursor = upto[i];
        }
    }
    free(all);
    for (i = 0; i < s->nlinks; i++) {
        if (!borrowed[i]) {
            lmsg_chain_unref(replay[i]);
        }
    }
}

/* Give up channels from `from` on of a subscriber being attached: their
 * provisional records go, with the subscriptions its handler made. */
static void links_cut(comet_reactor_t *r, sub_t *s, apr_size_t from)
{
    apr_size_t k;

    for (k = from; k < s->nlinks; k++) {
        if (s->presubscribed) {
            r->store->unsubscribe(r->store, r->slot, &s->links[k].ch->ref, 1);
        }
        free(s->links[k].ch);
    }
    s->nlinks = from;
}

/* The first step of attaching: the subscriber joins the reactor's list. */
static void sub_enlist(comet_reactor_t *r, sub_t *s)
{
    s->prev = NULL;
    s->next = r->subs;
    if (r->subs) {
        r->subs->prev = s;
    }
    r->subs = s;
    apr_atomic_inc32(&r->cnt->subscribers);
    if (s->held) {
        apr_atomic_inc32(&r->cnt->held);
    }
}

static void sub_on_io(comet_loop_t *l, comet_loop_io_t *io, apr_uint32_t events);
static int sub_ws_input(sub_t *s, const char *data, apr_size_t len);

/* Watch the subscriber's socket. @return 0, or -1: closed */
static int sub_watch(comet_reactor_t *r, sub_t *s)
{
    apr_status_t rv = comet_loop_io_add(r->loop, &s->io, s->fd,
                                        COMET_LOOP_READ | COMET_LOOP_HUP, sub_on_io);

    if (rv != APR_SUCCESS) {
        rlog(r, COMET_LOG_ERR, rv, "comet: cannot watch the socket of %s", s->peer);
        links_cut(r, s, 0);
        sub_close(s, 1);
        return -1;
    }
    return 0;
}

/* Every cursor first: a multi-channel SSE id line names them all. */
static void sub_set_cursors(sub_t *s, comet_id_t *upto)
{
    apr_size_t i;

    for (i = 0; i < s->nlinks; i++) {
        s->links[i].cursor = s->links[i].since == COMET_ID_NONE ? 0 : s->links[i].since;
        upto[i] = COMET_ID_NONE;
    }
}

/* Subscribe this process' slot to a channel, unless the handler did. */
static apr_status_t link_subscribe(comet_reactor_t *r, sub_t *s, lchan_t *c)
{
    apr_status_t rv = s->presubscribed ? APR_SUCCESS
        : r->store->subscribe(r->store, r->slot, c->name, c->name_len, 1, 0, &c->ref, NULL);

    if (rv != APR_SUCCESS) {
        rlog(r, rv == APR_ENOSPC ? COMET_LOG_ERR : COMET_LOG_WARN, rv,
             "comet: cannot subscribe %s to channel %.*s%s", s->peer,
             (int)c->name_len, c->name,
             rv == APR_ENOSPC ? ": shared memory full (CometSharedMemory)" : "");
    }
    return rv;
}

/* Was the channel of this reference deleted? */
static int lchan_deleted(comet_reactor_t *r, const lchan_t *c)
{
    comet_fetch_result_t chk;

    return r->store->fetch(r->store, &c->ref, 0, COMET_ID_NONE, NULL, NULL, &chk)
           == APR_SUCCESS && chk.gone;
}

/* The channel was deleted and made anew: the streams on the old record end
 * (their clients come back to the new one) and the record goes when they
 * are reaped. */
static void lchan_retire(comet_reactor_t *r, lchan_t *c)
{
    link_t *ol;

    c->gone = 1;
    lchan_unhash(r, c);
    c->hnext_name = c->hnext_idx = NULL;
    for (ol = c->links; ol; ol = ol->next) {
        sub_end(ol->sub, COMET_END_RECONNECT);
    }
}

static void lchan_hash(comet_reactor_t *r, lchan_t *c)
{
    c->hnext_name = r->by_name[c->hash % LCHAN_BUCKETS];
    r->by_name[c->hash % LCHAN_BUCKETS] = c;
    c->hnext_idx = r->by_idx[c->ref.idx % LCHAN_BUCKETS];
    r->by_idx[c->ref.idx % LCHAN_BUCKETS] = c;
    apr_atomic_inc32(&r->cnt->channels);
}

static void link_join(link_t *l, sub_t *s, lchan_t *c)
{
    l->ch = c;
    l->sub = s;
    l->prev = NULL;
    l->next = c->links;
    if (c->links) {
        c->links->prev = l;
    }
    c->links = l;
    c->nlinks++;
}

/* Link channel i of a new subscriber: subscribe, and share this process'
 * record of the channel if it has a current one (*shared).
 * @return 0; 1: the channel was deleted meanwhile (the stream ends);
 *         -1: it could not subscribe (closed) */
static int link_attach(comet_reactor_t *r, sub_t *s, apr_size_t i, int *shared)
{
    link_t *l = &s->links[i];
    lchan_t *c = l->ch;              /* holds the requested name for now */
    lchan_t *have;

    l->ch = NULL;
    have = lchan_by_name(r, c->name, c->name_len, c->hash);
    if (link_subscribe(r, s, c) != APR_SUCCESS) {
        free(c);
        links_cut(r, s, i + 1);
        s->nlinks = i;
        sub_close(s, 1);
        return -1;
    }
    /* which of the two is stale? a channel deleted between the handler's
     * subscribe and now leaves ours so */
    if (have && !have->gone && have->ref.gen != c->ref.gen && lchan_deleted(r, c)) {
        free(c);
        links_cut(r, s, i + 1);
        s->nlinks = i;
        sub_end(s, COMET_END_DELETED);
        return 1;
    }
    if (have && (have->ref.gen != c->ref.gen || have->gone)) {
        lchan_retire(r, have);
        have = NULL;
    }
    if (have) {
        free(c);
        c = have;
    }
    else {
        lchan_hash(r, c);
    }
    link_join(l, s, c);
    *shared = have != NULL;
    return 0;
}

/* Free the replays kept for the pass of on_cmd that ends. */
static void recent_release(comet_reactor_t *r)
{
    lchan_t *c;

    while ((c = r->recent_head) != NULL) {
        r->recent_head = c->rnext;
        lmsg_chain_unref(c->recent);
        c->recent = NULL;
        c->has_recent = 0;
    }
}

/* What a new link missed, from the store (or from the replay fetched for
 * a stream before it in this pass: *borrowed, not the caller's to free);
 * *upto: where the channel stands. A record new to this process starts
 * its cursor there. */
static lmsg_t *link_fetch_replay(comet_reactor_t *r, link_t *l, int shared, comet_id_t *upto,
                                 int *borrowed)
{
    comet_fetch_result_t res;
    lmsg_t *replay = NULL;
    apr_status_t rv;
    lchan_t *c = l->ch;

    *borrowed = 0;
    if (shared && c->has_recent && l->since != COMET_ID_NONE && l->since >= c->recent_since) {
        /* what it lacks is in there (sub_replay skips what it had); what
         * came after reaches the record, whose cursor is not past it */
        *upto = c->recent_upto;
        *borrowed = 1;
        return c->recent;
    }
    if (shared && l->since != COMET_ID_NONE && l->since == c->cursor) {
        /* it starts where this process' record stands (a new stream on a
         * busy channel, as its handler found it): nothing to replay, and
         * what comes next reaches the record anyway; no lock taken */
        *upto = COMET_ID_NONE;
        return NULL;
    }
    batch_begin(r);
    rv = r->store->fetch(r->store, &c->ref, 0, l->since, batch_alloc, r, &res);
    if (rv == APR_SUCCESS && !res.gone) {
        replay = batch_take(r);
        *upto = res.last_id;
        if (!shared) {
            c->cursor = res.last_id;
        }
        if (l->since != COMET_ID_NONE && !c->has_recent) {
            c->recent = replay;
            c->recent_since = l->since;
            c->recent_upto = res.last_id;
            c->has_recent = 1;
            c->rnext = r->recent_head;
            r->recent_head = c;
            *borrowed = 1;
        }
    }
    batch_end(r);
    return replay;
}

/* Take over a subscriber: follow its channels, replay what it missed (the
 * replays are handed out once every channel's is here). */
static void sub_attach(comet_reactor_t *r, sub_t *s)
{
    lmsg_t *replay[COMET_SUB_CHANNELS_MAX] = { NULL };
    comet_id_t upto[COMET_SUB_CHANNELS_MAX];
    int borrowed[COMET_SUB_CHANNELS_MAX] = { 0 };
    apr_size_t i;

    sub_enlist(r, s);
    if (s->fd >= 0 && sub_watch(r, s) < 0) {
        return;
    }
    sub_set_cursors(s, upto);
    for (i = 0; i < s->nlinks; i++) {
        int shared;
        if (link_attach(r, s, i, &shared) != 0) {
            /* ended or closed: the links so far get (or just free) their
             * replays */
            break;
        }
        replay[i] = link_fetch_replay(r, &s->links[i], shared, &upto[i], &borrowed[i]);
    }
    sub_replay(r, s, replay, upto, borrowed);
    s->last_write = apr_time_now();
    if (s->ws && s->input_len && !s->closed) {
        sub_ws_input(s, s->input, s->input_len);
    }
    /* fed once: no need to keep it for the stream's life */
    free(s->input);
    s->input = NULL;
    s->input_len = 0;
    sub_want_flush(r, s);
}

/* WebSocket: bytes from the client through its endpoint; the replies
 * (pong, close) queued behind what waits, whole. @return -1 if closed */
static int sub_ws_input(sub_t *s, const char *data, apr_size_t len)
{
    comet_buf_t out = { 0 };
    apr_status_t rv = comet_ws_feed(s->ws, data, len, &out);

    if (s->closing) {
        /* our close frame is queued: the client's answers go unsaid; its
         * close lets the connection end */
        comet_buf_free(&out);
        if (rv == APR_EOF) {
            s->ws_done = 1;
            if (s->lingering) {
                sub_finish(s);
                return s->closed ? -1 : 0;
            }
        }
        return 0;
    }
    if (rv == APR_ENOMEM || sub_queue_own(s, &out) < 0) {
        comet_buf_free(&out);
        sub_close(s, 1);
        return -1;
    }
    comet_buf_free(&out);
    if (rv == APR_EOF) {
        /* the close handshake (or a broken frame): out once written */
        rlog(s->r, COMET_LOG_TRACE, 0, "comet: websocket of %s closing", s->peer);
        s->closing = 1;
        /* the client closed: ours answers, then the end; we closed (it
         * broke the protocol): wait for its close as for any of ours */
        s->ws_done = comet_ws_peer_closed(s->ws) ? 1 : 0;
        s->close_at = apr_time_now() + CLOSE_GRACE;
        sub_schedule(s);
    }
    sub_want_flush(s->r, s);
    return 0;
}

/* WebSocket: read what the client sent. @return -1 if it left (closed) */
static int sub_ws_read(sub_t *s)
{
    char buf[16384];
    apr_size_t total = 0;

    while (total < READ_DISCARD_MAX && !s->closed) {
        apr_size_t got = 0;
        apr_status_t rv;

        if (s->ops) {
            rv = s->ops->recv(s->conn, buf, sizeof(buf), &got);
        }
        else {
            ssize_t n = read(s->fd, buf, sizeof(buf));
            rv = n > 0 ? APR_SUCCESS : n == 0 ? APR_EOF
               : (errno == EAGAIN || errno == EWOULDBLOCK) ? APR_EAGAIN : errno;
            got = n > 0 ? (apr_size_t)n : 0;
            if (n < 0 && errno == EINTR) {
                continue;
            }
        }
        if (rv == APR_EAGAIN) {
            if (s->ops && s->ops->want_write(s->conn)) {
                sub_want_flush(s->r, s);
            }
            return 0;
        }
        if (rv != APR_SUCCESS) {
            rlog(s->r, COMET_LOG_TRACE, rv, "comet: subscriber %s left", s->peer);
            sub_close(s, 1);
            return -1;
        }
        total += got;
        s->last_read = apr_time_now();
        if (sub_ws_input(s, buf, got) < 0) {
            return -1;
        }
    }
    return 0;
}

/* A session's receiver whose client left before the server ended the
 * response (a network error, an abort): the session is over, as sockjs-node
 * has it (sockjs-protocol's HandlingClose), for messages may have been lost
 * on the way. Its next receiver is told c[1002,"Connection interrupted"];
 * without one, it ends after CometSocketDisconnectDelay as any other. */
static void sub_interrupted(sub_t *s)
{
    comet_limits_t lim = { 10, 0, 64, 0 };
    comet_publish_result_t res;
    const lchan_t *c;
    apr_status_t rv;

    /* (a WebSocket is a session of its own: nobody comes back to it) */
    if (!s->session || s->resumable || s->ws || s->closing || s->closed || !s->nlinks
        || !(c = s->links[0].ch) || c->gone) {
        return;
    }
    rv = s->r->store->publish(s->r->store, c->name, c->name_len, COMET_SOCKJS_INTERRUPTED,
                              strlen(COMET_SOCKJS_INTERRUPTED), COMET_MSG_CLOSE, &lim, &res);
    rlog(s->r, rv == APR_SUCCESS ? COMET_LOG_DEBUG : COMET_LOG_ERR, rv,
         "comet: %s: its receiver %s left: session interrupted", c->name, s->peer);
}

/* Read and drop what a subscriber sent (it has nothing to say), noticing
 * a close. @return -1 if it left (closed), 0 */
static int sub_discard(sub_t *s)
{
    char buf[4096];
    apr_size_t total = 0;

    if (s->ws) {
        return sub_ws_read(s);
    }

    if (s->ops) {
        apr_status_t rv = s->ops->read(s->conn);
        if (rv != APR_SUCCESS) {
            rlog(s->r, COMET_LOG_TRACE, rv, "comet: subscriber %s left", s->peer);
            sub_interrupted(s);
            sub_close(s, 1);
            return -1;
        }
        if (s->ops->want_write(s->conn)) {
            sub_want_flush(s->r, s);
        }
        return 0;
    }
    for (;;) {
        ssize_t n = read(s->fd, buf, sizeof(buf));
        if (n > 0) {
            total += (apr_size_t)n;
            if (total < READ_DISCARD_MAX) {
                continue;
            }
            return 0;
        }
        if (n == 0) {
            rlog(s->r, COMET_LOG_TRACE, 0, "comet: subscriber %s left", s->peer);
            sub_interrupted(s);
            sub_close(s, 1);
            return -1;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            sub_interrupted(s);
            sub_close(s, 1);
            return -1;
        }
        return 0;
    }
}

/* The subscriber's socket: the client left or sent something, or there is
 * room to write again. */
static void sub_on_io(comet_loop_t *l, comet_loop_io_t *io, apr_uint32_t events)
{
    sub_t *s = COMET_LOOP_CONTAINER(io, sub_t, io);

    if (events & COMET_LOOP_ERROR) {
        sub_interrupted(s);
        sub_close(s, 1);
        return;
    }
    if ((events & (COMET_LOOP_READ | COMET_LOOP_HUP)) && sub_discard(s) < 0) {
        return;
    }
    if (events & COMET_LOOP_WRITE) {
        sub_want_flush(s->r, s);
    }
}

/*******************************************************************************
 * the loop
 ******************************************************************************/

static apr_status_t reactor_add(comet_reactor_t *r, const comet_sub_spec_t *spec,
                                comet_held_t **heldp, int even_stopping);

/* A running stream handed over takes the settings of its location here,
 * as the resolver says (a new generation's); one whose location is gone
 * ends at once: its deadline passed, it gets its end frame. */
static void adopt_settings(comet_reactor_t *r, comet_sub_spec_t *spec)
{
    comet_resolved_t now;

    memset(&now, 0, sizeof(now));
    if (!r->resolve || !spec->origin || !r->resolve(r->resolve_baton, spec->origin, spec, &now)) {
        return;
    }
    if (now.gone) {
        rlog(r, COMET_LOG_DEBUG, 0, "comet: a stream of %s moved from %s, which serves no "
             "stream now: it ends (reconnect)", spec->peer, spec->origin);
        spec->end_at = 1;
        return;
    }
    /* no further apart than its client was told at the start (its
     * watchdog counts on it) */
    if (!spec->heartbeat || (now.heartbeat && now.heartbeat < spec->heartbeat)) {
        spec->heartbeat = now.heartbeat;
    }
    spec->end_at = now.lifetime ? (spec->began ? spec->began : apr_time_now()) + now.lifetime : 0;
    spec->byte_limit = now.byte_limit;
    spec->queue_limit = now.queue_limit;
    rlog(r, COMET_LOG_TRACE, 0, "comet: a stream of %s moved from %s takes its settings here",
         spec->peer, spec->origin);
}

/* A stream another child's loop handed us (comet_handoff.h): subscribe
 * this slot, give a new stream's sender its subscriptions back, and take
 * it on as a handler's stream. What cannot be taken is closed: its client
 * reconnects with its cursors. */
static void handoff_adopt(comet_reactor_t *r, const char *data, apr_size_t len, int fd)
{
    comet_sub_spec_t spec;
    comet_chan_ref_t theirs[COMET_SUB_CHANNELS_MAX];
    apr_status_t rv = APR_EINVAL;
    apr_size_t i, done = 0;
    int from = 0;

    if (fd < 0 || comet_handoff_unpack(data, len, &spec, &from) != APR_SUCCESS) {
        rlog(r, COMET_LOG_WARN, rv, "comet: a stream handed over is not understood: closed");
        if (fd >= 0) {
            close(fd);
        }
        return;
    }
    memcpy(theirs, spec.refs, sizeof(theirs));
    for (; done < spec.nchannels; done++) {
        rv = r->store->subscribe(r->store, r->slot, spec.channels[done],
                                 spec.channel_lens[done], 1, 0, &spec.refs[done], NULL);
        if (rv != APR_SUCCESS) {
            break;
        }
    }
    /* a running stream's sender gives its own back as the stream leaves it */
    for (i = 0; !spec.live && i < spec.nchannels; i++) {
        (void)r->store->unsubscribe(r->store, from, &theirs[i], 1);
    }
    if (done == spec.nchannels) {
        spec.fd = fd;
        spec.presubscribed = 1;
        if (spec.live) {
            adopt_settings(r, &spec);
        }
        /* a child told to stop just after the sender chose it passes it on */
        rv = reactor_add(r, &spec, NULL, (int)apr_atomic_read32(&r->move));
        if (rv == APR_SUCCESS) {
            rlog(r, COMET_LOG_TRACE, 0, "comet: %s stream of %s taken from slot %d",
                 spec.live ? "running" : "new", spec.peer, from);
            return;
        }
    }
    for (i = 0; i < done; i++) {
        (void)r->store->unsubscribe(r->store, r->slot, &spec.refs[i], 1);
    }
    rlog(r, COMET_LOG_WARN, rv, "comet: a stream handed over cannot be taken: closed");
    close(fd);
}

/* Read the wake socket: wake-ups (one is enough) and streams handed over;
 * what is left makes the socket readable at the next poll.
 * The socket's name is abstract, open to any local user: a stream is taken
 * only from a process of our own user (SO_PASSCRED, set at creation), the
 * others' descriptors are closed. */
static void wake_read(comet_reactor_t *r, int wfd)
{
    static __thread char buf[65536];
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(COMET_SLOT_SEND_FDS * sizeof(int)) + CMSG_SPACE(sizeof(struct ucred))];
    } ctl;
    int turn;

    /* a few datagrams per turn: while children hand over thousands of
     * streams, the messages of the inbox (read after this) still go out */
    for (turn = 0; turn < WAKE_READ_MAX; turn++) {
        struct iovec iov = { buf, sizeof(buf) };
        struct msghdr m;
        struct cmsghdr *c;
        ssize_t n;
        int fds[COMET_SLOT_SEND_FDS], ours = 0;
        apr_size_t nfds = 0, used = 0, i;

        memset(&m, 0, sizeof(m));
        m.msg_iov = &iov;
        m.msg_iovlen = 1;
        m.msg_control = ctl.b;
        m.msg_controllen = sizeof(ctl.b);
        if ((n = recvmsg(wfd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC)) <= 0) {
            return;
        }
        for (c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS
                && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
                apr_size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (i = 0; i < k && nfds < COMET_SLOT_SEND_FDS; i++) {
                    memcpy(&fds[nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                }
            }
            else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS
                     && c->cmsg_len >= CMSG_LEN(sizeof(struct ucred))) {
                struct ucred cr;
                memcpy(&cr, CMSG_DATA(c), sizeof(cr));
                ours = cr.uid == geteuid();
            }
        }
        if (n >= 4 && (!memcmp(buf, COMET_HANDOFF_MAGIC, 4)
                       || !memcmp(buf, COMET_HANDOFF_BATCH_MAGIC, 4)) && !ours) {
            rlog(r, COMET_LOG_WARN, APR_EACCES, "comet: a stream handed over by a process "
                 "of another user: refused");
        }
        else if (n >= 4 && !memcmp(buf, COMET_HANDOFF_MAGIC, 4)) {
            handoff_adopt(r, buf, (apr_size_t)n, nfds ? fds[0] : -1);
            used = nfds ? 1 : 0;
        }
        else if (n >= 4 && !memcmp(buf, COMET_HANDOFF_BATCH_MAGIC, 4)) {
            /* each record with its socket, in order; what does not pair
             * up is not understood (handoff_adopt closes what it gets) */
            const char *next, *rec, *end = buf + n;
            apr_uint32_t count = 0;
            apr_size_t len;
            if (comet_handoff_batch_open(buf, (apr_size_t)n, &count, &next) == APR_SUCCESS) {
                for (; used < count && used < nfds
                       && comet_handoff_batch_take(&next, end, &rec, &len) == APR_SUCCESS;
                     used++) {
                    handoff_adopt(r, rec, len, fds[used]);
                }
            }
            if (used < nfds || used < count) {
                rlog(r, COMET_LOG_WARN, APR_EINVAL, "comet: a batch of streams handed over "
                     "is not understood: %" APR_SIZE_T_FMT " of its %" APR_SIZE_T_FMT
                     " sockets closed", nfds - used, nfds);
            }
        }
        for (i = used; i < nfds; i++) {
            close(fds[i]);
        }
        /* read: off `incoming` (those adopted count there again until on_cmd
         * enlists them) */
        comet_counter_sub(&r->cnt->incoming, (apr_uint32_t)nfds);
    }
}

/* The store's wake socket: mark the channels our inbox names. */
static void on_wake(comet_loop_t *l, comet_loop_io_t *io, apr_uint32_t events)
{
    comet_reactor_t *r = comet_loop_baton(l);
    comet_chan_ref_t refs[1024];
    apr_size_t n, i;
    int overflow;
    apr_status_t rv;

    wake_read(r, io->fd);
    rv = r->store->drain(r->store, r->slot, refs, sizeof(refs) / sizeof(refs[0]),
                         &n, &overflow);
    if (rv != APR_SUCCESS) {
        rlog(r, COMET_LOG_ERR, rv, "comet: cannot read this process' inbox");
        return;
    }
    if (overflow) {
        apr_size_t b;
        for (b = 0; b < LCHAN_BUCKETS; b++) {
            lchan_t *c;
            for (c = r->by_idx[b]; c; c = c->hnext_idx) {
                lchan_mark_dirty(r, c);
            }
        }
    }
    for (i = 0; i < n; i++) {
        lchan_t *c = lchan_by_ref(r, &refs[i]);
        if (c && c->ref.gen == refs[i].gen) {
            lchan_mark_dirty(r, c);
        }
    }
}

/* Held subscribers whose handler gave up: drop them now. */
static void held_release_all(comet_held_t *rel)
{
    while (rel) {
        comet_held_t *h = rel;
        rel = h->rnext;
        if (h->sub && !h->sub->closed) {
            if (h->client_left) {
                sub_interrupted(h->sub);
            }
            sub_close(h->sub, 1);
        }
        held_unref(h);            /* the handler's reference */
    }
}

/* The commands of handler threads: new subscribers, then releases. In
 * that order: a handler may give up a held subscriber whose addition waits
 * in the same batch (a SockJS receiver whose client took "o" from the
 * handler and left at once), and only an attached one can be interrupted. */
static void on_cmd(comet_reactor_t *r)
{
    sub_t *list, *s, *rev = NULL;
    comet_held_t *rel;

    pthread_mutex_lock(&r->cmd_mu);
    list = r->cmd_head;
    r->cmd_head = NULL;
    rel = r->rel_head;
    r->rel_head = NULL;
    pthread_mutex_unlock(&r->cmd_mu);
    /* oldest first */
    while ((s = list) != NULL) {
        list = s->cnext;
        s->cnext = rev;
        rev = s;
    }
    while ((s = rev) != NULL) {
        rev = s->cnext;
        s->cnext = NULL;
        sub_attach(r, s);
        comet_counter_sub(&r->cnt->incoming, 1);
        if (r->draining && !r->moving && r->move_until > apr_time_now()) {
            r->moving = 1;            /* one handed us late: on it goes */
        }
        if (r->draining && !r->moving) {
            sub_end(s, COMET_END_RECONNECT);
        }
    }
    recent_release(r);
    held_release_all(rel);
}

/* comet_loop_wakeup from a handler thread: a command waits. */
static void on_loop_wakeup(comet_loop_t *l)
{
    on_cmd(comet_loop_baton(l));
}

/* A heartbeat: something for the client to read, or for a poll (oneshot)
 * with nothing to say, its answer. */
static void sub_heartbeat(sub_t *s, apr_time_t now)
{
    comet_buf_t b = { 0 };

    if (s->t->oneshot) {
        if (s->session && s->t->heartbeat && s->t->heartbeat(&b, &s->params) == 0) {
            sub_queue_own(s, &b);
        }
        comet_buf_free(&b);
        sub_end(s, COMET_END_TIMEOUT);
        return;
    }
    if (s->t->heartbeat) {
        if (s->t->heartbeat(&b, &s->params) == 0) {
            sub_queue_own(s, &b);
        }
        comet_buf_free(&b);
    }
    s->last_write = now;
    if (s->pings) {
        s->last_ping = now;
    }
    sub_want_flush(s->r, s);
    sub_schedule(s);
}

/* A subscriber's deadline (sub_deadline): close grace, lifetime, heartbeat. */
static void sub_on_timer(comet_loop_t *l, comet_loop_timer_t *t, apr_time_t now)
{
    sub_t *s = COMET_LOOP_CONTAINER(t, sub_t, timer);

    if (s->closed) {
        return;
    }
    if (s->closing) {
        /* the client did not take the end of its stream in time */
        sub_close(s, 1);
        return;
    }
    if (s->end_at && now >= s->end_at) {
        sub_end(s, COMET_END_RECONNECT);
        return;
    }
    if (s->pings && now >= s->last_read + WS_IDLE(s->heartbeat)) {
        rlog(s->r, COMET_LOG_INFO, APR_TIMEUP, "comet: closing the WebSocket of %s: nothing "
             "from its client for %" APR_TIME_T_FMT " ms, not even the answers to its pings "
             "(2.5 heartbeats)", s->peer, apr_time_as_msec(now - s->last_read));
        sub_close(s, 1);
        return;
    }
    if (s->heartbeat && now >= sub_beat_at(s)) {
        sub_heartbeat(s, now);
        return;
    }
    sub_schedule(s);
}

/*******************************************************************************
 * a stopping child's streams go on in live children (CometMoveStreams)
 ******************************************************************************/

/* Could this stream move once nothing waits to be written to it? */
static int sub_may_move(const sub_t *s)
{
    apr_size_t i;

    /* (a long-poll that has its messages is answered here) */
    if (s->fd < 0 || s->ops || s->ws || s->session || s->held || s->closing || s->closed
        || (s->t->oneshot && (s->sent_batch || s->nbatch)) || s->input_len || !s->nlinks) {
        return 0;
    }
    for (i = 0; i < s->nlinks; i++) {
        if (!s->links[i].ch || s->links[i].ch->gone) {
            return 0;
        }
    }
    return 1;
}

/* The spec of a running stream, for comet_handoff_batch_add. */
static void sub_live_spec(const sub_t *s, comet_sub_spec_t *spec)
{
    apr_size_t i;

    memset(spec, 0, sizeof(*spec));
    spec->transport = s->t;
    spec->fd = s->fd;
    spec->chunked = s->chunked;
    spec->nchannels = s->nlinks;
    for (i = 0; i < s->nlinks; i++) {
        spec->channels[i] = s->links[i].ch->name;
        spec->channel_lens[i] = s->links[i].ch->name_len;
        spec->since[i] = s->links[i].cursor;
        spec->refs[i] = s->links[i].ch->ref;
    }
    spec->heartbeat = s->heartbeat;
    spec->byte_limit = s->byte_limit;
    spec->queue_limit = s->queue_limit;
    spec->peer = s->peer;
    spec->params = s->params;
    spec->presubscribed = 1;
    spec->live = 1;
    spec->written = s->written;
    spec->end_at = s->end_at;
    spec->began = s->began;
    spec->origin = s->origin;
}

typedef struct {
    int slot;                     /* 0: not this turn (full or gone) */
    apr_uint32_t load;            /* its streams, with those sent it since */
} move_target_t;

#define MOVE_TARGETS 256

/* The live children that may take streams: every child's slot but ours
 * and those winding down; with `after`, only loops started since then (a
 * graceful restart's next generation, a child started for a stopped one:
 * not a sibling about to be told to stop too). */
static apr_size_t move_targets(comet_reactor_t *r, move_target_t *t, apr_time_t after)
{
    comet_slot_info_t slots[MOVE_TARGETS];
    apr_size_t n = 0, i, k = 0;

    if (!r->store->slot_list || !r->store->slot_send
        || r->store->slot_list(r->store, slots, MOVE_TARGETS, &n) != APR_SUCCESS) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (slots[i].slot != r->slot && slots[i].counters.kind == COMET_SLOT_CHILD
            && !slots[i].counters.draining && (apr_time_t)slots[i].counters.started > after) {
            t[k].slot = slots[i].slot;
            t[k++].load = slots[i].counters.subscribers + slots[i].counters.incoming;
        }
    }
    return k;
}

/* Of the targets still open this turn, the one with the fewest streams;
 * -1 if none. */
static int target_fewest(const move_target_t *t, apr_size_t k)
{
    apr_size_t i;
    int best = -1;

    for (i = 0; i < k; i++) {
        if (t[i].slot && (best < 0 || t[i].load < t[best].load)) {
            best = (int)i;
        }
    }
    return best;
}

/* Send a batch to the live child with the fewest streams that has room;
 * on success its streams leave this loop without a byte more: their
 * descriptors close (the other child has its own, so the connections
 * stay) and their links go as any ending stream's do.
 * @return 1 if sent, 0 if every child is full (or gone) this turn */
static int move_batch(comet_reactor_t *r, move_target_t *t, apr_size_t k, sub_t **batch,
                      apr_size_t nb, const comet_buf_t *b)
{
    int fds[COMET_SLOT_SEND_FDS];
    apr_size_t i;

    for (i = 0; i < nb; i++) {
        fds[i] = batch[i]->fd;
    }
    for (;;) {
        int best = target_fewest(t, k);
        apr_status_t rv;
        if (best < 0) {
            return 0;
        }
        rv = r->store->slot_send(r->store, t[best].slot, b->data, b->len, fds, nb);
        if (rv == APR_SUCCESS) {
            for (i = 0; i < nb; i++) {
                rlog(r, COMET_LOG_TRACE, 0, "comet: stream of %s moved to slot %d",
                     batch[i]->peer, t[best].slot);
                sub_close(batch[i], 0);
            }
            t[best].load += (apr_uint32_t)nb;
            r->moved += (apr_uint32_t)nb;
            if (!r->move_first) {
                r->move_first = apr_time_now();
            }
            return 1;
        }
        if (rv != APR_EAGAIN) {
            rlog(r, COMET_LOG_DEBUG, rv, "comet: cannot hand streams to slot %d", t[best].slot);
        }
        t[best].slot = 0;
    }
}

/* One turn of moving: the streams that can move and have nothing waiting
 * go, in batches, to the live children with the fewest streams (children
 * started since this one was told to stop first, for a while); what
 * cannot move ends now, what could not move in time ends at move_until. A
 * child whose socket is full (it queues a few datagrams) gets more next
 * turn. */
static void move_step(comet_reactor_t *r, apr_time_t now)
{
    move_target_t t[MOVE_TARGETS];
    sub_t *batch[COMET_SLOT_SEND_FDS], *s = r->subs;
    apr_size_t k = 0, nb, left = 0;
    comet_buf_t b = { 0 };
    int room = 1;

    if (now < r->move_until) {
        k = move_targets(r, t, now < r->move_began + MOVE_PREFER_NEW ? r->move_began : 0);
    }
    while (s) {
        nb = 0;
        b.len = 0;
        for (; s && nb < COMET_SLOT_SEND_FDS; s = s->next) {
            comet_sub_spec_t spec;
            if (s->closing || s->closed) {
                continue;
            }
            if (now >= r->move_until || !sub_may_move(s)) {
                r->move_failed++;
                sub_end(s, COMET_END_RECONNECT);
                continue;
            }
            left++;
            if (s->qhead || !k || !room) {
                continue;         /* a write under way, or nowhere to go yet */
            }
            sub_live_spec(s, &spec);
            if (comet_handoff_batch_add(&b, &spec, r->slot) < 0) {
                r->move_failed++;
                left--;
                sub_end(s, COMET_END_RECONNECT);
                continue;
            }
            batch[nb++] = s;
        }
        if (nb && move_batch(r, t, k, batch, nb, &b)) {
            left -= nb;
        }
        else if (nb) {
            room = 0;             /* the rest waits for the next turn */
        }
    }
    comet_buf_free(&b);
    if (!left) {
        r->moving = 0;
        r->drain_until = now + CLOSE_GRACE;
        if (r->moved || r->move_failed) {
            rlog(r, COMET_LOG_INFO, 0, "comet: this child stops: %u streams moved to live "
                 "children, %u ended (reconnect); the first moved after %" APR_TIME_T_FMT
                 " ms, the last after %" APR_TIME_T_FMT " ms", r->moved, r->move_failed,
                 r->move_first ? apr_time_as_msec(r->move_first - r->move_began) : -1,
                 apr_time_as_msec(now - r->move_began));
        }
    }
}

static void begin_drain(comet_reactor_t *r)
{
    apr_time_t now = apr_time_now();
    sub_t *s;

    r->draining = 1;
    r->drain_until = now + CLOSE_GRACE;
    if (apr_atomic_read32(&r->move) && r->store->slot_send && r->store->slot_list) {
        /* until a live child is there (a new generation starts after
         * this one is told to stop), the streams go on here */
        r->moving = 1;
        /* from when we were told: a child started since, even before this
         * loop woke, is of the next generation */
        r->move_began = (apr_time_t)apr_atomic_read64(&r->told_at);
        r->move_began = r->move_began ? r->move_began : now;
        r->move_until = now + MOVE_WAIT;
        r->drain_until = r->move_until + CLOSE_GRACE;
        /* a child that read the slots before ours said "draining" may
         * still hand us streams: their datagrams must find us reading, as
         * a socket closed with them queued would close their connections */
        r->settle_until = now + MOVE_SETTLE;
        move_step(r, now);
        return;
    }
    for (s = r->subs; s; s = s->next) {
        sub_end(s, COMET_END_RECONNECT);
    }
}

/* The steps of a turn after I/O (see the top of this file).
 * @return 1 when the loop is over */
static int reactor_turn(comet_reactor_t *r)
{
    apr_time_t now = apr_time_now();

    pull_dirty(r);
    comet_loop_expire(r->loop, now);
    if (apr_atomic_read32(&r->stopping) && !r->draining) {
        begin_drain(r);
    }
    flush_all(r);
    if (r->moving) {
        move_step(r, now);
    }
    reap(r);
    if (now >= r->next_maint) {
        apr_status_t rv = r->store->maintain(r->store, now);
        if (rv != APR_SUCCESS) {
            rlog(r, COMET_LOG_WARN, rv, "comet: store housekeeping failed");
        }
        r->next_maint = now + MAINT_EVERY;
    }
    return r->draining && ((!r->subs && !r->moving && now >= r->settle_until)
                           || now >= r->drain_until);
}

static void *reactor_main(void *arg)
{
    comet_reactor_t *r = arg;
    sub_t *s;

    r->next_maint = apr_time_now();
    for (;;) {
        apr_time_t until = r->next_maint;
        apr_status_t rv;

        if (r->draining && r->drain_until < until) {
            until = r->drain_until;
        }
        if (r->moving) {
            apr_time_t soon = apr_time_now() + MOVE_RETRY;
            until = soon < until ? soon : until;
        }
        if (r->draining && r->settle_until > apr_time_now() && r->settle_until < until) {
            until = r->settle_until;
        }
        rv = comet_loop_poll(r->loop, until);
        if (rv != APR_SUCCESS) {
            rlog(r, COMET_LOG_ERR, rv, "comet: epoll_wait failed");
            break;
        }
        if (reactor_turn(r)) {
            break;
        }
    }
    /* whatever is left: close; from now on handlers release by themselves */
    for (s = r->subs; s; s = s->next) {
        sub_close(s, 1);
    }
    r->moving = 0;
    r->move_until = 0;
    pthread_mutex_lock(&r->cmd_mu);
    r->exited = 1;
    pthread_mutex_unlock(&r->cmd_mu);
    on_cmd(r);
    reap(r);
    /* permessage-deflate's (de)compressor of this thread */
    comet_ws_deflate_release();
    return NULL;
}

/*******************************************************************************
 * public functions
 ******************************************************************************/

apr_status_t comet_reactor_create(comet_reactor_t **rp, comet_store_t *store,
                                  int slot, int wake_fd, comet_log_fn *log,
                                  void *log_baton)
{
    comet_reactor_t *r = calloc(1, sizeof(*r));
    apr_status_t rv;

    if (!r) {
        return APR_ENOMEM;
    }
    r->store = store;
    r->slot = slot;
    r->cnt = store->slot_counters ? store->slot_counters(store, slot) : NULL;
    if (!r->cnt) {
        r->cnt = &r->own_cnt;
    }
    apr_atomic_set64(&r->cnt->started, (apr_uint64_t)apr_time_now());
    r->log = log;
    r->log_baton = log_baton;
    r->batch_tail = &r->batch;
    r->dirty_tail = &r->dirty_head;
    rv = comet_loop_create(&r->loop, on_loop_wakeup, r);
    if (rv == APR_SUCCESS) {
        int on = 1;
        /* who sent a datagram: streams are taken from our own user only (the
         * shm store sets this before it binds the name; any store, again) */
        (void)setsockopt(wake_fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on));
        rv = comet_loop_io_add(r->loop, &r->wake_io, wake_fd, COMET_LOOP_READ, on_wake);
        if (rv != APR_SUCCESS) {
            comet_loop_destroy(r->loop);
        }
    }
    if (rv != APR_SUCCESS) {
        free(r);
        return rv;
    }
    pthread_mutex_init(&r->cmd_mu, NULL);
    *rp = r;
    return APR_SUCCESS;
}

apr_status_t comet_reactor_start(comet_reactor_t *r)
{
    pthread_attr_t attr;
    int rc;

    pthread_attr_init(&attr);
    /* the loop needs little stack; keep virtual memory modest */
    pthread_attr_setstacksize(&attr, 1024 * 1024);
    rc = pthread_create(&r->thread, &attr, reactor_main, r);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        return rc;
    }
    r->started = 1;
    return APR_SUCCESS;
}

void comet_reactor_quiesce(comet_reactor_t *r, int move)
{
    if (r) {
        apr_atomic_set64(&r->told_at, (apr_uint64_t)apr_time_now());
        apr_atomic_set32(&r->move, move ? 1 : 0);
        apr_atomic_set32(&r->stopping, 1);
        apr_atomic_set32(&r->cnt->draining, 1);
        comet_loop_wakeup(r->loop);
    }
}

/* Subscribers handed over after the loop ended: never attached. */
static void cmd_discard(comet_reactor_t *r)
{
    sub_t *s;
    apr_size_t i;

    pthread_mutex_lock(&r->cmd_mu);
    while ((s = r->cmd_head) != NULL) {
        r->cmd_head = s->cnext;
        if (s->ops) {
            s->ops->destroy(s->conn, 1);
        }
        if (s->fd >= 0) {
            close(s->fd);
        }
        if (s->held) {
            pthread_mutex_lock(&s->held->mu);
            s->held->ended = 1;
            pthread_mutex_unlock(&s->held->mu);
            held_unref(s->held);
        }
        for (i = 0; i < s->nlinks; i++) {
            free(s->links[i].ch);
        }
        sub_free(s);
    }
    pthread_mutex_unlock(&r->cmd_mu);
}

void comet_reactor_destroy(comet_reactor_t *r)
{
    qnode_t *q;
    apr_size_t b;

    if (!r) {
        return;
    }
    apr_atomic_set32(&r->stopping, 1);
    if (r->cnt) {
        apr_atomic_set32(&r->cnt->draining, 1);
    }
    if (r->started) {
        comet_loop_wakeup(r->loop);
        pthread_join(r->thread, NULL);
    }
    cmd_discard(r);
    for (b = 0; b < LCHAN_BUCKETS; b++) {
        lchan_t *c = r->by_name[b], *next;
        for (; c; c = next) {
            next = c->hnext_name;
            free(c);
        }
    }
    while ((q = r->qfree) != NULL) {
        r->qfree = q->next;
        free(q);
    }
    comet_loop_destroy(r->loop);
    pthread_mutex_destroy(&r->cmd_mu);
    free(r);
}

/* A subscriber from a handler's spec, without its channels yet. */
static sub_t *sub_create(comet_reactor_t *r, const comet_sub_spec_t *spec)
{
    apr_time_t now = apr_time_now();
    sub_t *s = calloc(1, sizeof(*s) + spec->nchannels * sizeof(link_t));

    if (!s) {
        return NULL;
    }
    s->r = r;
    s->fd = spec->fd;
    s->ops = spec->ops;
    s->conn = spec->conn;
    s->t = spec->transport;
    s->chunked = spec->chunked ? 1 : 0;
    s->heartbeat = spec->heartbeat;
    s->end_at = spec->live ? spec->end_at : spec->lifetime ? now + spec->lifetime : 0;
    s->written = spec->live ? spec->written : 0;
    s->byte_limit = spec->byte_limit;
    s->queue_limit = spec->queue_limit ? spec->queue_limit : (apr_size_t)1 << 20;
    s->last_write = s->last_read = now;
    s->began = spec->live && spec->began ? spec->began : now;
    apr_cpystrn(s->peer, spec->peer ? spec->peer : "-", sizeof(s->peer));
    if (spec->origin && !(s->origin = strdup(spec->origin))) {
        sub_free(s);
        return NULL;
    }
    s->session = spec->session ? 1 : 0;
    s->presubscribed = spec->presubscribed ? 1 : 0;
    s->resumable = spec->resumable ? 1 : 0;
    s->token = spec->token;
    s->params = spec->params;
    if (spec->params.callback) {
        s->callback = strdup(spec->params.callback);
        s->params.callback = s->callback;
    }
    if (spec->websocket
        && (spec->hixie ? comet_ws_create_hixie(&s->ws, spec->hixie_keys[0], spec->hixie_keys[1],
                                                spec->hixie_greeting, spec->hixie_greeting_len,
                                                spec->ws_max_message, spec->upstream,
                                                spec->upstream_baton)
                        : comet_ws_create(&s->ws, spec->ws_max_message, spec->upstream,
                                          spec->upstream_baton)) != APR_SUCCESS) {
        sub_free(s);
        return NULL;
    }
    if (s->ws && spec->ws_deflate) {
        comet_ws_set_deflate(s->ws);
    }
    s->pings = spec->websocket && !spec->hixie && spec->heartbeat;
    if (spec->input_len) {
        if (!(s->input = malloc(spec->input_len))) {
            sub_free(s);
            return NULL;
        }
        memcpy(s->input, spec->input, spec->input_len);
        s->input_len = spec->input_len;
    }
    return s;
}

/* Give each link a provisional channel holding the requested name, turned
 * into the shared local channel by the reactor (sub_attach).
 * @return APR_SUCCESS, APR_EINVAL (a bad name) or APR_ENOMEM */
static apr_status_t sub_set_channels(sub_t *s, const comet_sub_spec_t *spec)
{
    apr_size_t i;

    for (i = 0; i < spec->nchannels; i++) {
        lchan_t *c = calloc(1, sizeof(*c));
        if (!c || !comet_store_name_valid(spec->channels[i], spec->channel_lens[i])) {
            apr_size_t k;
            free(c);
            for (k = 0; k < i; k++) {
                free(s->links[k].ch);
            }
            return c ? APR_EINVAL : APR_ENOMEM;
        }
        memcpy(c->name, spec->channels[i], spec->channel_lens[i]);
        c->name_len = spec->channel_lens[i];
        c->ref = spec->refs[i];
        c->hash = comet_hash32(c->name, c->name_len);
        s->links[i].ch = c;
        s->links[i].since = spec->since[i];
    }
    s->nlinks = spec->nchannels;
    return APR_SUCCESS;
}

/* The handle a handler thread waits on for a held subscriber. */
static comet_held_t *held_create(comet_reactor_t *r, sub_t *s)
{
    comet_held_t *h = calloc(1, sizeof(*h));

    if (!h || (h->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
        free(h);
        return NULL;
    }
    pthread_mutex_init(&h->mu, NULL);
    h->r = r;
    h->sub = s;
    h->refs = 2;
    h->limit = s->queue_limit;
    return h;
}

/* Of two live children drawn at random, the one with fewer streams; -1 if
 * there is none. */
static int forward_pick(const move_target_t *t, apr_size_t k)
{
    static __thread unsigned int seed;
    int a, b;

    if (!k) {
        return -1;
    }
    if (!seed) {
        seed = (unsigned int)apr_time_now() ^ (unsigned int)(apr_uintptr_t)&seed;
    }
    a = (int)(rand_r(&seed) % k);
    b = (int)(rand_r(&seed) % k);
    return t[b].load < t[a].load ? b : a;
}

/* Most children a stream is offered to: one whose wake socket is full (it
 * queues a few datagrams, and a connect burst fills it) passes its turn
 * to the next with the fewest. */
#define FORWARD_TRIES 4

apr_status_t comet_reactor_forward(comet_reactor_t *r, const comet_sub_spec_t *spec)
{
    move_target_t t[MOVE_TARGETS];
    comet_buf_t b = { 0 };
    apr_uint32_t mine;
    apr_status_t rv = APR_EAGAIN;
    apr_size_t k;
    int moving = comet_reactor_moving(r), tries, i;

    if (!comet_handoff_movable(spec)) {
        return APR_ENOTIMPL;
    }
    mine = apr_atomic_read32(&r->cnt->subscribers) + apr_atomic_read32(&r->cnt->incoming);
    if ((!moving && (apr_atomic_read32(&r->stopping) || mine < 2))
        || !(k = move_targets(r, t, 0))) {
        return APR_EAGAIN;
    }
    if (comet_handoff_pack(&b, spec, r->slot) < 0) {
        comet_buf_free(&b);
        return APR_ENOMEM;
    }
    /* a stopping child's go to the fewest; a live child's to the fewer of
     * two drawn at random (children deciding at once do not all pick the
     * same), if this one has two more at least */
    for (tries = 0; tries < FORWARD_TRIES; tries++) {
        i = moving || tries ? target_fewest(t, k) : forward_pick(t, k);
        if (i < 0 || (!moving && t[i].load + 2 > mine)) {
            rv = APR_EAGAIN;
            break;
        }
        rv = r->store->slot_send(r->store, t[i].slot, b.data, b.len, &spec->fd, 1);
        if (rv == APR_SUCCESS) {
            rlog(r, COMET_LOG_TRACE, 0, "comet: stream of %s handed to slot %d",
                 spec->peer ? spec->peer : "-", t[i].slot);
            break;
        }
        if (rv != APR_EAGAIN) {
            break;
        }
        t[i].slot = 0;            /* full: the next */
    }
    comet_buf_free(&b);
    return rv;
}

void comet_reactor_set_resolve(comet_reactor_t *r, comet_reactor_resolve_fn *fn, void *baton)
{
    r->resolve = fn;
    r->resolve_baton = baton;
}

int comet_reactor_stopping(comet_reactor_t *r)
{
    return apr_atomic_read32(&r->stopping) != 0;
}

int comet_reactor_moving(comet_reactor_t *r)
{
    return r && apr_atomic_read32(&r->stopping) && apr_atomic_read32(&r->move);
}

/* comet_reactor_add; even_stopping: a stream another loop handed us while
 * this one stops with move (it passes it on). */
static apr_status_t reactor_add(comet_reactor_t *r, const comet_sub_spec_t *spec,
                                comet_held_t **heldp, int even_stopping)
{
    sub_t *s;
    apr_size_t i;
    apr_status_t rv;

    if (spec->nchannels < 1 || spec->nchannels > COMET_SUB_CHANNELS_MAX
        || spec->transport->index >= COMET_TRANSPORTS_MAX) {
        return APR_EINVAL;
    }
    if (apr_atomic_read32(&r->stopping) && !even_stopping) {
        return APR_EAGAIN;
    }
    if (!(s = sub_create(r, spec))) {
        return APR_ENOMEM;
    }
    if ((rv = sub_set_channels(s, spec)) != APR_SUCCESS) {
        sub_free(s);
        return rv;
    }
    if (spec->fd < 0) {
        if (!(s->held = held_create(r, s))) {
            for (i = 0; i < s->nlinks; i++) {
                free(s->links[i].ch);
            }
            sub_free(s);
            return APR_ENOMEM;
        }
        *heldp = s->held;
    }
    pthread_mutex_lock(&r->cmd_mu);
    if (r->exited) {
        /* (only a stopping loop's: it was still taking streams to pass on) */
        pthread_mutex_unlock(&r->cmd_mu);
        for (i = 0; i < s->nlinks; i++) {
            free(s->links[i].ch);
        }
        if (s->held) {
            close(s->held->efd);
            pthread_mutex_destroy(&s->held->mu);
            free(s->held);
        }
        sub_free(s);
        return APR_EAGAIN;
    }
    /* ours from now on (the caller keeps it on failure) */
    s->upstream_baton = spec->upstream_baton;
    s->on_end = spec->on_end;
    s->cnext = r->cmd_head;
    r->cmd_head = s;
    apr_atomic_inc32(&r->cnt->incoming);   /* until on_cmd counts it */
    pthread_mutex_unlock(&r->cmd_mu);
    comet_loop_wakeup(r->loop);
    return APR_SUCCESS;
}

apr_status_t comet_reactor_add(comet_reactor_t *r, const comet_sub_spec_t *spec,
                               comet_held_t **heldp)
{
    /* a plain stream a stopping child's handler took (its connection came
     * just before the stop) moves on with the others */
    return reactor_add(r, spec, heldp, comet_reactor_moving(r) && spec->fd >= 0 && !spec->ops);
}

void comet_reactor_counts(comet_reactor_t *r, comet_reactor_counts_t *c)
{
    c->subscribers = apr_atomic_read32(&r->cnt->subscribers);
    c->held = apr_atomic_read32(&r->cnt->held);
    c->channels = apr_atomic_read32(&r->cnt->channels);
    c->delivered = apr_atomic_read64(&r->cnt->delivered);
    c->dropped = apr_atomic_read64(&r->cnt->dropped);
}

apr_status_t comet_held_wait(comet_held_t *h, int client_fd,
                             apr_interval_time_t timeout, comet_buf_t *out)
{
    for (;;) {
        struct pollfd pfd[2];
        int n = 1;
        apr_uint64_t v;

        pthread_mutex_lock(&h->mu);
        if (h->pending.len) {
            int rc = comet_buf_append(out, h->pending.data, h->pending.len);
            h->pending.len = 0;
            if (rc == 0 && !h->ended) {
                pthread_mutex_unlock(&h->mu);
                return APR_SUCCESS;
            }
        }
        if (h->ended) {
            pthread_mutex_unlock(&h->mu);
            return APR_EOF;
        }
        pthread_mutex_unlock(&h->mu);

        pfd[0].fd = h->efd;
        pfd[0].events = POLLIN;
        pfd[0].revents = 0;
        if (client_fd >= 0) {
            /* only a hang-up: bytes from a TLS peer are not ours to read */
            pfd[1].fd = client_fd;
            pfd[1].events = POLLRDHUP;
            pfd[1].revents = 0;
            n = 2;
        }
        n = poll(pfd, n, timeout < 0 ? -1 : (int)apr_time_as_msec(timeout));
        if (n < 0 && errno != EINTR) {
            return errno;
        }
        if (n == 0) {
            return APR_TIMEUP;
        }
        n = client_fd >= 0 ? 2 : 1;
        if (pfd[0].revents & POLLIN) {
            if (read(h->efd, &v, sizeof(v)) < 0) {
                /* raced with another read: fine */
            }
        }
        if (n == 2 && (pfd[1].revents & (POLLRDHUP | POLLHUP | POLLERR))) {
            return APR_ECONNABORTED;
        }
    }
}

void comet_held_release(comet_held_t *h, int client_left)
{
    comet_reactor_t *r = h->r;

    pthread_mutex_lock(&h->mu);
    h->gone = 1;
    h->client_left = client_left;
    pthread_mutex_unlock(&h->mu);
    /* let the reactor drop the stream now rather than at its next write */
    pthread_mutex_lock(&r->cmd_mu);
    if (!r->exited) {
        h->rnext = r->rel_head;
        r->rel_head = h;
        pthread_mutex_unlock(&r->cmd_mu);
        comet_loop_wakeup(r->loop);
        return;
    }
    pthread_mutex_unlock(&r->cmd_mu);
    held_unref(h);
}
