"""The execution host protocol: JSON lines over an ssh session (docs/exechosts.md).

The logical host writes requests, one JSON object a line; ``ajs3 exechost serve`` on
the execution host answers each with one line, in order. The first request of every
session is ``hello``; every answer is ``{"ok": true, ...}`` or ``{"ok": false,
"code": "AJS3-E33x", "message": ...}``.

========  =====================================================================
op        what
========  =====================================================================
hello     ``version``, ``lhost``, ``epoch``: version check, epoch fencing
start     ``run_id``, ``argv``, ``env``, ``cwd``, ``user``, ``output_limit``:
          claim and start under ajs3-supervise (a run already claimed is not
          started again: the answer is its state)
start_many ``runs``: a list of starts, forked at once; the state of each
poll      ``run_ids``: the state of each run (absent, starting, void, running,
          ended with its status record, lost); optional ``offsets``: the bytes
          of each running run's output after them, as ``live``
          (:mod:`ajs3.exechost.mirror`)
kill      ``run_id``, ``signal``: signal the job's process group
void      ``run_id``, ``why``: claim a run that never started, so it never will
output    ``run_id``, ``stream``, ``offset``, ``limit``: bytes of its output
          (``stdout``, ``stderr``) or of its AJS3_VARS_OUT file (``vars``)
========  =====================================================================
"""

from __future__ import annotations

import json
import re
from typing import Any

from ajs3.errors import AjsError, Code

#: The protocol version; a peer with another one is refused (AJS3-E332). Version 2:
#: a job gets AJS3_VARS_OUT there, read back as the stream ``vars``.
VERSION = 2
#: The longest request or answer line (a start carries a job's environment).
MAX_LINE = 4 * 1024 * 1024
#: A run id as the dispatcher makes it (ajs3.engine.dispatch.make_run_id).
RUN_ID_RE = re.compile(r"^r[0-9a-f]{20}\Z")
#: The most bytes of output one ``output`` request returns.
OUTPUT_CHUNK = 1024 * 1024

#: The most output bytes (before base64) a poll answer carries for the runs that ended.
INLINE_BUDGET = 1024 * 1024

#: What ``output`` reads of a run: its output, and its AJS3_VARS_OUT file.
VARS = "vars"
STREAMS = ("stdout", "stderr", VARS)

OPS = ("hello", "start", "start_many", "poll", "kill", "void", "output")


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    """One line as a mapping; AJS3-E334 for anything else."""
    if len(line) > MAX_LINE:
        raise AjsError(f"a protocol line of {len(line)} bytes", code=Code.EXEC_HOST_PROTOCOL)
    try:
        data = json.loads(line)
    except ValueError as exc:
        raise AjsError(f"not a protocol line: {line[:80]!r}", code=Code.EXEC_HOST_PROTOCOL) from exc
    if not isinstance(data, dict):
        raise AjsError(f"not a protocol message: {line[:80]!r}", code=Code.EXEC_HOST_PROTOCOL)
    return data


def refusal(exc: AjsError) -> dict[str, Any]:
    code = exc.code or Code.EXEC_HOST_PROTOCOL
    return {"ok": False, "code": code.value, "message": exc.message, "hint": exc.hint}


def raise_refusal(answer: dict[str, Any], host: str) -> None:
    """Raise the AjsError an answer carries (its code kept), if it is a refusal."""
    if answer.get("ok") is True:
        return
    try:
        code = Code(str(answer.get("code")))
    except ValueError:
        code = Code.EXEC_HOST_PROTOCOL
    raise AjsError(
        f"execution host {host}: {answer.get('message', 'refused')}",
        code=code,
        hint=str(answer.get("hint") or ""),
    )


def run_id(value: Any) -> str:
    if not isinstance(value, str) or not RUN_ID_RE.match(value):
        raise AjsError(f"not a run id: {value!r}", code=Code.EXEC_HOST_PROTOCOL)
    return value
