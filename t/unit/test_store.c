/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/* Unit tests of the shared-memory store, without httpd: several processes
 * sharing one segment and one lock, as Apache's children do. */

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>
#include <poll.h>
#include <sys/wait.h>

#include <apr_general.h>
#include <apr_shm.h>
#include <apr_global_mutex.h>

#include "comet_store_shm.h"
#include "unit.h"

static apr_pool_t *pool;
static apr_shm_t *shm;
static apr_global_mutex_t *mutex;
static comet_store_t *st;

static comet_limits_t lim = { 100, 0, 65536 };

typedef struct {
    char data[70000];
    apr_size_t len;
    comet_id_t ids[256];
    int n;
} sink_t;

static sink_t sink;
static int fetch_slot;      /* 0: replays; a slot: that process' pull */

static char *sink_alloc(void *baton, comet_id_t id, apr_uint32_t flags, apr_time_t published,
                        apr_size_t len)
{
    sink_t *k = baton;

    if (k->n == 256 || len > sizeof(k->data)) {
        return NULL;
    }
    k->ids[k->n++] = id;
    k->len = len;
    return k->data;
}

static comet_fetch_result_t fetch(const comet_chan_ref_t *ref, comet_id_t since)
{
    comet_fetch_result_t res;

    memset(&sink, 0, sizeof(sink));
    st->fetch(st, ref, fetch_slot, since, sink_alloc, &sink, &res);
    return res;
}

static apr_uint32_t used_blocks(void)
{
    comet_store_stats_t s;

    st->stats(st, &s);
    return s.blocks_used;
}

static void setup(apr_size_t size, int nslots)
{
    apr_status_t rv;

    rv = apr_shm_create(&shm, size, NULL, pool);
    if (rv == APR_SUCCESS) {
        rv = comet_store_shm_init(apr_shm_baseaddr_get(shm), size, nslots, "unit", 1);
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

static void test_publish_fetch(void)
{
    comet_publish_result_t r1, r2, r3;
    comet_chan_ref_t ref, ref2;
    comet_fetch_result_t res;
    comet_channel_info_t info;
    comet_id_t last = 1;
    char big[10000];
    int i;

    OK(st->publish(st, "news", 4, "one", 3, 0, &lim, &r1) == APR_SUCCESS, "publish creates a channel");
    OK(st->publish(st, "news", 4, "two", 3, 0, &lim, &r2) == APR_SUCCESS, "publish again");
    OK(r2.id > r1.id, "ids increase");
    OK(r1.id > (comet_id_t)apr_time_now() - apr_time_from_sec(60),
       "ids start from the clock (survive a restart)");
    OK(st->subscribe(st, 1, "news", 4, 1, 0, &ref, &last) == APR_SUCCESS, "subscribe to it");
    OK(last == r2.id, "subscribing tells the last id, where a new stream starts");
    OK(st->subscribe(st, 1, "fresh", 5, 1, 0, &ref2, &last) == APR_SUCCESS && last == 0,
       "... 0 on a channel without messages");
    st->unsubscribe(st, 1, &ref2, 1);
    res = fetch(&ref, 0);
    OK(res.count == 2 && sink.ids[0] == r1.id && sink.ids[1] == r2.id, "since 0: all, in order");
    OK(res.last_id == r2.id, "last id reported");
    res = fetch(&ref, r1.id);
    OK(res.count == 1 && sink.ids[0] == r2.id && sink.len == 3 && !memcmp(sink.data, "two", 3),
       "since the first: the second only");
    res = fetch(&ref, r2.id);
    OK(res.count == 0 && !res.gap, "since the last: nothing");
    res = fetch(&ref, COMET_ID_NONE);
    OK(res.count == 0 && res.last_id == r2.id, "no since: nothing, but the last id");

    for (i = 0; i < (int)sizeof(big); i++) {
        big[i] = (char)(i * 7 + 3);
    }
    OK(st->publish(st, "news", 4, big, sizeof(big), 0, &lim, &r3) == APR_SUCCESS, "a 10000-byte message");
    res = fetch(&ref, r2.id);
    OK(res.count == 1 && sink.len == sizeof(big) && !memcmp(sink.data, big, sizeof(big)),
       "comes back intact across blocks");
    OK(st->info(st, "news", 4, &info) == APR_SUCCESS && info.messages == 3
       && info.subscribers == 1 && info.last_id == r3.id && info.first_id == r1.id
       && info.bytes == 6 + sizeof(big), "info: messages, subscribers, ids, bytes");
    OK(st->info(st, "nope", 4, &info) == APR_NOTFOUND, "info of an unknown channel: not found");
    OK(st->publish(st, "bad.id", 6, "x", 1, 0, &lim, &r1) == APR_EINVAL, "invalid channel id refused");
    OK(st->publish(st, "news", 4, big, sizeof(big), 0, &(comet_limits_t){ 10, 0, 100 }, &r1)
       == APR_EINVAL, "over the size limit refused");
    OK(st->unsubscribe(st, 1, &ref, 1) == APR_SUCCESS, "unsubscribe");
    OK(st->remove(st, "news", 4, NULL) == APR_SUCCESS, "delete the channel");
    res = fetch(&ref, 0);
    OK(res.gone, "a fetch finds it gone");
    OK(used_blocks() == 0, "every block given back");
}

static void test_buffer_and_ttl(void)
{
    comet_limits_t small = { 3, 0, 1000 };
    comet_limits_t brief = { 10, apr_time_from_msec(50), 1000 };
    comet_publish_result_t r[5];
    comet_chan_ref_t ref;
    comet_fetch_result_t res;
    int i;

    for (i = 0; i < 5; i++) {
        st->publish(st, "buf", 3, "m", 1, 0, &small, &r[i]);
    }
    st->subscribe(st, 1, "buf", 3, 1, 0, &ref, NULL);
    res = fetch(&ref, 0);
    OK(res.count == 3 && sink.ids[0] == r[2].id, "buffer keeps the last 3");
    OK(res.gap, "a gap is reported from the start");
    res = fetch(&ref, r[1].id);
    OK(res.count == 3 && !res.gap, "no gap right after the last dropped one");
    res = fetch(&ref, r[0].id);
    OK(res.gap, "a gap before it");

    st->publish(st, "brief", 5, "short-lived", 11, 0, &brief, &r[0]);
    st->subscribe(st, 2, "brief", 5, 1, 0, &ref, NULL);
    res = fetch(&ref, 0);
    OK(res.count == 1, "fresh message fetched");
    apr_sleep(apr_time_from_msec(80));
    res = fetch(&ref, 0);
    OK(res.count == 0, "expired message not fetched");
    st->unsubscribe(st, 2, &ref, 1);
    st->remove(st, "buf", 3, NULL);
    /* housekeeping as if much later: the idle channel goes */
    OK(st->maintain(st, apr_time_now() + apr_time_from_sec(60)) == APR_SUCCESS, "housekeeping");
    {
        comet_channel_info_t info;
        OK(st->info(st, "brief", 5, &info) == APR_NOTFOUND, "idle expired channel reclaimed");
    }
    OK(used_blocks() == 0, "no block left behind");
}

static void test_full(void)
{
    comet_limits_t keep = { 100000, 0, 60000 };
    comet_publish_result_t r;
    static char chunk[60000];
    int n = 0;
    apr_status_t rv;
    comet_store_stats_t s;

    while ((rv = st->publish(st, "hog", 3, chunk, sizeof(chunk), 0, &keep, &r)) == APR_SUCCESS) {
        n++;
    }
    OK(rv == APR_ENOSPC && n > 5, "a full segment refuses with ENOSPC after %d messages", n);
    OK(st->remove(st, "hog", 3, NULL) == APR_SUCCESS, "deleting frees it");
    OK(st->publish(st, "hog", 3, chunk, sizeof(chunk), 0, &keep, &r) == APR_SUCCESS,
       "publishing works again");
    st->remove(st, "hog", 3, NULL);
    st->stats(st, &s);
    OK(s.blocks_used == 0 && s.channels == 0, "nothing leaked");
}

/* A publish to a channel that has been idle a while, in a full segment:
 * making room reclaims idle channels, and must not reclaim the one being
 * published to (the message would go into a deleted channel, its blocks
 * lost, while the publisher is told it went through). */
static void test_full_keeps_target(void)
{
    comet_limits_t one = { 1, 0, 65536 };
    comet_limits_t brief = { 100000, apr_time_from_sec(1), 65536 };
    comet_publish_result_t r;
    comet_channel_info_t info;
    static char body[600];
    comet_store_stats_t s;
    apr_status_t rv;

    OK(st->publish(st, "idle-x", 6, body, 10, 0, &one, &r) == APR_SUCCESS, "one message on x");
    while (st->publish(st, "brief-y", 7, body, 10, 0, &brief, &r) == APR_SUCCESS) {
    }
    /* past the idle grace of x and the time-to-live of y's messages */
    apr_sleep(apr_time_from_sec(6));
    rv = st->publish(st, "idle-x", 6, body, sizeof(body), 0, &one, &r);
    OK(rv == APR_SUCCESS, "a publish of several blocks to x finds room");
    OK(st->info(st, "idle-x", 6, &info) == APR_SUCCESS && info.messages == 1
       && info.last_id == r.id, "x holds it");
    st->remove(st, "idle-x", 6, NULL);
    st->remove(st, "brief-y", 7, NULL);
    st->stats(st, &s);
    OK(s.blocks_used == 0 && s.channels == 0, "nothing leaked (%u blocks, %u channels)",
       s.blocks_used, s.channels);
}

/* Streams that keep a thread, counted per slot and for every live slot. */
static void test_held_counts(void)
{
    int slot = 0, fd = -1, slot2 = 0, fd2 = -1;
    apr_uint32_t mine = 9, total = 9;

    OK(st->slot_claim(st, &slot, &fd) == APR_SUCCESS
       && st->slot_claim(st, &slot2, &fd2) == APR_SUCCESS, "held: two slots");
    st->slot_held(st, slot, 1, &mine, &total);
    st->slot_held(st, slot, 1, &mine, &total);
    OK(mine == 2 && total == 2, "held: a slot counts its own (2, 2)");
    st->slot_held(st, slot2, 1, &mine, &total);
    OK(mine == 1 && total == 3, "held: the total counts every slot (1, 3)");
    st->slot_held(st, slot, -1, &mine, &total);
    OK(mine == 1 && total == 2, "held: one given back");
    st->slot_held(st, slot2, -5, &mine, &total);
    OK(mine == 1 && total == 2, "held: never below zero (a wrong release changes nothing)");
    st->slot_held(st, slot2, -1, &mine, &total);
    st->slot_release(st, slot);
    st->slot_held(st, slot2, 0, &mine, &total);
    OK(mine == 0 && total == 0, "held: a released slot's count goes with it");
    st->slot_claim(st, &slot, &fd);
    st->slot_held(st, slot, 0, &mine, &total);
    OK(mine == 0, "held: a slot claimed again starts from zero");
    st->slot_release(st, slot);
    st->slot_release(st, slot2);
}

static void test_slots_and_wakeups(void)
{
    int slot = 0, fd = -1, slot2 = 0, fd2 = -1, ovf = 0;
    comet_chan_ref_t ref, refs[16];
    comet_publish_result_t r;
    apr_size_t n = 0;
    struct pollfd p;
    char buf[16];

    OK(st->slot_claim(st, &slot, &fd) == APR_SUCCESS && slot >= 1 && fd >= 0, "claim a slot");
    OK(st->subscribe(st, slot, "wake", 4, 2, 0, &ref, NULL) == APR_SUCCESS, "two subscribers of this slot");
    st->publish(st, "wake", 4, "a", 1, 0, &lim, &r);
    OK(r.subscribers == 2, "publish counts them");
    p.fd = fd;
    p.events = POLLIN;
    OK(poll(&p, 1, 1000) == 1, "the wake descriptor turns readable");
    st->publish(st, "wake", 4, "b", 1, 0, &lim, &r);
    OK(recv(fd, buf, sizeof(buf), MSG_DONTWAIT) == 1
       && recv(fd, buf, sizeof(buf), MSG_DONTWAIT) < 0,
       "one wake-up for two publishes before the drain");
    OK(st->drain(st, slot, refs, 16, &n, &ovf) == APR_SUCCESS && n == 2 && !ovf
       && refs[0].idx == ref.idx && refs[0].gen == ref.gen, "the inbox names the channel");
    st->publish(st, "wake", 4, "c", 1, 0, &lim, &r);
    OK(poll(&p, 1, 1000) == 1, "after a drain the next publish wakes again");
    recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    st->drain(st, slot, refs, 16, &n, &ovf);
    OK(st->publish(st, "quiet", 5, "q", 1, 0, &lim, &r) == APR_SUCCESS && poll(&p, 1, 50) == 0,
       "no wake-up for a channel nobody here follows");
    OK(st->slot_claim(st, &slot2, &fd2) == APR_SUCCESS && slot2 != slot, "a second slot");
    OK(st->slot_release(st, slot) == APR_SUCCESS, "release the first");
    st->publish(st, "wake", 4, "d", 1, 0, &lim, &r);
    OK(r.subscribers == 0, "its subscriptions went with it");
    st->slot_release(st, slot2);
    st->remove(st, "wake", 4, NULL);
    st->remove(st, "quiet", 5, NULL);
}

/* Children claim slots and wait for messages, as httpd children would. */
static void test_cross_process(void)
{
    enum { KIDS = 4, MSGS = 50 };
    int pipes[KIDS][2], ready[2], k, i, total_ok = 0;
    pid_t pids[KIDS];
    comet_publish_result_t r;
    char buf[8];

    if (pipe(ready) < 0) {
        return;
    }
    for (k = 0; k < KIDS; k++) {
        if (pipe(pipes[k]) < 0) {
            return;
        }
        pids[k] = fork();
        if (pids[k] == 0) {
            int slot, fd, got = 0;
            comet_id_t last = 0;
            comet_chan_ref_t ref, refs[64];
            apr_size_t n;
            int ovf, inorder = 1;
            comet_store_t *mine;

            apr_global_mutex_child_init(&mutex, NULL, pool);
            comet_store_shm_open(&mine, pool, apr_shm_baseaddr_get(shm), mutex);
            st = mine;
            st->slot_claim(st, &slot, &fd);
            st->subscribe(st, slot, "xp", 2, 1, 0, &ref, NULL);
            if (write(ready[1], "r", 1) != 1) {
                _exit(3);
            }
            while (got < MSGS) {
                struct pollfd p = { fd, POLLIN, 0 };
                comet_fetch_result_t res;
                if (poll(&p, 1, 5000) != 1) {
                    break;
                }
                while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0) {
                }
                st->drain(st, slot, refs, 64, &n, &ovf);
                res = fetch(&ref, last);
                for (i = 0; i < sink.n; i++) {
                    inorder &= sink.ids[i] > last;
                    last = sink.ids[i];
                }
                got += (int)res.count;
            }
            st->slot_release(st, slot);
            buf[0] = (got == MSGS && inorder) ? 'y' : 'n';
            if (write(pipes[k][1], buf, 1) != 1) {
                _exit(2);
            }
            _exit(0);
        }
    }
    for (k = 0; k < KIDS; k++) {
        if (read(ready[0], buf, 1) != 1) {
            break;
        }
    }
    for (i = 0; i < MSGS; i++) {
        char m[16];
        int len = snprintf(m, sizeof(m), "m%d", i);
        st->publish(st, "xp", 2, m, (apr_size_t)len, 0, &lim, &r);
        if (i % 10 == 0) {
            apr_sleep(1000);
        }
    }
    for (k = 0; k < KIDS; k++) {
        int status;
        if (read(pipes[k][0], buf, 1) == 1 && buf[0] == 'y') {
            total_ok++;
        }
        waitpid(pids[k], &status, 0);
    }
    OK(total_ok == KIDS, "%d processes each got all %d messages once, in order", total_ok, MSGS);
    OK(r.subscribers == KIDS, "the last publish counted %u subscribers", r.subscribers);
    st->remove(st, "xp", 2, NULL);
}

/* A process killed while it holds the lock in the middle of a publish. */
static void test_crash_recovery(int point)
{
    comet_publish_result_t r1, r2;
    comet_chan_ref_t ref;
    comet_fetch_result_t res;
    comet_store_stats_t before, after;
    pid_t pid;
    int status;

    st->publish(st, "crash", 5, "before", 6, 0, &lim, &r1);
    st->subscribe(st, 1, "crash", 5, 1, 0, &ref, NULL);
    st->stats(st, &before);
    pid = fork();
    if (pid == 0) {
        apr_global_mutex_child_init(&mutex, NULL, pool);
        comet_store_shm_crash_point = point;
        st->publish(st, "crash", 5, "doomed message that takes blocks", 32, 0, &lim, &r2);
        _exit(0);
    }
    waitpid(pid, &status, 0);
    OK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
       "crash point %d: the publisher died holding the lock", point);
    OK(st->publish(st, "crash", 5, "after", 5, 0, &lim, &r2) == APR_SUCCESS,
       "crash point %d: the next publish goes through", point);
    res = fetch(&ref, 0);
    OK(res.count >= 2 && sink.ids[0] == r1.id && sink.ids[res.count - 1] == r2.id,
       "crash point %d: the channel holds what was acknowledged (%u messages)", point, res.count);
    st->stats(st, &after);
    OK(after.repairs == before.repairs + 1, "crash point %d: one repair ran", point);
    st->unsubscribe(st, 1, &ref, 1);
    st->remove(st, "crash", 5, NULL);
    OK(used_blocks() == 0, "crash point %d: no block leaked", point);
}

static void test_dead_slot(void)
{
    int slot = 0, fd = -1, p[2];
    comet_chan_ref_t ref;
    comet_channel_info_t info;
    pid_t pid;
    char c;
    int status;

    if (pipe(p) < 0) {
        return;
    }
    pid = fork();
    if (pid == 0) {
        int s, f;
        comet_chan_ref_t rr;
        apr_global_mutex_child_init(&mutex, NULL, pool);
        st->slot_claim(st, &s, &f);
        st->subscribe(st, s, "orphan", 6, 3, 0, &rr, NULL);
        if (write(p[1], "x", 1) != 1) {
            _exit(1);
        }
        pause();
        _exit(0);
    }
    if (read(p[0], &c, 1) != 1) {
        return;
    }
    st->info(st, "orphan", 6, &info);
    OK(info.subscribers == 3, "a child's subscribers are counted");
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    /* every slot gets looked at by housekeeping in turn */
    {
        int i;
        for (i = 0; i < 64; i++) {
            st->maintain(st, apr_time_now() + apr_time_from_sec(2 * (i + 1)));
        }
    }
    st->info(st, "orphan", 6, &info);
    OK(info.subscribers == 0, "housekeeping forgets a killed child's subscribers");
    OK(st->slot_claim(st, &slot, &fd) == APR_SUCCESS, "its slot can be claimed again");
    st->subscribe(st, slot, "orphan", 6, 1, 0, &ref, NULL);
    st->unsubscribe(st, slot, &ref, 1);
    st->slot_release(st, slot);
    st->remove(st, "orphan", 6, NULL);
}

/* A process that has not fetched yet keeps messages past the buffer length
 * (up to 16 times it); once it has fetched, the length applies again. */
static void test_lagging_process(void)
{
    comet_limits_t small = { 4, 0, 100 };
    comet_publish_result_t r;
    comet_chan_ref_t ref;
    comet_fetch_result_t res;
    comet_channel_info_t info;
    int i;

    st->subscribe(st, 3, "lag", 3, 1, 0, &ref, NULL);
    for (i = 0; i < 10; i++) {
        st->publish(st, "lag", 3, "x", 1, 0, &small, &r);
    }
    st->info(st, "lag", 3, &info);
    OK(info.messages == 10, "a follower that has not fetched: 10 messages kept with a buffer of 4");
    fetch_slot = 3;
    res = fetch(&ref, 0);
    fetch_slot = 0;
    OK(res.count == 10 && !res.gap, "it gets all 10, no gap");
    st->publish(st, "lag", 3, "y", 1, 0, &small, &r);
    st->info(st, "lag", 3, &info);
    OK(info.messages == 4, "once fetched, the buffer length applies again: %u", info.messages);
    for (i = 0; i < 100; i++) {
        st->publish(st, "lag", 3, "z", 1, 0, &small, &r);
    }
    st->info(st, "lag", 3, &info);
    OK(info.messages <= 4 * 16 && info.messages >= 4 * 16 - 1,
       "a follower that never fetches: at most 16 times the length (%u)", info.messages);
    st->unsubscribe(st, 3, &ref, 1);
    st->publish(st, "lag", 3, "w", 1, 0, &small, &r);
    st->info(st, "lag", 3, &info);
    OK(info.messages == 4, "no follower left: back to 4");
    st->remove(st, "lag", 3, NULL);
}

static void test_sessions(void)
{
    comet_chan_ref_t ref, again;
    comet_publish_result_t r1, r2, r3;
    comet_fetch_result_t res;
    comet_channel_info_t info;
    comet_limits_t keep = { 100000, 0, 65536 };
    comet_id_t acked = 1;
    apr_uint32_t flags = 0;
    int created = 0;

    OK(st->session.open(st, "s:abc", 5, 10, 0, &created, &ref) == APR_SUCCESS && created,
       "a session channel is created");
    OK(st->session.open(st, "s:abc", 5, 10, 0, &created, &again) == APR_SUCCESS && !created
       && again.idx == ref.idx, "opening it again finds it");
    OK(st->session.claim(st, 1, &ref, 111, &acked, &flags) == APR_SUCCESS && acked == 0
       && (flags & COMET_CHAN_SESSION), "a receiver claims it");
    OK(st->session.claim(st, 2, &ref, 222, &acked, &flags) == APR_EBUSY,
       "a second receiver is refused");
    st->session.ack(st, &ref, 0, COMET_CHAN_ENDING);
    OK(st->session.claim(st, 2, &ref, 222, &acked, &flags) == APR_EAGAIN,
       "... told to wait while the first one is ending");
    st->session.release(st, &ref, 111);
    OK(st->session.claim(st, 1, &ref, 111, &acked, &flags) == APR_SUCCESS
       && !(flags & COMET_CHAN_ENDING), "... and once it let go, a receiver claims it");
    st->publish(st, "s:abc", 5, "x", 1, 0, &keep, &r1);
    st->publish(st, "s:abc", 5, "y", 1, 0, &keep, &r2);
    OK(st->session.ack(st, &ref, r1.id, COMET_CHAN_OPENED) == APR_SUCCESS, "ack the first");
    res = fetch(&ref, 0);
    OK(res.count == 1 && sink.ids[0] == r2.id, "acked messages are gone");
    st->session.release(st, &ref, 111);
    OK(st->session.claim(st, 2, &ref, 222, &acked, &flags) == APR_SUCCESS && acked == r1.id
       && (flags & COMET_CHAN_OPENED), "the next receiver resumes after the ack");
    OK(st->publish(st, "s:abc", 5, "bye", 3, COMET_MSG_CLOSE, &keep, &r3) == APR_SUCCESS,
       "a close message");
    OK(st->publish(st, "s:abc", 5, "late", 4, 0, &keep, &r1) == APR_EOF,
       "nothing is taken after the close");
    st->session.ack(st, &ref, r3.id, 0);
    res = fetch(&ref, r2.id);
    OK(res.count == 1 && sink.ids[0] == r3.id, "the close stays after its ack");
    st->info(st, "s:abc", 5, &info);
    OK(info.acked_id < r3.id, "and every later receiver gets it again");
    st->info(st, "s:abc", 5, &info);
    OK((info.flags & COMET_CHAN_CLOSED) && info.receiver, "info shows closed, attached");
    OK(st->maintain(st, apr_time_now() + apr_time_from_sec(120)) == APR_SUCCESS
       && st->info(st, "s:abc", 5, &info) == APR_SUCCESS, "housekeeping leaves sessions alone");
    {
        comet_chan_ref_t r2ref;
        OK(st->session.open(st, "s:def", 5, 1, 0, &created, &r2ref) == APR_EAGAIN,
           "the session limit is enforced");
    }
    st->remove(st, "s:abc", 5, NULL);
    OK(st->session.claim(st, 2, &ref, 222, &acked, &flags) == APR_NOTFOUND,
       "a removed session is gone");
    OK(used_blocks() == 0, "no block left behind");
}

/* Status figures: bytes published; a slot's counters, written by its own
 * process, seen by every process, and kept in the totals once it goes. */
static void test_status_counters(void)
{
    comet_store_stats_t before, after;
    comet_publish_result_t pr;
    comet_slot_counters_t *c;
    comet_slot_info_t list[8];
    apr_size_t n = 0, i;
    int slot = 0, fd = -1, found = 0;

    st->stats(st, &before);
    st->publish(st, "figures", 7, "12345", 5, 0, &lim, &pr);
    st->publish(st, "figures", 7, "abc", 3, 0, &lim, &pr);
    st->stats(st, &after);
    OK(after.published == before.published + 2
       && after.published_bytes == before.published_bytes + 8,
       "stats: messages and bytes published (+2, +8)");
    OK(after.size == 2 * 1024 * 1024, "stats: the segment's size");

    OK(st->slot_claim(st, &slot, &fd) == APR_SUCCESS
       && (c = st->slot_counters(st, slot)) != NULL, "counters: a claimed slot has some");
    OK(st->slot_counters(st, 0) == NULL && st->slot_counters(st, 9) == NULL,
       "counters: none out of range");
    c->subscribers = 3;
    c->delivered = 10;
    c->delivered_bytes = 100;
    c->dropped = 1;
    st->stats(st, &after);
    OK(after.subscribers == before.subscribers + 3
       && after.delivered == before.delivered + 10
       && after.delivered_bytes == before.delivered_bytes + 100
       && after.dropped == before.dropped + 1, "stats: a live slot's counters are added up");
    st->slot_list(st, list, 8, &n);
    for (i = 0; i < n; i++) {
        if (list[i].slot == slot) {
            found = list[i].pid == (apr_int32_t)getpid() && list[i].counters.subscribers == 3
                    && list[i].counters.delivered == 10;
        }
    }
    OK(found, "slot_list: the slot, its pid and its counters");
    st->slot_release(st, slot);
    st->stats(st, &after);
    OK(after.subscribers == before.subscribers && after.delivered == before.delivered + 10
       && after.delivered_bytes == before.delivered_bytes + 100
       && after.dropped == before.dropped + 1,
       "stats: a released slot's counters stay in the totals, its gauges go");
    st->slot_claim(st, &slot, &fd);
    c = st->slot_counters(st, slot);
    OK(c && c->delivered == 0 && c->subscribers == 0, "counters: a slot claimed again starts at 0");
    st->slot_release(st, slot);
    st->remove(st, "figures", 7, NULL);
}

/* Messages whose ids another server gave (Redis): kept in id order
 * whatever the order they come in, each once. */
static void test_import(void)
{
    comet_limits_t three = { 3, 0, 1000 };
    comet_publish_result_t r;
    comet_chan_ref_t ref;
    comet_fetch_result_t res;
    comet_channel_info_t info;

    OK(st->import(st, "imp", 3, 100, "c", 1, 0, 0, &lim, &r) == APR_SUCCESS && r.id == 100,
       "import: a new channel takes the given id");
    OK(st->import(st, "imp", 3, 300, "e", 1, 0, 0, &lim, &r) == APR_SUCCESS, "a newer one");
    OK(st->import(st, "imp", 3, 200, "d", 1, 0, 0, &lim, &r) == APR_SUCCESS,
       "one older than the last (it came late)");
    OK(st->import(st, "imp", 3, 50, "b", 1, 0, 0, &lim, &r) == APR_SUCCESS,
       "one older than every other");
    OK(st->import(st, "imp", 3, 200, "d", 1, 0, 0, &lim, &r) == APR_EEXIST,
       "the same id again: dropped");
    OK(st->subscribe(st, 1, "imp", 3, 1, 0, &ref, NULL) == APR_SUCCESS, "subscribe");
    res = fetch(&ref, 0);
    OK(res.count == 4 && sink.ids[0] == 50 && sink.ids[1] == 100 && sink.ids[2] == 200
       && sink.ids[3] == 300 && res.last_id == 300, "fetched in id order, the last id the newest");
    res = fetch(&ref, 100);
    OK(res.count == 2 && sink.ids[0] == 200, "since an id: what follows it");
    OK(st->info(st, "imp", 3, &info) == APR_SUCCESS && info.messages == 4 && info.first_id == 50
       && info.last_id == 300, "info agrees");
    OK(st->import(st, "imp", 3, 400, "f", 1, 0, 0, &three, &r) == APR_SUCCESS,
       "a full buffer: the newest goes in");
    OK(st->import(st, "imp", 3, 10, "a", 1, 0, 0, &three, &r) == APR_EEXIST,
       "... one older than all it keeps is dropped");
    res = fetch(&ref, 0);
    OK(res.count == 3 && sink.ids[0] == 200 && sink.ids[2] == 400, "the buffer length holds");
    OK(st->publish(st, "imp", 3, "g", 1, 0, &lim, &r) == APR_SUCCESS && r.id > 400,
       "a local publish after imports: above them");
    OK(st->unsubscribe(st, 1, &ref, 1) == APR_SUCCESS && st->remove(st, "imp", 3, NULL) == APR_SUCCESS,
       "remove it");
    OK(used_blocks() == 0, "every block given back");
}

int main(void)
{
    apr_initialize();
    apr_pool_create(&pool, NULL);
    signal(SIGPIPE, SIG_IGN);
    setup(2 * 1024 * 1024, 8);

    test_publish_fetch();
    test_buffer_and_ttl();
    test_full();
    test_full_keeps_target();
    test_held_counts();
    test_slots_and_wakeups();
    test_cross_process();
    test_crash_recovery(1);
    test_crash_recovery(2);
    test_dead_slot();
    test_sessions();
    test_lagging_process();
    test_status_counters();
    test_import();
    return UNIT_DONE();
}
