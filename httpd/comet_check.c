/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/* Checks of the whole configuration; see comet_check.h. */

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <apr_strings.h>

#include <http_core.h>
#include <ap_mpm.h>
#include <mod_unixd.h>
#include <unixd.h>

#include "comet_check.h"
#include "comet_config.h"

/*******************************************************************************
 * programs
 ******************************************************************************/

/* Where switching to the User and Group failed. */
typedef enum {
    SWITCH_OK = 0,
    SWITCH_USER_NAME,                 /* "User #<uid>" names no account */
    SWITCH_SETGID,
    SWITCH_INITGROUPS,
    SWITCH_SETUID
} switch_stage_t;

typedef struct {
    int stage;                        /* switch_stage_t */
    int err;                          /* its errno */
} switch_t;

/* 0 if the current user may run `path`, else an errno (EISDIR, EINVAL: not
 * a regular file). access() as the effective user reads ACLs too. */
static int prog_status(const char *path)
{
    struct stat st;

    if (stat(path, &st) < 0) {
        return errno;
    }
    if (S_ISDIR(st.st_mode)) {
        return EISDIR;
    }
    if (!S_ISREG(st.st_mode)) {
        return EINVAL;
    }
    return faccessat(AT_FDCWD, path, X_OK, AT_EACCESS) < 0 ? errno : 0;
}

/* Become httpd's User and Group as mod_unixd makes a child do. */
static switch_t become_user(void)
{
    switch_t sw = { SWITCH_OK, 0 };
    const char *name = ap_unixd_config.user_name;

    if (name[0] == '#') {
        struct passwd *pw;
        errno = 0;
        pw = getpwuid((uid_t)atol(name + 1));
        if (!pw) {
            sw.stage = SWITCH_USER_NAME;
            sw.err = errno ? errno : ENOENT;
            return sw;
        }
        name = pw->pw_name;
    }
    if (setgid(ap_unixd_config.group_id) < 0) {
        sw.stage = SWITCH_SETGID;
    }
    else if (initgroups(name, ap_unixd_config.group_id) < 0) {
        sw.stage = SWITCH_INITGROUPS;
    }
    else if (setuid(ap_unixd_config.user_id) < 0) {
        sw.stage = SWITCH_SETUID;
    }
    if (sw.stage != SWITCH_OK) {
        sw.err = errno;
    }
    return sw;
}

static int write_all(int fd, const void *buf, apr_size_t len)
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
        len -= (apr_size_t)n;
    }
    return 0;
}

/* Read up to len bytes (less at end-of-file). @return what was read */
static apr_size_t read_all(int fd, void *buf, apr_size_t len)
{
    apr_size_t got = 0;

    while (got < len) {
        ssize_t n = read(fd, (char *)buf + got, len - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        got += (apr_size_t)n;
    }
    return got;
}

/* httpd started as root: a process that becomes the User and Group tells
 * how each program fares (the exact answer: groups, ACLs, root squash).
 * @return APR_SUCCESS with *sw and results[] filled, or why it could not */
static apr_status_t probe_as_user(const apr_array_header_t *progs, switch_t *sw, int *results)
{
    apr_size_t want = (apr_size_t)progs->nelts * sizeof(int);
    int fds[2], status, complete;
    pid_t pid;

    if (pipe(fds) < 0) {
        return errno;
    }
    if ((pid = fork()) < 0) {
        apr_status_t rv = errno;
        close(fds[0]);
        close(fds[1]);
        return rv;
    }
    if (pid == 0) {
        switch_t me = become_user();
        int i, r;
        close(fds[0]);
        if (write_all(fds[1], &me, sizeof(me)) < 0) {
            _exit(1);
        }
        for (i = 0; me.stage == SWITCH_OK && i < progs->nelts; i++) {
            r = prog_status(APR_ARRAY_IDX(progs, i, comet_program_t).argv[0]);
            if (write_all(fds[1], &r, sizeof(r)) < 0) {
                _exit(1);
            }
        }
        _exit(0);
    }
    close(fds[1]);
    complete = read_all(fds[0], sw, sizeof(*sw)) == sizeof(*sw)
               && (sw->stage != SWITCH_OK || read_all(fds[0], results, want) == want);
    close(fds[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return complete ? APR_SUCCESS : APR_EGENERAL;
}

/* "User www-data (uid 33) and Group www-data (gid 33)" */
static const char *user_text(apr_pool_t *p, int as_root)
{
    struct group *gr;
    uid_t uid = as_root ? ap_unixd_config.user_id : geteuid();
    gid_t gid = as_root ? ap_unixd_config.group_id : getegid();
    const char *gname;

    gr = getgrgid(gid);
    gname = gr ? apr_pstrdup(p, gr->gr_name) : apr_psprintf(p, "#%ld", (long)gid);
    if (as_root) {
        return apr_psprintf(p, "User %s (uid %ld) and Group %s (gid %ld)",
                            ap_unixd_config.user_name, (long)uid, gname, (long)gid);
    }
    else {
        struct passwd *pw = getpwuid(uid);
        return apr_psprintf(p, "the user httpd runs as, %s (uid %ld, group %s; httpd is not "
                            "started as root, so User and Group do not apply)",
                            pw ? pw->pw_name : "?", (long)uid, gname);
    }
}

/* One line on stderr (httpd -t) or in the error log (a restart). */
static void prog_error(apr_pool_t *p, server_rec *s, const comet_program_t *prog, int err,
                       const char *who)
{
    const char *path = prog->argv[0], *what;

    switch (err) {
    case ENOENT:
        what = apr_psprintf(p, "%s does not exist: give the absolute path of an installed "
                            "program", path);
        break;
    case ENOTDIR:
        what = apr_psprintf(p, "a part of %s is not a directory: give the absolute path of "
                            "an installed program", path);
        break;
    case EISDIR:
        what = apr_psprintf(p, "%s is a directory: give the program inside it", path);
        break;
    case EINVAL:
        what = apr_psprintf(p, "%s is not a regular file: give a program", path);
        break;
    case EACCES:
    case EPERM:
        what = apr_psprintf(p, "%s may not run %s: give it execute permission for them "
                            "(e.g. chmod 755 %s) and let them search every directory above "
                            "it", who, path, path);
        break;
    default:
        what = apr_psprintf(p, "%s cannot be checked (%s)", path,
                            strerror(err));
        break;
    }
    ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_ERR, 0, s, COMET_LOGNO(00430)
                 "%s line %d: %s exec:%s: %s", prog->file, prog->line, prog->directive,
                 path, what);
}

int comet_check_programs(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s)
{
    const apr_array_header_t *progs = comet_config_programs(pconf);
    const comet_program_t *first;
    int as_root = geteuid() == 0, *results, i, bad = 0;
    switch_t sw = { SWITCH_OK, 0 };
    const char *who;

    if (progs->nelts == 0) {
        return OK;
    }
    results = apr_pcalloc(ptemp, (apr_size_t)progs->nelts * sizeof(int));
    if (as_root) {
        apr_status_t rv = probe_as_user(progs, &sw, results);
        if (rv != APR_SUCCESS) {
            /* not worth refusing the configuration over */
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_WARNING, rv, s, COMET_LOGNO(00432)
                         "cannot check the exec: programs as httpd's User: they are "
                         "checked when they start");
            return OK;
        }
    }
    else {
        for (i = 0; i < progs->nelts; i++) {
            results[i] = prog_status(APR_ARRAY_IDX(progs, i, comet_program_t).argv[0]);
        }
    }
    first = &APR_ARRAY_IDX(progs, 0, comet_program_t);
    if (sw.stage != SWITCH_OK) {
        static const char *const step[] = {
            "", "no account has that uid", "setgid failed", "initgroups failed",
            "setuid failed"
        };
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_ERR,
                     sw.stage == SWITCH_USER_NAME ? 0 : sw.err, s, COMET_LOGNO(00431)
                     "%s line %d: %s exec:%s: httpd runs as root and would run this program "
                     "as its %s, but cannot switch to them (%s): set User and Group to an "
                     "account that exists, e.g. User www-data and Group www-data (Debian's "
                     "apache2ctl takes them from /etc/apache2/envvars)",
                     first->file, first->line, first->directive, first->argv[0],
                     user_text(ptemp, 1), step[sw.stage]);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    who = user_text(ptemp, as_root);
    for (i = 0; i < progs->nelts; i++) {
        if (results[i]) {
            prog_error(ptemp, s, &APR_ARRAY_IDX(progs, i, comet_program_t), results[i], who);
            bad = 1;
        }
    }
    return bad ? HTTP_INTERNAL_SERVER_ERROR : OK;
}

/*******************************************************************************
 * the MPM
 ******************************************************************************/

#define KEY_MPM_WARNING "mod_comet/mpm-warning"
#define MPM_WARNING_MAX 1024

static int mpm_value(int code)
{
    int v = 0;

    return ap_mpm_query(code, &v) == APR_SUCCESS ? v : 0;
}

void comet_check_mpm(server_rec *s)
{
    apr_pool_t *pproc = s->process->pool, *p;
    const char *mpm = ap_show_mpm(), *why = "", *fix = "";
    int max_conns = mpm_value(AP_MPMQ_MAX_REQUESTS_DAEMON);
    char *last = NULL, *msg;
    int moves;

    apr_pool_userdata_get((void **)&last, KEY_MPM_WARNING, pproc);
    if (!last) {
        last = apr_pcalloc(pproc, MPM_WARNING_MAX);
        apr_pool_userdata_setn(last, KEY_MPM_WARNING, apr_pool_cleanup_null, pproc);
    }
    apr_pool_create(&p, pproc);
    if (!strcmp(mpm, "event") || !strcmp(mpm, "worker")) {
        /* a child is stopped when the idle threads of all exceed
         * MaxSpareThreads; they never do if it is MaxRequestWorkers (what
         * the children may have in all) or more */
        int spare = mpm_value(AP_MPMQ_MAX_SPARE_THREADS);
        int all = mpm_value(AP_MPMQ_MAX_DAEMONS) * mpm_value(AP_MPMQ_MAX_THREADS);
        if (spare < all) {
            why = apr_psprintf(p, "MaxSpareThreads %d is below MaxRequestWorkers %d, so idle "
                               "children are stopped", spare, all);
            fix = apr_psprintf(p, "MaxSpareThreads %d", all);
        }
    }
    else if (!strcmp(mpm, "prefork")) {
        /* every child with no request running is idle, its streams too */
        int spare = mpm_value(AP_MPMQ_MAX_SPARE_DAEMONS);
        int all = mpm_value(AP_MPMQ_MAX_DAEMONS);
        if (spare < all) {
            why = apr_psprintf(p, "MaxSpareServers %d is below MaxRequestWorkers %d, so idle "
                               "children are stopped", spare, all);
            fix = apr_psprintf(p, "MaxSpareServers %d", all);
        }
    }
    if (max_conns > 0) {
        why = apr_psprintf(p, "%s%sMaxConnectionsPerChild %d stops a child after %d "
                           "connections", why, *why ? "; " : "", max_conns, max_conns);
        fix = apr_psprintf(p, "%s%sMaxConnectionsPerChild 0", fix, *fix ? " and " : "");
    }
    if (!*why) {
        last[0] = '\0';
        apr_pool_destroy(p);
        return;
    }
    /* prefork never says a child's stop is graceful: nothing moves there */
    moves = strcmp(mpm, "prefork")
            && COMET_CONF(comet_config_server(s), COMET_CONF_MOVE_STREAMS);
    msg = apr_psprintf(p, "%s MPM: a child holding streams can be stopped, which ends its "
                       "%sstreams (their clients reconnect%s): %s. Set %s (README: Tuning)",
                       mpm, moves ? "HTTPS, WebSocket and SockJS " : "",
                       moves ? "; plain HTTP streams move to live children" : "", why, fix);
    if (strncmp(last, msg, MPM_WARNING_MAX - 1)) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, COMET_LOGNO(00440) "%s", msg);
        apr_cpystrn(last, msg, MPM_WARNING_MAX);
    }
    apr_pool_destroy(p);
}
