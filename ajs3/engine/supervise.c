/*
 * ajs3-supervise: the supervisor of every job of a daemon (ADR 0001, 0012, 0030).
 *
 * The daemon starts it once, as
 * `ajs3-supervise --serve --ends-only --tell-records --claims DIR --sync-fd FD` (DIR: see "the claim
 * log" below; FD: the journal's write-ahead log, fdatasynced before any job asked for
 * starts, see the journal's thread below and ADR 0034, 0035), and writes one request
 * per job to its stdin: a decimal length, a newline, then that many bytes of NUL-ended
 * strings:
 *
 *   JOBDIR RUN_ID CWD UID GID USER LIMIT ARGC ARG... ENVC NAME=VALUE... [VARS UID GID]
 *
 * (CWD, UID, GID and USER may be empty: no chdir, no change of user; LIMIT is the
 * output limit in bytes, empty or 0 for none; VARS, an absolute path, is the job's
 * AJS3_VARS_OUT file, made empty for the user UID and group GID before the job
 * starts). It numbers the requests from 0; when a job's end is recorded, or its run
 * turned out not to be its to start, it says "e NUMBER" and a newline on stdout; with
 * --tell-records, an end it recorded is told as "e NUMBER VARS_SIZE RECORD": the size
 * of the job's AJS3_VARS_OUT file (-1: gone, -2: the request named none) and the text
 * of its status.json, which has
 * no newline (ADR 0037: the daemon reads neither file back). It
 * answers nothing else (ADR 0031: the daemon does not wait for the server; a request
 * the server never took up leaves no start record, and the daemon finds that once the
 * server has ended). Started as
 * `--serve` alone, as daemons before ADR 0031 did, it also answers each request as it
 * reads it, with its own pid and a newline. It leads a session of its own, so
 * that no signal meant for the daemon's process group reaches it, and outlives the
 * daemon: at the end of its stdin (the daemon is gone) it reads no more requests and
 * goes on until the last of its jobs has ended and its end is recorded
 * (docs/design.md rule 4). It is small and never execs: it starts each job with vfork
 * (clone with CLONE_VM and CLONE_VFORK), which copies nothing of it, and the one exec
 * per job is the job's own.
 *
 * For each job it makes the start and the end durable, in JOBDIR: a directory of the
 * daemon's user that no one else may write (it is never handed to the job's user).
 * Every file in it is created relative to a descriptor of the directory opened with
 * O_NOFOLLOW, with O_NOFOLLOW (and O_EXCL where new), so root never follows a link;
 * the job gets its stdout and stderr as pipes only.
 *
 *   started.json  created (O_EXCL: the claim) and written, and the claim made
 *                 durable *before* the job is started: the supervisor's pid and
 *                 kernel start time, the host identity (node/boot id/pid namespace),
 *                 and null for the job's pids. Durable means its run id in the claim
 *                 log (`--claims DIR`, see "the claim log", ADR 0033), else the file
 *                 fsynced (then its directory where needed). The claims of the jobs
 *                 asked for together are made durable together, on a thread of their
 *                 own (see "making start records durable").
 *                 Started only then, the job writes its own pid, start time and
 *                 process group into it before anything else, and execs while it
 *                 still holds the claim's lock (ADR 0032); those are not fsynced:
 *                 they serve while the node lives, and a crash of the node ends the
 *                 job with it
 *   status.json   written (tmp + rename, never seen half-written) after the job ended:
 *                 exit code or signal, or why the job could not start
 *                 (failed_to_start), and the same pids as started.json. Not fsynced
 *                 (ADR 0030): it outlives a crash of the daemon in the page cache, and
 *                 the daemon's commit of the end is what makes it durable; a crash of
 *                 the node before that commit leaves the job in doubt, and a file cut
 *                 short by it reads as no end
 *   stdout, stderr
 *                 what the job wrote to its stdout and stderr, copied from its pipes
 *                 up to LIMIT bytes each, each made at its first byte (a job that
 *                 writes nothing on one has no file for it); past it, a marker
 *                 line says where the output was cut and the rest is read and
 *                 dropped (so one chatty job cannot fill the volume, and never
 *                 blocks on a full pipe). When the
 *                 job has ended, what its pipes still hold is copied and they are
 *                 closed: a process it left behind that writes later gets EPIPE.
 *
 * A daemon that finds started.json but no live supervisor and no status.json knows
 * the job may have run and its end is in doubt; without started.json it knows the job
 * never started. The claim's lock is held from its creation until the job has exec'd
 * (the server's descriptor, then the job's own, closed by the exec): a daemon that
 * takes the lock reads either the job's pids or, if no job was ever started for it
 * (the server died first), none, and then knows it never ran. If started.json exists
 * already, or is no longer empty once locked (a restarted daemon voided the run), the
 * run is not started and its end is told at once.
 *
 * The server ignores SIGTERM, SIGINT and SIGHUP: only a job's process group is
 * signalled, and the supervisor must outlive it to record the end. If it dies all
 * the same (SIGKILL), the ends of the jobs it supervised are unknown: each is in
 * doubt and its own recovery policy decides (ADR 0030). While the file system is full
 * it keeps an end and tries again every second, so no end is lost for want of space.
 * It exits 0, or 2 after a malformed request (it reads no more, and its jobs go on to
 * their ends first).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/magic.h>

#define MSG_MAX 4000

struct buf {
    char data[16384];
    size_t len;
};

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    size_t room = sizeof b->data - b->len;
    va_start(ap, fmt);
    int n = vsnprintf(b->data + b->len, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        b->len += (size_t)n < room ? (size_t)n : room - 1;
}

/* The length of the valid UTF-8 sequence at s (at most n bytes), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len;
    unsigned int min;
    if (s[0] < 0x80)
        return 1;
    if ((s[0] & 0xe0) == 0xc0) {
        len = 2;
        min = 0x80;
    } else if ((s[0] & 0xf0) == 0xe0) {
        len = 3;
        min = 0x800;
    } else if ((s[0] & 0xf8) == 0xf0) {
        len = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    unsigned int cp = s[0] & (0x7f >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* A JSON string: quotes, backslashes and control characters escaped; bytes that are
 * not UTF-8 become U+FFFD, so the daemon can always read the file. */
static void put_str(struct buf *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    put(b, "\"");
    while (n > 0) {
        size_t k = utf8_len(p, n);
        if (k == 0) {
            put(b, "\\ufffd");
            k = 1;
        } else if (*p == '"' || *p == '\\') {
            put(b, "\\%c", *p);
        } else if (*p < 0x20) {
            put(b, "\\u%04x", *p);
        } else {
            put(b, "%.*s", (int)k, (const char *)p);
        }
        p += k;
        n -= k;
    }
    put(b, "\"");
}

static void put_str_or_null(struct buf *b, const char *s)
{
    if (s == NULL)
        put(b, "null");
    else
        put_str(b, s);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Write name in the directory dirfd whole or not at all, for readers at any time: a
 * new temporary file (O_EXCL, never through a link), then a rename over name. */
static int write_whole(int dirfd, const char *name, const struct buf *b)
{
    char tmp[256];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", name) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
    int fd = openat(dirfd, tmp, flags, 0640);
    if (fd < 0 && errno == EEXIST) { /* a left-over of a server that died writing it */
        if (unlinkat(dirfd, tmp, 0) < 0 && errno != ENOENT)
            return -1;
        fd = openat(dirfd, tmp, flags, 0640);
    }
    if (fd < 0)
        return -1;
    if (write_all(fd, b->data, b->len) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    if (close(fd) < 0)
        return -1;
    return renameat(dirfd, tmp, dirfd, name);
}

/* A process's start time in clock ticks since boot (field 22 of /proc/PID/stat). */
/* The kernel start time of a process (field 22 of its stat file), or -1. Calls
 * nothing but open, read, close and string functions: the vfork child uses it. */
static long long stat_start_time(const char *path)
{
    char data[1024];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, data, sizeof data - 1);
    close(fd);
    if (n <= 0)
        return -1;
    data[n] = '\0';
    char *p = strrchr(data, ')');
    if (p == NULL)
        return -1;
    p += 2; /* field 3, the state */
    for (int field = 3; field < 22; field++) {
        p = strchr(p, ' ');
        if (p == NULL)
            return -1;
        p++;
    }
    return strtoll(p, NULL, 10);
}

static long long start_time(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    return stat_start_time(path);
}

/* Identifies this node and PID namespace: pids mean nothing elsewhere. */
static void host_identity(char *out, size_t size)
{
    struct utsname u;
    char boot[64] = "?", pidns[64] = "?";
    if (uname(&u) < 0)
        strcpy(u.nodename, "?");
    int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, boot, sizeof boot - 1);
        close(fd);
        boot[n > 0 ? n : 0] = '\0';
        boot[strcspn(boot, "\n")] = '\0';
    }
    ssize_t n = readlink("/proc/self/ns/pid", pidns, sizeof pidns - 1);
    pidns[n > 0 ? n : 1] = '\0';
    snprintf(out, size, "%s/%s/%s", u.nodename, boot, pidns);
}

/* The message of the child being started (its run's own): it shares the server's
 * memory, and the launch thread reads it once the child has died (ADR 0033). */
static char *child_msg;
static size_t *child_msglen;

/* Say why the job could not start, then die. In the vfork child: strerrordesc_np takes
 * no lock and reads no locale, as strerror may. */
static void child_fail(const char *what, const char *arg)
{
    const char *desc = strerrordesc_np(errno);
    int n = snprintf(child_msg, MSG_MAX, "%s %s: %s", what, arg, desc ? desc : "unknown error");
    *child_msglen = n < 0 ? 0 : (size_t)n < MSG_MAX ? (size_t)n : MSG_MAX - 1;
    _exit(127);
}

/* The node/boot/pid-namespace identity, the same for every supervisor of the server. */
static char host[512];

struct job {
    const char *jobdir, *run_id, *user, *cwd;
    const char *vars_out; /* the job's AJS3_VARS_OUT file, made by begin; NULL: none */
    uid_t vars_uid; /* its owner */
    gid_t vars_gid;
    int dirfd; /* JOBDIR, opened O_DIRECTORY|O_NOFOLLOW by the supervisor */
    uid_t uid;
    gid_t gid;
    int switch_user;
    long long limit; /* bytes kept of each of stdout and stderr; 0: no limit */
    char **argv, **envp;
};

/* The server's file-descriptor limit as it started: what every job gets back. */
static struct rlimit nofile_at_start;

/* The signals the server ignores (its own, and those it was started with ignored, such
 * as Python's SIGPIPE): an ignored signal stays ignored across exec, so each job sets
 * them back to default. Handlers do not survive exec, and the server sets none. */
static int ignored[NSIG];
static int ignored_count;

static void note_ignored_signals(void)
{
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigaction sa;
        if (sig != SIGKILL && sig != SIGSTOP && sigaction(sig, NULL, &sa) == 0 &&
            sa.sa_handler == SIG_IGN)
            ignored[ignored_count++] = sig;
    }
}

/* Close every descriptor from `from` up (close_range, or one by one without it). */
static void close_from(unsigned int from)
{
#ifdef SYS_close_range
    if (syscall(SYS_close_range, from, ~0U, 0U) == 0)
        return;
#endif
    struct rlimit rl;
    long max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
                   ? (long)rl.rlim_cur
                   : 65536;
    for (long fd = from; fd < max; fd++)
        close((int)fd);
}

/* `keep`: the journal's write-ahead log (--sync-fd), moved up to SLOT_END or above, or -1. */
static void close_inherited_fds(int keep)
{
    /* Nothing of the daemon's (its lock, journal, sockets) may live on in a job; the one
     * descriptor the server keeps is close-on-exec, and each job closes it first. */
    for (int fd = 3; keep >= 0 && fd < keep; fd++)
        close(fd);
    close_from(keep >= 0 ? (unsigned int)keep + 1 : 3U);
}

/* The slots through which the launch thread hands a job its descriptors: the job is
 * cloned with the server's descriptor table shared (CLONE_FILES), and its first act is
 * to take a table of its own with only the descriptors below SLOT_END in it (close_range
 * with CLOSE_RANGE_UNSHARE). A table copied at the clone and then closed in the child
 * cost work for every descriptor of the server, seven or so per running job (ADR 0033).
 * Between two starts each slot holds /dev/null, so that no other thread of the server
 * is ever given one of these numbers. */
enum { SLOT_OUT = 3, SLOT_ERR, SLOT_CLAIM, SLOT_NULL, SLOT_END };

static int reserve_slots(void)
{
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null != SLOT_OUT)
        return -1;
    for (int fd = SLOT_ERR; fd < SLOT_END; fd++)
        if (dup3(null, fd, O_CLOEXEC) != fd)
            return -1;
    return 0;
}

/* Put /dev/null back into the slots: the job holds its descriptors alone. */
static void clear_slots(void)
{
    for (int fd = SLOT_OUT; fd < SLOT_NULL; fd++)
        dup3(SLOT_NULL, fd, O_CLOEXEC);
}

/* What the supervisor knows of itself and its job, written in both records. */
struct ids {
    long long supervisor_start;
    pid_t job; /* 0: no job was forked */
    long long job_start;
};

static void put_ids(struct buf *b, const struct ids *ids)
{
    put(b, "\"supervisor_pid\": %d, \"supervisor_start\": %lld, ", (int)getpid(),
        ids->supervisor_start);
    if (ids->job > 0)
        put(b, "\"job_pid\": %d, \"job_start\": %lld, \"pgid\": %d, ", (int)ids->job,
            ids->job_start, (int)ids->job);
    else
        put(b, "\"job_pid\": null, \"job_start\": null, \"pgid\": null, ");
}

/* One output stream of the job: its pipe, its file in JOBDIR, what was kept. */
struct stream {
    int in, out;
    long long kept;
    int cut;
};

/* Copy what was read into the file, up to the limit; at the limit, the marker. A
 * write that fails (a full file system) loses that output, never the job's end. */
static void keep_output(struct stream *s, long long limit, const char *data, size_t n)
{
    if (s->cut)
        return;
    if (limit > 0 && s->kept + (long long)n > limit) {
        char marker[256];
        size_t room = (size_t)(limit - s->kept);
        write_all(s->out, data, room);
        int m = snprintf(marker, sizeof marker,
                         "\n[ajs3: output cut here: more than %lld bytes (output_limit); "
                         "the rest was not kept]\n",
                         limit);
        if (m > 0)
            write_all(s->out, marker, (size_t)m);
        s->kept = limit;
        s->cut = 1;
        return;
    }
    write_all(s->out, data, n);
    s->kept += (long long)n;
}

/* -- the server: every job of the daemon, one event loop ------------------------------ */

enum kind { W_REQUESTS, W_NOTICES, W_SYNCED, W_PID, W_STDOUT, W_STDERR };

struct run;
struct watch {
    struct run *run; /* NULL for the server's own pipes */
    enum kind kind;
};

struct record_log;

/* One job the server supervises, from its request to its end record. */
struct run {
    struct job job;
    char *req; /* the request's bytes: the job's strings point into them */
    unsigned long seq; /* the request's number: the notice "e SEQ" says it ended */
    int claim, pidfd;
    struct ids ids;
    double started_at; /* when the claim was written: the start record says it */
    size_t claim_len; /* the claim's length: the job's record is never shorter */
    struct stream streams[2];
    struct watch w[3]; /* W_PID, W_STDOUT, W_STDERR */
    char failed[MSG_MAX + 256];
    char msg[MSG_MAX + 1];
    size_t msglen;
    int status, finished;
    int sync_error; /* errno of the fsync that failed, or 0 */
    int wal_error; /* errno of the journal's fdatasync that covers its intent, or 0 */
    unsigned long wal_gen; /* that fdatasync: the first asked for after it was read */
    int voided; /* --records: its run id was in the voids file: not ours to start */
    struct record_log *rlog; /* --records: the log its start record went into */
    const char *start_failed; /* what failed as the launch thread started the job */
    int start_errno; /* and its errno */
    double ended_at;
    struct run *next; /* in the ends waiting for room, or the runs to free */
    struct run *batch_next; /* in the batch being claimed, or with the sync or launch
                             * thread */
};

static int ep = -1;
static long live; /* runs begun and not finished */
static int requests_open = 1;
static struct watch requests_watch = {NULL, W_REQUESTS}, notices_watch = {NULL, W_NOTICES};
static struct run *waiting_room; /* ends to write once the file system has room */
static struct run *to_free;
static char *notices;
static size_t notices_len, notices_cap;
static int notices_polled, notices_gone;
static char readbuf[65536];
static long long server_start; /* this server's kernel start time: every record has it */
static int claims_dir = -1; /* the directory of --claims, or -1: none */

/* -- the record logs (ADR 0039) ---------------------------------------------------------
 *
 * Started with `--records` as well as `--claims DIR`, the server makes no directory and
 * no file for a run but the output its job writes: a run's start and end records are
 * lines in a log of the server's own in DIR, `PID-START-N.records` ("ajs3-records 1
 * HOST" on its first line), appended and never fsynced, as started.json's pids and
 * status.json are not:
 *
 *   p RECORD   the start record with the job's pids, written by the job's child before
 *              its exec, as it writes them into started.json without --records
 *   e RECORD   the end record, where status.json is written without it
 *
 * RECORD is the JSON text of that file (it has the run id); a line counts when whole.
 * The claims stay run ids in the claim log, made durable before any job starts.
 *
 * No started.json means no O_EXCL to stop a request of a dead daemon from starting a run
 * the daemon after it has declared never started (ADR 0012). `DIR/voids` takes its
 * place: run ids, one per line, that the daemon appends and fsyncs under an exclusive
 * lock of the file, before it reads the claim logs still under that lock. The sync
 * thread takes the same lock for each batch, reads the voids added since its last look,
 * drops the runs they name and makes the claims of the others durable before it lets
 * go. Either the daemon finds the claim or the server finds the void: never both.
 *
 * The server holds a lock on the log it writes, and each job's child holds it too
 * through its slot until its exec: once a daemon can lock every log of a server, the
 * server is gone and no job of it is between its clone and its exec, so a claim with no
 * "p" line never ran (ADR 0032's rule, with the log's lock for the claim's). A log is
 * followed by the next one past 64 MiB (or `--records-size`); the server lets go of an
 * older log once the last job whose start record is in it has ended, and the daemon
 * removes it as it removes claim logs. */
#define RECORD_LOG_ROTATE (64LL * 1024 * 1024)
#define RECORD_LOG_MIN 4096
static long long record_log_rotate = RECORD_LOG_ROTATE; /* or --records-size */

struct record_log {
    int fd;
    long live; /* runs that start in it and have not finished */
    long long size; /* bytes written, about: a start record counts as 512 */
    struct record_log *next; /* in the older logs still held */
};

static int records; /* --records, with a directory of claims: records in logs */
static struct record_log *record_log, *old_record_logs; /* the server's thread's only */
static unsigned record_log_seq;
static int voids_fd = -1;
static off_t voids_at; /* how much of the voids file was read */
static char *voids; /* the run ids read from it, each NUL-ended, back to back */
static size_t voids_len, voids_cap;

/* A new record log, locked, its head written: NULL with errno when it cannot be made. */
static struct record_log *new_record_log(void)
{
    char name[96], head[sizeof host + 32];
    struct record_log *l = calloc(1, sizeof *l);
    if (l == NULL)
        return NULL;
    l->fd = -1;
    while (l->fd < 0) {
        snprintf(name, sizeof name, "%d-%lld-%u.records", (int)getpid(), server_start,
                 record_log_seq++);
        l->fd = openat(claims_dir, name,
                       O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
        if (l->fd < 0 && errno != EEXIST) {
            free(l);
            return NULL;
        }
    }
    int n = snprintf(head, sizeof head, "ajs3-records 1 %s\n", host);
    if (flock(l->fd, LOCK_EX) < 0 || write_all(l->fd, head, (size_t)n) < 0) {
        int saved = errno;
        close(l->fd);
        unlinkat(claims_dir, name, 0);
        free(l);
        errno = saved;
        return NULL;
    }
    l->size = n;
    return l;
}

/* A run is over: the log of its start record has one live run less; an older log with
 * none left is let go (closed, and its lock with it). */
static void record_log_done(struct run *r)
{
    struct record_log *l = r->rlog;
    r->rlog = NULL;
    if (l == NULL || --l->live > 0 || l == record_log)
        return;
    for (struct record_log **p = &old_record_logs; *p != NULL; p = &(*p)->next)
        if (*p == l) {
            *p = l->next;
            break;
        }
    close(l->fd);
    free(l);
}

/* Past its size, the log written now is followed by a new one (if one can be made). */
static void rotate_record_log(void)
{
    if (record_log->size < record_log_rotate)
        return;
    struct record_log *next = new_record_log();
    if (next == NULL)
        return; /* the one there is goes on */
    struct record_log *old = record_log;
    record_log = next;
    if (old->live == 0) {
        close(old->fd);
        free(old);
    } else {
        old->next = old_record_logs;
        old_record_logs = old;
    }
}

/* Read the run ids appended to the voids file since the last look (whole lines). */
static void read_voids(void)
{
    char buf[8192];
    for (;;) {
        ssize_t n = pread(voids_fd, buf, sizeof buf, voids_at);
        if (n <= 0)
            return;
        size_t used = 0;
        for (;;) {
            char *line = buf + used, *nl = memchr(line, '\n', (size_t)n - used);
            if (nl == NULL)
                break;
            size_t len = (size_t)(nl - line);
            if (voids_len + len + 1 > voids_cap) {
                size_t cap = voids_cap ? voids_cap : 4096;
                while (cap < voids_len + len + 1)
                    cap *= 2;
                char *bigger = realloc(voids, cap);
                if (bigger == NULL) {
                    fputs("ajs3-supervise: out of memory\n", stderr);
                    exit(70);
                }
                voids = bigger;
                voids_cap = cap;
            }
            memcpy(voids + voids_len, line, len);
            voids[voids_len + len] = '\0';
            voids_len += len + 1;
            used += len + 1;
        }
        if (used == 0)
            return; /* a line still being written: its end is read next time */
        voids_at += (off_t)used;
        if ((size_t)n < sizeof buf)
            return;
    }
}

static int is_void(const char *run_id)
{
    for (size_t at = 0; at < voids_len; at += strlen(voids + at) + 1)
        if (strcmp(voids + at, run_id) == 0)
            return 1;
    return 0;
}

/* Append one record line ("p " or "e ", the record, a newline) with one write, so that
 * the job's children and the server's thread never cut into each other's lines. */
static int append_record(int fd, const char *kind, const char *text, size_t len)
{
    static char line[sizeof((struct buf *)0)->data + 8];
    if (len + 3 > sizeof line) {
        errno = E2BIG;
        return -1;
    }
    memcpy(line, kind, 2);
    memcpy(line + 2, text, len);
    line[len + 2] = '\n';
    return write_all(fd, line, len + 3);
}


static int watch_fd(int fd, struct watch *w, unsigned int events, int op)
{
    struct epoll_event ev = {.events = events, .data.ptr = w};
    return epoll_ctl(ep, op, fd, &ev);
}

/* Stop watching fd, then close it (never the other way round: a descriptor that is
 * closed while another process holds a copy stays in the epoll set). */
static void unwatch_close(int *fd)
{
    if (*fd < 0)
        return;
    epoll_ctl(ep, EPOLL_CTL_DEL, *fd, NULL);
    close(*fd);
    *fd = -1;
}

/* Write what the daemon was not told yet, as far as the pipe takes it now. */
static void flush_notices(void)
{
    while (notices_len > 0 && !notices_gone) {
        ssize_t n = write(1, notices, notices_len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            if (!notices_polled && watch_fd(1, &notices_watch, EPOLLOUT, EPOLL_CTL_ADD) == 0)
                notices_polled = 1;
            return;
        }
        if (n < 0) {
            notices_gone = 1; /* the daemon is gone: nobody to tell */
            break;
        }
        memmove(notices, notices + n, notices_len - (size_t)n);
        notices_len -= (size_t)n;
    }
    notices_len = 0;
    if (notices_polled) {
        epoll_ctl(ep, EPOLL_CTL_DEL, 1, NULL);
        notices_polled = 0;
    }
}

static int tell_records; /* --tell-records: ends are told with their records */

/* Queue n bytes for the daemon. */
static void notice_bytes(const char *data, size_t n)
{
    if (notices_gone || n == 0)
        return;
    if (notices_len + n > notices_cap) {
        size_t cap = notices_cap ? notices_cap * 2 : 4096;
        while (cap < notices_len + n)
            cap *= 2;
        char *bigger = realloc(notices, cap);
        if (bigger == NULL) {
            /* Out of memory: tell nothing more and take no more requests. The daemon
             * reads the end of the pipe; the jobs here go on, their ends are written,
             * and the daemon collects them when this server ends (its pidfds). */
            fputs("ajs3-supervise: out of memory: no more requests\n", stderr);
            notices_gone = 1;
            notices_len = 0;
            close(1);
            if (requests_open == 1) {
                requests_open = -1;
                epoll_ctl(ep, EPOLL_CTL_DEL, 0, NULL);
            }
            return;
        }
        notices = bigger;
        notices_cap = cap;
    }
    memcpy(notices + notices_len, data, n);
    notices_len += n;
}

/* Queue one line for the daemon: "e SEQ" tells an end ("PID" answers a request). */
static void notice(const char *fmt, unsigned long value)
{
    char line[48];
    int n = snprintf(line, sizeof line, fmt, value);
    if (n > 0)
        notice_bytes(line, (size_t)n);
}

/* The size of the job's AJS3_VARS_OUT file now (never through a link); -1: it is gone,
 * or not a regular file; -2: the request named none (not the server's to know). The
 * daemon reads the file only when it is not empty. */
static long long vars_out_size(const struct job *job)
{
    struct stat st;
    if (job->vars_out == NULL)
        return -2;
    if (fstatat(AT_FDCWD, job->vars_out, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
        return -1;
    return (long long)st.st_size;
}

/* Tell the daemon an end with its record: "e SEQ VARS_SIZE STATUS_JSON" (ADR 0037),
 * so that it needs not read status.json back; the record has no newline in it. */
static void notice_end(const struct run *r, const struct buf *record)
{
    char head[64];
    int n = tell_records ? snprintf(head, sizeof head, "e %lu %lld ", r->seq,
                                    vars_out_size(&r->job))
                         : 0;
    if (n <= 0 || memchr(record->data, '\n', record->len) != NULL) {
        notice("e %lu\n", r->seq);
        return;
    }
    notice_bytes(head, (size_t)n);
    notice_bytes(record->data, record->len);
    notice_bytes("\n", 1);
}

/* The run is over (its end written: `record`, or nothing to run: NULL): tell the
 * daemon, free later. */
static void finish(struct run *r, const struct buf *record)
{
    for (int i = 0; i < 2; i++) {
        unwatch_close(&r->streams[i].in);
        if (r->streams[i].out >= 0)
            close(r->streams[i].out);
        r->streams[i].out = -1;
    }
    unwatch_close(&r->pidfd);
    record_log_done(r);
    if (r->claim >= 0)
        close(r->claim);
    if (r->job.dirfd >= 0)
        close(r->job.dirfd);
    r->claim = r->job.dirfd = -1;
    if (record != NULL)
        notice_end(r, record);
    else
        notice("e %lu\n", r->seq);
    r->finished = 1;
    r->next = to_free;
    to_free = r;
    live--;
}

/* Write status.json (its text in b): 0 when written, 1 to try again once there is
 * room, -1 failed. */
static int write_end(struct run *r, struct buf *b)
{
    b->len = 0;
    put(b, "{");
    put_ids(b, &r->ids);
    put(b, "\"ended_at\": %.6f, \"run_id\": ", r->ended_at);
    put_str_or_null(b, r->job.run_id);
    if (r->failed[0] != '\0') {
        put(b, ", \"failed_to_start\": ");
        put_str(b, r->failed);
        put(b, ", \"exit_code\": null, \"signal\": null}");
    } else if (WIFSIGNALED(r->status)) {
        put(b, ", \"exit_code\": null, \"signal\": %d}", WTERMSIG(r->status));
    } else {
        put(b, ", \"exit_code\": %d, \"signal\": null}", WEXITSTATUS(r->status));
    }
    /* Not fsynced (ADR 0030): the daemon commits the end durably once it has read it. */
    if (records) {
        if (append_record(record_log->fd, "e ", b->data, b->len) == 0) {
            record_log->size += (long long)b->len + 3;
            rotate_record_log();
            return 0;
        }
    } else if (write_whole(r->job.dirfd, "status.json", b) == 0) {
        return 0;
    }
    return errno == ENOSPC || errno == EDQUOT ? 1 : -1;
}

/* Record the end, or keep it until there is room (a full file system is waited out,
 * so no end is lost for want of space; the daemon sees the job as running meanwhile).
 * Any other failure leaves no end: the daemon then takes the job as in doubt. */
static void record_end(struct run *r)
{
    static struct buf record;
    if (r->ended_at == 0)
        r->ended_at = now();
    int written = write_end(r, &record);
    if (written == 1) {
        r->next = waiting_room;
        waiting_room = r;
        return;
    }
    finish(r, written == 0 ? &record : NULL);
}

static void record_failure(struct run *r, const char *what)
{
    snprintf(r->failed, sizeof r->failed, "%s: %s", what, strerror(errno));
    record_end(r);
}

/* The run's directory, made if it is not there, opened never through a link, and the
 * daemon's user's alone: its descriptor, or -1 with errno (EPERM if it is someone
 * else's or others may write it). */
static int open_jobdir(const char *path)
{
    struct stat st;
    if (mkdir(path, 0750) < 0 && errno != EEXIST)
        return -1;
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    if (fstat(fd, &st) < 0 || st.st_uid != geteuid() || (st.st_mode & 022) != 0) {
        close(fd);
        errno = EPERM;
        return -1;
    }
    return fd;
}

/* Read once from a stream's pipe: 0 when there is nothing more now (or ever). Its file
 * is made at its first byte, as the daemon's user, never followed if a link: a job that
 * writes nothing on a stream has no file for it (two file creations per job fewer).
 * If it cannot be made (a full file system), that output is lost, as when a
 * write fails, never the job's end. */
static int pump(struct run *r, int i)
{
    static const char *names[2] = {"stdout", "stderr"};
    struct stream *s = &r->streams[i];
    ssize_t n = read(s->in, readbuf, sizeof readbuf);
    if (n > 0) {
        if (s->out < 0 && !s->cut) {
            if (r->job.dirfd < 0)
                r->job.dirfd = open_jobdir(r->job.jobdir);
            s->out = openat(r->job.dirfd, names[i],
                            O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0640);
            if (s->out < 0) {
                s->cut = 1;
                fprintf(stderr, "ajs3-supervise: the %s of %s is not kept: %s: %s\n", names[i],
                        r->job.run_id != NULL ? r->job.run_id : "?", r->job.jobdir,
                        strerror(errno));
            }
        }
        keep_output(s, r->job.limit, readbuf, (size_t)n);
        return 1;
    }
    if (n < 0 && errno == EINTR)
        return 1;
    if (n < 0 && errno == EAGAIN)
        return 0;
    unwatch_close(&s->in);
    return 0;
}

/* The job ended (its pidfd): what its pipes still hold, then the end record. */
static void job_ended(struct run *r)
{
    int status = 0;
    while (waitpid(r->ids.job, &status, 0) < 0 && errno == EINTR)
        ;
    r->status = status;
    r->ended_at = now();
    unwatch_close(&r->pidfd);
    for (int i = 0; i < 2; i++) {
        if (r->streams[i].in < 0)
            continue;
        fcntl(r->streams[i].in, F_SETFL, fcntl(r->streams[i].in, F_GETFL) | O_NONBLOCK);
        /* What the pipe holds now, and no more: a process the job left behind that
         * keeps writing must not hold the server here. */
        for (int reads = 0; reads < 64 && r->streams[i].in >= 0 && pump(r, i); reads++)
            ;
        /* A process the job left behind that writes later gets EPIPE. */
        unwatch_close(&r->streams[i].in);
    }
    r->msg[r->msglen] = '\0'; /* why it could not start, from the child (child_fail) */
    if (r->failed[0] == '\0' && r->msglen > 0)
        snprintf(r->failed, sizeof r->failed, "%s", r->msg);
    record_end(r);
}

/* The start record's end: where the job runs, when, and which run. */
static void put_record_tail(struct buf *b, const struct run *r)
{
    put(b, "\"host\": ");
    put_str(b, host);
    put(b, ", \"started_at\": %.6f, \"run_id\": ", r->started_at);
    put_str_or_null(b, r->job.run_id);
    put(b, "}");
}

/* The job's AJS3_VARS_OUT file: new and empty, its user's (0600), in a directory of the
 * daemon's user that no one else may write, never through a link. A file already there
 * is a left-over of an attempt that never ran: made anew. (The daemon made it itself
 * before; here it costs its serial loop nothing.) */
static int vars_dir_unsafe; /* why make_vars_out failed: its directory, not a call */

static int make_vars_out(const struct job *job)
{
    char dir[PATH_MAX];
    vars_dir_unsafe = 0;
    const char *slash = strrchr(job->vars_out, '/');
    size_t n = (size_t)(slash - job->vars_out);
    if (n == 0 || n >= sizeof dir) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(dir, job->vars_out, n);
    dir[n] = '\0';
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0)
        return -1;
    struct stat st;
    if (fstat(dfd, &st) < 0 || st.st_uid != geteuid() || (st.st_mode & 022) != 0) {
        vars_dir_unsafe = 1;
        close(dfd);
        errno = EPERM;
        return -1;
    }
    const char *name = slash + 1;
    const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
    int fd = openat(dfd, name, flags, 0600);
    if (fd < 0 && errno == EEXIST) {
        if (unlinkat(dfd, name, 0) < 0 && errno != ENOENT) {
            int saved = errno;
            close(dfd);
            errno = saved;
            return -1;
        }
        fd = openat(dfd, name, flags, 0600);
    }
    int saved = errno;
    close(dfd);
    if (fd < 0) {
        errno = saved;
        return -1;
    }
    int failed = job->vars_uid != geteuid() && fchown(fd, job->vars_uid, job->vars_gid) < 0;
    saved = errno;
    close(fd);
    errno = saved;
    return failed ? -1 : 0;
}

static int make_vars_out_or_fail(struct run *r);

/* begin() with --records: no directory, no file but the AJS3_VARS_OUT file; the claim
 * is the run id the sync thread logs (or drops, if a daemon voided it). */
static int begin_in_log(struct run *r)
{
    r->rlog = record_log;
    record_log->live++;
    record_log->size += 512;
    if (make_vars_out_or_fail(r) < 0)
        return -1;
    r->started_at = now();
    r->claim_len = 0;
    return 0;
}

/* From the request to its claim written (not yet durable), the job not yet started:
 * 0, or -1 when the run is over already (recorded as failed, or not ours). */
static int begin(struct run *r)
{
    struct job *job = &r->job;
    struct stat st;
    if (records)
        return begin_in_log(r);
    /* Never a link, and the daemon's user's alone: otherwise nothing can be recorded
     * safely, and the job never runs. */
    job->dirfd = open_jobdir(job->jobdir);
    if (job->dirfd < 0)
        goto gone;
    /* The claim: started.json is created here or not at all. A daemon that restarted
     * and found no start record creates it first (a "void" record) so that a request
     * of the dead daemon still on its way can never start the job after the new
     * daemon decided it never started (ADR 0012). */
    r->claim = openat(job->dirfd, "started.json",
                      O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
    if (r->claim < 0) {
        if (errno == EEXIST)
            goto gone; /* voided by a daemon (or started already): not ours to run */
        record_failure(r, "could not record the start");
        return -1;
    }
    /* Held until the job has exec'd (see launch): a daemon that finds the file empty,
     * cut short or without the job's pids waits for this lock before it may void it,
     * and a record it voided between our open and our lock is not empty any more. */
    if (flock(r->claim, LOCK_EX) < 0 || fstat(r->claim, &st) < 0) {
        record_failure(r, "could not lock the start record");
        return -1;
    }
    if (st.st_size != 0)
        goto gone; /* voided by a daemon: not ours to run */
    /* The output files are made at the job's first byte on each (see pump). */
    if (make_vars_out_or_fail(r) < 0)
        return -1;
    /* The claim, without the job's pids yet: they are the job's to write (launch). */
    r->started_at = now();
    struct buf b = {.len = 0};
    put(&b, "{");
    put_ids(&b, &r->ids);
    put_record_tail(&b, r);
    /* Room for the job's pids, which replace three nulls (up to 7 + 20 + 7 digits for
     * 12 letters): the job writes its record over the claim within the claim's length,
     * so that the file's size never changes. Were it to grow, a node that crashed could
     * leave the new size with the old data or the new data cut at the old size, and
     * the claim would read as cut short where its job may have run. */
    put(&b, "%24s", "");
    r->claim_len = b.len;
    if (write_all(r->claim, b.data, b.len) < 0) {
        char what[MSG_MAX];
        snprintf(what, sizeof what, "could not record the start in %s", job->jobdir);
        record_failure(r, what);
        return -1;
    }
    return 0;
gone:
    finish(r, NULL);
    return -1;
}

/* The job's AJS3_VARS_OUT file, if it has one: 0, or -1 with the run recorded as failed. */
static int make_vars_out_or_fail(struct run *r)
{
    const struct job *job = &r->job;
    if (job->vars_out == NULL || make_vars_out(job) == 0)
        return 0;
    char what[MSG_MAX];
    snprintf(what, sizeof what, "could not make its AJS3_VARS_OUT file %s%s", job->vars_out,
             vars_dir_unsafe ? " (its directory must be the daemon's user's, and no one "
                               "else may write it)"
                             : "");
    record_failure(r, what);
    return -1;
}

/* -- making start records durable, on a thread of their own ----------------------------
 *
 * A start record must be durable before its job is started: fsync of the file, then of
 * its directory, for each (not the directory where the file's fsync does it: see
 * entry_durable_with_file). The records waiting are taken together: first the data of
 * every one is sent to the disk (sync_file_range), so that the file system's journal
 * commit of the first fsync covers them all and the fsyncs after it find nothing left
 * to commit (measured in ADR 0030: one after the other without it, each fsync was a
 * commit of its own). Then it hands them to the launch thread, which starts their jobs
 * (see "starting a job") while it makes the next records durable, and hands the runs
 * back. The server's own thread goes on taking requests and collecting ends
 * meanwhile. */

/* Whether the fsync of a file just created in `dirfd` makes its directory entry (and
 * the directory's own, made just before) durable too: on ext4 with a journal the
 * commit that fsync waits for holds them (the journal commits in order), without one
 * ext4 syncs the parents of a new inode itself; on XFS the log is forced up to the
 * file's last change, which follows theirs. There the directory's fsync would be one
 * more flush of the device for nothing, 0.7 ms of every chain hop (ADR 0031); on any
 * other file system it is done. */
static int entry_durable_with_file(int dirfd)
{
    struct statfs sf;
    return fstatfs(dirfd, &sf) == 0 &&
           (sf.f_type == EXT4_SUPER_MAGIC || sf.f_type == XFS_SUPER_MAGIC);
}

static pthread_mutex_t sync_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sync_wanted = PTHREAD_COND_INITIALIZER;
static pthread_cond_t launch_wanted = PTHREAD_COND_INITIALIZER;
/* From the server's thread to the sync thread, on to the launch thread, and back;
 * linked by batch_next, under sync_lock. */
static struct run *sync_queue, *launch_queue, *sync_done;
static int synced_fd = -1; /* an eventfd: written when records are done */
static struct watch synced_watch = {NULL, W_SYNCED};

static void start_job(struct run *r);

/* -- the claim log (ADR 0033) -----------------------------------------------------------
 *
 * Started with `--claims DIR`, the server makes a batch of claims durable with one
 * fdatasync: their run ids, one per line, written into a log of its own in DIR; each
 * started.json is then written but not fsynced. A node that crashed may lose a
 * started.json, never a run id its server logged before it started the job: the daemon
 * that takes the logical host over finds the run in the log of another node or boot,
 * and holds it in doubt rather than starting it again.
 *
 * A log is made whole before it is used: the line "ajs3-claims 1 HOST" (the host
 * identity of its records), then zeros up to its size (256 KiB, or `--claims-size`),
 * fsynced with its
 * directory. Run ids are written over the zeros, so that their fdatasync changes no
 * metadata: a write and a flush of the device, not a commit of the file system's
 * journal. The server holds a lock on the log it writes; the daemon removes a log when
 * it can take its lock and no run in it still runs. When a log is full the next one is
 * made. If no log can be made, or a run id does not fit on a line, the claims are
 * fsynced one by one, as without `--claims`. */
#define CLAIM_LOG_SIZE (256 * 1024)
#define CLAIM_LOG_MIN 4096
static off_t claim_log_size = CLAIM_LOG_SIZE;
#define CLAIM_LINE_MAX 1024
/* --sync-fd: the daemon's journal's write-ahead log, fdatasynced before the jobs asked
 * for start, while their claims are made durable (ADR 0034, 0035): the daemon commits
 * the intents of a step without an fsync of its own when it hands their starts to this
 * server. -1: none. */
static int journal_wal = -1;
static int claim_log = -1;
static off_t claim_log_at; /* where the next run id goes */
static unsigned claim_log_seq;

/* A new log, whole and durable, locked: its descriptor, or -1 with errno. */
static int new_claim_log(void)
{
    static const char zeros[65536];
    char name[96], head[sizeof host + 32];
    int fd = -1;
    while (fd < 0) {
        snprintf(name, sizeof name, "%d-%lld-%u.log", (int)getpid(), server_start,
                 claim_log_seq++);
        fd = openat(claims_dir, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
        if (fd < 0 && errno != EEXIST)
            return -1;
    }
    int n = snprintf(head, sizeof head, "ajs3-claims 1 %s\n", host);
    int ok = flock(fd, LOCK_EX) == 0 && write_all(fd, head, (size_t)n) == 0;
    for (off_t at = n; ok && at < claim_log_size; at += (off_t)sizeof zeros) {
        size_t part = (size_t)(claim_log_size - at) < sizeof zeros ? (size_t)(claim_log_size - at)
                                                                   : sizeof zeros;
        ok = write_all(fd, zeros, part) == 0;
    }
    if (!ok || fsync(fd) < 0 || fsync(claims_dir) < 0) {
        int saved = errno;
        close(fd);
        unlinkat(claims_dir, name, 0);
        errno = saved;
        return -1;
    }
    claim_log_at = n;
    return fd;
}

/* Make the claims of `lines` (n bytes, whole lines) durable in the log: 0, or -1 with
 * errno. A log too full for them is followed by a new one. */
static int log_claims(const char *lines, size_t n)
{
    if (claim_log < 0 || claim_log_at + (off_t)n > claim_log_size) {
        int fd = new_claim_log();
        if (fd < 0)
            return -1;
        if (claim_log >= 0)
            close(claim_log); /* and its lock: the daemon may remove it once it is done */
        claim_log = fd;
    }
    if (pwrite(claim_log, lines, n, claim_log_at) != (ssize_t)n)
        return -1;
    claim_log_at += (off_t)n;
    return fdatasync(claim_log);
}

/* Make the claims of a batch durable: in the log where there is one, else each file. */
enum { NOT_DURABLE = -1, IN_LINES = -2 }; /* a run's sync_error before it is settled */

/* Log `lines` (n bytes): the runs from `from` on (to `until`, excluded) whose ids are in
 * them are then durable (0), or keep the error for their own fsync below. */
static void flush_lines(const char *lines, size_t n, struct run *from, struct run *until)
{
    int err = log_claims(lines, n) < 0 ? errno : 0;
    for (struct run *k = from; k != until; k = k->batch_next)
        if (k->sync_error == IN_LINES)
            k->sync_error = err;
}

static void sync_claims(struct run *all)
{
    static char lines[CLAIM_LOG_SIZE / 4];
    /* Whole lines, at most half a log at a time: a new log always has room for them. */
    size_t most = (size_t)claim_log_size / 2 < sizeof lines ? (size_t)claim_log_size / 2
                                                             : sizeof lines;
    size_t n = 0;
    struct run *first = NULL; /* the first run whose id is in `lines` */
    if (records) { /* held until the claims are durable: see "the record logs" */
        while (flock(voids_fd, LOCK_EX) < 0 && errno == EINTR)
            ;
        read_voids();
    }
    for (struct run *r = all; r != NULL; r = r->batch_next) {
        r->sync_error = NOT_DURABLE;
        size_t len = r->job.run_id != NULL ? strlen(r->job.run_id) : 0;
        if (claims_dir < 0 || len == 0 || len >= CLAIM_LINE_MAX || memchr(r->job.run_id, '\n', len))
            continue;
        if (records && is_void(r->job.run_id)) {
            r->voided = 1;
            r->sync_error = 0;
            continue;
        }
        if (n + len + 1 > most) {
            flush_lines(lines, n, first, r);
            n = 0;
            first = NULL;
        }
        memcpy(lines + n, r->job.run_id, len);
        lines[n + len] = '\n';
        n += len + 1;
        r->sync_error = IN_LINES;
        if (first == NULL)
            first = r;
    }
    if (n > 0)
        flush_lines(lines, n, first, NULL);
    if (records) {
        flock(voids_fd, LOCK_UN);
        /* No file to fsync instead: a claim the log could not take is not made. */
        for (struct run *r = all; r != NULL; r = r->batch_next)
            if (r->sync_error == NOT_DURABLE)
                r->sync_error = EINVAL;
        return;
    }
    /* The rest (and those the log could not take, rather than fail them): each file. */
    for (struct run *r = all; r != NULL; r = r->batch_next)
        if (r->sync_error != 0)
            sync_file_range(r->claim, 0, 0, SYNC_FILE_RANGE_WRITE);
    for (struct run *r = all; r != NULL; r = r->batch_next) {
        if (r->sync_error == 0)
            continue;
        int failed = fsync(r->claim) < 0;
        if (!failed && !entry_durable_with_file(r->job.dirfd))
            failed = fsync(r->job.dirfd) < 0;
        r->sync_error = failed ? errno : 0;
    }
}

/* Put `all` ahead of *queue and wake the thread that waits on `wanted` (under sync_lock). */
static void hand_on(struct run *all, struct run **queue, pthread_cond_t *wanted)
{
    struct run *last = all;
    while (last->batch_next != NULL)
        last = last->batch_next;
    last->batch_next = *queue;
    *queue = all;
    pthread_cond_signal(wanted);
}

/* Wait (holding sync_lock) until *queue holds runs; take them all and let go of the lock. */
static struct run *take_all(struct run **queue, pthread_cond_t *wanted)
{
    while (*queue == NULL)
        pthread_cond_wait(wanted, &sync_lock);
    struct run *all = *queue;
    *queue = NULL;
    pthread_mutex_unlock(&sync_lock);
    return all;
}

/* The journal's thread (--sync-fd, ADR 0034, 0035): the server's thread asks it for an
 * fdatasync of the daemon's journal as soon as it has read requests (wal_asked), before
 * it begins their runs; the daemon committed their intents without an fsync before it
 * wrote them, so that fdatasync covers them. Each run waits for the first one asked for
 * after it was read (its wal_gen). The claims are made durable meanwhile, on the sync
 * thread, which then waits for the journal's: a job starts once both are durable. */
static pthread_cond_t wal_wanted = PTHREAD_COND_INITIALIZER;
static pthread_cond_t wal_synced = PTHREAD_COND_INITIALIZER;
static unsigned long wal_asked, wal_done; /* under sync_lock */
/* The fdatasyncs that failed: the runs of wal_gen from..upto may not have a durable
 * intent. From the WAL_FAILURES-th on, every later run fails too. */
#define WAL_FAILURES 16
static struct {
    unsigned long from, upto;
    int err;
} wal_failed[WAL_FAILURES];
static int wal_failures;

/* On the server's thread, once requests were read: an fdatasync for them. */
static void ask_journal_sync(void)
{
    if (journal_wal < 0)
        return;
    pthread_mutex_lock(&sync_lock);
    wal_asked++;
    pthread_cond_signal(&wal_wanted);
    pthread_mutex_unlock(&sync_lock);
}

/* The errno of the fdatasync that covers wal_gen `gen` (done: under sync_lock), or 0. */
static int journal_sync_error(unsigned long gen)
{
    for (int i = 0; i < wal_failures && i < WAL_FAILURES; i++)
        if (gen >= wal_failed[i].from && (gen <= wal_failed[i].upto || i == WAL_FAILURES - 1))
            return wal_failed[i].err;
    return 0;
}

static void *wal_worker(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&sync_lock);
    for (;;) {
        while (wal_done == wal_asked)
            pthread_cond_wait(&wal_wanted, &sync_lock);
        unsigned long from = wal_done + 1, upto = wal_asked;
        pthread_mutex_unlock(&sync_lock);
        int err = fdatasync(journal_wal) < 0 ? errno : 0;
        pthread_mutex_lock(&sync_lock);
        if (err != 0 && wal_failures < WAL_FAILURES) {
            wal_failed[wal_failures].from = from;
            wal_failed[wal_failures].upto = upto;
            wal_failed[wal_failures].err = err;
            wal_failures++;
        }
        wal_done = upto;
        pthread_cond_broadcast(&wal_synced);
    }
    return NULL;
}

/* On the sync thread (holding sync_lock), its batch's claims settled: wait until the
 * journal is durable up to every run's intent. A run whose fdatasync failed is not
 * started ("could not record the start"). */
static void wait_for_journal(struct run *all)
{
    if (journal_wal < 0)
        return;
    for (struct run *r = all; r != NULL; r = r->batch_next) {
        while (wal_done < r->wal_gen)
            pthread_cond_wait(&wal_synced, &sync_lock);
        r->wal_error = journal_sync_error(r->wal_gen);
        if (r->wal_error != 0 && r->sync_error == 0)
            r->sync_error = r->wal_error;
    }
}

static void *sync_worker(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&sync_lock);
    for (;;) {
        struct run *all = take_all(&sync_queue, &sync_wanted);
        sync_claims(all);
        pthread_mutex_lock(&sync_lock);
        wait_for_journal(all);
        hand_on(all, &launch_queue, &launch_wanted);
    }
    return NULL;
}

/* The launch thread: starts the jobs whose claims are durable, while the sync thread
 * makes the next claims durable; then hands the runs back to the server's thread. */
static void *launch_worker(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&sync_lock);
    for (;;) {
        struct run *all = take_all(&launch_queue, &launch_wanted);
        struct run *last = NULL;
        for (struct run *r = all; r != NULL; r = r->batch_next) {
            if (r->sync_error == 0 && !r->voided)
                start_job(r);
            last = r;
        }
        pthread_mutex_lock(&sync_lock);
        last->batch_next = sync_done;
        sync_done = all;
        uint64_t one = 1;
        if (write(synced_fd, &one, sizeof one) < 0) {
            /* a full counter still wakes the server */
        }
    }
    return NULL;
}

static int start_sync_thread(void)
{
    pthread_t t[3];
    synced_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (synced_fd < 0 || pthread_create(&t[0], NULL, sync_worker, NULL) != 0 ||
        pthread_create(&t[1], NULL, launch_worker, NULL) != 0 ||
        (journal_wal >= 0 && pthread_create(&t[2], NULL, wal_worker, NULL) != 0))
        return -1;
    pthread_detach(t[0]);
    pthread_detach(t[1]);
    if (journal_wal >= 0)
        pthread_detach(t[2]);
    return 0;
}

/* Hand a batch's start records to the sync thread. */
static void sync_batch(struct run *batch)
{
    if (batch == NULL)
        return;
    pthread_mutex_lock(&sync_lock);
    hand_on(batch, &sync_queue, &sync_wanted);
    pthread_mutex_unlock(&sync_lock);
}

/* -- starting a job once its claim is durable: vfork, on the launch thread -----------
 *
 * The child shares the server's memory, and the launch thread waits until it has exec'd
 * or died (CLONE_VFORK suspends the calling thread only: the server's own thread goes
 * on meanwhile). A fork would copy the server's page tables only for the exec to
 * throw them away, which costs most with many jobs running (ADR 0032). The child
 * writes nothing of the server's but its own run's ids, its stack and the buffer below
 * (one child at a time), allocates nothing, takes no lock and calls nothing that signals
 * the server's threads (setuid and the like are made as raw system calls, as glibc's
 * wrappers would tell every thread of the server to change user); the launch thread
 * looks up the job user's groups before and puts `environ` back after (the server's
 * thread reads it only through getenv, and either array is whole). The server has no
 * signal handler that could run in the child. Its stack has a guard page below it. */

#define CHILD_STACK (1024 * 1024)
static char *child_stack; /* mapped at start, with a guard page below it */
static char record[2 * sizeof((struct buf *)0)->data + 128];

static int map_child_stack(void)
{
    long page = sysconf(_SC_PAGESIZE);
    char *m = mmap(NULL, CHILD_STACK + (size_t)page, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (m == MAP_FAILED || mprotect(m, (size_t)page, PROT_NONE) < 0)
        return -1;
    child_stack = m + page;
    return 0;
}

struct spawn {
    struct run *run;
    const struct buf *head, *tail; /* the start record around the job's pids */
    const gid_t *groups;
    int ngroups;
};

static char *put_text(char *p, const char *text)
{
    size_t n = strlen(text);
    memcpy(p, text, n);
    return p + n;
}

static char *put_decimal(char *p, long long value)
{
    char digits[24];
    int n = 0;
    unsigned long long u = value < 0 ? 0ULL - (unsigned long long)value : (unsigned long long)value;
    do {
        digits[n++] = (char)('0' + (int)(u % 10));
        u /= 10;
    } while (u != 0);
    if (value < 0)
        *p++ = '-';
    while (n > 0)
        *p++ = digits[--n];
    return p;
}

/* In the child: its own group, its pids into the start record, then only the job's
 * own descriptors, its user and directory, exec. Until the exec it holds the claim's
 * lock (a descriptor of its own, closed by the exec), so a daemon that takes the lock
 * finds its pids written, and its run identity in its environment. */
static int become_job(void *arg)
{
    const struct spawn *s = arg;
    struct run *r = s->run;
    const struct job *job = &r->job;
    /* First a descriptor table of its own, with only the slots (see reserve_slots); on a
     * kernel without CLOSE_RANGE_UNSHARE (before 5.9), a copy of the whole table, whose
     * rest close_from closes below. */
    if (syscall(SYS_close_range, SLOT_END, ~0U, CLOSE_RANGE_UNSHARE) < 0 &&
        unshare(CLONE_FILES) < 0)
        child_fail("take a descriptor table of its own", "(unshare)");
    setpgid(0, 0); /* the group it records is its own already */
    pid_t pid = (pid_t)syscall(SYS_getpid);
    long long start = stat_start_time("/proc/self/stat");
    char *p = record;
    if (records)
        p = put_text(p, "p ");
    memcpy(p, s->head->data, s->head->len);
    p += s->head->len;
    p = put_decimal(put_text(p, "\"job_pid\": "), pid);
    p = put_text(p, ", \"job_start\": ");
    p = start < 0 ? put_text(p, "null") : put_decimal(p, start);
    p = put_text(put_decimal(put_text(p, ", \"pgid\": "), pid), ", ");
    memcpy(p, s->tail->data, s->tail->len);
    p += s->tail->len;
    /* Padded to the claim's length (JSON allows trailing blanks), so that it covers the
     * whole claim without a truncate: ext4 truncates even to the same size, a journaled
     * orphan-list change per job. */
    while (p < record + r->claim_len)
        *p++ = ' ';
    if (records) /* one line of its server's record log, appended with one write */
        *p++ = '\n';
    size_t len = (size_t)(p - record);
    if ((records ? write(SLOT_CLAIM, record, len) : pwrite(SLOT_CLAIM, record, len, 0)) !=
        (ssize_t)len)
        child_fail("record its pids in", records ? "its server's record log" : "started.json");
    r->ids.job_start = start;
    /* From the slots to 0 (/dev/null), 1 (stdout), 2 (stderr) and 3 (the claim, closed
     * by a successful exec); in this order, each slot is read before it is written
     * over. */
    static const int from[4] = {SLOT_NULL, SLOT_OUT, SLOT_ERR, SLOT_CLAIM};
    for (int i = 0; i < 4; i++)
        if (dup2(from[i], i) < 0)
            child_fail("set up its descriptors", "(dup2)");
    close_from(4);
    fcntl(3, F_SETFD, FD_CLOEXEC);
    setrlimit(RLIMIT_NOFILE, &nofile_at_start);
    /* A job starts with every signal default and none blocked. */
    sigset_t none;
    for (int i = 0; i < ignored_count; i++)
        signal(ignored[i], SIG_DFL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (job->switch_user) {
        if (syscall(SYS_setgroups, (size_t)s->ngroups, s->groups) < 0)
            child_fail("setgroups", job->user);
        if (syscall(SYS_setgid, job->gid) < 0)
            child_fail("setgid", job->user);
        if (syscall(SYS_setuid, job->uid) < 0)
            child_fail("setuid", job->user);
    }
    if (job->cwd != NULL && job->cwd[0] != '\0' && chdir(job->cwd) < 0)
        child_fail("chdir", job->cwd);
    environ = job->envp; /* execvp looks the program up in the job's own PATH */
    execvp(job->argv[0], job->argv);
    child_fail("exec", job->argv[0]);
    return 127;
}

/* The groups of the job's user, looked up here (the child may not): a count, or -1
 * with errno. `*list` is `some` or allocated. */
static int job_groups(const struct job *job, gid_t *some, int room, gid_t **list)
{
    int n = room;
    *list = some;
    if (getgrouplist(job->user, job->gid, some, &n) >= 0)
        return n;
    *list = malloc((size_t)n * sizeof **list);
    if (*list == NULL || getgrouplist(job->user, job->gid, *list, &n) < 0) {
        free(*list);
        *list = some;
        errno = ENOMEM;
        return -1;
    }
    return n;
}

/* On the launch thread: start the job of a run whose claim is durable. What failed, if
 * anything, is left in the run for the server's thread to record. */
static void start_job(struct run *r)
{
    static struct buf head, tail;
    gid_t some[64], *groups = some;
    int ngroups = 0;
    if (r->job.switch_user && (ngroups = job_groups(&r->job, some, 64, &groups)) < 0) {
        r->start_failed = "getgrouplist";
        r->start_errno = errno;
        return;
    }
    /* The job's stdout and stderr: [0] is the read end. */
    int pipes[2][2] = {{-1, -1}, {-1, -1}};
    for (int i = 0; i < 2; i++) {
        if (pipe2(pipes[i], O_CLOEXEC) < 0) {
            r->start_failed = "pipe";
            r->start_errno = errno;
            for (int k = 0; k < i; k++) {
                close(pipes[k][0]);
                close(pipes[k][1]);
            }
            if (groups != some)
                free(groups);
            return;
        }
    }
    head.len = tail.len = 0;
    put(&head, "{\"supervisor_pid\": %d, \"supervisor_start\": %lld, ", (int)getpid(),
        r->ids.supervisor_start);
    put_record_tail(&tail, r);
    struct spawn sp = {r, &head, &tail, groups, ngroups};
    int pidfd = -1;
    char **env = environ;
    /* The write ends and the claim into the slots, for the child to take. */
    pid_t pid = -1;
    const char *failed = "hand the job its descriptors";
    /* With --records, the record log the job writes its pids into takes the claim's
     * slot, and the job holds its lock until its exec as it holds the claim's. */
    int claim = records ? r->rlog->fd : r->claim;
    if (dup2(pipes[0][1], SLOT_OUT) >= 0 && dup2(pipes[1][1], SLOT_ERR) >= 0 &&
        dup2(claim, SLOT_CLAIM) >= 0) {
        failed = "clone";
        child_msg = r->msg;
        child_msglen = &r->msglen;
        pid = clone(become_job, child_stack + CHILD_STACK,
                    CLONE_VM | CLONE_VFORK | CLONE_FILES | CLONE_PIDFD | SIGCHLD, &sp, &pidfd);
    }
    int saved = errno;
    clear_slots();
    environ = env;
    if (groups != some)
        free(groups);
    for (int i = 0; i < 2; i++)
        close(pipes[i][1]);
    r->streams[0].in = pipes[0][0];
    r->streams[1].in = pipes[1][0];
    /* The lock is the job's own now, until its exec. */
    if (r->claim >= 0)
        close(r->claim);
    r->claim = -1;
    if (pid < 0) {
        r->start_failed = failed;
        r->start_errno = saved;
        return;
    }
    r->ids.job = pid;
    if (r->ids.job_start == 0)
        r->ids.job_start = start_time(pid); /* it failed before it could say */
    r->pidfd = pidfd;
}

/* Runs the launch thread is done with: their jobs started (their ends watched from here
 * on), or the reason they could not be recorded or started (then they never ran). */
static void launch_synced(void)
{
    uint64_t count;
    if (read(synced_fd, &count, sizeof count) < 0) {
        /* nothing new: another wake took it */
    }
    pthread_mutex_lock(&sync_lock);
    struct run *done = sync_done;
    sync_done = NULL;
    pthread_mutex_unlock(&sync_lock);
    while (done != NULL) {
        struct run *r = done;
        done = r->batch_next;
        if (r->voided) {
            finish(r, NULL); /* a daemon declared it never started: not ours to run */
        } else if (r->sync_error != 0) {
            char what[MSG_MAX];
            snprintf(what, sizeof what, "could not record the start in %s", r->job.jobdir);
            errno = r->sync_error;
            record_failure(r, what);
        } else if (r->start_failed != NULL) {
            errno = r->start_errno;
            record_failure(r, r->start_failed);
        } else {
            watch_fd(r->pidfd, &r->w[0], EPOLLIN, EPOLL_CTL_ADD);
            watch_fd(r->streams[0].in, &r->w[1], EPOLLIN, EPOLL_CTL_ADD);
            watch_fd(r->streams[1].in, &r->w[2], EPOLLIN, EPOLL_CTL_ADD);
        }
    }
}

/* Split one request (NUL-ended strings) into a job; NULL pointers into req. */
static int parse_request(char *req, size_t len, struct job *job)
{
    char *fields[7], *p = req, *end = req + len;
    memset(job, 0, sizeof *job);
    job->dirfd = -1;
    if (len == 0 || end[-1] != '\0')
        return -1;
    for (int i = 0; i < 7; i++) {
        if (p >= end)
            return -1;
        fields[i] = p;
        p += strlen(p) + 1;
    }
    job->jobdir = fields[0];
    job->run_id = fields[1][0] ? fields[1] : NULL;
    job->cwd = fields[2][0] ? fields[2] : NULL;
    if (fields[3][0]) {
        job->switch_user = 1;
        job->uid = (uid_t)strtoul(fields[3], NULL, 10);
        job->gid = (gid_t)strtoul(fields[4], NULL, 10);
        job->user = fields[5];
    }
    job->limit = fields[6][0] ? strtoll(fields[6], NULL, 10) : 0;
    if (job->limit < 0)
        job->limit = 0;
    char **lists[2] = {NULL, NULL};
    for (int k = 0; k < 2; k++) {
        if (p >= end)
            goto bad;
        long count = strtol(p, NULL, 10);
        p += strlen(p) + 1;
        if (count < 0 || count > 1 << 20 || (k == 0 && count == 0))
            goto bad;
        char **list = calloc((size_t)count + 1, sizeof *list);
        if (list == NULL)
            goto bad;
        lists[k] = list;
        for (long i = 0; i < count; i++) {
            if (p >= end)
                goto bad;
            list[i] = p;
            p += strlen(p) + 1;
        }
    }
    job->argv = lists[0];
    job->envp = lists[1];
    if (p < end) { /* VARS_OUT UID GID: the file to make for the job (optional) */
        char *vars[3];
        for (int i = 0; i < 3; i++) {
            if (p >= end)
                goto bad;
            vars[i] = p;
            p += strlen(p) + 1;
        }
        if (vars[0][0] != '/' || !vars[1][0] || !vars[2][0])
            goto bad;
        job->vars_out = vars[0];
        job->vars_uid = (uid_t)strtoul(vars[1], NULL, 10);
        job->vars_gid = (gid_t)strtoul(vars[2], NULL, 10);
    }
    return 0;
bad:
    free(lists[0]);
    free(lists[1]);
    return -1;
}

static unsigned long next_seq;
static int answer_requests = 1; /* `--serve` alone: an older daemon waits for answers */

/* Take one whole request (answered at once with the server's pid if asked for), then
 * begin it; a begun run joins the batch. */
static int take_request(char *data, size_t len, struct run **batch)
{
    struct run *r = calloc(1, sizeof *r);
    char *req = r == NULL ? NULL : malloc(len);
    if (req == NULL) {
        free(r);
        fputs("ajs3-supervise: out of memory\n", stderr);
        exit(70);
    }
    memcpy(req, data, len);
    r->req = req;
    r->seq = next_seq++;
    r->claim = r->pidfd = -1;
    r->streams[0] = r->streams[1] = (struct stream){-1, -1, 0, 0};
    r->ids.supervisor_start = server_start;
    r->wal_gen = wal_asked; /* written by this thread only */
    for (int i = 0; i < 3; i++)
        r->w[i] = (struct watch){r, (enum kind)(W_PID + i)};
    if (parse_request(req, len, &r->job) < 0) {
        free(req);
        free(r);
        return -1;
    }
    live++;
    if (answer_requests)
        notice("%lu\n", (unsigned long)getpid());
    if (begin(r) == 0) {
        r->batch_next = *batch;
        *batch = r;
    }
    return 0;
}

static char *inbuf;
static size_t in_cap = 1 << 16, in_have;

/* Make the request buffer hold at least `size` bytes: 0, or -1 out of memory. */
static int grow_input(size_t size)
{
    while (in_cap < size) {
        char *bigger = realloc(inbuf, in_cap * 2);
        if (bigger == NULL)
            return -1;
        inbuf = bigger;
        in_cap *= 2;
    }
    return 0;
}

/* Read what stdin holds and take every whole request in it. At its end (the daemon is
 * gone) or at a malformed request, no more requests are read: the runs under way go
 * on to their ends. */
static void read_requests(struct run **batch)
{
    ssize_t n;
    do {
        if (grow_input(in_have + 1) < 0)
            goto stop;
        n = read(0, inbuf + in_have, in_cap - in_have);
    } while (n < 0 && errno == EINTR);
    if (n <= 0)
        goto stop;
    ask_journal_sync(); /* while the runs are begun */
    in_have += (size_t)n;
    size_t off = 0;
    for (;;) {
        char *nl = memchr(inbuf + off, '\n', in_have - off);
        if (nl == NULL)
            break;
        char *endp;
        unsigned long len = strtoul(inbuf + off, &endp, 10);
        if (endp != nl || len > (64UL << 20)) {
            fputs("ajs3-supervise: bad request from the daemon\n", stderr);
            goto refuse;
        }
        size_t need = (size_t)(nl + 1 - (inbuf + off)) + len;
        if (in_have - off < need) {
            if (grow_input(need) < 0)
                goto stop;
            break;
        }
        if (take_request(inbuf + off + (need - len), len, batch) < 0) {
            fputs("ajs3-supervise: malformed request from the daemon\n", stderr);
            goto refuse;
        }
        off += need;
    }
    memmove(inbuf, inbuf + off, in_have - off);
    in_have -= off;
    return;
refuse:
    requests_open = -1;
    epoll_ctl(ep, EPOLL_CTL_DEL, 0, NULL);
    return;
stop:
    requests_open = 0;
    epoll_ctl(ep, EPOLL_CTL_DEL, 0, NULL);
}

static double monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double next_retry;

static void free_finished(void)
{
    while (to_free != NULL) {
        struct run *r = to_free;
        to_free = r->next;
        free(r->job.argv);
        free(r->job.envp);
        free(r->req);
        free(r);
    }
}

/* Serve until the daemon is gone and every run has ended; 2 after a malformed request. */
static int serve(void)
{
    ep = epoll_create1(EPOLL_CLOEXEC);
    inbuf = malloc(in_cap);
    if (ep < 0 || inbuf == NULL)
        return 70;
    fcntl(1, F_SETFL, fcntl(1, F_GETFL) | O_NONBLOCK);
    if (watch_fd(0, &requests_watch, EPOLLIN, EPOLL_CTL_ADD) < 0)
        return 70;
    if (map_child_stack() < 0 || start_sync_thread() < 0 ||
        watch_fd(synced_fd, &synced_watch, EPOLLIN, EPOLL_CTL_ADD) < 0)
        return 70;
    struct epoll_event events[64];
    while (requests_open == 1 || live > 0 || waiting_room != NULL) {
        flush_notices();
        int n = epoll_wait(ep, events, 64, waiting_room != NULL ? 1000 : -1);
        if (n < 0 && errno != EINTR)
            return 70;
        struct run *batch = NULL;
        for (int i = 0; i < n; i++) {
            struct watch *w = events[i].data.ptr;
            struct run *r = w->run;
            if (r != NULL && r->finished)
                continue; /* ended earlier in this round */
            switch (w->kind) {
            case W_REQUESTS:
                read_requests(&batch);
                break;
            case W_NOTICES:
                break; /* flushed at the top of the loop */
            case W_SYNCED:
                launch_synced();
                break;
            case W_PID:
                job_ended(r);
                break;
            case W_STDOUT:
            case W_STDERR:
                if (r->streams[w->kind - W_STDOUT].in >= 0)
                    pump(r, w->kind - W_STDOUT);
                break;
            }
        }
        flush_notices(); /* the ends of this round: no wait for the fsync */
        if (batch != NULL)
            sync_batch(batch);
        if (waiting_room != NULL && monotonic() >= next_retry) {
            next_retry = monotonic() + 1.0;
            struct run *retry = waiting_room;
            waiting_room = NULL;
            while (retry != NULL) {
                struct run *r = retry;
                retry = r->next;
                record_end(r);
            }
        }
        free_finished();
    }
    flush_notices(); /* what the pipe takes: a daemon still there sees the server end */
    return requests_open == -1 ? 2 : 0;
}

/* The directory of the claim logs: the daemon's user's alone, never a link; -1 (each
 * claim fsynced on its own) if it is not. */
static int open_claims_dir(const char *path)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0 && fstat(fd, &st) == 0 && st.st_uid == geteuid() && (st.st_mode & 022) == 0)
        return fd;
    fprintf(stderr, "ajs3-supervise: %s: %s; each start record is fsynced on its own\n", path,
            fd < 0 ? strerror(errno) : "not the daemon user's alone");
    if (fd >= 0)
        close(fd);
    return -1;
}

/* --records: the voids file and the first record log, or -1 (said why; the records are
 * then files in each run's directory, as without the option). */
static int open_record_logs(void)
{
    const char *why = "it needs --claims with a directory of the daemon's user's alone";
    if (claims_dir >= 0) {
        voids_fd = openat(claims_dir, "voids", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0640);
        if (voids_fd >= 0 && (record_log = new_record_log()) != NULL)
            return 0;
        why = strerror(errno);
        if (voids_fd >= 0)
            close(voids_fd);
        voids_fd = -1;
    }
    fprintf(stderr, "ajs3-supervise: --records: %s; each run's records are files in its "
                    "directory\n", why);
    return -1;
}

int main(int argc, char **argv)
{
    int ends_only = 0, wal_arg = -1;
    const char *claims = NULL;
    int bad = argc < 2 || strcmp(argv[1], "--serve") != 0;
    for (int i = 2; i < argc && !bad; i++) {
        if (strcmp(argv[i], "--ends-only") == 0)
            ends_only = 1;
        else if (strcmp(argv[i], "--tell-records") == 0)
            tell_records = 1;
        else if (strcmp(argv[i], "--records") == 0)
            records = 1;
        else if (strcmp(argv[i], "--records-size") == 0 && i + 1 < argc)
            bad = (record_log_rotate = strtoll(argv[++i], NULL, 10)) < RECORD_LOG_MIN;
        else if (strcmp(argv[i], "--claims") == 0 && i + 1 < argc)
            claims = argv[++i];
        else if (strcmp(argv[i], "--sync-fd") == 0 && i + 1 < argc)
            bad = (wal_arg = (int)strtol(argv[++i], NULL, 10)) < 3;
        else if (strcmp(argv[i], "--claims-size") == 0 && i + 1 < argc)
            bad = (claim_log_size = strtoll(argv[++i], NULL, 10)) < CLAIM_LOG_MIN;
        else
            bad = 1;
    }
    if (bad) {
        fputs("usage: ajs3-supervise --serve [--ends-only] [--tell-records] "
              "[--claims DIR [--claims-size BYTES] [--records [--records-size BYTES]]] "
              "[--sync-fd FD]\n"
              "(the ajs3 daemon starts it and sends it the jobs to start; "
              "not meant to be run by hand)\n",
              stderr);
        return 2;
    }
    answer_requests = !ends_only;
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    note_ignored_signals();
    setsid(); /* the jobs' session: no signal to the daemon's group reaches it */
    if (wal_arg >= 0 && (journal_wal = fcntl(wal_arg, F_DUPFD_CLOEXEC, SLOT_END)) < 0) {
        perror("ajs3-supervise: --sync-fd");
        return 2;
    }
    close_inherited_fds(journal_wal);
    if (reserve_slots() < 0) {
        perror("ajs3-supervise: /dev/null");
        return 70;
    }
    /* Every running job holds a few descriptors here: take what the hard limit gives
     * (each job gets the limit it would have had back). */
    getrlimit(RLIMIT_NOFILE, &nofile_at_start);
    struct rlimit raised = nofile_at_start;
    raised.rlim_cur = raised.rlim_max;
    setrlimit(RLIMIT_NOFILE, &raised);
    host_identity(host, sizeof host);
    server_start = start_time(getpid());
    if (claims != NULL)
        claims_dir = open_claims_dir(claims);
    if (records && open_record_logs() < 0)
        records = 0;
    return serve();
}
