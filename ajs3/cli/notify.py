"""`ajs3 notify test ROUTE`: send a test event on one notification route and say
whether it got through (docs/notifications.md)."""

from __future__ import annotations

import argparse
import time

from ajs3.cli.arguments import paths_of
from ajs3.cli.exits import failed
from ajs3.cli.output import emit
from ajs3.cli.transport import request
from ajs3.errors import Code

#: Beyond the route's own timeout, how long to wait for the daemon's sender.
MARGIN = 10.0


def cmd_notify(args: argparse.Namespace) -> int:
    paths = paths_of(args)
    sent = request(paths, "notify_test", route=args.route)
    event_id = sent["event_id"]
    if args.no_wait:
        emit(args, sent, f"{args.route}: test event {event_id} queued")
        return 0
    end = time.monotonic() + float(sent.get("timeout") or 30.0) + MARGIN
    while True:
        state = request(paths, "notify_status")["routes"].get(args.route, {})
        if state.get("last_delivered_event") == event_id:
            emit(
                args, {**sent, "delivered": True}, f"{args.route}: test event {event_id} delivered"
            )
            return 0
        if state.get("last_error_event") == event_id:
            emit(args, {**sent, "delivered": False, "error": state.get("last_error")}, "")
            return failed(
                Code.NOTIFY_FAILED,
                f"route {args.route}: test event {event_id} not delivered: "
                f"{state.get('last_error')} (the daemon retries it with back-off)",
            )
        if time.monotonic() >= end:
            emit(args, {**sent, "delivered": None}, "")
            return failed(
                Code.NOTIFY_FAILED,
                f"route {args.route}: test event {event_id} not delivered yet "
                f"({state.get('pending', '?')} event(s) wait on the route; last error: "
                f"{state.get('last_error') or 'none'})",
            )
        time.sleep(0.2)
