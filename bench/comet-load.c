/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/*
 * comet-load: a load generator for comet servers (mod_comet, nginx+nchan).
 *
 *   comet-load --port 8180 --sub-path '/comet/%c' --pub-path '/comet-publish/%c'
 *              --subs 10000 --channels 1 --messages 100 --rate 10
 *
 * Opens N streaming subscriber connections (one epoll process per <= 15,000
 * of them, forked from this one), publishes M messages through the server's
 * publish API on one keep-alive HTTP/1.1 connection, and reports how many
 * subscribers connected, how many messages arrived of those expected,
 * duplicates, fan-out latency (publish to arrival at each subscriber:
 * p50/p99/max), the publish rate, and the server's memory (PSS of all its
 * processes) and CPU time.
 *
 * Every message body carries a marker "B<seq>.<send_time_us>E" (digits and
 * dots only, so no framing or escaping changes it): a subscriber finds it in
 * any stream (iframe <script> calls, SSE "data:" lines, raw lines), after
 * undoing chunked transfer coding. The send time is taken on CLOCK_MONOTONIC,
 * which every process of the machine shares, just before the POST is written.
 * Message seq goes to channel seq % C; subscriber j follows channel j % C.
 *
 * Phases:
 *   1. the parent samples the server (PSS, CPU) and forks the workers;
 *   2. each worker connects its subscribers (bounded concurrency, source
 *      addresses round-robin, --connect-timeout) and reports READY;
 *   3. the parent waits until the server counts the subscribers on its
 *      channels (GET on the publish path, up to --settle seconds), samples
 *      the server again, holds the subscribers idle for --idle seconds
 *      (server CPU time meanwhile), then publishes;
 *   4. the parent sends DONE (with the set of publishes that succeeded) and
 *      the workers read on until every subscriber has every message or
 *      --drain seconds passed, then report histograms and counts;
 *   5. QUIT: the workers close everything; the parent samples the server
 *      once more (memory left after the subscribers went) and prints.
 *
 * Latencies go into log-linear histograms (32 buckets per power of two of
 * microseconds, ~3% resolution) that the parent merges by adding them up.
 * A global alarm bounds every run; workers die with their parent.
 *
 * --mode ws: the subscribers are WebSocket clients (RFC 6455): the Upgrade
 * handshake with a random Sec-WebSocket-Key, the 101 and its
 * Sec-WebSocket-Accept checked, then the server's frames parsed (text and
 * continuation payloads scanned for markers, pings answered with a masked
 * pong, a close frame answered and counted as a stream ended by the server).
 * The marker is in the message data whatever wraps it: mod_comet's JSON line
 * per frame or nchan's raw message per frame.
 *
 * --mode echo: SockJS WebSocket sessions (--sub-path with %c, e.g.
 * /echo/000/%c/websocket: every client gets a session of its own) that send
 * ["B<n>.<send time>E"] and wait for a["..."], again and again for
 * --duration seconds once all are connected: round trips and their times.
 *
 * --tls: the subscribers speak TLS (OpenSSL, no certificate verification),
 * with non-blocking handshakes in the same epoll loop, at most --handshakes
 * of them in flight per process (each costs CPU on both sides). The
 * publisher stays on plain HTTP (--pub-port) unless --pub-tls.
 *
 * Several servers sharing channels (mod_comet's CometRedis, nchan on Redis):
 * --port2 sends every odd subscriber to a second server (their latencies and
 * deliveries are also reported apart: lat2_*, delivered2), --count-port
 * names the servers whose subscriber counts add up (repeatable),
 * --server-pidfile is repeatable (the servers' figures add up), and
 * --redis-pidfile samples the Redis server's CPU time over the publishing.
 */

#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>

#define MAX_PER_PROC    15000
#define MAX_PROCS       64
#define READ_BUF        65536
/* a worker whose epoll_wait found fewer than BATCH_EVENTS streams with
 * bytes pauses READ_PAUSE_US before the next: woken for every second
 * message, its 15,000 streams cost it (and the server, which wakes it
 * through the kernel for each write) about twice the CPU per delivery;
 * arrivals are timed when read, so latency figures include at most the
 * pause */
#define BATCH_EVENTS    64
#define READ_PAUSE_US   1000
#define HDR_MAX         8192
/* a publish request that gets no answer in this time fails */
#define PUB_TIMEOUT_S   10
/* publishing stops this long past its plan (messages / rate), so that a
 * server that cannot answer still gets a RESULT line before the alarm */
#define PUB_GRACE_S     30
/* servers sampled or counted together (--server-pidfile, --count-port) */
#define MAX_SERVERS     4

/*******************************************************************************
 * options
 ******************************************************************************/

enum { MODE_IFRAME, MODE_SSE, MODE_RAW, MODE_WS, MODE_ECHO };

static struct {
    const char *host;
    int port;
    const char *sub_path;
    const char *pub_path;
    const char *prefix;
    long subs;
    long channels;
    long messages;
    double rate;
    double duration;
    int mode;
    uint32_t src_lo, src_hi;      /* host order; 0: kernel's choice */
    const char *pidfile;
    double idle;
    double connect_timeout;
    double settle;
    double drain;
    int size;
    int concurrency;
    int procs;
    const char *label;
    int quiet;
    const char *trace;
    const char *pub_method;
    int tls;                      /* subscribers over TLS */
    int pub_tls;                  /* the publisher too */
    int pub_port;                 /* 0: --port */
    int handshakes;               /* TLS handshakes in flight per process */
    int port2;                    /* odd subscribers go there (0: none) */
    int count_ports[MAX_SERVERS]; /* subscriber counts added over these */
    int ncount;                   /* 0: the publisher's port */
    const char *pidfiles[MAX_SERVERS];  /* more --server-pidfile */
    int npidfiles;
    const char *redis_pidfile;
} opt = {
    "127.0.0.1", 8180, "/comet/%c", "/comet-publish/%c", "ch",
    1000, 1, 100, 10.0, 0.0, MODE_IFRAME, 0, 0, NULL, 0.0, 20.0, 10.0, 10.0,
    0, 256, 0, "run", 0, NULL, "POST", 0, 0, 0, 64, 0, { 0 }, 0, { NULL }, 0, NULL
};

static struct sockaddr_in server_addr, server_addr2, pub_addr;
static SSL_CTX *tls_ctx;

/*******************************************************************************
 * small helpers
 ******************************************************************************/

static uint64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void sleep_until_us(uint64_t t)
{
    struct timespec ts;

    ts.tv_sec = (time_t)(t / 1000000u);
    ts.tv_nsec = (long)(t % 1000000u) * 1000;
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

static void die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fprintf(stderr, "comet-load: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz ? sz : 1);

    if (!p) {
        die("out of memory");
    }
    return p;
}

static int read_full(int fd, void *buf, size_t len)
{
    char *p = buf;

    while (len) {
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int write_full(int fd, const void *buf, size_t len)
{
    const char *p = buf;

    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* path with %c replaced by the channel name of index ch */
static void make_path(char *out, size_t outlen, const char *tmpl, long ch)
{
    size_t o = 0;
    const char *t;

    for (t = tmpl; *t && o + 1 < outlen; t++) {
        if (t[0] == '%' && t[1] == 'c') {
            int n = snprintf(out + o, outlen - o, "%s%ld", opt.prefix, ch);
            if (n > 0) {
                o += (size_t)n < outlen - o ? (size_t)n : outlen - o - 1;
            }
            t++;
        }
        else {
            out[o++] = *t;
        }
    }
    out[o] = '\0';
}

/*******************************************************************************
 * histograms: log-linear, microseconds
 ******************************************************************************/

#define H_SUB_BITS 5
#define H_SUB      (1 << H_SUB_BITS)
#define H_LINEAR   (2 * H_SUB)                  /* 0..63 exact */
#define H_OCTAVES  40
#define H_BUCKETS  (H_LINEAR + H_OCTAVES * H_SUB)

typedef struct {
    uint64_t n[H_BUCKETS];
    uint64_t count;
    uint64_t max;
    uint64_t sum;
} hist_t;

static int hist_index(uint64_t v)
{
    int e, idx;

    if (v < H_LINEAR) {
        return (int)v;
    }
    e = 63 - __builtin_clzll(v);                /* >= H_SUB_BITS + 1 */
    idx = H_LINEAR + (e - (H_SUB_BITS + 1)) * H_SUB
          + (int)((v >> (e - H_SUB_BITS)) & (H_SUB - 1));
    return idx < H_BUCKETS ? idx : H_BUCKETS - 1;
}

/* lowest value of a bucket, and its width */
static void hist_bounds(int idx, uint64_t *lo, uint64_t *width)
{
    int e, sub;

    if (idx < H_LINEAR) {
        *lo = (uint64_t)idx;
        *width = 1;
        return;
    }
    e = (idx - H_LINEAR) / H_SUB + H_SUB_BITS + 1;
    sub = (idx - H_LINEAR) % H_SUB;
    *width = (uint64_t)1 << (e - H_SUB_BITS);
    *lo = ((uint64_t)1 << e) + (uint64_t)sub * *width;
}

static void hist_add(hist_t *h, uint64_t v)
{
    h->n[hist_index(v)]++;
    h->count++;
    h->sum += v;
    if (v > h->max) {
        h->max = v;
    }
}

static void hist_merge(hist_t *a, const hist_t *b)
{
    int i;

    for (i = 0; i < H_BUCKETS; i++) {
        a->n[i] += b->n[i];
    }
    a->count += b->count;
    a->sum += b->sum;
    if (b->max > a->max) {
        a->max = b->max;
    }
}

/* value at quantile q (0..1): the middle of the bucket holding it */
static double hist_quantile(const hist_t *h, double q)
{
    uint64_t rank, seen = 0, lo, w;
    int i;

    if (!h->count) {
        return 0;
    }
    rank = (uint64_t)(q * (double)h->count);
    if (rank >= h->count) {
        rank = h->count - 1;
    }
    for (i = 0; i < H_BUCKETS; i++) {
        seen += h->n[i];
        if (seen > rank) {
            hist_bounds(i, &lo, &w);
            if (w == 1) {
                return (double)lo;
            }
            {
                double mid = (double)lo + (double)w / 2.0;
                return mid > (double)h->max ? (double)h->max : mid;
            }
        }
    }
    return (double)h->max;
}

/*******************************************************************************
 * the server's processes: PSS, CPU, descriptors
 ******************************************************************************/

typedef struct {
    int ok;
    int procs;
    uint64_t pss_kb;
    uint64_t cpu_ticks;
    int max_fds;
    int threads;                  /* of all processes (with the descriptors) */
    char fds[512];                /* descriptors per process, largest first */
} srv_sample_t;

static pid_t read_pidfile(const char *file)
{
    FILE *f;
    long pid = 0;

    if (!file || !(f = fopen(file, "r"))) {
        return 0;
    }
    if (fscanf(f, "%ld", &pid) != 1) {
        pid = 0;
    }
    fclose(f);
    return (pid_t)pid;
}

/* ppid, utime+stime (and, for the root, the reaped children's) of a process */
static int proc_stat(pid_t pid, pid_t *ppid, uint64_t *ticks, int with_children)
{
    char path[64], buf[1024], *p;
    FILE *f;
    size_t n;
    unsigned long long v[20];
    int i;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if (!(f = fopen(path, "r"))) {
        return -1;
    }
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    if (!(p = strrchr(buf, ')'))) {
        return -1;
    }
    p += 2;                       /* state */
    p = strchr(p, ' ');           /* ppid follows */
    if (!p) {
        return -1;
    }
    for (i = 0; i < 20; i++) {
        char *end;
        v[i] = strtoull(p, &end, 10);
        if (end == p) {
            return -1;
        }
        p = end;
    }
    /* fields from 4 (ppid): v[0]=ppid ... v[10]=utime(14) v[11]=stime(15)
     * v[12]=cutime(16) v[13]=cstime(17) */
    *ppid = (pid_t)v[0];
    *ticks = v[10] + v[11] + (with_children ? v[12] + v[13] : 0);
    return 0;
}

static uint64_t proc_pss_kb(pid_t pid)
{
    char path[64], line[256];
    FILE *f;
    uint64_t kb = 0;

    snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
    if (!(f = fopen(path, "r"))) {
        return 0;
    }
    while (fgets(line, sizeof(line), f)) {
        if (!strncmp(line, "Pss:", 4)) {
            kb = strtoull(line + 4, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb;
}

/* entries of /proc/<pid>/<what>: descriptors (fd) or threads (task) */
static int proc_count(pid_t pid, const char *what)
{
    char path[64];
    DIR *d;
    struct dirent *e;
    int n = 0;

    snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, what);
    if (!(d = opendir(path))) {
        return 0;
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.') {
            n++;
        }
    }
    closedir(d);
    return n;
}

static int is_root(pid_t pid, const pid_t *roots, int nroots)
{
    int r;

    for (r = 0; r < nroots; r++) {
        if (roots[r] == pid) {
            return 1;
        }
    }
    return 0;
}

/* The server's root process and all its descendants (every server's, with
 * several --server-pidfile: their figures add up). */
static srv_sample_t server_sample(int with_fds)
{
    srv_sample_t s;
    pid_t roots[MAX_SERVERS];
    int nroots = 0, r;
    DIR *d;
    struct dirent *e;
    pid_t *pids = NULL, *ppids = NULL, *tree = NULL;
    uint64_t *ticks = NULL;
    size_t np = 0, cap = 0, nt = 0, i, k;

    memset(&s, 0, sizeof(s));
    for (r = 0; r < opt.npidfiles; r++) {
        pid_t root = read_pidfile(opt.pidfiles[r]);
        if (root > 0) {
            roots[nroots++] = root;
        }
    }
    if (!nroots || !(d = opendir("/proc"))) {
        return s;
    }
    while ((e = readdir(d)) != NULL) {
        pid_t pid, pp;
        uint64_t t;
        if (!isdigit((unsigned char)e->d_name[0])) {
            continue;
        }
        pid = (pid_t)atoi(e->d_name);
        if (proc_stat(pid, &pp, &t, is_root(pid, roots, nroots)) < 0) {
            continue;
        }
        if (np == cap) {
            cap = cap ? cap * 2 : 512;
            pids = realloc(pids, cap * sizeof(*pids));
            ppids = realloc(ppids, cap * sizeof(*ppids));
            ticks = realloc(ticks, cap * sizeof(*ticks));
            if (!pids || !ppids || !ticks) {
                die("out of memory");
            }
        }
        pids[np] = pid;
        ppids[np] = pp;
        ticks[np] = t;
        np++;
    }
    closedir(d);
    tree = xcalloc(np + 1, sizeof(*tree));
    for (i = 0; i < np; i++) {
        if (is_root(pids[i], roots, nroots)) {
            tree[nt++] = pids[i];
        }
    }
    /* breadth first over the parent links */
    for (k = 0; k < nt; k++) {
        for (i = 0; i < np; i++) {
            if (ppids[i] == tree[k] && !is_root(pids[i], roots, nroots)) {
                tree[nt++] = pids[i];
            }
        }
    }
    {
        int *fds = xcalloc(nt + 1, sizeof(int));
        for (k = 0; k < nt; k++) {
            for (i = 0; i < np; i++) {
                if (pids[i] == tree[k]) {
                    s.cpu_ticks += ticks[i];
                }
            }
            s.pss_kb += proc_pss_kb(tree[k]);
            if (with_fds) {
                fds[k] = proc_count(tree[k], "fd");
                s.threads += proc_count(tree[k], "task");
                if (fds[k] > s.max_fds) {
                    s.max_fds = fds[k];
                }
            }
        }
        if (with_fds) {
            /* largest first: how evenly the subscribers spread */
            size_t o = 0, a, b;
            for (a = 0; a < nt; a++) {
                for (b = a + 1; b < nt; b++) {
                    if (fds[b] > fds[a]) {
                        int t = fds[a];
                        fds[a] = fds[b];
                        fds[b] = t;
                    }
                }
            }
            for (a = 0; a < nt && o + 12 < sizeof(s.fds); a++) {
                o += (size_t)snprintf(s.fds + o, sizeof(s.fds) - o, "%s%d", a ? "," : "", fds[a]);
            }
        }
        free(fds);
    }
    s.procs = (int)nt;
    s.ok = nt > 0;
    free(pids);
    free(ppids);
    free(ticks);
    free(tree);
    return s;
}

/* Kernel memory of all TCP sockets of the machine (pages * 4 KiB). */
static uint64_t tcp_mem_kb(void)
{
    FILE *f = fopen("/proc/net/sockstat", "r");
    char line[256];
    uint64_t pages = 0;

    if (!f) {
        return 0;
    }
    while (fgets(line, sizeof(line), f)) {
        char *m;
        if (!strncmp(line, "TCP:", 4) && (m = strstr(line, " mem "))) {
            pages = strtoull(m + 5, NULL, 10);
        }
    }
    fclose(f);
    return pages * (uint64_t)(sysconf(_SC_PAGESIZE) / 1024);
}

/* The Redis server of --redis-pidfile: its CPU time (utime + stime of all
 * its threads, in ticks) and PSS; cpu_ticks is UINT64_MAX when unknown. */
static void redis_sample(uint64_t *ticks, uint64_t *pss_kb)
{
    pid_t pid = read_pidfile(opt.redis_pidfile), pp;

    *ticks = UINT64_MAX;
    *pss_kb = 0;
    if (pid > 0 && proc_stat(pid, &pp, ticks, 0) == 0) {
        *pss_kb = proc_pss_kb(pid);
    }
    else {
        *ticks = UINT64_MAX;
    }
}

/*******************************************************************************
 * parent <-> worker messages
 ******************************************************************************/

enum { CMD_DONE = 1, CMD_QUIT = 2 };

typedef struct {
    uint32_t type;
    uint32_t len;                 /* bytes following: the ok bitmap */
    uint64_t published;           /* seqs 0..published-1 were attempted */
    uint64_t drain_ms;
} cmd_t;

typedef struct {
    uint64_t connected, failed, http_err, timeouts;
    int first_errno;
    int first_status;
    double connect_s;
    char first_tls[128];          /* the first TLS error, as OpenSSL words it */
    char tls_params[96];          /* version/cipher/group of the first handshake */
} ready_t;

typedef struct {
    uint64_t connected;
    uint64_t closed;              /* streams the server ended early */
    uint64_t bytes;
    uint64_t markers;             /* all markers seen */
    uint64_t distinct;            /* first arrivals */
    uint64_t dups;
    uint64_t unexpected;          /* wrong channel, or a seq never published */
    uint64_t expected;            /* sum over subscribers of ok publishes */
    uint64_t delivered;           /* first arrivals of ok publishes */
    uint64_t complete_subs;       /* subscribers that got all expected */
    double drain_s;               /* DONE to complete (or deadline) */
    hist_t lat;
    /* the subscribers of --port2 alone */
    uint64_t expected2, delivered2;
    hist_t lat2;
} wresult_t;

/*******************************************************************************
 * worker: the subscribers
 ******************************************************************************/

enum { C_IDLE, C_CONNECTING, C_HANDSHAKE, C_HEADERS, C_STREAM, C_CLOSED, C_FAILED };
enum { CS_SIZE, CS_DATA, CS_DATA_END, CS_END };

typedef struct {
    int fd;
    uint32_t ch;
    uint8_t state;
    uint8_t chunked;
    uint8_t cstate;
    uint8_t cext;
    uint8_t mstate;
    uint8_t mdigits;
    uint8_t hs;                   /* counted in the worker's handshaking */
    uint8_t want_out;             /* SSL_read wants the socket writable */
    uint8_t wsst;                 /* WebSocket frame parser: WS_HDR, WS_DATA, WS_CTRL */
    uint8_t whn;                  /* frame header bytes collected */
    uint8_t wop;                  /* opcode of the control frame being read */
    uint8_t wh[10];               /* the frame header (server frames: unmasked) */
    uint16_t hlen;
    char *hbuf;
    SSL *ssl;
    uint64_t chunk_left;          /* chunked: of the chunk; WebSocket: of the frame */
    uint64_t mseq, mts;
    uint32_t *bits;
    uint32_t bitcap;              /* in bits */
    uint32_t nrecv;
} conn_t;

typedef struct {
    long first, count;            /* global subscriber indexes */
    conn_t *c;
    int epfd;
    int cmd_fd, res_fd;
    long inflight, next, done_connecting;
    long handshaking;             /* TLS: TCP connects and handshakes in flight */
    ready_t ready;
    wresult_t res;
    uint64_t now;                 /* time of the last read */
    uint8_t *ok;                  /* ok bitmap of seqs, after DONE */
    uint64_t published;
    uint64_t *ok_per_ch;
    int index;
    uint64_t echo_until;          /* --mode echo: no message sent past this */
    uint64_t rnd;                 /* masking keys */
    /* --trace: per message, first arrivals and their latency range */
    uint32_t *t_n, *t_min, *t_max;
    uint64_t *t_sum, t_cap;
} worker_t;

/* --port2: every odd subscriber connects there */
static int on_port2(long g)
{
    return opt.port2 && (g % 2) == 1;
}

static const char *accept_hdr(void)
{
    switch (opt.mode) {
    case MODE_SSE: return "text/event-stream";
    case MODE_RAW: case MODE_WS: case MODE_ECHO: return "*/*";
    default: return "text/html";
    }
}

static void conn_close(worker_t *w, conn_t *c, int state)
{
    if (c->hs) {
        c->hs = 0;
        w->handshaking--;
    }
    if (c->ssl) {
        /* no close_notify: the generator only ever closes at the end */
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0) {
        epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    free(c->hbuf);
    c->hbuf = NULL;
    c->state = (uint8_t)state;
}

/*******************************************************************************
 * WebSocket (--mode ws, --mode echo)
 ******************************************************************************/

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
enum { WS_HDR, WS_DATA, WS_CTRL };

/* One masked frame from the client (payloads of 125 bytes at most: pongs,
 * close frames, echo messages), whole or not at all: a fresh frame this
 * small always fits the socket's send buffer. */
static int ws_send(worker_t *w, conn_t *c, int op, const char *pl, size_t len)
{
    unsigned char f[2 + 4 + 125];
    size_t k, n;

    if (len > 125 || c->fd < 0) {
        return -1;
    }
    f[0] = (unsigned char)(0x80 | op);
    f[1] = (unsigned char)(0x80 | len);
    w->rnd ^= w->rnd << 13;
    w->rnd ^= w->rnd >> 7;
    w->rnd ^= w->rnd << 17;
    memcpy(f + 2, &w->rnd, 4);
    for (k = 0; k < len; k++) {
        f[6 + k] = (unsigned char)pl[k] ^ f[2 + k % 4];
    }
    n = 6 + len;
    if (c->ssl) {
        ERR_clear_error();
        if (SSL_write(c->ssl, f, (int)n) != (int)n) {
            ERR_clear_error();
            return -1;
        }
        return 0;
    }
    return write(c->fd, f, n) == (ssize_t)n ? 0 : -1;
}

/* --mode echo: the next message of this client, with its send time */
static void echo_send(worker_t *w, conn_t *c)
{
    char m[64];
    int n;

    if (c->fd < 0) {
        return;
    }
    n = snprintf(m, sizeof(m), "[\"B%u.%016" PRIu64 "E\"]", c->nrecv,
                 now_us() % UINT64_C(10000000000000000));
    if (ws_send(w, c, 1, m, (size_t)n) < 0) {
        w->res.closed++;
        conn_close(w, c, C_CLOSED);
    }
}

/* --mode echo: a message came back; send the next one while time is left */
static void echo_got(worker_t *w, conn_t *c, uint64_t ts)
{
    w->res.markers++;
    if (c->fd < 0 || !w->echo_until) {
        return;
    }
    hist_add(&w->res.lat, w->now > ts ? w->now - ts : 0);
    w->res.distinct++;
    w->res.delivered++;
    c->nrecv++;
    if (w->now < w->echo_until) {
        echo_send(w, c);
    }
}

static void record(worker_t *w, conn_t *c, uint64_t seq, uint64_t ts)
{
    uint64_t idx;
    uint64_t lat = w->now > ts ? w->now - ts : 0;

    if (opt.mode == MODE_ECHO) {
        echo_got(w, c, ts);
        return;
    }
    w->res.markers++;
    if (seq % (uint64_t)opt.channels != c->ch) {
        w->res.unexpected++;
        return;
    }
    idx = seq / (uint64_t)opt.channels;
    if (idx >= 0x7fffffffu) {
        w->res.unexpected++;
        return;
    }
    if (idx >= c->bitcap) {
        uint32_t cap = c->bitcap ? c->bitcap : 64;
        uint32_t *nb;
        while (cap <= idx) {
            cap *= 2;
        }
        nb = realloc(c->bits, cap / 8);
        if (!nb) {
            die("out of memory");
        }
        memset((char *)nb + c->bitcap / 8, 0, (cap - c->bitcap) / 8);
        c->bits = nb;
        c->bitcap = cap;
    }
    if (c->bits[idx / 32] & (1u << (idx % 32))) {
        w->res.dups++;
        return;
    }
    c->bits[idx / 32] |= 1u << (idx % 32);
    c->nrecv++;
    w->res.distinct++;
    hist_add(&w->res.lat, lat);
    if (on_port2(w->first + (c - w->c))) {
        hist_add(&w->res.lat2, lat);
    }
    if (opt.trace) {
        if (seq >= w->t_cap) {
            uint64_t cap = w->t_cap ? w->t_cap : 1024, old = w->t_cap;
            while (cap <= seq) {
                cap *= 2;
            }
            w->t_n = realloc(w->t_n, cap * sizeof(*w->t_n));
            w->t_min = realloc(w->t_min, cap * sizeof(*w->t_min));
            w->t_max = realloc(w->t_max, cap * sizeof(*w->t_max));
            w->t_sum = realloc(w->t_sum, cap * sizeof(*w->t_sum));
            if (!w->t_n || !w->t_min || !w->t_max || !w->t_sum) {
                die("out of memory");
            }
            memset(w->t_n + old, 0, (cap - old) * sizeof(*w->t_n));
            memset(w->t_min + old, 0xff, (cap - old) * sizeof(*w->t_min));
            memset(w->t_max + old, 0, (cap - old) * sizeof(*w->t_max));
            memset(w->t_sum + old, 0, (cap - old) * sizeof(*w->t_sum));
            w->t_cap = cap;
        }
        w->t_n[seq]++;
        w->t_sum[seq] += lat;
        if (lat < w->t_min[seq]) w->t_min[seq] = (uint32_t)(lat > UINT32_MAX ? UINT32_MAX : lat);
        if (lat > w->t_max[seq]) w->t_max[seq] = (uint32_t)(lat > UINT32_MAX ? UINT32_MAX : lat);
    }
}

/* --trace: one line per message of this worker: seq, arrivals, latency
 * min/mean/max in ms */
static void worker_trace(worker_t *w)
{
    char path[4096];
    FILE *f;
    uint64_t s;

    snprintf(path, sizeof(path), "%s.%d", opt.trace, w->index);
    if (!(f = fopen(path, "w"))) {
        return;
    }
    fprintf(f, "# seq arrivals min_ms mean_ms max_ms\n");
    for (s = 0; s < w->t_cap && s < w->published; s++) {
        if (w->t_n[s]) {
            fprintf(f, "%" PRIu64 " %u %.2f %.2f %.2f\n", s, w->t_n[s], w->t_min[s] / 1000.0,
                    (double)w->t_sum[s] / w->t_n[s] / 1000.0, w->t_max[s] / 1000.0);
        }
        else {
            fprintf(f, "%" PRIu64 " 0 - - -\n", s);
        }
    }
    fclose(f);
}

/* Find markers B<digits>.<digits>E in body bytes. */
static void scan(worker_t *w, conn_t *c, const char *p, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        switch (c->mstate) {
        case 0:
            if (ch == 'B') {
                c->mstate = 1;
                c->mseq = 0;
                c->mdigits = 0;
            }
            break;
        case 1:
            if (ch >= '0' && ch <= '9' && c->mdigits < 19) {
                c->mseq = c->mseq * 10 + (ch - '0');
                c->mdigits++;
            }
            else if (ch == '.' && c->mdigits) {
                c->mstate = 2;
                c->mts = 0;
                c->mdigits = 0;
            }
            else {
                c->mstate = ch == 'B';
                c->mseq = 0;
                c->mdigits = 0;
            }
            break;
        case 2:
            if (ch >= '0' && ch <= '9' && c->mdigits < 19) {
                c->mts = c->mts * 10 + (ch - '0');
                c->mdigits++;
            }
            else if (ch == 'E' && c->mdigits) {
                record(w, c, c->mseq, c->mts);
                c->mstate = 0;
            }
            else {
                c->mstate = ch == 'B';
                c->mseq = 0;
                c->mdigits = 0;
            }
            break;
        }
    }
}

/* A frame's payload is all there: answer a ping, a close. */
static void ws_frame_end(worker_t *w, conn_t *c)
{
    int op = c->wsst == WS_CTRL ? c->wop : -1;
    const char *pl = c->hbuf;
    size_t len = c->hlen;

    c->wsst = WS_HDR;
    if (op == 9) {                                /* ping: the same data back */
        if (ws_send(w, c, 10, pl, len) < 0) {
            w->res.closed++;
            conn_close(w, c, C_CLOSED);
            return;
        }
    }
    else if (op == 8 || (op > 10)) {              /* close (or nonsense): over */
        (void)ws_send(w, c, 8, pl, len >= 2 ? 2 : 0);
        w->res.closed++;
        conn_close(w, c, C_CLOSED);
        return;
    }
    free(c->hbuf);
    c->hbuf = NULL;
    c->hlen = 0;
}

/* The server's frames: data payloads (text, binary, continuation) scanned
 * for markers, control frames collected then answered. A masked server
 * frame or a reserved opcode ends the connection (counted as ended by the
 * server). */
static void ws_feed(worker_t *w, conn_t *c, const char *p, size_t n)
{
    while (n && c->fd >= 0) {
        if (c->wsst == WS_HDR) {
            size_t need;
            unsigned len7;
            uint64_t len = 0;
            int op, k;
            c->wh[c->whn++] = (uint8_t)*p++;
            n--;
            if (c->whn < 2) {
                continue;
            }
            len7 = c->wh[1] & 0x7f;
            need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0);
            if (c->whn < need) {
                continue;
            }
            op = c->wh[0] & 0x0f;
            if ((c->wh[1] & 0x80) || (op > 2 && op < 8) || (op >= 8 && len7 > 125)) {
                w->res.closed++;
                conn_close(w, c, C_CLOSED);
                return;
            }
            if (len7 < 126) {
                len = len7;
            }
            else {
                for (k = 2; k < (int)need; k++) {
                    len = (len << 8) | c->wh[k];
                }
            }
            c->whn = 0;
            c->chunk_left = len;
            if (op >= 8) {
                c->wop = (uint8_t)op;
                c->wsst = WS_CTRL;
                free(c->hbuf);
                c->hbuf = malloc(128);
                if (!c->hbuf) {
                    die("out of memory");
                }
                c->hlen = 0;
            }
            else {
                c->wsst = WS_DATA;
            }
            if (!len) {
                ws_frame_end(w, c);
            }
        }
        else {
            size_t k = n < c->chunk_left ? n : (size_t)c->chunk_left;
            if (c->wsst == WS_DATA) {
                scan(w, c, p, k);
            }
            else {
                memcpy(c->hbuf + c->hlen, p, k);
                c->hlen = (uint16_t)(c->hlen + k);
            }
            p += k;
            n -= k;
            c->chunk_left -= k;
            if (!c->chunk_left) {
                ws_frame_end(w, c);
            }
        }
    }
}

/* Sec-WebSocket-Accept of the handshake's answer (headers up to end, as
 * received: base64 is case-sensitive) against the key sent. */
static int ws_accept_ok(const conn_t *c, const char *end)
{
    const char *key = c->hbuf + HDR_MAX, *q;
    char in[64], want[64];
    unsigned char md[SHA_DIGEST_LENGTH];
    int n = snprintf(in, sizeof(in), "%s" WS_GUID, key);

    SHA1((const unsigned char *)in, (size_t)n, md);
    EVP_EncodeBlock((unsigned char *)want, md, SHA_DIGEST_LENGTH);
    for (q = c->hbuf; q && q < end; q = strstr(q, "\r\n")) {
        q += 2;
        if (!strncasecmp(q, "sec-websocket-accept:", 21)) {
            q += 21;
            while (*q == ' ' || *q == '\t') {
                q++;
            }
            n = (int)strlen(want);
            return !strncmp(q, want, (size_t)n) && (q[n] == '\r' || q[n] == ' ');
        }
    }
    return 0;
}

/* Body bytes: undo chunked transfer coding if any, then scan. */
static void body(worker_t *w, conn_t *c, const char *p, size_t n)
{
    if (opt.mode == MODE_WS || opt.mode == MODE_ECHO) {
        ws_feed(w, c, p, n);
        return;
    }
    if (!c->chunked) {
        scan(w, c, p, n);
        return;
    }
    while (n) {
        switch (c->cstate) {
        case CS_SIZE:
            if (*p == '\n') {
                c->cstate = c->chunk_left ? CS_DATA : CS_END;
                c->cext = 0;
            }
            else if (!c->cext && isxdigit((unsigned char)*p)) {
                int v = isdigit((unsigned char)*p) ? *p - '0' : (tolower((unsigned char)*p) - 'a' + 10);
                c->chunk_left = c->chunk_left * 16 + (uint64_t)v;
            }
            else if (*p != '\r') {
                c->cext = 1;          /* chunk extension: ignored */
            }
            p++;
            n--;
            break;
        case CS_DATA: {
            size_t k = n < c->chunk_left ? n : (size_t)c->chunk_left;
            scan(w, c, p, k);
            p += k;
            n -= k;
            c->chunk_left -= k;
            if (!c->chunk_left) {
                c->cstate = CS_DATA_END;
            }
            break;
        }
        case CS_DATA_END:
            if (*p == '\n') {
                c->cstate = CS_SIZE;
                c->chunk_left = 0;
            }
            p++;
            n--;
            break;
        default:
            return;                   /* last chunk: the rest is trailers */
        }
    }
}

static void worker_connected(worker_t *w, conn_t *c, int ok)
{
    (void)c;
    w->inflight--;
    if (ok) {
        w->ready.connected++;
    }
}

/* Response headers of a subscriber: 200 and maybe chunked, else failure. */
static void headers(worker_t *w, conn_t *c, const char *p, size_t n)
{
    char *end;
    size_t take, hl;
    int status = 0;

    take = n < (size_t)(HDR_MAX - 1 - c->hlen) ? n : (size_t)(HDR_MAX - 1 - c->hlen);
    memcpy(c->hbuf + c->hlen, p, take);
    c->hlen = (uint16_t)(c->hlen + take);
    c->hbuf[c->hlen] = '\0';
    end = strstr(c->hbuf, "\r\n\r\n");
    if (!end) {
        if (c->hlen >= HDR_MAX - 1) {
            w->ready.http_err++;
            worker_connected(w, c, 0);
            conn_close(w, c, C_FAILED);
        }
        return;
    }
    hl = (size_t)(end - c->hbuf) + 4;
    if (sscanf(c->hbuf, "HTTP/1.%*d %d", &status) != 1
        || status != (opt.mode == MODE_WS || opt.mode == MODE_ECHO ? 101 : 200)
        || (status == 101 && !ws_accept_ok(c, end))) {
        if (!w->ready.first_status) {
            /* 1101: a 101 with a wrong Sec-WebSocket-Accept */
            w->ready.first_status = status == 101 ? 1101 : status;
        }
        w->ready.http_err++;
        worker_connected(w, c, 0);
        conn_close(w, c, C_FAILED);
        return;
    }
    {
        char *q;
        for (q = c->hbuf; q < end; q++) {
            *q = (char)tolower((unsigned char)*q);
        }
        q = strstr(c->hbuf, "\r\ntransfer-encoding:");
        if (q && q < end && strstr(q, "chunked") && strstr(q, "chunked") < end) {
            c->chunked = 1;
            c->cstate = CS_SIZE;
        }
    }
    c->state = C_STREAM;
    c->wsst = WS_HDR;
    c->whn = 0;
    worker_connected(w, c, 1);
    {
        /* bytes of the body that came with the headers; hbuf holds them
         * until scanned */
        size_t rest = c->hlen - hl;
        char *hb = c->hbuf;
        c->hbuf = NULL;
        if (rest) {
            body(w, c, hb + hl, rest);
        }
        /* the part of this read that did not fit in hbuf */
        if (take < n) {
            body(w, c, p + take, n - take);
        }
        free(hb);
    }
}

static void start_connect(worker_t *w, long i)
{
    conn_t *c = &w->c[i];
    long g = w->first + i;
    int fd, one = 1;
    struct epoll_event ev;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        if (!w->ready.first_errno) {
            w->ready.first_errno = errno;
        }
        w->ready.failed++;
        c->state = C_FAILED;
        return;
    }
    if (opt.src_lo) {
        struct sockaddr_in src;
        uint32_t nsrc = opt.src_hi - opt.src_lo + 1;
        memset(&src, 0, sizeof(src));
        src.sin_family = AF_INET;
        src.sin_addr.s_addr = htonl(opt.src_lo + (uint32_t)(g % nsrc));
        /* the port is picked at connect time, per destination: the whole
         * ephemeral range is available to each source address */
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
            if (!w->ready.first_errno) {
                w->ready.first_errno = errno;
            }
            close(fd);
            w->ready.failed++;
            c->state = C_FAILED;
            return;
        }
    }
    if (connect(fd, (struct sockaddr *)(on_port2(g) ? &server_addr2 : &server_addr),
                sizeof(server_addr)) < 0
        && errno != EINPROGRESS) {
        if (!w->ready.first_errno) {
            w->ready.first_errno = errno;
        }
        close(fd);
        w->ready.failed++;
        c->state = C_FAILED;
        return;
    }
    c->fd = fd;
    c->state = C_CONNECTING;
    ev.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = (uint64_t)i;
    epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev);
    w->inflight++;
    if (opt.tls) {
        c->hs = 1;
        w->handshaking++;
    }
}

static void conn_events(worker_t *w, conn_t *c, long i, uint32_t events)
{
    struct epoll_event ev;

    ev.events = events;
    ev.data.u64 = (uint64_t)i;
    epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Why a TLS call failed, once per worker: OpenSSL's queue, or errno. */
static void tls_note_error(worker_t *w, int err)
{
    unsigned long e = ERR_peek_error();
    int sys = errno;

    if (!w->ready.first_tls[0]) {
        if (e) {
            ERR_error_string_n(e, w->ready.first_tls, sizeof(w->ready.first_tls));
        }
        else if (err == SSL_ERROR_SYSCALL) {
            snprintf(w->ready.first_tls, sizeof(w->ready.first_tls), "%s",
                     sys ? strerror(sys) : "connection closed by the server");
        }
        else {
            snprintf(w->ready.first_tls, sizeof(w->ready.first_tls), "SSL error %d", err);
        }
    }
    ERR_clear_error();
}

static void conn_fail(worker_t *w, conn_t *c, int err)
{
    if (!w->ready.first_errno) {
        w->ready.first_errno = err;
    }
    w->ready.failed++;
    worker_connected(w, c, 0);
    conn_close(w, c, C_FAILED);
}

/* The subscriber's GET, once connected (and past the TLS handshake). */
static void send_request(worker_t *w, conn_t *c, long i)
{
    char path[512], req[1024];
    int n, r, port = on_port2(w->first + i) ? opt.port2 : opt.port;

    /* echo: a SockJS session per client, named by its global index */
    make_path(path, sizeof(path), opt.sub_path,
              opt.mode == MODE_ECHO ? w->first + i : (long)c->ch);
    c->hbuf = malloc(HDR_MAX + 32);
    if (!c->hbuf) {
        die("out of memory");
    }
    if (opt.mode == MODE_WS || opt.mode == MODE_ECHO) {
        /* a random key; its base64 stays past the header buffer until the
         * answer's Sec-WebSocket-Accept is checked */
        unsigned char k[16];
        if (RAND_bytes(k, sizeof(k)) != 1) {
            die("RAND_bytes failed");
        }
        EVP_EncodeBlock((unsigned char *)c->hbuf + HDR_MAX, k, sizeof(k));
        n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                     "Sec-WebSocket-Key: %s\r\nUser-Agent: comet-load\r\n\r\n",
                     path, opt.host, port, c->hbuf + HDR_MAX);
    }
    else {
        n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nAccept: %s\r\n"
                     "User-Agent: comet-load\r\nCache-Control: no-cache\r\n\r\n",
                     path, opt.host, port, accept_hdr());
    }
    /* a fresh connection's send buffer takes a request whole, TLS or not */
    if (c->ssl) {
        ERR_clear_error();
        r = SSL_write(c->ssl, req, n);
        if (r != n) {
            tls_note_error(w, SSL_get_error(c->ssl, r));
            conn_fail(w, c, EIO);
            return;
        }
    }
    else if (write(c->fd, req, (size_t)n) != n) {
        conn_fail(w, c, errno ? errno : EIO);
        return;
    }
    c->hlen = 0;
    c->state = C_HEADERS;
    conn_events(w, c, i, EPOLLIN | EPOLLRDHUP);
}

/* One step of the TLS handshake: on to the request when it is done, else
 * wait for the socket as OpenSSL asks. */
static void tls_handshake(worker_t *w, conn_t *c, long i)
{
    int r, err;

    ERR_clear_error();
    r = SSL_connect(c->ssl);
    if (r == 1) {
        c->hs = 0;
        w->handshaking--;
        if (!w->ready.tls_params[0]) {
            const char *g = SSL_group_to_name(c->ssl, SSL_get_negotiated_group(c->ssl));
            snprintf(w->ready.tls_params, sizeof(w->ready.tls_params), "%s/%s/%s",
                     SSL_get_version(c->ssl), SSL_get_cipher_name(c->ssl), g ? g : "-");
        }
        send_request(w, c, i);
        return;
    }
    err = SSL_get_error(c->ssl, r);
    if (err == SSL_ERROR_WANT_READ) {
        conn_events(w, c, i, EPOLLIN | EPOLLRDHUP);
        return;
    }
    if (err == SSL_ERROR_WANT_WRITE) {
        conn_events(w, c, i, EPOLLOUT);
        return;
    }
    tls_note_error(w, err);
    conn_fail(w, c, EPROTO);
}

static void tls_start(worker_t *w, conn_t *c, long i)
{
    c->ssl = SSL_new(tls_ctx);
    if (!c->ssl || !SSL_set_fd(c->ssl, c->fd)) {
        tls_note_error(w, SSL_ERROR_SSL);
        conn_fail(w, c, ENOMEM);
        return;
    }
    SSL_set_connect_state(c->ssl);
    c->state = C_HANDSHAKE;
    tls_handshake(w, c, i);
}

static void on_writable(worker_t *w, conn_t *c, long i)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
        conn_fail(w, c, err ? err : errno);
        return;
    }
    if (opt.tls) {
        tls_start(w, c, i);
    }
    else {
        send_request(w, c, i);
    }
}

/* SSL_read as read(2): bytes, 0 at the end of the stream, or -1 with errno
 * (EAGAIN: nothing more until the socket is readable, or writable when
 * OpenSSL has to send first, e.g. a key update). */
static ssize_t tls_read(worker_t *w, conn_t *c, long i, char *buf)
{
    int r, err;

    ERR_clear_error();
    r = SSL_read(c->ssl, buf, READ_BUF);
    if (r > 0) {
        if (c->want_out) {
            c->want_out = 0;
            conn_events(w, c, i, EPOLLIN | EPOLLRDHUP);
        }
        return r;
    }
    err = SSL_get_error(c->ssl, r);
    switch (err) {
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_WANT_READ:
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        if (!c->want_out) {
            c->want_out = 1;
            conn_events(w, c, i, EPOLLIN | EPOLLOUT | EPOLLRDHUP);
        }
        errno = EAGAIN;
        return -1;
    default: {
        /* never EAGAIN here: the stream is over */
        int e = err == SSL_ERROR_SYSCALL && errno && errno != EAGAIN && errno != EINTR
                ? errno : EPROTO;
        tls_note_error(w, err);
        errno = e;
        return -1;
    }
    }
}

static void on_readable(worker_t *w, conn_t *c, long i, char *buf)
{
    /* TLS: read on while OpenSSL holds bytes that epoll cannot see (not
     * once more to hear "want read": that would allocate a read buffer) */
    do {
        ssize_t n = c->ssl ? tls_read(w, c, i, buf) : read(c->fd, buf, READ_BUF);

        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            return;
        }
        w->now = now_us();
        if (n <= 0) {
            if (c->state == C_HEADERS) {
                conn_fail(w, c, n < 0 ? errno : ECONNRESET);
            }
            else {
                w->res.closed++;
                conn_close(w, c, C_CLOSED);
            }
            return;
        }
        w->res.bytes += (uint64_t)n;
        if (c->state == C_HEADERS) {
            headers(w, c, buf, (size_t)n);
        }
        else {
            body(w, c, buf, (size_t)n);
        }
    } while (c->ssl && SSL_has_pending(c->ssl));
    if (c->ssl) {
        /* the stream idles until the next message: its 16 KiB read buffer
         * goes back (SSL_MODE_RELEASE_BUFFERS alone kept it: 35 KiB per
         * connection instead of 19) */
        SSL_free_buffers(c->ssl);
    }
}

static void worker_fill_connects(worker_t *w)
{
    while (w->next < w->count && w->inflight < opt.concurrency
           && (!opt.tls || w->handshaking < opt.handshakes)) {
        start_connect(w, w->next++);
    }
}

static uint64_t ok_bit(const worker_t *w, uint64_t seq)
{
    return seq < w->published && (w->ok[seq / 8] & (1u << (seq % 8)));
}

/* After DONE: what each subscriber should get, and what it got of that. */
static void worker_tally(worker_t *w)
{
    long i;

    w->res.expected = 0;
    w->res.delivered = 0;
    w->res.expected2 = 0;
    w->res.delivered2 = 0;
    w->res.complete_subs = 0;
    w->res.connected = w->ready.connected;
    for (i = 0; i < w->count; i++) {
        conn_t *c = &w->c[i];
        uint64_t got = 0, idx;
        if (c->state != C_STREAM && c->state != C_CLOSED) {
            continue;
        }
        w->res.expected += w->ok_per_ch[c->ch];
        for (idx = 0; idx < c->bitcap; idx++) {
            uint64_t seq = idx * (uint64_t)opt.channels + c->ch;
            if ((c->bits[idx / 32] & (1u << (idx % 32))) && ok_bit(w, seq)) {
                got++;
            }
        }
        w->res.delivered += got;
        if (on_port2(w->first + i)) {
            w->res.expected2 += w->ok_per_ch[c->ch];
            w->res.delivered2 += got;
        }
        if (got == w->ok_per_ch[c->ch]) {
            w->res.complete_subs++;
        }
    }
}

static void worker_run(worker_t *w)
{
    struct epoll_event evs[512];
    char *buf = xcalloc(1, READ_BUF);
    uint64_t t0 = now_us();
    uint64_t conn_deadline = t0 + (uint64_t)(opt.connect_timeout * 1e6);
    uint64_t drain_deadline = 0, done_at = 0, expected_total = 0;
    int connecting = 1, draining = 0;
    struct epoll_event ev;
    long i;

    w->rnd = (now_us() ^ ((uint64_t)getpid() << 32)) | 1;
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    ev.events = EPOLLIN;
    ev.data.u64 = UINT64_MAX;
    epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->cmd_fd, &ev);
    for (i = 0; i < w->count; i++) {
        w->c[i].fd = -1;
        w->c[i].ch = (uint32_t)((w->first + i) % opt.channels);
    }
    worker_fill_connects(w);
    for (;;) {
        int n, k, timeout = 100;
        uint64_t now;

        if (connecting && w->next >= w->count && w->inflight == 0) {
            connecting = 0;
            w->ready.connect_s = (double)(now_us() - t0) / 1e6;
            if (write_full(w->res_fd, &w->ready, sizeof(w->ready)) < 0) {
                exit(3);
            }
        }
        n = epoll_wait(w->epfd, evs, 512, timeout);
        if (n < 0 && errno != EINTR) {
            die("epoll_wait: %s", strerror(errno));
        }
        for (k = 0; k < n; k++) {
            conn_t *c;
            if (evs[k].data.u64 == UINT64_MAX) {
                cmd_t cmd;
                if (read_full(w->cmd_fd, &cmd, sizeof(cmd)) < 0) {
                    exit(0);                     /* parent gone */
                }
                if (cmd.type == CMD_QUIT) {
                    for (i = 0; i < w->count; i++) {
                        conn_close(w, &w->c[i], C_CLOSED);
                    }
                    exit(0);
                }
                if (cmd.type == CMD_DONE) {
                    uint64_t s;
                    w->published = cmd.published;
                    w->ok = xcalloc(cmd.len + 1, 1);
                    if (cmd.len && read_full(w->cmd_fd, w->ok, cmd.len) < 0) {
                        exit(3);
                    }
                    w->ok_per_ch = xcalloc((size_t)opt.channels, sizeof(uint64_t));
                    for (s = 0; s < w->published; s++) {
                        if (ok_bit(w, s)) {
                            w->ok_per_ch[s % (uint64_t)opt.channels]++;
                        }
                    }
                    expected_total = 0;
                    for (i = 0; i < w->count; i++) {
                        if (w->c[i].state == C_STREAM || w->c[i].state == C_CLOSED) {
                            expected_total += w->ok_per_ch[w->c[i].ch];
                        }
                    }
                    done_at = now_us();
                    drain_deadline = done_at + cmd.drain_ms * 1000;
                    draining = 1;
                    if (opt.mode == MODE_ECHO) {
                        /* go: every client sends its first message; the
                         * round trips go on until the deadline (drain_ms
                         * is the echo time here) */
                        w->echo_until = drain_deadline;
                        expected_total = UINT64_MAX;
                        for (i = 0; i < w->count; i++) {
                            if (w->c[i].state == C_STREAM) {
                                echo_send(w, &w->c[i]);
                            }
                        }
                    }
                }
                continue;
            }
            c = &w->c[evs[k].data.u64];
            if (c->fd < 0) {
                continue;
            }
            if (c->state == C_CONNECTING) {
                if (evs[k].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
                    on_writable(w, c, (long)evs[k].data.u64);
                }
                continue;
            }
            if (c->state == C_HANDSHAKE) {
                tls_handshake(w, c, (long)evs[k].data.u64);
                continue;
            }
            if (evs[k].events & (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLERR | EPOLLHUP)) {
                on_readable(w, c, (long)evs[k].data.u64, buf);
            }
        }
        if (!connecting && opt.mode != MODE_ECHO && n > 0 && n < BATCH_EVENTS) {
            /* streams: let arrivals gather for a moment before the next
             * epoll_wait, as 100,000 clients on their own machines would
             * not wake one process per message (see READ_PAUSE_US) */
            usleep(READ_PAUSE_US);
        }
        now = now_us();
        if (connecting) {
            worker_fill_connects(w);
            if (now >= conn_deadline) {
                for (i = 0; i < w->count; i++) {
                    conn_t *c = &w->c[i];
                    if (c->state == C_CONNECTING || c->state == C_HANDSHAKE
                        || c->state == C_HEADERS) {
                        w->ready.timeouts++;
                        w->ready.failed++;
                        worker_connected(w, c, 0);
                        conn_close(w, c, C_FAILED);
                    }
                    else if (c->state == C_IDLE) {
                        w->ready.timeouts++;
                        w->ready.failed++;
                        c->state = C_FAILED;
                    }
                }
                w->next = w->count;
            }
        }
        if (draining && (w->res.distinct >= expected_total || now >= drain_deadline)) {
            if (opt.mode == MODE_ECHO) {
                w->res.connected = w->ready.connected;
            }
            else {
                worker_tally(w);
            }
            if (opt.trace) {
                worker_trace(w);
            }
            w->res.drain_s = (double)(now_us() - done_at) / 1e6;
            if (write_full(w->res_fd, &w->res, sizeof(w->res)) < 0) {
                exit(3);
            }
            draining = 0;
        }
    }
}

/*******************************************************************************
 * parent: the publisher (one keep-alive connection, request after request)
 ******************************************************************************/

typedef struct {
    int fd;
    SSL *ssl;                     /* --pub-tls */
    char buf[READ_BUF];
    size_t len;
    uint64_t reconnects;
    int port;                     /* 0: the publisher's (pub_addr) */
} pubconn_t;

static void pub_close(pubconn_t *p)
{
    if (p->ssl) {
        SSL_free(p->ssl);
        p->ssl = NULL;
    }
    if (p->fd >= 0) {
        close(p->fd);
    }
    p->fd = -1;
}

/* Blocking I/O with the socket's time-outs, through TLS or not. */
static ssize_t pub_read(pubconn_t *p, char *buf, size_t len)
{
    int r;

    if (!p->ssl) {
        return read(p->fd, buf, len);
    }
    ERR_clear_error();
    r = SSL_read(p->ssl, buf, (int)(len > INT_MAX ? INT_MAX : len));
    if (r > 0) {
        return r;
    }
    if (SSL_get_error(p->ssl, r) == SSL_ERROR_ZERO_RETURN) {
        return 0;
    }
    ERR_clear_error();
    errno = EIO;                  /* a time-out too: the connection is done */
    return -1;
}

static int pub_write_full(pubconn_t *p, const char *buf, size_t len)
{
    if (!p->ssl) {
        return write_full(p->fd, buf, len);
    }
    ERR_clear_error();
    if (SSL_write(p->ssl, buf, (int)len) != (int)len) {
        ERR_clear_error();
        return -1;
    }
    return 0;
}

static int pub_connect(pubconn_t *p)
{
    int one = 1;
    struct timeval tv = { PUB_TIMEOUT_S, 0 };
    struct sockaddr_in to = pub_addr;

    pub_close(p);
    p->len = 0;
    p->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (p->fd < 0) {
        return -1;
    }
    setsockopt(p->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(p->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(p->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (p->port) {
        to.sin_port = htons((uint16_t)p->port);
    }
    if (connect(p->fd, (struct sockaddr *)&to, sizeof(to)) < 0) {
        pub_close(p);
        return -1;
    }
    if (opt.pub_tls) {
        ERR_clear_error();
        if (!(p->ssl = SSL_new(tls_ctx)) || !SSL_set_fd(p->ssl, p->fd)
            || SSL_connect(p->ssl) != 1) {
            ERR_clear_error();
            pub_close(p);
            return -1;
        }
    }
    return 0;
}

/* Number after the word "subscribers" in a reply (JSON or nchan's text). */
static long parse_subscribers(const char *body, size_t len)
{
    const char *k = memmem(body, len, "subscribers", 11);
    const char *end = body + len;
    int skip = 0;

    if (!k) {
        return -1;
    }
    k += 11;
    while (k < end && !isdigit((unsigned char)*k) && skip++ < 6) {
        k++;
    }
    if (k >= end || !isdigit((unsigned char)*k)) {
        return -1;
    }
    return strtol(k, NULL, 10);
}

/*
 * One request, one response. Returns the status (0: I/O error, the
 * connection is then closed), and the subscriber count found in the body.
 */
static int pub_request(pubconn_t *p, const char *method, const char *path,
                       const char *body, size_t blen, int ts_off, uint64_t *sent_at,
                       long *subs)
{
    char req[2048];
    int hl, status = 0, chunked = 0, closing = 0;
    long clen = -1;
    char *he;
    size_t hlen;

    if (p->fd < 0 && pub_connect(p) < 0) {
        return 0;
    }
    hl = snprintf(req, sizeof(req),
                  "%s %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: comet-load\r\n"
                  "Content-Type: text/plain\r\nContent-Length: %zu\r\n\r\n",
                  method, path, opt.host, p->port ? p->port : opt.pub_port, blen);
    if (hl <= 0 || (size_t)hl + blen > sizeof(req)) {
        die("request too large");
    }
    memcpy(req + hl, body, blen);
    if (sent_at) {
        *sent_at = now_us();
    }
    if (ts_off >= 0) {
        /* the send time goes into the body right before the write: 16
         * digits, zero-padded, in the slot the caller left */
        char ts[32];
        snprintf(ts, sizeof(ts), "%016" PRIu64, (uint64_t)(*sent_at % UINT64_C(10000000000000000)));
        memcpy(req + hl + ts_off, ts, 16);
    }
    if (pub_write_full(p, req, (size_t)hl + blen) < 0) {
        goto fail;
    }
    /* headers */
    for (;;) {
        ssize_t n;
        p->buf[p->len] = '\0';
        if ((he = strstr(p->buf, "\r\n\r\n")) != NULL) {
            break;
        }
        if (p->len >= sizeof(p->buf) - 1) {
            goto fail;
        }
        n = pub_read(p, p->buf + p->len, sizeof(p->buf) - 1 - p->len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            goto fail;
        }
        p->len += (size_t)n;
    }
    hlen = (size_t)(he - p->buf) + 4;
    if (sscanf(p->buf, "HTTP/1.%*d %d", &status) != 1) {
        goto fail;
    }
    {
        char *q;
        for (q = p->buf; q < he; q++) {
            *q = (char)tolower((unsigned char)*q);
        }
        *he = '\0';
        if ((q = strstr(p->buf, "\r\ncontent-length:")) != NULL) {
            clen = strtol(q + 17, NULL, 10);
        }
        if ((q = strstr(p->buf, "\r\ntransfer-encoding:")) && strstr(q, "chunked")) {
            chunked = 1;
        }
        if ((q = strstr(p->buf, "\r\nconnection:")) != NULL) {
            char *eol = strstr(q + 2, "\r\n"), *cl = strstr(q, "close");
            if (cl && (!eol || cl < eol)) {
                closing = 1;
            }
        }
        if (!strncmp(p->buf, "http/1.0", 8)) {
            closing = 1;
        }
        *he = '\r';
    }
    /* body: by Content-Length, chunked (read until the last chunk), or to
     * the end of the connection */
    memmove(p->buf, p->buf + hlen, p->len - hlen);
    p->len -= hlen;
    for (;;) {
        ssize_t n;
        if (clen >= 0 && p->len >= (size_t)clen) {
            break;
        }
        if (chunked) {
            p->buf[p->len] = '\0';
            if (p->len >= 5 && (memmem(p->buf, p->len, "\r\n0\r\n\r\n", 7)
                                || !memcmp(p->buf, "0\r\n\r\n", 5))) {
                clen = (long)p->len;
                break;
            }
        }
        if (p->len >= sizeof(p->buf) - 1) {
            goto fail;
        }
        n = pub_read(p, p->buf + p->len, sizeof(p->buf) - 1 - p->len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n == 0 && clen < 0 && !chunked) {
            clen = (long)p->len;
            closing = 1;
            break;
        }
        if (n <= 0) {
            goto fail;
        }
        p->len += (size_t)n;
    }
    if (subs) {
        *subs = parse_subscribers(p->buf, (size_t)clen);
    }
    memmove(p->buf, p->buf + clen, p->len - (size_t)clen);
    p->len -= (size_t)clen;
    if (closing) {
        pub_close(p);
        p->reconnects++;
    }
    return status;
fail:
    pub_close(p);
    p->reconnects++;
    return 0;
}

/*******************************************************************************
 * parent
 ******************************************************************************/

static pid_t wpids[MAX_PROCS];
static int nworkers;

static void on_alarm(int sig)
{
    int i;

    (void)sig;
    for (i = 0; i < nworkers; i++) {
        if (wpids[i] > 0) {
            kill(wpids[i], SIGKILL);
        }
    }
    (void)!write(2, "comet-load: time limit reached, giving up\n", 42);
    _exit(4);
}

static double parse_double(const char *s, const char *what)
{
    char *end;
    double v = strtod(s, &end);

    if (end == s || *end || v < 0) {
        die("%s: a non-negative number expected, not '%s'", what, s);
    }
    return v;
}

static long parse_long(const char *s, const char *what)
{
    char *end;
    long v = strtol(s, &end, 10);

    if (end == s || *end || v < 0) {
        die("%s: a non-negative integer expected, not '%s'", what, s);
    }
    return v;
}

static void parse_sources(const char *s)
{
    char a[64], b[64];
    const char *dash = strchr(s, '-');
    struct in_addr x, y;

    if (dash) {
        snprintf(a, sizeof(a), "%.*s", (int)(dash - s), s);
        snprintf(b, sizeof(b), "%s", dash + 1);
    }
    else {
        snprintf(a, sizeof(a), "%s", s);
        snprintf(b, sizeof(b), "%s", s);
    }
    if (!inet_aton(a, &x) || !inet_aton(b, &y) || ntohl(y.s_addr) < ntohl(x.s_addr)
        || (ntohl(x.s_addr) >> 24) != 127 || (ntohl(y.s_addr) >> 24) != 127) {
        die("--sources: a range of 127.0.0.0/8 addresses, e.g. 127.0.0.2-127.0.0.9");
    }
    opt.src_lo = ntohl(x.s_addr);
    opt.src_hi = ntohl(y.s_addr);
}

static void usage(void)
{
    printf(
"usage: comet-load [options]\n"
"  --host A               server address, in 127.0.0.0/8 (127.0.0.1)\n"
"  --port P               server port (8180)\n"
"  --sub-path T           subscriber path, %%c = channel name (/comet/%%c)\n"
"  --pub-path T           publish path, %%c = channel name (/comet-publish/%%c)\n"
"  --prefix S             channel names are S0..S<C-1> (ch)\n"
"  --subs N               subscriber connections (1000)\n"
"  --channels C           channels; subscriber j follows channel j %% C (1)\n"
"  --messages M           messages to publish; message i goes to channel i %% C (100)\n"
"  --rate R               messages per second; 0: as fast as possible (10)\n"
"  --duration S           publish for S seconds at most (0: until M are sent)\n"
"  --size B               message body size, padded after the marker (0: marker only)\n"
"  --mode iframe|sse|raw  Accept header: text/html, text/event-stream, */* (iframe)\n"
"  --mode ws              WebSocket subscribers (Upgrade on --sub-path)\n"
"  --mode echo            SockJS WebSocket round trips for --duration seconds\n"
"                         (--sub-path /echo/000/%%c/websocket: a session each)\n"
"  --sources A-B          source addresses for subscribers, round-robin\n"
"  --server-pidfile F     sample the server: PSS and CPU of F's pid and descendants\n"
"  --idle S               hold the subscribers S seconds before publishing; report\n"
"                         the server's CPU time meanwhile (0)\n"
"  --connect-timeout S    time to connect all subscribers (20)\n"
"  --settle S             wait up to S s for the server to count the subscribers (10)\n"
"  --drain S              wait up to S s after the last publish for deliveries (10)\n"
"  --concurrency K        connects in flight per process (256)\n"
"  --procs P              subscriber processes (N/15000 rounded up)\n"
"  --label L              name of the run in the RESULT line\n"
"  --quiet                only the RESULT line\n"
"  --trace F              per message latency min/mean/max into F.<process>\n"
"  --pub-method GET       baseline: GET the publish path instead of publishing\n"
"                         (channel info: the cost of a request alone)\n"
"  --tls                  subscribers connect with TLS (no certificate check)\n"
"  --handshakes K         TLS handshakes in flight per process (64)\n"
"  --pub-port P           the publisher's port (--port)\n"
"  --pub-tls              the publisher uses TLS too (plain HTTP by default)\n"
"  --port2 P              every odd subscriber connects to port P instead (several\n"
"                         servers sharing channels); lat2_* and delivered2 are theirs\n"
"  --count-port P         add up the subscriber counts of this port's publish path\n"
"                         (repeatable; default: the publisher's port)\n"
"  --server-pidfile F     may be repeated (up to 4 servers): their figures add up\n"
"  --redis-pidfile F      the Redis server's CPU time while publishing (redis_cpu_s)\n");
}

static void parse_args(int argc, char **argv)
{
    static const struct option lo[] = {
        { "host", 1, 0, 'h' }, { "port", 1, 0, 'p' }, { "sub-path", 1, 0, 's' },
        { "pub-path", 1, 0, 'P' }, { "prefix", 1, 0, 'x' }, { "subs", 1, 0, 'n' },
        { "channels", 1, 0, 'c' }, { "messages", 1, 0, 'm' }, { "rate", 1, 0, 'r' },
        { "duration", 1, 0, 'd' }, { "size", 1, 0, 'z' }, { "mode", 1, 0, 'M' },
        { "sources", 1, 0, 'S' }, { "server-pidfile", 1, 0, 'f' }, { "idle", 1, 0, 'i' },
        { "connect-timeout", 1, 0, 't' }, { "settle", 1, 0, 'w' }, { "drain", 1, 0, 'D' },
        { "concurrency", 1, 0, 'k' }, { "procs", 1, 0, 'j' }, { "label", 1, 0, 'l' },
        { "quiet", 0, 0, 'q' }, { "trace", 1, 0, 'T' }, { "pub-method", 1, 0, 'G' },
        { "tls", 0, 0, 'L' }, { "handshakes", 1, 0, 'K' }, { "pub-port", 1, 0, 'O' },
        { "pub-tls", 0, 0, 'E' }, { "port2", 1, 0, 'Q' }, { "count-port", 1, 0, 'C' },
        { "redis-pidfile", 1, 0, 'R' }, { "help", 0, 0, 'H' }, { 0, 0, 0, 0 }
    };
    int ch;

    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'h': opt.host = optarg; break;
        case 'p': opt.port = (int)parse_long(optarg, "--port"); break;
        case 's': opt.sub_path = optarg; break;
        case 'P': opt.pub_path = optarg; break;
        case 'x': opt.prefix = optarg; break;
        case 'n': opt.subs = parse_long(optarg, "--subs"); break;
        case 'c': opt.channels = parse_long(optarg, "--channels"); break;
        case 'm': opt.messages = parse_long(optarg, "--messages"); break;
        case 'r': opt.rate = parse_double(optarg, "--rate"); break;
        case 'd': opt.duration = parse_double(optarg, "--duration"); break;
        case 'z': opt.size = (int)parse_long(optarg, "--size"); break;
        case 'M':
            if (!strcmp(optarg, "iframe")) opt.mode = MODE_IFRAME;
            else if (!strcmp(optarg, "sse")) opt.mode = MODE_SSE;
            else if (!strcmp(optarg, "raw")) opt.mode = MODE_RAW;
            else if (!strcmp(optarg, "ws")) opt.mode = MODE_WS;
            else if (!strcmp(optarg, "echo")) opt.mode = MODE_ECHO;
            else die("--mode: iframe, sse, raw, ws or echo");
            break;
        case 'S': parse_sources(optarg); break;
        case 'f':
            if (opt.npidfiles >= MAX_SERVERS) die("--server-pidfile: at most %d", MAX_SERVERS);
            opt.pidfiles[opt.npidfiles++] = optarg;
            opt.pidfile = opt.pidfiles[0];
            break;
        case 'Q': opt.port2 = (int)parse_long(optarg, "--port2"); break;
        case 'C':
            if (opt.ncount >= MAX_SERVERS) die("--count-port: at most %d", MAX_SERVERS);
            opt.count_ports[opt.ncount++] = (int)parse_long(optarg, "--count-port");
            break;
        case 'R': opt.redis_pidfile = optarg; break;
        case 'i': opt.idle = parse_double(optarg, "--idle"); break;
        case 't': opt.connect_timeout = parse_double(optarg, "--connect-timeout"); break;
        case 'w': opt.settle = parse_double(optarg, "--settle"); break;
        case 'D': opt.drain = parse_double(optarg, "--drain"); break;
        case 'k': opt.concurrency = (int)parse_long(optarg, "--concurrency"); break;
        case 'j': opt.procs = (int)parse_long(optarg, "--procs"); break;
        case 'l': opt.label = optarg; break;
        case 'q': opt.quiet = 1; break;
        case 'T': opt.trace = optarg; break;
        case 'G':
            if (strcmp(optarg, "POST") && strcmp(optarg, "GET")) die("--pub-method: POST or GET");
            opt.pub_method = optarg;
            break;
        case 'L': opt.tls = 1; break;
        case 'K': opt.handshakes = (int)parse_long(optarg, "--handshakes"); break;
        case 'O': opt.pub_port = (int)parse_long(optarg, "--pub-port"); break;
        case 'E': opt.pub_tls = 1; break;
        case 'H': usage(); exit(0);
        default: usage(); exit(2);
        }
    }
    if (optind < argc) {
        die("unexpected argument '%s' (see --help)", argv[optind]);
    }
    if (opt.channels < 1) {
        die("--channels: at least 1");
    }
    if (opt.concurrency < 1) {
        opt.concurrency = 1;
    }
    if (opt.handshakes < 1) {
        opt.handshakes = 1;
    }
    if (!opt.pub_port) {
        opt.pub_port = opt.port;
    }
    if (opt.size > 1000) {
        die("--size: at most 1000 bytes");
    }
    memset(&server_addr, 0, sizeof(server_addr));
    server_addr.sin_family = AF_INET;
    server_addr.sin_port = htons((uint16_t)opt.port);
    if (!inet_aton(opt.host, &server_addr.sin_addr)
        || (ntohl(server_addr.sin_addr.s_addr) >> 24) != 127) {
        die("--host: a loopback address (127.0.0.0/8) expected");
    }
    pub_addr = server_addr;
    pub_addr.sin_port = htons((uint16_t)opt.pub_port);
    server_addr2 = server_addr;
    server_addr2.sin_port = htons((uint16_t)opt.port2);
}

/* One client context for every connection: no verification (the servers'
 * certificates are made for the run), no session resumption, and buffers
 * only while a record is in transit (SSL_MODE_RELEASE_BUFFERS, and
 * SSL_free_buffers after reading: a stream idles between messages, and
 * 15,000 of them share a process). */
static void tls_init(void)
{
    tls_ctx = SSL_CTX_new(TLS_client_method());
    if (!tls_ctx) {
        die("SSL_CTX_new failed");
    }
    SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_mode(tls_ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_cache_mode(tls_ctx, SSL_SESS_CACHE_OFF);
    /* a server closing a stream without close_notify ends it, no error */
    SSL_CTX_set_options(tls_ctx, SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF);
}

/* Wait until the server counts `want` subscribers over our channels (the
 * servers of --count-port together, each asked on its own connection). */
static long wait_for_subscribers(pubconn_t *pc, long want, double max_s)
{
    uint64_t deadline = now_us() + (uint64_t)(max_s * 1e6);
    long seen = -1;
    char path[512];
    pubconn_t *cc[MAX_SERVERS];
    int nc = opt.ncount ? opt.ncount : 1, k;

    cc[0] = pc;
    for (k = 0; k < opt.ncount; k++) {
        cc[k] = xcalloc(1, sizeof(pubconn_t));
        cc[k]->fd = -1;
        cc[k]->port = opt.count_ports[k];
    }
    for (;;) {
        long ch, total = 0;
        int bad = 0;
        for (k = 0; k < nc; k++) {
            for (ch = 0; ch < opt.channels && ch < want; ch++) {
                long n = -1;
                int st;
                make_path(path, sizeof(path), opt.pub_path, ch);
                st = pub_request(cc[k], "GET", path, "", 0, -1, NULL, &n);
                if (st == 200 && n >= 0) {
                    total += n;
                }
                else if (st != 404) {
                    bad = 1;
                }
            }
        }
        seen = total;
        if (total >= want || now_us() >= deadline) {
            break;
        }
        (void)bad;
        usleep(100000);
    }
    for (k = 0; k < opt.ncount; k++) {
        pub_close(cc[k]);
        free(cc[k]);
    }
    return seen;
}

static void print_pct(const char *name, double v)
{
    printf("%s=%.2f ", name, v);
}

int main(int argc, char **argv)
{
    int cmd_pipe[MAX_PROCS][2], res_pipe[MAX_PROCS][2];
    long per, i;
    ready_t total_ready;
    wresult_t total_res;
    srv_sample_t s_before, s_subs, s_idle0, s_idle1, s_pub0, s_pub1, s_end, s_after;
    uint64_t tcp_before, tcp_subs;
    pubconn_t *pc;
    hist_t *rtt;
    uint8_t *ok = NULL;
    size_t okcap = 0;
    uint64_t published = 0, pub_ok = 0, pub_err = 0, t_pub0, t_pub1;
    long first_pub_subs = -1, seen_subs = -1;
    int first_bad_status = 0;
    double ticks_per_s = (double)sysconf(_SC_CLK_TCK);
    double budget, plan = 0, loader_cpu_s = 0, load1 = -1;
    struct rlimit rl;
    uint64_t r_pub0 = UINT64_MAX, r_pub1 = UINT64_MAX, r_pss_subs = 0, r_pss_end = 0;

    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    if (opt.tls || opt.pub_tls) {
        tls_init();
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    /* every run ends by itself; a request in flight when the settle wait
     * or the publishing runs out may take PUB_TIMEOUT_S more */
    budget = opt.connect_timeout + opt.settle + PUB_TIMEOUT_S + opt.idle + opt.drain + 60;
    if (opt.duration > 0) {
        plan = opt.duration;
    }
    else if (opt.rate > 0) {
        plan = (double)opt.messages / opt.rate;
    }
    if (plan > 0) {
        budget += plan + PUB_GRACE_S + PUB_TIMEOUT_S;
    }
    else {
        budget += 600;
    }
    signal(SIGALRM, on_alarm);
    alarm((unsigned)budget);

    nworkers = opt.procs > 0 ? opt.procs : (int)((opt.subs + MAX_PER_PROC - 1) / MAX_PER_PROC);
    if (opt.subs == 0) {
        nworkers = 0;
    }
    if (nworkers > MAX_PROCS) {
        die("too many subscribers: at most %d processes of %d", MAX_PROCS, MAX_PER_PROC);
    }
    if (nworkers && (opt.subs + nworkers - 1) / nworkers > MAX_PER_PROC) {
        die("--procs: at most %d subscribers per process", MAX_PER_PROC);
    }
    if (nworkers && getrlimit(RLIMIT_NOFILE, &rl) == 0
        && (rlim_t)((opt.subs + nworkers - 1) / nworkers + 16) > rl.rlim_cur) {
        die("%ld connections per process need more than the %ld open files allowed "
            "(ulimit -n): use --procs", (opt.subs + nworkers - 1) / nworkers,
            (long)rl.rlim_cur);
    }
    if (opt.subs > 28000 && !opt.src_lo) {
        fprintf(stderr, "comet-load: warning: more than ~28,000 connections from one "
                "source address: use --sources\n");
    }

    s_before = server_sample(1);
    tcp_before = tcp_mem_kb();
    {
        /* how busy the machine was (other work competes for the CPUs) */
        FILE *f = fopen("/proc/loadavg", "r");
        if (f) {
            if (fscanf(f, "%lf", &load1) != 1) {
                load1 = -1;
            }
            fclose(f);
        }
    }

    per = nworkers ? (opt.subs + nworkers - 1) / nworkers : 0;
    for (i = 0; i < nworkers; i++) {
        pid_t pid;
        if (pipe2(cmd_pipe[i], O_CLOEXEC) < 0 || pipe2(res_pipe[i], O_CLOEXEC) < 0) {
            die("pipe: %s", strerror(errno));
        }
        fflush(stdout);
        pid = fork();
        if (pid < 0) {
            die("fork: %s", strerror(errno));
        }
        if (pid == 0) {
            worker_t *w = xcalloc(1, sizeof(*w));
            long k;
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            alarm(0);
            signal(SIGALRM, SIG_DFL);
            for (k = 0; k <= i; k++) {
                close(cmd_pipe[k][1]);
                close(res_pipe[k][0]);
            }
            w->first = i * per;
            w->count = opt.subs - w->first < per ? opt.subs - w->first : per;
            if (w->count < 0) {
                w->count = 0;
            }
            w->c = xcalloc((size_t)w->count + 1, sizeof(conn_t));
            w->cmd_fd = cmd_pipe[i][0];
            w->index = (int)i;
            w->res_fd = res_pipe[i][1];
            alarm((unsigned)budget + 5);
            worker_run(w);
            _exit(0);
        }
        wpids[i] = pid;
        close(cmd_pipe[i][0]);
        close(res_pipe[i][1]);
    }

    /* READY from each worker */
    memset(&total_ready, 0, sizeof(total_ready));
    for (i = 0; i < nworkers; i++) {
        ready_t r;
        if (read_full(res_pipe[i][0], &r, sizeof(r)) < 0) {
            die("worker %ld died while connecting", i);
        }
        total_ready.connected += r.connected;
        total_ready.failed += r.failed;
        total_ready.http_err += r.http_err;
        total_ready.timeouts += r.timeouts;
        if (!total_ready.first_errno) total_ready.first_errno = r.first_errno;
        if (!total_ready.first_status) total_ready.first_status = r.first_status;
        if (!total_ready.first_tls[0]) memcpy(total_ready.first_tls, r.first_tls, sizeof(r.first_tls));
        if (!total_ready.tls_params[0]) memcpy(total_ready.tls_params, r.tls_params, sizeof(r.tls_params));
        if (r.connect_s > total_ready.connect_s) total_ready.connect_s = r.connect_s;
    }
    if (!opt.quiet) {
        printf("[%s] connected %" PRIu64 "/%ld subscribers%s%s in %.2f s (failed %" PRIu64
               ", http errors %" PRIu64 ", first bad status %d%s%s%s%s%s)\n", opt.label,
               total_ready.connected, opt.subs, opt.tls ? " over " : "",
               !opt.tls ? "" : total_ready.tls_params[0] ? total_ready.tls_params : "TLS",
               total_ready.connect_s, total_ready.failed,
               total_ready.http_err, total_ready.first_status,
               total_ready.first_errno ? ", first error: " : "",
               total_ready.first_errno ? strerror(total_ready.first_errno) : "",
               total_ready.first_tls[0] ? ", first TLS error: " : "", total_ready.first_tls,
               total_ready.timeouts ? ", some timed out" : "");
        fflush(stdout);
    }

    pc = xcalloc(1, sizeof(*pc));
    pc->fd = -1;
    if (total_ready.connected && opt.settle > 0 && opt.mode != MODE_ECHO) {
        seen_subs = wait_for_subscribers(pc, (long)total_ready.connected, opt.settle);
    }
    s_subs = server_sample(1);
    tcp_subs = tcp_mem_kb();
    if (opt.redis_pidfile) {
        uint64_t t;
        redis_sample(&t, &r_pss_subs);
    }

    memset(&s_idle0, 0, sizeof(s_idle0));
    s_idle1 = s_idle0;
    if (opt.idle > 0) {
        s_idle0 = server_sample(0);
        sleep_until_us(now_us() + (uint64_t)(opt.idle * 1e6));
        s_idle1 = server_sample(0);
    }

    /* publish */
    rtt = xcalloc(1, sizeof(*rtt));
    s_pub0 = server_sample(0);
    if (opt.redis_pidfile) {
        uint64_t pss;
        redis_sample(&r_pub0, &pss);
    }
    t_pub0 = now_us();
    if (opt.mode != MODE_ECHO && (opt.messages > 0 || opt.duration > 0)) {
        char path[512], body[1100];
        uint64_t seq;
        int consecutive_fail = 0, baseline = strcmp(opt.pub_method, "POST") != 0;
        for (seq = 0; ; seq++) {
            uint64_t sent_at = 0, t_now = now_us();
            int bl, st, ts_off;
            long subs = -1;
            if (opt.messages > 0 && seq >= (uint64_t)opt.messages) {
                break;
            }
            if (opt.duration > 0 && t_now - t_pub0 >= (uint64_t)(opt.duration * 1e6)) {
                break;
            }
            if (plan > 0 && t_now - t_pub0 >= (uint64_t)((plan + PUB_GRACE_S) * 1e6)) {
                fprintf(stderr, "comet-load: publishing is %d s past its plan: stopping\n",
                        PUB_GRACE_S);
                break;
            }
            if (opt.rate > 0) {
                uint64_t target = t_pub0 + (uint64_t)((double)seq * 1e6 / opt.rate);
                if (t_now < target) {
                    sleep_until_us(target);
                }
            }
            /* B<seq>.<16 digits of send time>E, padded */
            bl = snprintf(body, sizeof(body), "B%" PRIu64 ".0000000000000000E", seq);
            ts_off = (int)(strchr(body, '.') + 1 - body);
            while (bl < opt.size) {
                body[bl++] = 'x';
            }
            body[bl] = '\0';
            make_path(path, sizeof(path), opt.pub_path, (long)(seq % (uint64_t)opt.channels));
            if (baseline) {
                /* the request cost alone, nothing published */
                st = pub_request(pc, opt.pub_method, path, "", 0, -1, &sent_at, &subs);
            }
            else {
                st = pub_request(pc, "POST", path, body, (size_t)bl, ts_off, &sent_at, &subs);
            }
            hist_add(rtt, now_us() - sent_at);
            if (seq / 8 >= okcap) {
                size_t ncap = okcap ? okcap * 2 : 4096;
                ok = realloc(ok, ncap);
                if (!ok) {
                    die("out of memory");
                }
                memset(ok + okcap, 0, ncap - okcap);
                okcap = ncap;
            }
            published = seq + 1;
            if (st >= 200 && st < 300) {
                if (!baseline) {
                    ok[seq / 8] |= (uint8_t)(1u << (seq % 8));
                }
                pub_ok++;
                consecutive_fail = 0;
                if (first_pub_subs < 0) {
                    first_pub_subs = subs;
                }
            }
            else {
                pub_err++;
                if (!first_bad_status) {
                    first_bad_status = st ? st : -1;
                }
                if (++consecutive_fail >= 20) {
                    fprintf(stderr, "comet-load: 20 publishes in a row failed: stopping\n");
                    break;
                }
                if (!st) {
                    usleep(10000);
                }
            }
        }
    }
    t_pub1 = now_us();
    s_pub1 = server_sample(0);
    if (opt.redis_pidfile) {
        redis_sample(&r_pub1, &r_pss_end);
    }

    /* DONE: the workers read until complete or the drain time is over */
    memset(&total_res, 0, sizeof(total_res));
    for (i = 0; i < nworkers; i++) {
        cmd_t cmd;
        memset(&cmd, 0, sizeof(cmd));
        cmd.type = CMD_DONE;
        cmd.published = published;
        cmd.len = (uint32_t)((published + 7) / 8);
        cmd.drain_ms = (uint64_t)((opt.mode == MODE_ECHO ? opt.duration : opt.drain) * 1000);
        if (write_full(cmd_pipe[i][1], &cmd, sizeof(cmd)) < 0
            || (cmd.len && write_full(cmd_pipe[i][1], ok, cmd.len) < 0)) {
            die("worker %ld is gone", i);
        }
    }
    for (i = 0; i < nworkers; i++) {
        wresult_t *r = xcalloc(1, sizeof(*r));
        if (read_full(res_pipe[i][0], r, sizeof(*r)) < 0) {
            die("worker %ld died", i);
        }
        total_res.connected += r->connected;
        total_res.closed += r->closed;
        total_res.bytes += r->bytes;
        total_res.markers += r->markers;
        total_res.distinct += r->distinct;
        total_res.dups += r->dups;
        total_res.unexpected += r->unexpected;
        total_res.expected += r->expected;
        total_res.delivered += r->delivered;
        total_res.complete_subs += r->complete_subs;
        if (r->drain_s > total_res.drain_s) {
            total_res.drain_s = r->drain_s;
        }
        hist_merge(&total_res.lat, &r->lat);
        total_res.expected2 += r->expected2;
        total_res.delivered2 += r->delivered2;
        hist_merge(&total_res.lat2, &r->lat2);
        free(r);
    }
    if (opt.mode == MODE_ECHO) {
        /* the round trips took the workers' time */
        t_pub1 = now_us();
        s_pub1 = server_sample(0);
    }
    s_end = server_sample(1);

    for (i = 0; i < nworkers; i++) {
        cmd_t cmd;
        memset(&cmd, 0, sizeof(cmd));
        cmd.type = CMD_QUIT;
        (void)write_full(cmd_pipe[i][1], &cmd, sizeof(cmd));
    }
    for (i = 0; i < nworkers; i++) {
        waitpid(wpids[i], NULL, 0);
        wpids[i] = 0;
    }
    pub_close(pc);
    sleep_until_us(now_us() + 1000000);
    s_after = server_sample(0);
    {
        struct rusage ru, rc;
        getrusage(RUSAGE_SELF, &ru);
        getrusage(RUSAGE_CHILDREN, &rc);
        loader_cpu_s = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + rc.ru_utime.tv_sec
                                + rc.ru_stime.tv_sec)
                       + (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec
                                  + rc.ru_utime.tv_usec + rc.ru_stime.tv_usec) / 1e6;
    }
    alarm(0);

    {
        double pub_s = (double)(t_pub1 - t_pub0) / 1e6;
        double pub_rate = pub_s > 0 ? (double)pub_ok / pub_s : 0;
        double idle_cpu_s = s_idle1.ok && s_idle0.ok
                            ? (double)(s_idle1.cpu_ticks - s_idle0.cpu_ticks) / ticks_per_s : 0;
        double pub_cpu_s = s_pub1.ok && s_pub0.ok
                           ? (double)(s_pub1.cpu_ticks - s_pub0.cpu_ticks) / ticks_per_s : 0;
        long long pss_delta = (long long)s_subs.pss_kb - (long long)s_before.pss_kb;
        double per_sub = total_ready.connected
                         ? (double)pss_delta * 1024.0 / (double)total_ready.connected : 0;
        double tcp_per_sub = total_ready.connected
                             ? ((double)tcp_subs - (double)tcp_before) * 1024.0
                               / (double)total_ready.connected : 0;
        uint64_t missing = total_res.expected > total_res.delivered
                           ? total_res.expected - total_res.delivered : 0;
        /* --mode echo: round trips over the workers' echo time */
        double echo_s = opt.mode == MODE_ECHO ? total_res.drain_s : 0;
        double echo_rate = echo_s > 0 ? (double)total_res.delivered / echo_s : 0;
        /* Redis' CPU time over the publishing (-1: not sampled) */
        double redis_cpu_s = r_pub0 != UINT64_MAX && r_pub1 != UINT64_MAX && r_pub1 >= r_pub0
                             ? (double)(r_pub1 - r_pub0) / ticks_per_s : -1;
        static const char *const modes[] = { "iframe", "sse", "raw", "ws", "echo" };

        if (!opt.quiet) {
            printf("[%s] published %" PRIu64 " (%" PRIu64 " ok, %" PRIu64 " failed, "
                   "first bad status %d) in %.2f s = %.0f msg/s, publish round trip "
                   "p50 %.2f ms p99 %.2f ms\n",
                   opt.label, published, pub_ok, pub_err, first_bad_status,
                   pub_s, pub_rate, hist_quantile(rtt, 0.5) / 1000.0,
                   hist_quantile(rtt, 0.99) / 1000.0);
            printf("[%s] delivered %" PRIu64 "/%" PRIu64 " (missing %" PRIu64
                   ", duplicates %" PRIu64 ", unexpected %" PRIu64 ", streams ended by "
                   "the server %" PRIu64 ", complete subscribers %" PRIu64 ") "
                   "fan-out latency p50 %.2f ms p99 %.2f ms max %.2f ms\n",
                   opt.label, total_res.delivered, total_res.expected, missing,
                   total_res.dups, total_res.unexpected, total_res.closed,
                   total_res.complete_subs, hist_quantile(&total_res.lat, 0.5) / 1000.0,
                   hist_quantile(&total_res.lat, 0.99) / 1000.0,
                   (double)total_res.lat.max / 1000.0);
            if (opt.mode == MODE_ECHO) {
                printf("[%s] echo: %" PRIu64 " round trips in %.2f s = %.0f/s over %" PRIu64
                       " clients (%" PRIu64 " closed), round trip p50 %.2f ms p99 %.2f ms "
                       "max %.2f ms\n", opt.label, total_res.delivered, echo_s, echo_rate,
                       total_ready.connected, total_res.closed,
                       hist_quantile(&total_res.lat, 0.5) / 1000.0,
                       hist_quantile(&total_res.lat, 0.99) / 1000.0,
                       (double)total_res.lat.max / 1000.0);
            }
            if (opt.port2) {
                printf("[%s] subscribers on port %d: delivered %" PRIu64 "/%" PRIu64
                       ", fan-out latency p50 %.2f ms p99 %.2f ms\n", opt.label, opt.port2,
                       total_res.delivered2, total_res.expected2,
                       hist_quantile(&total_res.lat2, 0.5) / 1000.0,
                       hist_quantile(&total_res.lat2, 0.99) / 1000.0);
            }
            if (opt.redis_pidfile) {
                printf("[%s] redis: CPU %.2f s while publishing (%.1f us per publish), "
                       "PSS %.1f MiB with subscribers, %.1f MiB after publishing\n",
                       opt.label, redis_cpu_s, pub_ok && redis_cpu_s >= 0
                       ? 1e6 * redis_cpu_s / (double)pub_ok : -1.0,
                       r_pss_subs / 1024.0, r_pss_end / 1024.0);
            }
            if (s_before.ok) {
                printf("[%s] server: %d processes, %d threads (%d before), PSS %.1f MiB "
                       "before, %.1f MiB with subscribers (%.0f B each), %.1f MiB at the "
                       "end, %.1f MiB after they left; descriptors per process %s\n",
                       opt.label, s_subs.procs, s_subs.threads, s_before.threads,
                       s_before.pss_kb / 1024.0, s_subs.pss_kb / 1024.0,
                       per_sub, s_end.pss_kb / 1024.0, s_after.pss_kb / 1024.0,
                       s_subs.fds);
                if (opt.idle > 0) {
                    printf("[%s] server CPU while idle for %.0f s: %.3f s (%.2f%% of one "
                           "core)\n", opt.label, opt.idle, idle_cpu_s,
                           100.0 * idle_cpu_s / opt.idle);
                }
            }
        }
        printf("RESULT label=%s subs=%ld channels=%ld connected=%" PRIu64
               " conn_failed=%" PRIu64 " http_err=%" PRIu64 " connect_s=%.2f srv_subs=%ld "
               "published=%" PRIu64 " pub_ok=%" PRIu64 " pub_err=%" PRIu64 " ",
               opt.label, opt.subs, opt.channels, total_ready.connected,
               total_ready.failed, total_ready.http_err, total_ready.connect_s, seen_subs,
               published, pub_ok, pub_err);
        printf("mode=%s ", modes[opt.mode]);
        print_pct("echo_s", echo_s);
        print_pct("echo_rate", echo_rate);
        print_pct("pub_s", pub_s);
        print_pct("rate", opt.rate);
        print_pct("pub_rate", pub_rate);
        print_pct("pub_rtt_p50_ms", hist_quantile(rtt, 0.5) / 1000.0);
        print_pct("pub_rtt_p99_ms", hist_quantile(rtt, 0.99) / 1000.0);
        printf("first_pub_subs=%ld expected=%" PRIu64 " delivered=%" PRIu64
               " missing=%" PRIu64 " dups=%" PRIu64 " unexpected=%" PRIu64
               " closed=%" PRIu64 " complete=%" PRIu64 " ",
               first_pub_subs, total_res.expected, total_res.delivered, missing,
               total_res.dups, total_res.unexpected, total_res.closed,
               total_res.complete_subs);
        print_pct("drain_s", total_res.drain_s);
        print_pct("lat_p50_ms", hist_quantile(&total_res.lat, 0.5) / 1000.0);
        print_pct("lat_p90_ms", hist_quantile(&total_res.lat, 0.9) / 1000.0);
        print_pct("lat_p99_ms", hist_quantile(&total_res.lat, 0.99) / 1000.0);
        print_pct("lat_max_ms", (double)total_res.lat.max / 1000.0);
        printf("srv_fds=%s ", s_subs.fds[0] ? s_subs.fds : "-");
        printf("srv_procs=%d srv_maxfd=%d srv_threads=%d srv_threads_before=%d "
               "pss_before_kb=%" PRIu64 " pss_subs_kb=%" PRIu64
               " pss_end_kb=%" PRIu64 " pss_after_kb=%" PRIu64 " tls=%s ", s_subs.procs,
               s_subs.max_fds, s_subs.threads, s_before.threads, s_before.pss_kb,
               s_subs.pss_kb, s_end.pss_kb, s_after.pss_kb,
               !opt.tls ? "0" : total_ready.tls_params[0] ? total_ready.tls_params : "none");
        print_pct("pss_per_sub_b", per_sub);
        print_pct("tcp_per_sub_b", tcp_per_sub);
        print_pct("idle_s", opt.idle);
        print_pct("idle_cpu_s", idle_cpu_s);
        print_pct("idle_cpu_pct", opt.idle > 0 ? 100.0 * idle_cpu_s / opt.idle : 0);
        print_pct("pub_cpu_s", pub_cpu_s);
        print_pct("loader_cpu_s", loader_cpu_s);
        print_pct("load1", load1);
        if (opt.port2) {
            printf("port2=%d expected2=%" PRIu64 " delivered2=%" PRIu64 " ", opt.port2,
                   total_res.expected2, total_res.delivered2);
            print_pct("lat2_p50_ms", hist_quantile(&total_res.lat2, 0.5) / 1000.0);
            print_pct("lat2_p99_ms", hist_quantile(&total_res.lat2, 0.99) / 1000.0);
        }
        if (opt.redis_pidfile) {
            print_pct("redis_cpu_s", redis_cpu_s);
            printf("redis_pss_subs_kb=%" PRIu64 " redis_pss_end_kb=%" PRIu64 " ",
                   r_pss_subs, r_pss_end);
        }
        printf("\n");
    }
    return 0;
}
