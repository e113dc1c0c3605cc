"""Profile the daemon while it dispatches: `bench/run`-style host, py-spy attached.

    PYTHONPATH=. python -m bench.profile [--jobs 2000] [--out DIR]

Writes DIR/dispatch.collapsed (py-spy raw, one folded stack per line; open it in
speedscope or flamegraph.pl) and prints the functions with the most samples, inclusive
and self. Needs py-spy (pip install py-spy) and ptrace permission on the daemon.
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.lhost import LogicalHost


def top(collapsed: Path, n: int = 25) -> str:
    incl: collections.Counter[str] = collections.Counter()
    self_: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        k = int(count)
        total += k
        frames = stack.split(";")
        for f in set(frames):
            incl[f] += k
        self_[frames[-1]] += k
    out = [f"{total} samples", "inclusive:"]
    out += [f"  {c / total:6.1%}  {f}" for f, c in incl.most_common(n)]
    out += ["self:"]
    out += [f"  {c / total:6.1%}  {f}" for f, c in self_.most_common(n)]
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--jobs", type=int, default=2000)
    p.add_argument("--width", type=int, default=100)
    p.add_argument("--filler", type=int, default=0, help="units registered, not due")
    p.add_argument("--out", type=Path, default=Path("."))
    p.add_argument("--rate", type=int, default=250)
    args = p.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    base = Path(tempfile.mkdtemp(prefix="ajs3p-"))
    h = LogicalHost(base, "bp")
    try:
        nets = [
            {
                "name": f"n{k:03d}",
                "type": "jobnet",
                **({"after": [f"n{k - 1:03d}"]} if k else {}),
                "units": [
                    {"name": f"j{j:03d}", "command": ["/bin/true"]} for j in range(args.width)
                ],
            }
            for k in range(args.jobs // args.width)
        ]
        filler = [
            {
                "name": f"f{k:03d}",
                "units": [{"name": f"j{j:03d}", "command": ["/bin/true"]} for j in range(100)],
            }
            for k in range(args.filler // 100)
        ]
        h.start()
        h.define(
            json.dumps({"group": "/bench", "jobnets": [{"name": "d", "units": nets}, *filler]})
        )
        for f in filler:
            h.entry(f"/bench/{f['name']}", at=time.time() + 86400)
        pid = h.daemon_pid()
        out = args.out / "dispatch.collapsed"
        rec = subprocess.Popen(
            [
                spy,
                "record",
                "--format",
                "raw",
                "-r",
                str(args.rate),
                "-o",
                str(out),
                "-p",
                str(pid),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)
        t0 = time.time()
        run = h.entry("/bench/d")
        h.wait_run(run, timeout=900, poll=0.2)
        took = time.time() - t0
        rec.send_signal(2)
        rec.wait(timeout=60)
        print(f"{args.jobs} jobs in {took:.2f} s = {args.jobs / took:.0f} jobs/s")
        print(top(out))
    finally:
        h.cleanup()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
