"""`ajs3 exechost serve`: run by sshd as a forced command on an execution host; its
stdin and stdout are the protocol (ajs3/exechost/protocol.py), never a message."""

from __future__ import annotations

import argparse
import sys

from ajs3.exechost.serve import serve


def cmd_exechost(args: argparse.Namespace) -> int:
    return serve(
        {
            "lhost": args.lhost_key,
            "state_dir": args.state_dir,
            "default_user": args.default_user,
            "allow_root_jobs": args.allow_root_jobs,
        },
        sys.stdin.buffer,
        sys.stdout.buffer,
    )
