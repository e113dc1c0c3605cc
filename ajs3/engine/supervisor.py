"""The tiny supervisor that runs one job and makes its exit status durable.

It is started by the daemon as ``python3 -S supervisor.py JOBDIR`` in a session of
its own, so it survives the daemon (design.md rule 4). It uses the standard library
only and imports nothing else, because it starts once per job and must start fast.

Files in JOBDIR (the run's directory in the data directory):

- ``spec.json``     written by the daemon: argv, cwd, env, uid/gid, output paths
- ``started.json``  written here, fsynced, *before* the job may start: pid, start
                    time, host identity and the job's process group
- ``status.json``   written here, fsynced, after the job ended: exit code or signal
- ``stdout``, ``stderr``

A daemon that finds ``started.json`` but no live supervisor and no ``status.json``
knows the job may have run and its end is in doubt; without ``started.json`` it
knows the job never started.
"""

import json
import os
import signal
import sys
import time


def proc_stat(pid: int) -> tuple[bytes, int]:
    """A process's state letter and kernel start time (clock ticks since boot)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    # The command name may hold spaces and parentheses: split after the last ')'.
    fields = data[data.rindex(b")") + 2 :].split()
    return fields[0], int(fields[19])


def host_identity() -> str:
    """Identifies this node and PID namespace: pids mean nothing elsewhere."""
    try:
        pidns = os.readlink("/proc/self/ns/pid")
    except OSError:
        pidns = "?"
    with open("/proc/sys/kernel/random/boot_id") as f:
        boot = f.read().strip()
    return f"{os.uname().nodename}/{boot}/{pidns}"


def write_durable(path: str, data: dict) -> None:  # type: ignore[type-arg]
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    try:
        os.write(fd, json.dumps(data).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)
    dfd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _child(spec: dict, gate_r: int, err_w: int) -> None:  # type: ignore[type-arg]
    """In the forked child: wait for the gate, become the job, exec."""
    try:
        os.setpgid(0, 0)
        # Python ignores SIGPIPE and SIGXFSZ; an ignored signal stays ignored across
        # exec, and a shell pipeline in a job needs SIGPIPE.
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT,
                    signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(sig, signal.SIG_DFL)
        if os.read(gate_r, 1) != b"g":
            os._exit(127)
        os.close(gate_r)
        out = os.open(spec["stdout"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        err = os.open(spec["stderr"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        if spec.get("uid") is not None:
            os.initgroups(spec["user"], spec["gid"])
            os.setgid(spec["gid"])
            os.setuid(spec["uid"])
        if spec.get("cwd"):
            os.chdir(spec["cwd"])
        os.execvpe(spec["argv"][0], spec["argv"], spec["env"])
    except BaseException as exc:  # report why the job could not start, then die
        msg = f"{type(exc).__name__}: {exc}".encode()
        try:
            os.write(err_w, msg[:4000])
        finally:
            os._exit(127)


def main(jobdir: str) -> int:
    """Entry point as a script: ``python3 -S supervisor.py JOBDIR``."""
    with open(os.path.join(jobdir, "spec.json")) as f:
        spec = json.load(f)
    supervise(spec, jobdir)
    return 0


def supervise(spec: dict, jobdir: str) -> None:  # type: ignore[type-arg]
    """Run the job of ``spec`` and record its start and end durably in ``jobdir``."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        # Only the job's process group is ever signalled; the supervisor must
        # outlive it to record the status.
        signal.signal(sig, signal.SIG_IGN)
    os.makedirs(jobdir, mode=0o750, exist_ok=True)
    if spec.get("uid") is not None:
        os.chown(jobdir, spec["uid"], spec["gid"])
    gate_r, gate_w = os.pipe()
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        os.close(gate_w)
        os.close(err_r)
        _child(spec, gate_r, err_w)
    os.close(gate_r)
    os.close(err_w)
    try:
        os.setpgid(pid, pid)
    except OSError:
        pass  # the child did it first
    me = os.getpid()
    write_durable(
        os.path.join(jobdir, "started.json"),
        {
            "supervisor_pid": me,
            "supervisor_start": proc_stat(me)[1],
            "job_pid": pid,
            "pgid": pid,
            "host": host_identity(),
            "started_at": time.time(),
            "run_id": spec.get("run_id"),
        },
    )
    os.write(gate_w, b"g")
    os.close(gate_w)
    exec_error = b""
    while True:
        chunk = os.read(err_r, 4096)
        if not chunk:
            break
        exec_error += chunk
    os.close(err_r)
    _, status = os.waitpid(pid, 0)
    result: dict = {"ended_at": time.time(), "run_id": spec.get("run_id")}  # type: ignore[type-arg]
    if exec_error:
        result["failed_to_start"] = exec_error.decode(errors="replace")
        result["exit_code"] = None
        result["signal"] = None
    elif os.WIFSIGNALED(status):
        result["exit_code"] = None
        result["signal"] = os.WTERMSIG(status)
    else:
        result["exit_code"] = os.waitstatus_to_exitcode(status)
        result["signal"] = None
    write_durable(os.path.join(jobdir, "status.json"), result)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
