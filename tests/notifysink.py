"""A notification receiver for the tests: a command route whose program appends each
event (JSON) to a file, and fails while a flag file beside it exists."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lhost import wait_for

SINK = r"""#!/bin/sh
# a notification receiver: fails while $1.fail exists, else appends the event
[ -e "$1.fail" ] && { echo "receiver down" >&2; exit 7; }
{ cat; } >> "$1"
printf '%s %s %s\n' "$AJS3_EVENT_ID" "$AJS3_KIND" "$AJS3_UNIT" >> "$1.env"
"""


def sink_route(tmp_path: Path, name: str = "cmd", extra: str = "") -> tuple[Path, str]:
    script = tmp_path / "sink.sh"
    script.write_text(SINK)
    script.chmod(0o755)
    out = tmp_path / f"{name}.jsonl"
    text = f"""
    notify:
      - name: {name}
        kind: command
        command: [{script}, {out}]
        user: root
        backoff: {{first: 0.2, max: 1}}
    {extra}"""
    return out, text


def events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def kinds(path: Path) -> list[str]:
    return [e["kind"] for e in events(path)]


def wait_event(path: Path, pred: Any, timeout: float = 30.0) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    def seen() -> bool:
        found[:] = [e for e in events(path) if pred(e)]
        return bool(found)

    wait_for(seen, timeout, f"no such event in {path}: {events(path)}")
    return found[0]
