/*
 * ajs3-supervise: the fork server and the supervisor of every job (ADR 0001, ADR 0012).
 *
 * The daemon starts it once, as `ajs3-supervise --serve`, and writes one request per
 * job to its stdin: a decimal length, a newline, then that many bytes of NUL-ended
 * strings:
 *
 *   JOBDIR RUN_ID CWD UID GID USER LIMIT ARGC ARG... ENVC NAME=VALUE...
 *
 * (CWD, UID, GID and USER may be empty: no chdir, no change of user; LIMIT is the
 * output limit in bytes, empty or 0 for none). For each
 * request it forks a supervisor in a session of its own and answers on stdout with
 * its pid and a newline ("-ERRNO" if the fork failed). It is small and never execs,
 * so a fork costs little, and the one exec per job is the job's own. It ends at the
 * end of its stdin (the daemon is gone); the supervisors live on (docs/design.md rule 4).
 *
 * A supervisor runs one job and makes its start and its end durable, in JOBDIR:
 * a directory of the daemon's user that no one else may write (it is never handed
 * to the job's user). Every file in it is created relative to a descriptor of the
 * directory opened with O_NOFOLLOW, with O_NOFOLLOW (and O_EXCL where new), so root
 * never follows a link; the job gets its stdout and stderr as pipes only.
 *
 *   started.json  created (O_EXCL: the claim), written and fsynced (file, then
 *                 directory) *before* the job may exec: the supervisor's pid and
 *                 kernel start time, the job's pid, start time and process group,
 *                 the host identity (node/boot id/pid namespace)
 *   status.json   written (tmp + rename, never seen half-written) after the job ended:
 *                 exit code or signal, or why the job could not start
 *                 (failed_to_start), and the same pids as started.json. Not fsynced
 *                 (ADR 0030): it outlives a crash of the daemon in the page cache, and
 *                 the daemon's commit of the end is what makes it durable; a crash of
 *                 the node before that commit leaves the job in doubt, and a file cut
 *                 short by it reads as no end
 *   stdout, stderr
 *                 what the job wrote to its stdout and stderr, copied from its pipes
 *                 by the supervisor up to LIMIT bytes each; past it, a marker line
 *                 says where the output was cut and the rest is read and dropped (so
 *                 one chatty job cannot fill the volume, and never blocks on a full
 *                 pipe). When the job has ended, what its pipes still hold is copied
 *                 and they are closed: a process it left behind that writes later
 *                 gets EPIPE.
 *
 * A daemon that finds started.json but no live supervisor and no status.json knows
 * the job may have run and its end is in doubt; without started.json it knows the job
 * never started. The job is forked first and held on a pipe (the gate) until
 * started.json is durable, so the recorded pid and process group are the job's. If
 * started.json exists already, or is no longer empty once locked (a restarted daemon
 * voided the run), the supervisor leaves at once and runs nothing.
 *
 * Supervisors ignore SIGTERM, SIGINT and SIGHUP: only the job's process group is
 * signalled, and the supervisor must outlive it to record the end. A supervisor exits
 * 0 when status.json was written and 70 when it could not be; while the file system
 * is full it keeps the end and tries again every second, so no end is lost for want
 * of space.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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
    if (unlinkat(dirfd, tmp, 0) < 0 && errno != ENOENT)
        return -1;
    int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
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
static long long start_time(pid_t pid)
{
    char data[1024];
    snprintf(data, sizeof data, "/proc/%d/stat", (int)pid);
    int fd = open(data, O_RDONLY | O_CLOEXEC);
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

/* Report why the job could not start through the error pipe, then die. */
static void child_fail(int err_w, const char *what, const char *arg)
{
    char msg[MSG_MAX];
    int n = snprintf(msg, sizeof msg, "%s %s: %s", what, arg, strerror(errno));
    if (n > 0)
        write_all(err_w, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
    _exit(127);
}

/* The node/boot/pid-namespace identity, the same for every supervisor of the server. */
static char host[512];

struct job {
    const char *jobdir, *run_id, *user, *cwd;
    int dirfd; /* JOBDIR, opened O_DIRECTORY|O_NOFOLLOW by the supervisor */
    uid_t uid;
    gid_t gid;
    int switch_user;
    long long limit; /* bytes kept of each of stdout and stderr; 0: no limit */
    char **argv, **envp;
};

/* In the forked child: wait for the gate, become the job, exec. */
static void become_job(const struct job *job, int gate_r, int err_w, int out, int err)
{
    sigset_t none;
    setpgid(0, 0);
    /* Dispositions the supervisor set (and SIG_IGN inherited from the daemon, such as
     * Python's SIGPIPE) would survive exec: a job starts with every signal default. */
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            signal(sig, SIG_DFL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    char g = 0;
    ssize_t got;
    do {
        got = read(gate_r, &g, 1);
    } while (got < 0 && errno == EINTR);
    if (got != 1 || g != 'g')
        _exit(127); /* the supervisor could not record the start: never run */
    close(gate_r);
    int null = open("/dev/null", O_RDONLY);
    if (null < 0)
        child_fail(err_w, "open", "/dev/null");
    /* The write ends of the output pipes: the supervisor copies them into JOBDIR, so
     * the job never needs to write there. */
    if (dup2(null, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
        child_fail(err_w, "dup2", "stdio");
    if (null > 2)
        close(null);
    if (out > 2)
        close(out);
    if (err > 2)
        close(err);
    if (job->switch_user) {
        if (initgroups(job->user, job->gid) < 0)
            child_fail(err_w, "initgroups", job->user);
        if (setgid(job->gid) < 0)
            child_fail(err_w, "setgid", job->user);
        if (setuid(job->uid) < 0)
            child_fail(err_w, "setuid", job->user);
    }
    if (job->cwd != NULL && job->cwd[0] != '\0' && chdir(job->cwd) < 0)
        child_fail(err_w, "chdir", job->cwd);
    environ = job->envp; /* execvp looks the program up in the job's own PATH */
    execvp(job->argv[0], job->argv);
    child_fail(err_w, "exec", job->argv[0]);
}

static void close_inherited_fds(void)
{
    /* Nothing of the daemon's (its lock, journal, sockets) may live on in a job. */
#ifdef SYS_close_range
    if (syscall(SYS_close_range, 3U, ~0U, 0U) == 0)
        return;
#endif
    long max = sysconf(_SC_OPEN_MAX);
    for (long fd = 3; fd < (max > 0 ? max : 65536); fd++)
        close((int)fd);
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

static int record_end(const struct job *job, const struct ids *ids, const char *failed,
                      int status)
{
    struct buf b = {.len = 0};
    put(&b, "{");
    put_ids(&b, ids);
    put(&b, "\"ended_at\": %.6f, \"run_id\": ", now());
    put_str_or_null(&b, job->run_id);
    if (failed != NULL) {
        put(&b, ", \"failed_to_start\": ");
        put_str(&b, failed);
        put(&b, ", \"exit_code\": null, \"signal\": null}");
    } else if (WIFSIGNALED(status)) {
        put(&b, ", \"exit_code\": null, \"signal\": %d}", WTERMSIG(status));
    } else {
        put(&b, ", \"exit_code\": %d, \"signal\": null}", WEXITSTATUS(status));
    }
    /* Not fsynced (ADR 0030): the daemon commits the end durably once it has read it.
     * A full file system is waited out: the end is kept here and written once there is
     * room, so it is never lost for want of space (the daemon sees this supervisor
     * alive meanwhile, and its job as running). Any other failure is final. */
    const struct timespec second = {.tv_sec = 1, .tv_nsec = 0};
    while (write_whole(job->dirfd, "status.json", &b) < 0) {
        if (errno != ENOSPC && errno != EDQUOT)
            return 70;
        nanosleep(&second, NULL);
    }
    return 0;
}

static int record_failure(const struct job *job, const struct ids *ids, const char *what)
{
    char msg[512];
    snprintf(msg, sizeof msg, "%s: %s", what, strerror(errno));
    return record_end(job, ids, msg, 0);
}

/* Write the start record into the claimed started.json and make it durable. */
static int record_start(const struct job *job, const struct ids *ids, int fd)
{
    struct buf b = {.len = 0};
    put(&b, "{");
    put_ids(&b, ids);
    put(&b, "\"host\": ");
    put_str(&b, host);
    put(&b, ", \"started_at\": %.6f, \"run_id\": ", now());
    put_str_or_null(&b, job->run_id);
    put(&b, "}");
    if (write_all(fd, b.data, b.len) < 0 || fsync(fd) < 0)
        return -1;
    return fsync(job->dirfd);
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

/* Read once from a stream's pipe: 0 when it is closed (end, or nothing more now when
 * non-blocking). */
static int pump(struct stream *s, long long limit, char *buf, size_t size)
{
    ssize_t n = read(s->in, buf, size);
    if (n > 0) {
        keep_output(s, limit, buf, (size_t)n);
        return 1;
    }
    if (n < 0 && errno == EINTR)
        return 1;
    if (n < 0 && errno == EAGAIN)
        return 0;
    close(s->in);
    s->in = -1;
    return 0;
}

/* Copy the job's output until it ends (its pidfd, or a poll of its status without
 * one), then what its pipes still hold; returns its wait status. */
static int relay(const struct job *job, pid_t pid, struct stream *streams)
{
    static char buf[65536];
    int status = 0, reaped = 0;
#ifdef SYS_pidfd_open
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
#else
    int pidfd = -1;
#endif
    for (;;) {
        struct pollfd fds[3];
        int nf = 0, which[2] = {-1, -1};
        for (int i = 0; i < 2; i++)
            if (streams[i].in >= 0) {
                which[nf] = i;
                fds[nf].fd = streams[i].in;
                fds[nf].events = POLLIN;
                fds[nf].revents = 0;
                nf++;
            }
        int streams_open = nf;
        if (streams_open == 0)
            break;
        if (pidfd >= 0) {
            fds[nf].fd = pidfd;
            fds[nf].events = POLLIN;
            fds[nf].revents = 0;
            nf++;
        }
        int r = poll(fds, (nfds_t)nf, pidfd >= 0 ? -1 : 200);
        if (r < 0 && errno != EINTR)
            break;
        for (int k = 0; k < streams_open; k++)
            if (fds[k].revents & (POLLIN | POLLHUP | POLLERR))
                pump(&streams[which[k]], job->limit, buf, sizeof buf);
        if (pidfd >= 0 ? (r > 0 && (fds[nf - 1].revents & POLLIN))
                       : waitpid(pid, &status, WNOHANG) == pid) {
            reaped = pidfd < 0;
            break;
        }
    }
    /* The job ended (or closed both streams): what the pipes hold now, then close. */
    for (int i = 0; i < 2; i++) {
        if (streams[i].in < 0)
            continue;
        fcntl(streams[i].in, F_SETFL, fcntl(streams[i].in, F_GETFL) | O_NONBLOCK);
        while (streams[i].in >= 0 && pump(&streams[i], job->limit, buf, sizeof buf))
            ;
        if (streams[i].in >= 0) {
            close(streams[i].in);
            streams[i].in = -1;
        }
    }
    if (pidfd >= 0)
        close(pidfd);
    while (!reaped && waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            status = 0;
            break;
        }
    }
    return status;
}

/* The supervisor of one job, in a forked child of the server: returns its exit code. */
static int supervise(struct job *job)
{
    struct ids ids = {.supervisor_start = start_time(getpid()), .job = 0, .job_start = -1};
    struct stat st;
    if (mkdir(job->jobdir, 0750) < 0 && errno != EEXIST)
        return 70;
    /* Never a link, and the daemon's user's alone: otherwise nothing can be recorded
     * safely, and the job never runs. */
    job->dirfd = open(job->jobdir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (job->dirfd < 0)
        return 70;
    if (fstat(job->dirfd, &st) < 0 || st.st_uid != geteuid() || (st.st_mode & 022) != 0)
        return 70;
    /* The claim: started.json is created here or not at all. A daemon that restarted
     * and found no start record creates it first (a "void" record) so that a
     * supervisor of the dead daemon that is still on its way can never start the job
     * after the new daemon decided it never started (ADR 0012). */
    int claim = openat(job->dirfd, "started.json",
                       O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
    if (claim < 0) {
        if (errno == EEXIST)
            return 0; /* voided by the daemon (or started already): not ours to run */
        return record_failure(job, &ids, "could not record the start");
    }
    /* Held until the record is durable and the gate open: a daemon that finds the file
     * empty or cut short waits for this lock before it may void it, and a record it
     * voided between our open and our lock is not empty any more. */
    if (flock(claim, LOCK_EX) < 0 || fstat(claim, &st) < 0) {
        close(claim);
        return record_failure(job, &ids, "could not lock the start record");
    }
    if (st.st_size != 0) {
        close(claim);
        return 0; /* voided by the daemon: not ours to run */
    }
    /* The output files, opened here as the daemon's user, never followed if a link. */
    struct stream streams[2] = {{-1, -1, 0, 0}, {-1, -1, 0, 0}};
    const char *names[2] = {"stdout", "stderr"};
    int outp[2][2];
    for (int i = 0; i < 2; i++) {
        streams[i].out = openat(job->dirfd, names[i],
                                O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0640);
        if (streams[i].out < 0) {
            close(claim);
            return record_failure(job, &ids, i ? "open stderr in the job directory"
                                               : "open stdout in the job directory");
        }
        if (pipe2(outp[i], O_CLOEXEC) < 0) {
            close(claim);
            return record_failure(job, &ids, "pipe");
        }
        streams[i].in = outp[i][0];
    }
    int gate[2], errp[2];
    if (pipe2(gate, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0)
        return record_failure(job, &ids, "pipe");
    pid_t pid = fork();
    if (pid < 0)
        return record_failure(job, &ids, "fork");
    if (pid == 0) {
        close(claim);
        close(gate[1]);
        close(errp[0]);
        become_job(job, gate[0], errp[1], outp[0][1], outp[1][1]);
    }
    close(gate[0]);
    close(errp[1]);
    close(outp[0][1]);
    close(outp[1][1]);
    setpgid(pid, pid); /* the child does it too; whoever is first wins */
    ids.job = pid;
    ids.job_start = start_time(pid); /* it waits at the gate: alive */

    char failed[MSG_MAX + 256] = "";
    if (record_start(job, &ids, claim) < 0) {
        /* The start is not durable: the job must not run. Closing the gate ends it. */
        snprintf(failed, sizeof failed, "could not record the start in %s: %s", job->jobdir,
                 strerror(errno));
        close(gate[1]);
    } else {
        write_all(gate[1], "g", 1);
        close(gate[1]);
    }
    close(claim);
    /* The error pipe closes at the job's exec (or with its death); a message on it says
     * why it could not start. */
    char msg[MSG_MAX + 1];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(errp[0], msg + len, MSG_MAX - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == MSG_MAX)
            break;
    }
    msg[len] = '\0';
    close(errp[0]);
    if (failed[0] == '\0' && len > 0)
        snprintf(failed, sizeof failed, "%s", msg);
    int status = relay(job, pid, streams);
    close(streams[0].out);
    close(streams[1].out);
    return record_end(job, &ids, failed[0] ? failed : NULL, status);
}

/* Split one request (NUL-ended strings) into a job; NULL pointers into req. */
static int parse_request(char *req, size_t len, struct job *job)
{
    char *fields[7], *p = req, *end = req + len;
    memset(job, 0, sizeof *job);
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
    char **lists[2];
    for (int k = 0; k < 2; k++) {
        if (p >= end)
            return -1;
        long count = strtol(p, NULL, 10);
        p += strlen(p) + 1;
        if (count < 0 || count > 1 << 20 || (k == 0 && count == 0))
            return -1;
        char **list = calloc((size_t)count + 1, sizeof *list);
        if (list == NULL)
            return -1;
        for (long i = 0; i < count; i++) {
            if (p >= end) {
                free(list);
                return -1;
            }
            list[i] = p;
            p += strlen(p) + 1;
        }
        lists[k] = list;
    }
    job->argv = lists[0];
    job->envp = lists[1];
    return 0;
}

static void reply(const char *fmt, long value)
{
    char line[32];
    int n = snprintf(line, sizeof line, fmt, value);
    if (write_all(1, line, (size_t)n) < 0)
        _exit(0); /* the daemon is gone */
}

/* Fork the supervisor of one job and answer with its pid. */
static void start(struct job *job)
{
    pid_t pid = fork();
    if (pid == 0) {
        setsid();
        signal(SIGCHLD, SIG_DFL); /* it waits for its job */
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
            if (null > 1)
                close(null);
        }
        _exit(supervise(job));
    }
    if (pid < 0)
        reply("-%ld\n", errno);
    else
        reply("%ld\n", pid);
}

/* Read requests from stdin, fork a supervisor for each, answer with its pid. */
static int serve(void)
{
    signal(SIGCHLD, SIG_IGN); /* supervisors are reaped by the kernel; the daemon
                                 watches them through pidfds */
    size_t cap = 1 << 16, have = 0, off = 0;
    char *buf = malloc(cap);
    if (buf == NULL)
        return 70;
    for (;;) {
        size_t need = 0; /* bytes from off that the next whole request needs */
        char *nl = memchr(buf + off, '\n', have - off);
        if (nl != NULL) {
            char *endp;
            unsigned long len = strtoul(buf + off, &endp, 10);
            if (endp != nl || len > (64UL << 20)) {
                fputs("ajs3-supervise: bad request from the daemon\n", stderr);
                return 2;
            }
            need = (size_t)(nl + 1 - (buf + off)) + len;
            if (have - off >= need) {
                struct job job;
                if (parse_request(nl + 1, len, &job) < 0) {
                    fputs("ajs3-supervise: malformed request from the daemon\n", stderr);
                    return 2;
                }
                start(&job);
                free(job.argv);
                free(job.envp);
                off += need;
                continue;
            }
        }
        /* Not a whole request: keep what is left at the front and read more. */
        memmove(buf, buf + off, have - off);
        have -= off;
        off = 0;
        while (need > cap || have == cap) {
            cap *= 2;
            char *bigger = realloc(buf, cap);
            if (bigger == NULL)
                return 70;
            buf = bigger;
        }
        ssize_t n = read(0, buf + have, cap - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return 0; /* the daemon closed the pipe: its supervisors live on */
        have += (size_t)n;
    }
}

int main(int argc, char **argv)
{
    if (argc != 2 || strcmp(argv[1], "--serve") != 0) {
        fputs("usage: ajs3-supervise --serve\n"
              "(the ajs3 daemon starts it and sends it the jobs to start; "
              "not meant to be run by hand)\n",
              stderr);
        return 2;
    }
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    close_inherited_fds();
    host_identity(host, sizeof host);
    return serve();
}
