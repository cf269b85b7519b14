/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/*
 * The supervisor; see comet_supervisor.h.
 *
 *   children --"ctl:sup"--> open session / new sources
 *   children --"u:<sid>"--> [supervisor] --stdin line--> backend program
 *   backend --stdout line--> [supervisor] --"s:<sid>"--> the session's receiver
 *   source  --stdout line--> [supervisor] --"<channel>"--> subscribers
 *
 * One event loop (comet_loop.h): the store's wake socket, a signalfd for
 * SIGCHLD/SIGTERM, the parent's pipe (EOF: httpd is gone), the pipes or
 * sockets of every program, and a tick timer that looks at every session
 * and source. Writes to a program are pulled from the store only when the
 * previous ones were taken, so a program that does not read holds its
 * messages in the store (bounded by max_queue), never in here; a program
 * whose browser does not read is no longer read either.
 */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netdb.h>
#include <grp.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <apr_atomic.h>
#include <apr_strings.h>
#include <apr_tables.h>

#include "comet_cluster.h"
#include "comet_loop.h"
#include "comet_supervisor.h"
#include "comet_transport.h"

#define TICK             apr_time_from_msec(200)
#define READ_CHUNK       16384
#define SOURCE_BACKOFF_MAX apr_time_from_sec(60)
#define SOURCE_STABLE    apr_time_from_sec(10)
#define DEFAULT_PATH     "PATH=/usr/local/bin:/usr/bin:/bin"

enum { B_NONE = 0, B_ECHO, B_CLOSE, B_EXEC, B_SOCK };

typedef struct prog_t prog_t;
typedef struct sess_t sess_t;
typedef struct src_t src_t;

/* A program, or a socket to a server, we exchange lines with. */
struct prog_t {
    int backend;                  /* B_* */
    pid_t pid;
    sess_t *sess;                 /* its owner: a session */
    src_t *src;                   /* or a channel source */
    int in_fd, out_fd, err_fd;    /* a socket: in_fd == out_fd */
    /* their watches; a socket has io_out alone, for both ways */
    comet_loop_io_t io_in, io_out, io_err;
    comet_buf_t line, eline;      /* partial lines read */
    int skipping;                 /* inside a line over the limit */
    comet_buf_t wbuf;             /* pending bytes to its stdin */
    apr_size_t woff;
    unsigned out_eof:1, err_eof:1, exited:1, in_closed:1, paused:1, in_watched:1;
    apr_time_t term_at, kill_at;  /* stop sequence */
    char label[COMET_CHANNEL_MAX + 16];
};

struct sess_t {
    sess_t *next;
    prog_t prog;
    char sid[COMET_CHANNEL_MAX];
    char down[COMET_CHANNEL_MAX + 1], up[COMET_CHANNEL_MAX + 1];
    apr_size_t down_len, up_len;
    comet_chan_ref_t up_ref;
    int up_subscribed;
    comet_id_t up_cursor;
    apr_size_t unchecked;         /* bytes published since the queue was looked at */
    unsigned closed:1;            /* the close message is published */
    unsigned ending:1;            /* the browser is gone: the program is stopped */
};

struct src_t {
    src_t *next;
    prog_t prog;
    char channel[COMET_CHANNEL_MAX + 1];
    char **argv;
    int on_demand;
    int wanted;                   /* still configured */
    apr_time_t started, restart_at;
    apr_interval_time_t backoff;
    apr_time_t window;            /* rate limit: current second */
    apr_uint32_t lines;           /* lines published in it */
};

typedef struct {
    comet_store_t *st;
    comet_supervisor_conf_t conf;
    comet_log_fn *log;
    void *log_baton;
    int slot, wake_fd, sig_fd, parent_fd;
    comet_slot_counters_t *cnt;   /* our slot's, for status pages; or NULL */
    comet_loop_t *loop;
    comet_loop_io_t wake_io, sig_io, parent_io;
    comet_loop_timer_t tick;
    comet_chan_ref_t ctl_ref;
    comet_id_t ctl_cursor;
    sess_t *sessions;
    src_t *sources;
    int stopping;
    apr_time_t stop_deadline;
    apr_time_t orphan_at;         /* a restart began: no new generation by then, stop */
    comet_buf_t fetched;          /* scratch for fetches */
    comet_id_t fetched_id;
    apr_uint32_t fetched_flags;
    apr_size_t fetched_n;
    apr_pool_t *redis_pool;       /* CometRedis: the follower's */
    comet_cluster_t *cluster;
    char *redis_url;              /* the Redis followed (malloc), or NULL */
} sup_t;

static void slog(sup_t *u, comet_log_level_t level, apr_status_t rv, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    apr_vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (u->log) {
        u->log(u->log_baton, level, rv, msg);
    }
}

/*******************************************************************************
 * programs
 ******************************************************************************/

static void watch_add(sup_t *u, comet_loop_io_t *io, int fd, apr_uint32_t events,
                      comet_loop_io_fn *fn)
{
    apr_status_t rv = comet_loop_io_add(u->loop, io, fd, events, fn);

    if (rv != APR_SUCCESS) {
        slog(u, COMET_LOG_ERR, rv, "comet supervisor: epoll_ctl failed");
    }
}

static void watch_set(sup_t *u, comet_loop_io_t *io, apr_uint32_t events)
{
    apr_status_t rv = comet_loop_io_set(u->loop, io, events);

    if (rv != APR_SUCCESS) {
        slog(u, COMET_LOG_ERR, rv, "comet supervisor: epoll_ctl failed");
    }
}

/* Stop watching a program's descriptor and close it. */
static void close_fd(sup_t *u, int *fd, comet_loop_io_t *io)
{
    if (*fd >= 0) {
        comet_loop_io_del(u->loop, io);
        close(*fd);
        *fd = -1;
    }
}

static void on_prog_in(comet_loop_t *l, comet_loop_io_t *io, apr_uint32_t events);
static void on_prog_out(comet_loop_t *l, comet_loop_io_t *io, apr_uint32_t events);
static void on_prog_err(comet_loop_t *l, comet_loop_io_t *io, apr_uint32_t events);

/* A program not started yet, of a session or (sess NULL) of a source. */
static void prog_init(prog_t *p, const char *label, sess_t *sess, src_t *src)
{
    memset(p, 0, sizeof(*p));
    p->sess = sess;
    p->src = src;
    p->in_fd = p->out_fd = p->err_fd = -1;
    apr_cpystrn(p->label, label, sizeof(p->label));
}

static int set_nonblock(int fd)
{
    return fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* Start a program with pipes on stdin, stdout and stderr. */
static apr_status_t prog_exec(sup_t *u, prog_t *p, char *const *argv, char *const *envp)
{
    int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 };
    pid_t pid;

    if (!argv || !argv[0]) {
        return APR_EINVAL;
    }
    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
        apr_status_t rv = errno;
        close(in[0]); close(in[1]); close(out[0]); close(out[1]); close(err[0]); close(err[1]);
        return rv;
    }
    pid = fork();
    if (pid < 0) {
        apr_status_t rv = errno;
        close(in[0]); close(in[1]); close(out[0]); close(out[1]); close(err[0]); close(err[1]);
        return rv;
    }
    if (pid == 0) {
        sigset_t none;
        int sig;
        /* its own process group, so that stopping it stops its children */
        setsid();
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        for (sig = 1; sig < NSIG; sig++) {
            signal(sig, SIG_DFL);
        }
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(err[1], 2);
        syscall(SYS_close_range, 3, ~0U, 0);
        execve(argv[0], argv, envp);
        {
            char msg[512];
            int n = apr_snprintf(msg, sizeof(msg), "cannot run %s: %s\n", argv[0],
                                 strerror(errno));
            if (write(2, msg, (size_t)n) < 0) {
                /* nothing left to tell */
            }
        }
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    close(err[1]);
    p->backend = B_EXEC;
    p->pid = pid;
    p->in_fd = in[1];
    p->out_fd = out[0];
    p->err_fd = err[0];
    set_nonblock(p->in_fd);
    set_nonblock(p->out_fd);
    set_nonblock(p->err_fd);
    watch_add(u, &p->io_out, p->out_fd, COMET_LOOP_READ, on_prog_out);
    watch_add(u, &p->io_err, p->err_fd, COMET_LOOP_READ, on_prog_err);
    return APR_SUCCESS;
}

/* Connect to "unix:<path>" or "tcp:<host>:<port>". */
static apr_status_t prog_connect(sup_t *u, prog_t *p, const char *spec)
{
    int fd = -1;

    if (!strncmp(spec, "unix:", 5)) {
        struct sockaddr_un sa;
        memset(&sa, 0, sizeof(sa));
        sa.sun_family = AF_UNIX;
        if (strlen(spec + 5) >= sizeof(sa.sun_path)) {
            return APR_EINVAL;
        }
        strcpy(sa.sun_path, spec + 5);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
            apr_status_t rv = errno;
            if (fd >= 0) close(fd);
            return rv;
        }
    }
    else if (!strncmp(spec, "tcp:", 4)) {
        char host[256];
        const char *colon = strrchr(spec + 4, ':');
        struct addrinfo hints, *ai = NULL, *a;
        if (!colon || (apr_size_t)(colon - spec - 4) >= sizeof(host)) {
            return APR_EINVAL;
        }
        memcpy(host, spec + 4, (apr_size_t)(colon - spec - 4));
        host[colon - spec - 4] = '\0';
        memset(&hints, 0, sizeof(hints));
        hints.ai_socktype = SOCK_STREAM;
        if (getaddrinfo(host, colon + 1, &hints, &ai) != 0) {
            return APR_EINVAL;
        }
        for (a = ai; a; a = a->ai_next) {
            fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
            if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
                break;
            }
            if (fd >= 0) {
                close(fd);
                fd = -1;
            }
        }
        freeaddrinfo(ai);
        if (fd < 0) {
            return APR_ECONNREFUSED;
        }
    }
    else {
        return APR_EINVAL;
    }
    set_nonblock(fd);
    p->backend = B_SOCK;
    p->in_fd = p->out_fd = fd;
    p->err_eof = 1;
    p->exited = 1;
    watch_add(u, &p->io_out, fd, COMET_LOOP_READ | COMET_LOOP_HUP, on_prog_out);
    return APR_SUCCESS;
}

/* Ask a program to end: stdin EOF now, SIGTERM and SIGKILL later. */
static void prog_stop(sup_t *u, prog_t *p, apr_time_t now)
{
    if (p->backend == B_SOCK) {
        if (p->in_fd >= 0) {
            shutdown(p->in_fd, SHUT_WR);
        }
        p->in_closed = 1;
        return;
    }
    if (p->backend != B_EXEC || p->exited) {
        return;
    }
    if (!p->in_closed) {
        close_fd(u, &p->in_fd, &p->io_in);
        p->in_closed = 1;
    }
    if (!p->term_at) {
        p->term_at = now + u->conf.kill_grace;
        p->kill_at = p->term_at + u->conf.kill_grace;
    }
}

static void prog_timers(sup_t *u, prog_t *p, apr_time_t now)
{
    if (p->backend != B_EXEC || p->exited || !p->term_at) {
        return;
    }
    if (p->kill_at && now >= p->kill_at) {
        slog(u, COMET_LOG_WARN, 0, "comet supervisor: %s ignored SIGTERM: SIGKILL", p->label);
        /* its process group (setsid at start), else the process alone: a
         * second signal to the same process could run its handler twice */
        if (kill(-p->pid, SIGKILL) < 0) {
            kill(p->pid, SIGKILL);
        }
        p->kill_at = 0;
    }
    else if (p->term_at && now >= p->term_at) {
        if (kill(-p->pid, SIGTERM) < 0) {
            kill(p->pid, SIGTERM);
        }
        p->term_at = APR_INT64_MAX;   /* sent */
    }
}

/* Is the program completely over (output read, process reaped)? */
static int prog_done(const prog_t *p)
{
    return p->backend == B_NONE || p->backend == B_ECHO || p->backend == B_CLOSE
        || (p->out_eof && p->exited && (p->backend == B_SOCK || p->err_eof));
}

static void prog_release(sup_t *u, prog_t *p)
{
    close_fd(u, &p->out_fd, &p->io_out);
    if (p->backend == B_SOCK) {
        p->in_fd = -1;                /* the same socket */
    }
    close_fd(u, &p->in_fd, &p->io_in);
    close_fd(u, &p->err_fd, &p->io_err);
    comet_buf_free(&p->line);
    comet_buf_free(&p->eline);
    comet_buf_free(&p->wbuf);
}

/* Queue one line to the program's stdin. */
static int prog_queue_line(prog_t *p, const char *data, apr_size_t len)
{
    return comet_sup_escape(&p->wbuf, data, len) || comet_buf_puts(&p->wbuf, "\n") ? -1 : 0;
}

/* Write what the program takes now; 1 if everything went. */
static int prog_write(sup_t *u, prog_t *p)
{
    while (p->woff < p->wbuf.len && p->in_fd >= 0) {
        ssize_t n = write(p->in_fd, p->wbuf.data + p->woff, p->wbuf.len - p->woff);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN) {
                break;
            }
            /* it closed its stdin: what it does not read is lost with it */
            p->wbuf.len = p->woff = 0;
            if (p->backend == B_EXEC) {
                close_fd(u, &p->in_fd, &p->io_in);
            }
            p->in_closed = 1;
            return 1;
        }
        p->woff += (apr_size_t)n;
    }
    if (p->woff >= p->wbuf.len) {
        p->wbuf.len = p->woff = 0;
    }
    if (p->wbuf.len && !p->in_watched && p->in_fd >= 0) {
        if (p->backend == B_SOCK) {
            watch_set(u, &p->io_out, COMET_LOOP_READ | COMET_LOOP_HUP | COMET_LOOP_WRITE);
        }
        else {
            watch_add(u, &p->io_in, p->in_fd, COMET_LOOP_WRITE, on_prog_in);
        }
        p->in_watched = 1;
    }
    else if (!p->wbuf.len && p->in_watched && p->in_fd >= 0) {
        if (p->backend == B_SOCK) {
            watch_set(u, &p->io_out, p->paused ? COMET_LOOP_HUP
                                               : COMET_LOOP_READ | COMET_LOOP_HUP);
        }
        else {
            comet_loop_io_del(u->loop, &p->io_in);
        }
        p->in_watched = 0;
    }
    return p->wbuf.len == 0;
}

/* Stop or resume reading a program's output (its reader is behind). */
static void prog_pause(sup_t *u, prog_t *p, int pause)
{
    if (p->paused == (unsigned)(pause ? 1 : 0) || p->out_fd < 0 || p->out_eof) {
        return;
    }
    p->paused = pause ? 1 : 0;
    if (p->backend == B_SOCK) {
        watch_set(u, &p->io_out, (pause ? 0 : COMET_LOOP_READ) | COMET_LOOP_HUP
                                 | (p->in_watched ? COMET_LOOP_WRITE : 0));
    }
    else {
        watch_set(u, &p->io_out, pause ? 0 : COMET_LOOP_READ);
    }
}

typedef void line_fn(sup_t *u, void *owner, const char *line, apr_size_t len);

/* The end of a program's output (or stderr): a last line without newline
 * still counts. */
static void prog_eof(sup_t *u, prog_t *p, int err, line_fn *fn, void *owner)
{
    comet_buf_t *lb = err ? &p->eline : &p->line;

    if (lb->len && !(p->skipping && !err)) {
        fn(u, owner, lb->data, lb->len);
    }
    lb->len = 0;
    if (err) {
        p->err_eof = 1;
        close_fd(u, &p->err_fd, &p->io_err);
        return;
    }
    p->out_eof = 1;
    if (p->backend == B_SOCK) {
        p->in_fd = -1;                /* the same descriptor */
        p->in_closed = 1;
        p->in_watched = 0;
    }
    close_fd(u, &p->out_fd, &p->io_out);
}

/* Hand out the complete lines in n bytes read; keep the rest for the next
 * read, unless the line grows over max_line (dropped, logged). */
static void prog_lines(sup_t *u, prog_t *p, int err, const char *buf, apr_size_t n,
                       line_fn *fn, void *owner, apr_size_t max_line)
{
    comet_buf_t *lb = err ? &p->eline : &p->line;
    apr_size_t i, start = 0;

    for (i = 0; i < n; i++) {
        if (buf[i] != '\n') {
            continue;
        }
        if (!(p->skipping && !err)) {
            if (comet_buf_append(lb, buf + start, i - start) == 0) {
                apr_size_t len = lb->len;
                if (len && lb->data[len - 1] == '\r') {
                    len--;
                }
                fn(u, owner, lb->data, len);
            }
        }
        p->skipping = err ? p->skipping : 0;
        lb->len = 0;
        start = i + 1;
    }
    if (start < n && !(p->skipping && !err)) {
        if (lb->len + (n - start) > max_line) {
            if (!err) {
                slog(u, COMET_LOG_WARN, 0, "comet supervisor: %s printed a line over "
                     "%" APR_SIZE_T_FMT " bytes: dropped", p->label, max_line);
                p->skipping = 1;
            }
            lb->len = 0;
        }
        else {
            comet_buf_append(lb, buf + start, n - start);
        }
    }
}

/* Read a program's output (or stderr), up to `budget` bytes a turn, and hand
 * out complete lines; not while paused. */
static void prog_read(sup_t *u, prog_t *p, int err, line_fn *fn, void *owner,
                      apr_size_t max_line, apr_size_t budget)
{
    char buf[READ_CHUNK];
    int fd = err ? p->err_fd : p->out_fd;
    apr_size_t total = 0;

    while (total < budget && !(p->paused && !err)) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            return;
        }
        if (n <= 0) {
            prog_eof(u, p, err, fn, owner);
            return;
        }
        total += (apr_size_t)n;
        prog_lines(u, p, err, buf, (apr_size_t)n, fn, owner, max_line);
    }
}

/* stderr of any program: to the error log, with its name. */
static void on_err_line(sup_t *u, void *owner, const char *line, apr_size_t len)
{
    prog_t *p = owner;
    slog(u, COMET_LOG_WARN, 0, "%s: %.*s", p->label, (int)(len > 900 ? 900 : len), line);
}

/*******************************************************************************
 * sessions
 ******************************************************************************/

static sess_t *sess_find(sup_t *u, const char *sid)
{
    sess_t *s;

    for (s = u->sessions; s; s = s->next) {
        if (!strcmp(s->sid, sid)) {
            return s;
        }
    }
    return NULL;
}

static sess_t *sess_by_up(sup_t *u, const comet_chan_ref_t *ref)
{
    sess_t *s;

    for (s = u->sessions; s; s = s->next) {
        if (s->up_subscribed && s->up_ref.idx == ref->idx) {
            return s;
        }
    }
    return NULL;
}

static void sess_publish(sup_t *u, sess_t *s, const char *data, apr_size_t len,
                         apr_uint32_t flags)
{
    comet_limits_t lim = { (apr_uint32_t)-1, 0, u->conf.max_message + 64, 0 };
    comet_publish_result_t res;
    apr_status_t rv;

    if (s->closed) {
        return;
    }
    if (len > u->conf.max_message) {
        slog(u, COMET_LOG_WARN, 0, "comet supervisor: session %s: a message of %"
             APR_SIZE_T_FMT " bytes is over %" APR_SIZE_T_FMT ": dropped", s->sid, len,
             u->conf.max_message);
        return;
    }
    rv = u->st->publish(u->st, s->down, s->down_len, data, len, flags, &lim, &res);
    if (rv != APR_SUCCESS && rv != APR_EOF) {
        slog(u, COMET_LOG_ERR, rv, "comet supervisor: session %s: cannot queue a message "
             "for the browser%s", s->sid, rv == APR_ENOSPC ? " (CometSharedMemory full)" : "");
    }
}

/* The session is over for the browser: c[3000,"Go away!"] to every receiver. */
static void sess_close(sup_t *u, sess_t *s)
{
    comet_limits_t lim = { (apr_uint32_t)-1, 0, 64, 0 };
    comet_publish_result_t res;

    if (s->closed) {
        return;
    }
    sess_publish(u, s, COMET_SOCKJS_GO_AWAY, sizeof(COMET_SOCKJS_GO_AWAY) - 1, COMET_MSG_CLOSE);
    /* and nothing more from the browser */
    u->st->publish(u->st, s->up, s->up_len, "", 0, COMET_MSG_CLOSE, &lim, &res);
    s->closed = 1;
    slog(u, COMET_LOG_DEBUG, 0, "comet supervisor: session %s closed", s->sid);
}

static void on_backend_line(sup_t *u, void *owner, const char *line, apr_size_t len)
{
    sess_t *s = owner;

    sess_publish(u, s, line, len, 0);
    /* A program that floods its stdout would fill the segment between two
     * ticks (sess_check): look at its queue every eighth of the limit. */
    s->unchecked += len;
    if (s->unchecked > u->conf.max_queue / 8 && !s->closed) {
        comet_channel_info_t info;
        s->unchecked = 0;
        if (u->st->info(u->st, s->down, s->down_len, &info) == APR_SUCCESS) {
            prog_pause(u, &s->prog, info.bytes > u->conf.max_queue);
        }
    }
}

static void sess_free(sup_t *u, sess_t *s)
{
    sess_t **pp = &u->sessions;

    while (*pp && *pp != s) {
        pp = &(*pp)->next;
    }
    if (*pp) {
        *pp = s->next;
    }
    prog_release(u, &s->prog);
    if (s->up_subscribed) {
        u->st->unsubscribe(u->st, u->slot, &s->up_ref, 1);
    }
    u->st->remove(u->st, s->down, s->down_len, NULL);
    u->st->remove(u->st, s->up, s->up_len, NULL);
    comet_cluster_session(u->cluster, s->down, s->down_len, 0);
    free(s);
}

/* Take the browser's messages the backend can accept now. */
static char *fetch_one(void *baton, comet_id_t id, apr_uint32_t flags, apr_time_t published,
                       apr_size_t len)
{
    sup_t *u = baton;

    /* one message per fetch: a program that stops reading stops us there,
     * and each control request is handled before the next is read */
    if (u->fetched_n) {
        return NULL;
    }
    u->fetched.len = 0;
    if (comet_buf_reserve(&u->fetched, len + 1) < 0) {
        return NULL;
    }
    u->fetched.len = len;
    u->fetched_id = id;
    u->fetched_flags = flags;
    u->fetched_n = 1;
    return u->fetched.data;
}

static void sess_pump_up(sup_t *u, sess_t *s)
{
    while (s->up_subscribed && !s->ending) {
        comet_fetch_result_t res;
        apr_status_t rv;

        if (s->prog.backend != B_ECHO && (s->prog.wbuf.len || s->prog.in_closed)) {
            return;                   /* the program has not taken the last ones */
        }
        u->fetched_n = 0;
        rv = u->st->fetch(u->st, &s->up_ref, u->slot, s->up_cursor, fetch_one, u, &res);
        if (rv != APR_SUCCESS || res.gone || !u->fetched_n) {
            return;
        }
        s->up_cursor = u->fetched_id;
        u->st->session.ack(u->st, &s->up_ref, u->fetched_id, 0);
        if (u->fetched_flags & COMET_MSG_CLOSE) {
            /* ours (sess_close), or the browser's last word
             * (comet_sup_hangup): its WebSocket ended, nobody comes back */
            if (!s->closed) {
                slog(u, COMET_LOG_DEBUG, 0, "comet supervisor: session %s: its client "
                     "left, ending it", s->sid);
                s->ending = 1;
                sess_close(u, s);
                prog_stop(u, &s->prog, apr_time_now());
            }
            return;
        }
        if (s->prog.backend == B_ECHO) {
            sess_publish(u, s, u->fetched.data, u->fetched.len, 0);
        }
        else if (prog_queue_line(&s->prog, u->fetched.data, u->fetched.len) == 0) {
            prog_write(u, &s->prog);
        }
    }
}

/* A child's request for a session: "open <sid>", "backend <b>", then
 * "arg <a>" and "env <e>" lines, escaped (comet_sup_escape). */
typedef struct {
    const char *sid;
    char *backend;
    apr_array_header_t *argv, *env;
} open_req_t;

/* Parse an open request in place; the arrays come from pool p. */
static void open_req_parse(open_req_t *o, apr_pool_t *p, char *req, apr_size_t len)
{
    char *line, *next, *end = req + len;

    o->sid = NULL;
    o->backend = NULL;
    o->argv = apr_array_make(p, 8, sizeof(char *));
    o->env = apr_array_make(p, 16, sizeof(char *));
    *(const char **)apr_array_push(o->env) = DEFAULT_PATH;
    for (line = req; line < end; line = next) {
        char *nl = memchr(line, '\n', (apr_size_t)(end - line));
        apr_size_t l = nl ? (apr_size_t)(nl - line) : (apr_size_t)(end - line);
        char *a = NULL;
        next = nl ? nl + 1 : end;
        line[l] = '\0';
        if (!strncmp(line, "open ", 5)) {
            o->sid = line + 5;
            continue;
        }
        if (!strncmp(line, "backend ", 8)) {
            a = o->backend = line + 8;
        }
        else if (!strncmp(line, "arg ", 4)) {
            a = *(char **)apr_array_push(o->argv) = line + 4;
        }
        else if (!strncmp(line, "env ", 4)) {
            a = *(char **)apr_array_push(o->env) = line + 4;
        }
        if (a) {
            a[comet_sup_unescape(a, strlen(a))] = '\0';
        }
    }
}

/* A new session, listed, following what its browser sends. */
static sess_t *sess_new(sup_t *u, const char *sid, apr_pool_t *p)
{
    sess_t *s = calloc(1, sizeof(*s));

    if (!s) {
        return NULL;
    }
    apr_cpystrn(s->sid, sid, sizeof(s->sid));
    s->down_len = comet_sup_channel(s->down, sizeof(s->down), 's', sid);
    s->up_len = comet_sup_channel(s->up, sizeof(s->up), 'u', sid);
    prog_init(&s->prog, apr_psprintf(p, "session %s", sid), s, NULL);
    s->next = u->sessions;
    u->sessions = s;
    comet_cluster_session(u->cluster, s->down, s->down_len, 1);
    if (u->st->subscribe(u->st, u->slot, s->up, s->up_len, 1, 0, &s->up_ref, NULL) == APR_SUCCESS) {
        s->up_subscribed = 1;
        s->up_cursor = 0;             /* anything the browser sent already */
    }
    return s;
}

/* Start a session's backend: echo, close, a program (exec) or a server. */
static apr_status_t sess_backend(sup_t *u, sess_t *s, open_req_t *o)
{
    if (!strcmp(o->backend, "echo")) {
        s->prog.backend = B_ECHO;
        return APR_SUCCESS;
    }
    if (!strcmp(o->backend, "close")) {
        s->prog.backend = B_CLOSE;
        sess_close(u, s);
        return APR_SUCCESS;
    }
    if (!strcmp(o->backend, "exec")) {
        *(char **)apr_array_push(o->argv) = NULL;
        *(char **)apr_array_push(o->env) = NULL;
        return prog_exec(u, &s->prog, (char *const *)o->argv->elts,
                         (char *const *)o->env->elts);
    }
    return prog_connect(u, &s->prog, o->backend);
}

/* A child asked for a session: start its backend. */
static void sess_open(sup_t *u, char *req, apr_size_t len)
{
    open_req_t o;
    apr_pool_t *p;
    sess_t *s = NULL;
    apr_status_t rv;

    apr_pool_create(&p, NULL);
    open_req_parse(&o, p, req, len);
    if (!o.sid || !o.backend || !comet_channel_valid(o.sid, strlen(o.sid))
        || sess_find(u, o.sid) || !(s = sess_new(u, o.sid, p))) {
        apr_pool_destroy(p);
        return;
    }
    rv = sess_backend(u, s, &o);
    if (rv != APR_SUCCESS) {
        const char *arg0 = o.argv->nelts ? ((char **)o.argv->elts)[0] : NULL;
        slog(u, COMET_LOG_ERR, rv, "comet supervisor: session %s: cannot start backend %s%s%s",
             o.sid, o.backend, o.argv->nelts ? " " : "", arg0 ? arg0 : "");
        s->prog.backend = B_NONE;
        sess_close(u, s);
    }
    else {
        slog(u, COMET_LOG_DEBUG, 0, "comet supervisor: session %s: backend %s started "
             "(pid %d)", o.sid, o.backend, (int)s->prog.pid);
    }
    apr_pool_destroy(p);
    sess_pump_up(u, s);
}

/* Once per tick: is the browser still there, is the backend done? */
static void sess_check(sup_t *u, sess_t *s, apr_time_t now)
{
    comet_channel_info_t info;
    apr_status_t rv = u->st->info(u->st, s->down, s->down_len, &info);
    int gone;

    if (rv == APR_NOTFOUND) {
        /* deleted under us: nobody can reach the session any more */
        s->closed = 1;
        if (!s->ending) {
            s->ending = 1;
            prog_stop(u, &s->prog, now);
        }
        info.receiver = 0;
        info.detached_at = 0;
        info.bytes = 0;
    }
    else if (rv != APR_SUCCESS) {
        return;
    }
    /* the browser reads slowly: stop reading its backend for a while; once
     * the session ends, read (and drop) what is left, or the program's
     * output never reaches EOF and the session is never freed */
    prog_pause(u, &s->prog, !s->ending && !s->closed && info.bytes > u->conf.max_queue);
    if (!s->closed && prog_done(&s->prog) && s->prog.backend != B_ECHO) {
        sess_close(u, s);
    }
    gone = !info.receiver && now - info.detached_at >= u->conf.disconnect_delay;
    if (gone && !s->ending) {
        slog(u, COMET_LOG_DEBUG, 0, "comet supervisor: session %s: no receiver for %"
             APR_TIME_T_FMT " ms, ending it", s->sid,
             apr_time_as_msec(u->conf.disconnect_delay));
        s->ending = 1;
        sess_close(u, s);
        prog_stop(u, &s->prog, now);
    }
    prog_timers(u, &s->prog, now);
    if (s->ending && prog_done(&s->prog)) {
        sess_free(u, s);
    }
}

/* At start: sessions left by a supervisor that died have lost their
 * backends; tell their browsers. */
static void orphan_close(void *baton, const char *name, apr_size_t len)
{
    sup_t *u = baton;
    comet_limits_t lim = { (apr_uint32_t)-1, 0, 64, 0 };
    comet_publish_result_t res;

    u->st->publish(u->st, name, len, COMET_SOCKJS_GO_AWAY, sizeof(COMET_SOCKJS_GO_AWAY) - 1, COMET_MSG_CLOSE, &lim, &res);
}

/*******************************************************************************
 * channel sources
 ******************************************************************************/

static void on_source_line(sup_t *u, void *owner, const char *line, apr_size_t len)
{
    src_t *c = owner;
    comet_publish_result_t res;
    apr_time_t now = apr_time_now();
    apr_status_t rv;

    if (len > u->conf.source_limits.max_size) {
        slog(u, COMET_LOG_WARN, 0, "comet supervisor: source %s: a line of %" APR_SIZE_T_FMT
             " bytes is over CometMaxMessageSize: dropped", c->channel, len);
        return;
    }
    if (u->cluster) {
        /* several servers: the line goes to every one through Redis */
        rv = comet_cluster_publish_async(u->cluster, c->channel, strlen(c->channel), line,
                                         len, &u->conf.source_limits);
    }
    else {
        rv = u->st->publish(u->st, c->channel, strlen(c->channel), line, len, 0,
                            &u->conf.source_limits, &res);
    }
    if (rv != APR_SUCCESS) {
        slog(u, COMET_LOG_ERR, rv, "comet supervisor: source %s: cannot publish%s",
             c->channel, rv == APR_ENOSPC ? " (CometSharedMemory full)" : "");
    }
    /* a program printing faster than the limit waits, blocked on its pipe */
    if (now - c->window >= apr_time_from_sec(1)) {
        c->window = now;
        c->lines = 0;
    }
    if (u->conf.source_rate && ++c->lines >= u->conf.source_rate) {
        if (!c->prog.paused) {
            slog(u, COMET_LOG_INFO, 0, "comet supervisor: source %s prints over %u lines a "
                 "second: throttled", c->channel, u->conf.source_rate);
        }
        prog_pause(u, &c->prog, 1);
    }
}

static void src_start(sup_t *u, src_t *c, apr_time_t now)
{
    char *envp[] = { DEFAULT_PATH, NULL };
    apr_status_t rv;

    prog_init(&c->prog, "", NULL, c);
    apr_snprintf(c->prog.label, sizeof(c->prog.label), "source %s", c->channel);
    rv = prog_exec(u, &c->prog, c->argv, envp);
    c->started = now;
    c->window = now;
    c->lines = 0;
    if (rv != APR_SUCCESS) {
        slog(u, COMET_LOG_ERR, rv, "comet supervisor: source %s: cannot start %s",
             c->channel, c->argv[0]);
        c->prog.backend = B_NONE;
        c->restart_at = now + c->backoff;
        return;
    }
    slog(u, COMET_LOG_INFO, 0, "comet supervisor: source %s: started %s (pid %d)",
         c->channel, c->argv[0], (int)c->prog.pid);
}

static void src_check(sup_t *u, src_t *c, apr_time_t now)
{
    int running = c->prog.backend == B_EXEC && !prog_done(&c->prog);

    if (c->prog.paused && now - c->window >= apr_time_from_sec(1)) {
        c->window = now;
        c->lines = 0;
        prog_pause(u, &c->prog, 0);
    }
    if (c->prog.backend == B_EXEC && prog_done(&c->prog)) {
        prog_release(u, &c->prog);
        c->prog.backend = B_NONE;
        if (c->wanted && !u->stopping) {
            /* 1 s after a run that lasted, then twice as long each time */
            if (now - c->started >= SOURCE_STABLE) {
                c->backoff = apr_time_from_sec(1);
            }
            c->restart_at = now + c->backoff;
            slog(u, COMET_LOG_WARN, 0, "comet supervisor: source %s ended: restart in %"
                 APR_TIME_T_FMT " ms", c->channel, apr_time_as_msec(c->backoff));
            c->backoff = c->backoff * 2 > SOURCE_BACKOFF_MAX ? SOURCE_BACKOFF_MAX
                       : c->backoff * 2;
        }
        return;
    }
    prog_timers(u, &c->prog, now);
    if (u->cluster && c->wanted && !u->stopping
        && !comet_cluster_lease(u->cluster, c->channel, now)) {
        /* several servers: the source runs where its lease is */
        if (running && !c->prog.term_at) {
            slog(u, COMET_LOG_WARN, 0, "comet supervisor: source %s: its lease is "
                 "another server's now: stopped here", c->channel);
            prog_stop(u, &c->prog, now);
        }
        return;
    }
    if (!running && c->prog.backend == B_NONE && c->wanted && !u->stopping
        && now >= c->restart_at) {
        if (c->on_demand) {
            comet_channel_info_t info;
            if (u->st->info(u->st, c->channel, strlen(c->channel), &info) != APR_SUCCESS
                || info.subscribers == 0) {
                return;
            }
        }
        src_start(u, c, now);
    }
}

static int argv_equal(char **a, const char *const *b)
{
    for (; *a && *b; a++, b++) {
        if (strcmp(*a, *b)) {
            return 0;
        }
    }
    return !*a && !*b;
}

static char **argv_dup(const char *const *argv)
{
    apr_size_t n = 0, i;
    char **out;

    while (argv[n]) {
        n++;
    }
    out = calloc(n + 1, sizeof(char *));
    for (i = 0; out && i < n; i++) {
        out[i] = strdup(argv[i]);
    }
    return out;
}

static void argv_free(char **argv)
{
    char **a;

    for (a = argv; a && *a; a++) {
        free(*a);
    }
    free(argv);
}

/* Apply a list of sources: keep the unchanged ones running. */
static void sources_set(sup_t *u, const comet_source_t *list, apr_size_t n)
{
    src_t *c;
    apr_size_t i;

    for (c = u->sources; c; c = c->next) {
        c->wanted = 0;
    }
    for (i = 0; i < n; i++) {
        for (c = u->sources; c; c = c->next) {
            if (!strcmp(c->channel, list[i].channel) && argv_equal(c->argv, list[i].argv)) {
                c->wanted = 1;
                c->on_demand = list[i].on_demand;
                break;
            }
        }
        if (!c && (c = calloc(1, sizeof(*c))) != NULL) {
            apr_cpystrn(c->channel, list[i].channel, sizeof(c->channel));
            c->argv = argv_dup(list[i].argv);
            c->on_demand = list[i].on_demand;
            c->wanted = 1;
            c->backoff = apr_time_from_sec(1);
            prog_init(&c->prog, "", NULL, c);
            c->prog.backend = B_NONE;
            c->next = u->sources;
            u->sources = c;
        }
    }
    for (c = u->sources; c; c = c->next) {
        if (!c->wanted && c->prog.backend == B_EXEC) {
            prog_stop(u, &c->prog, apr_time_now());
        }
    }
}

static void sources_reap(sup_t *u)
{
    src_t **pp = &u->sources;

    while (*pp) {
        src_t *c = *pp;
        if (!c->wanted && (c->prog.backend == B_NONE || prog_done(&c->prog))) {
            *pp = c->next;
            prog_release(u, &c->prog);
            argv_free(c->argv);
            free(c);
            continue;
        }
        pp = &c->next;
    }
}

/* "sources\n" then per source "source <channel> <0|1>\n" + "arg <a>\n"... */
/* Follow this Redis (NULL or "": none), or go on with the one followed if
 * it is the same: at start, and after each graceful restart. */
static void cluster_set(sup_t *u, const char *url)
{
    apr_status_t rv;

    if (!url) {
        url = "";
    }
    if (!strcmp(url, u->redis_url ? u->redis_url : "")) {
        return;
    }
    if (u->cluster) {
        comet_cluster_stop(u->cluster);
        apr_pool_destroy(u->redis_pool);
        u->cluster = NULL;
        u->redis_pool = NULL;
        slog(u, COMET_LOG_INFO, 0, "comet supervisor: no longer following Redis at %s",
             u->redis_url);
    }
    free(u->redis_url);
    u->redis_url = *url ? strdup(url) : NULL;
    if (!u->redis_url) {
        return;
    }
    /* failing here leaves this server on its own, said in the log */
    if ((rv = apr_pool_create_unmanaged_ex(&u->redis_pool, NULL, NULL)) == APR_SUCCESS) {
        rv = comet_cluster_follow(&u->cluster, u->redis_pool, u->loop, u->st, u->redis_url,
                                  &u->conf.redis_limits, u->log, u->log_baton);
        if (rv != APR_SUCCESS) {
            apr_pool_destroy(u->redis_pool);
            u->redis_pool = NULL;
            u->cluster = NULL;
        }
    }
    if (rv != APR_SUCCESS) {
        slog(u, COMET_LOG_ERR, rv, "comet supervisor: cannot follow Redis at %s: "
             "this server sees only its own messages", u->redis_url);
    }
}

static void sources_from_ctl(sup_t *u, char *req, apr_size_t len)
{
    comet_source_t list[256];
    const char *args[256][33];
    apr_size_t n = 0, na = 0;
    char *line, *next, *end = req + len;

    for (line = req; line < end; line = next) {
        char *nl = memchr(line, '\n', (apr_size_t)(end - line));
        apr_size_t l = nl ? (apr_size_t)(nl - line) : (apr_size_t)(end - line);
        next = nl ? nl + 1 : end;
        line[l] = '\0';
        if (!strncmp(line, "source ", 7) && n < 256) {
            char *sp = strchr(line + 7, ' ');
            if (!sp) {
                continue;
            }
            *sp = '\0';
            list[n].channel = line + 7;
            list[n].on_demand = sp[1] == '1';
            list[n].argv = args[n];
            args[n][0] = NULL;
            n++;
            na = 0;
        }
        else if (!strncmp(line, "redis ", 6)) {
            char *a = line + 6;
            a[comet_sup_unescape(a, strlen(a))] = '\0';
            cluster_set(u, a);
        }
        else if (!strncmp(line, "arg ", 4) && n && na < 32) {
            char *a = line + 4;
            a[comet_sup_unescape(a, strlen(a))] = '\0';
            args[n - 1][na++] = a;
            args[n - 1][na] = NULL;
        }
    }
    sources_set(u, list, n);
}

/*******************************************************************************
 * the loop
 ******************************************************************************/


/* The pid of a "supervisor <pid>" line: the fetched bytes are not a C
 * string (the buffer keeps what a longer message left after them). */
static int ctl_pid(const char *s, apr_size_t len)
{
    char buf[24];

    if (len >= sizeof(buf)) {
        len = sizeof(buf) - 1;
    }
    memcpy(buf, s, len);
    buf[len] = '\0';
    return atoi(buf);
}

static void ctl_pump(sup_t *u)
{
    for (;;) {
        comet_fetch_result_t res;
        u->fetched_n = 0;
        if (u->st->fetch(u->st, &u->ctl_ref, u->slot, u->ctl_cursor, fetch_one, u, &res) != APR_SUCCESS
            || !u->fetched_n) {
            return;
        }
        u->ctl_cursor = u->fetched_id;
        if (u->fetched.len > 5 && !memcmp(u->fetched.data, "open ", 5)) {
            sess_open(u, u->fetched.data, u->fetched.len);
        }
        else if (u->fetched.len >= 8 && !memcmp(u->fetched.data, "sources\n", 8)) {
            sources_from_ctl(u, u->fetched.data, u->fetched.len);
        }
        else if (u->fetched.len > 11 && !memcmp(u->fetched.data, "supervisor ", 11)
                 && ctl_pid(u->fetched.data + 11, u->fetched.len - 11) != (int)getpid()) {
            /* another supervisor took over (a new module version after a
             * restart): two must never run the same programs */
            slog(u, COMET_LOG_WARN, 0, "comet supervisor %d: supervisor %d took over, "
                 "ending", (int)getpid(), ctl_pid(u->fetched.data + 11, u->fetched.len - 11));
            u->stopping = 1;
        }
    }
}

/* The store's wake socket: control requests, or a browser's messages. */
static void on_wake(comet_loop_t *l, comet_loop_io_t *io, apr_uint32_t events)
{
    sup_t *u = comet_loop_baton(l);
    char buf[64];
    comet_chan_ref_t refs[1024];
    apr_size_t n = 0, i;
    int overflow = 0;

    while (recv(u->wake_fd, buf, sizeof(buf), MSG_DONTWAIT) > 0) {
    }
    if (u->st->drain(u->st, u->slot, refs, 1024, &n, &overflow) != APR_SUCCESS) {
        return;
    }
    if (overflow) {
        sess_t *s;
        ctl_pump(u);
        for (s = u->sessions; s; s = s->next) {
            sess_pump_up(u, s);
        }
        return;
    }
    for (i = 0; i < n; i++) {
        sess_t *s;
        if (refs[i].idx == u->ctl_ref.idx) {
            ctl_pump(u);
        }
        else if ((s = sess_by_up(u, &refs[i])) != NULL) {
            sess_pump_up(u, s);
        }
    }
}

static prog_t *prog_by_pid(sup_t *u, pid_t pid)
{
    sess_t *s;
    src_t *c;

    for (s = u->sessions; s; s = s->next) {
        if (s->prog.backend == B_EXEC && s->prog.pid == pid) {
            return &s->prog;
        }
    }
    for (c = u->sources; c; c = c->next) {
        if (c->prog.backend == B_EXEC && c->prog.pid == pid) {
            return &c->prog;
        }
    }
    return NULL;
}

/* The signalfd: SIGTERM ends us, SIGCHLD reaps programs. */
static void on_signal(comet_loop_t *l, comet_loop_io_t *io, apr_uint32_t events)
{
    sup_t *u = comet_loop_baton(l);
    struct signalfd_siginfo si;

    while (read(u->sig_fd, &si, sizeof(si)) == sizeof(si)) {
        if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
            u->stopping = 1;
        }
    }
    for (;;) {
        int status;
        prog_t *p;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0) {
            break;
        }
        p = prog_by_pid(u, pid);
        if (!p) {
            continue;
        }
        p->exited = 1;
        if (WIFSIGNALED(status) && WTERMSIG(status) != SIGTERM) {
            slog(u, COMET_LOG_WARN, 0, "comet supervisor: %s (pid %d) killed by signal %d",
                 p->label, (int)pid, WTERMSIG(status));
        }
        else if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
            slog(u, COMET_LOG_INFO, 0, "comet supervisor: %s (pid %d) exited with %d",
                 p->label, (int)pid, WEXITSTATUS(status));
        }
    }
}

/* The parent's pipe: end of file when httpd is gone; COMET_SUP_RESTARTING
 * when a restart begins, COMET_SUP_ADOPTED when the new configuration took
 * us on. A restart whose configuration no longer loads the module never
 * says the second: then we stop (COMET_SUP_ADOPT_WAIT later). */
static void on_parent(comet_loop_t *l, comet_loop_io_t *io, apr_uint32_t events)
{
    sup_t *u = comet_loop_baton(l);
    char buf[64];
    ssize_t n = read(io->fd, buf, sizeof(buf)), i;

    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            return;
        }
        u->stopping = 1;
        comet_loop_io_del(l, io);
        return;
    }
    for (i = 0; i < n; i++) {
        if (buf[i] == COMET_SUP_RESTARTING) {
            u->orphan_at = apr_time_now() + COMET_SUP_ADOPT_WAIT;
        }
        else if (buf[i] == COMET_SUP_ADOPTED) {
            u->orphan_at = 0;
        }
    }
}

/* Room in a program's stdin (or socket): write, then take the next lines. */
static void prog_writable(sup_t *u, prog_t *p)
{
    if (prog_write(u, p) && p->sess) {
        sess_pump_up(u, p->sess);
    }
}

static void on_prog_in(comet_loop_t *l, comet_loop_io_t *io, apr_uint32_t events)
{
    prog_writable(comet_loop_baton(l), COMET_LOOP_CONTAINER(io, prog_t, io_in));
}

static void on_prog_err(comet_loop_t *l, comet_loop_io_t *io, apr_uint32_t events)
{
    prog_t *p = COMET_LOOP_CONTAINER(io, prog_t, io_err);

    prog_read(comet_loop_baton(l), p, 1, on_err_line, p, 4096, 65536);
}

/* A program's stdout (or socket, both ways): lines for its session's
 * browser or its source's channel. */
static void on_prog_out(comet_loop_t *l, comet_loop_io_t *io, apr_uint32_t events)
{
    sup_t *u = comet_loop_baton(l);
    prog_t *p = COMET_LOOP_CONTAINER(io, prog_t, io_out);

    if (events & COMET_LOOP_WRITE) {
        prog_writable(u, p);
    }
    if (!(events & (COMET_LOOP_READ | COMET_LOOP_HUP | COMET_LOOP_ERROR))) {
        return;
    }
    if (p->sess) {
        prog_read(u, p, 0, on_backend_line, p->sess, u->conf.max_message, 1 << 20);
    }
    else {
        prog_read(u, p, 0, on_source_line, p->src, u->conf.source_limits.max_size, 1 << 20);
    }
}

/* How many programs run now, where status pages read it (our slot's
 * counters): backends of sessions (programs and sockets), sources. */
static void sup_count(sup_t *u)
{
    apr_uint32_t backends = 0, sources = 0;
    const sess_t *s;
    const src_t *c;

    if (!u->cnt) {
        return;
    }
    for (s = u->sessions; s; s = s->next) {
        if ((s->prog.backend == B_EXEC || s->prog.backend == B_SOCK) && !prog_done(&s->prog)) {
            backends++;
        }
    }
    for (c = u->sources; c; c = c->next) {
        if (c->prog.backend == B_EXEC && !prog_done(&c->prog)) {
            sources++;
        }
    }
    apr_atomic_set32(&u->cnt->backends, backends);
    apr_atomic_set32(&u->cnt->sources, sources);
}

/* Every TICK: is each browser still there, each program done, each source
 * running; stop them all once stopping. */
static void on_tick(comet_loop_t *l, comet_loop_timer_t *t, apr_time_t now)
{
    sup_t *u = comet_loop_baton(l);
    sess_t *s, *snext;
    src_t *c;

    comet_loop_timer_set(l, t, now + TICK, on_tick);
    if (u->orphan_at && now >= u->orphan_at && !u->stopping) {
        slog(u, COMET_LOG_WARN, 0, "comet supervisor: httpd restarted without mod_comet "
             "(no new configuration took it on in %" APR_TIME_T_FMT " s): stopping",
             apr_time_sec(COMET_SUP_ADOPT_WAIT));
        u->stopping = 1;
    }
    for (s = u->sessions; s; s = snext) {
        snext = s->next;
        if (u->stopping && !s->ending) {
            s->ending = 1;
            sess_close(u, s);
            prog_stop(u, &s->prog, now);
        }
        sess_check(u, s, now);
    }
    for (c = u->sources; c; c = c->next) {
        if (u->stopping) {
            c->wanted = 0;
            prog_stop(u, &c->prog, now);
        }
        src_check(u, c, now);
    }
    sources_reap(u);
    sup_count(u);
    comet_cluster_tick(u->cluster, now);
    u->st->maintain(u->st, now);
}

/* After each turn: once stopping, end when every program is over or the
 * last one had time enough to die. */
static int after_turn(comet_loop_t *l, apr_time_t now)
{
    sup_t *u = comet_loop_baton(l);

    if (!u->stopping) {
        return 0;
    }
    if (!u->stop_deadline) {
        u->stop_deadline = now + 2 * u->conf.kill_grace + apr_time_from_sec(1);
    }
    return (!u->sessions && !u->sources) || now >= u->stop_deadline;
}

static void supervise(sup_t *u)
{
    apr_status_t rv;

    comet_loop_timer_set(u->loop, &u->tick, apr_time_now(), on_tick);
    rv = comet_loop_run(u->loop, after_turn);
    if (rv != APR_SUCCESS) {
        slog(u, COMET_LOG_ERR, rv, "comet supervisor: epoll_wait failed");
    }
}

/* Signals come through a signalfd; SIGPIPE is a write error, nothing more.
 * @return the signalfd, or -1 */
static int sup_signals(void)
{
    sigset_t mask;

    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGUSR1);
    sigaddset(&mask, SIGWINCH);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    return signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
}

/* Follow the control channel from now on, end the sessions of a supervisor
 * that died, and tell any other supervisor of this store to end. */
static void sup_announce(sup_t *u)
{
    comet_store_t *st = u->st;
    comet_fetch_result_t res;
    char hello[32];
    comet_limits_t lim = comet_sup_ctl_limits();
    comet_publish_result_t pres;
    int n;

    st->subscribe(st, u->slot, COMET_SUP_CTL, sizeof(COMET_SUP_CTL) - 1, 1, 0, &u->ctl_ref, NULL);
    st->fetch(st, &u->ctl_ref, 0, COMET_ID_NONE, fetch_one, u, &res);
    u->ctl_cursor = res.last_id;
    st->session.list(st, "s:", orphan_close, u);
    n = apr_snprintf(hello, sizeof(hello), "supervisor %d", (int)getpid());
    st->publish(st, COMET_SUP_CTL, sizeof(COMET_SUP_CTL) - 1, hello, (apr_size_t)n, 0,
                &lim, &pres);
}

/* A program still running at the very end: its group, then itself. */
static void prog_kill(prog_t *p)
{
    if (p->backend == B_EXEC && !p->exited) {
        kill(-p->pid, SIGKILL);
        kill(p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
    }
}

/* After the loop: whatever is left goes now. */
static void sup_kill_all(sup_t *u)
{
    while (u->sessions) {
        sess_t *s = u->sessions;
        prog_kill(&s->prog);
        sess_free(u, s);
    }
    while (u->sources) {
        src_t *c = u->sources;
        u->sources = c->next;
        prog_kill(&c->prog);
        prog_release(u, &c->prog);
        argv_free(c->argv);
        free(c);
    }
}

void comet_supervisor_main(comet_store_t *st, const comet_supervisor_conf_t *conf,
                           int parent_fd, comet_log_fn *log, void *log_baton)
{
    sup_t u;
    apr_status_t rv;

    memset(&u, 0, sizeof(u));
    u.st = st;
    u.conf = *conf;
    u.log = log;
    u.log_baton = log_baton;
    u.parent_fd = parent_fd;
    if (!u.conf.kill_grace) {
        u.conf.kill_grace = apr_time_from_sec(3);
    }
    u.sig_fd = sup_signals();
    rv = u.sig_fd < 0 ? errno : comet_loop_create(&u.loop, NULL, &u);
    if (rv == APR_SUCCESS) {
        rv = st->slot_claim(st, &u.slot, &u.wake_fd);
    }
    if (rv != APR_SUCCESS) {
        slog(&u, COMET_LOG_ERR, rv, "comet supervisor: cannot start");
        comet_loop_destroy(u.loop);
        return;
    }
    u.cnt = st->slot_counters ? st->slot_counters(st, u.slot) : NULL;
    if (u.cnt) {
        apr_atomic_set32(&u.cnt->kind, COMET_SLOT_SUPERVISOR);
    }
    watch_add(&u, &u.wake_io, u.wake_fd, COMET_LOOP_READ, on_wake);
    watch_add(&u, &u.sig_io, u.sig_fd, COMET_LOOP_READ, on_signal);
    if (parent_fd >= 0) {
        watch_add(&u, &u.parent_io, parent_fd, COMET_LOOP_READ, on_parent);
    }
    sup_announce(&u);
    cluster_set(&u, conf->redis_url);
    sources_set(&u, conf->sources, conf->nsources);
    slog(&u, COMET_LOG_INFO, 0, "comet supervisor %d: running, %" APR_SIZE_T_FMT
         " channel source(s)", (int)getpid(), conf->nsources);

    supervise(&u);

    sup_kill_all(&u);
    cluster_set(&u, NULL);
    st->slot_release(st, u.slot);
    comet_loop_destroy(u.loop);
    comet_buf_free(&u.fetched);
    slog(&u, COMET_LOG_INFO, 0, "comet supervisor %d: stopped", (int)getpid());
}
