"""`ajs3 service start|stop|status|reload`: a logical host's daemon."""

from __future__ import annotations

import argparse

from ajs3.cli.arguments import check_rundir, paths_of
from ajs3.cli.output import emit
from ajs3.cli.transport import request
from ajs3.model import StartMode, StopJobs
from ajs3.service import lifecycle
from ajs3.service.paths import Paths


def cmd_service(args: argparse.Namespace) -> int:
    action = {"start": start, "stop": stop, "status": status, "reload": reload}[args.action]
    return action(args)


def _paths(args: argparse.Namespace) -> Paths:
    """The logical host's paths, once it is sure that this user can see its daemon."""
    paths = paths_of(args)
    check_rundir(paths)
    return paths


def start(args: argparse.Namespace) -> int:
    paths = _paths(args)
    mode = StartMode(args.mode)
    if args.check:
        found = lifecycle.check(paths)
        emit(
            args,
            found,
            f"{paths.lhost}: already running (pid {found['pid']})"
            if found["already_running"]
            else f"{paths.lhost}: could start",
        )
        return 0
    if args.foreground:
        from ajs3.service.daemon import run_foreground

        return run_foreground(paths, mode, args.log_level, not args.quiet, args.ready_fd)
    result = lifecycle.start(paths, mode, args.timeout, args.log_level, initialize=args.initialize)
    text = (
        f"{paths.lhost}: already running"
        if result["already_running"]
        else f"{paths.lhost}: started ({mode.value} start, pid {result['pid']})"
    )
    emit(args, result, text)
    return 0


def stop(args: argparse.Namespace) -> int:
    paths = _paths(args)
    result = lifecycle.stop(paths, StopJobs(args.jobs), args.timeout)
    emit(
        args,
        result,
        f"{paths.lhost}: stopped" if result["was_running"] else f"{paths.lhost}: was not running",
    )
    return 0


def status(args: argparse.Namespace) -> int:
    """Exit 0 healthy, 1 unhealthy, 3 not running (the agent maps them to OCF codes)."""
    health = lifecycle.status(_paths(args), args.depth)
    routes = [f"  notify {c['detail']}" for c in health.checks if c.get("check") == "notify"]
    emit(args, health.to_dict(), "\n".join([health.summary, *routes]))
    return health.code


def reload(args: argparse.Namespace) -> int:
    paths = paths_of(args)
    result = request(paths, "reload", log_level=args.log_level)
    emit(args, result, f"{paths.lhost}: log level {result['log_level']}")
    return 0
