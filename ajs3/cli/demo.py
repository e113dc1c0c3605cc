"""`ajs3 demo`: the sample jobnet on a standalone logical host in a local directory."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from importlib import resources

from ajs3 import datadir as dd
from ajs3.cli.output import writing


def cmd_demo(args: argparse.Namespace, ajs3: Callable[[list[str]], int]) -> int:
    """Run the demo's steps as `ajs3` commands through ``ajs3`` (the CLI's own entry
    point, passed in so that this module need not import it)."""
    datadir = args.dir.absolute()
    sample = resources.files("ajs3").joinpath("samples/demo.yaml").read_text()
    with writing(datadir):
        dd.definitions(datadir).mkdir(parents=True, exist_ok=True)
        (dd.definitions(datadir) / "demo.yaml").write_text(sample)
    rundir = datadir / "run"
    base = ["-h", "demo", "--datadir", str(datadir), "--rundir", str(rundir)]
    print(f"== a standalone logical host 'demo' in {datadir}")
    steps: list[tuple[str, list[str]]] = [
        ("start it", ["service", "start", *base]),
        ("apply the sample definitions", ["define", *base]),
        ("run /demo/nightly and wait for it", ["entry", *base, "/demo/nightly", "--wait"]),
    ]
    rc = 0
    for title, argv in steps:
        print(f"\n$ ajs3 {' '.join(argv)}    # {title}")
        rc = ajs3(argv)
        if rc != 0:
            break
    print(f"\n$ ajs3 show -h demo --datadir {datadir} /demo/nightly")
    ajs3(["show", *base, "/demo/nightly"])
    print(f"\n$ ajs3 service stop -h demo --rundir {rundir}")
    ajs3(["service", "stop", "-h", "demo", "--rundir", str(rundir)])
    return rc
