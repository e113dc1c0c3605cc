"""ocf:ajs3:ajs3 under a real single-node Pacemaker, and ocf-tester.

The node runs in its own mount, pid, network and UTS namespaces (see
ocf_harness.PacemakerNode); the host's cluster state is never touched. Logical
hosts use the default run directory /run/ajs3/LHOST, which inside the node is a
per-test directory, so every `ajs3` command about them runs on the node.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ocf_harness import AGENT, PACEMAKER_ENV, PacemakerNode, short_tempdir

pytestmark = pytest.mark.agent

DEFINITIONS = """\
group: /t
jobnets:
  - name: quick
    units:
      - name: hello
        script: 'echo "hello from $AJS3_RUN_ID on $AJS3_LHOST"'
  - name: slow
    units:
      - name: sleeper
        script: 'sleep 6; exit 3'
        warning_threshold: 2
        abnormal_threshold: 8
"""


# -- ocf-tester -----------------------------------------------------------------


def test_ocf_tester_passes_against_a_real_logical_host(make_lhost) -> None:  # type: ignore[no-untyped-def]
    for tool in ("ocf-tester", "xmllint"):
        if shutil.which(tool, path=PACEMAKER_ENV["PATH"]) is None:
            pytest.skip(f"{tool} is not installed (run install.sh)")
    lh = make_lhost("tester")
    cmd = ["ocf-tester", "-n", "tester"]
    for key, value in lh.params.items():
        cmd += ["-o", f"{key}={value}"]
    proc = subprocess.run(
        [*cmd, str(AGENT)], capture_output=True, text=True, timeout=180, env=PACEMAKER_ENV
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "passed all tests" in proc.stdout
    assert lh.status() == 3, "ocf-tester ends with the resource stopped"


# -- a real Pacemaker -------------------------------------------------------------


@pytest.fixture
def datadirs() -> Iterator[list[Path]]:
    """Data directories made by a test (outside the node's bind mounts)."""
    made: list[Path] = []
    yield made
    for d in made:
        shutil.rmtree(d.parent, ignore_errors=True)


def new_datadir(datadirs: list[Path]) -> Path:
    datadir = short_tempdir("ajs3pd-") / "data"
    (datadir / "definitions").mkdir(parents=True)
    (datadir / "definitions" / "t.yaml").write_text(DEFINITIONS)
    datadirs.append(datadir)
    return datadir


def create(pcmk: PacemakerNode, rid: str, lhost: str, datadir: Path, program: Path) -> None:
    pcmk.pcs(
        "resource", "create", rid, "ocf:ajs3:ajs3",
        f"lhost={lhost}", f"datadir={datadir}", f"binary={program}",
        "op", "monitor", "interval=2s", "timeout=20s",
    )  # fmt: skip
    pcmk.wait_for(lambda: pcmk.is_started(rid), 60, f"{rid} started")


def delete(pcmk: PacemakerNode, rid: str) -> None:
    """Remove a resource; Pacemaker stops it first."""
    pcmk.pcs("resource", "disable", rid, check=False)
    pcmk.wait_for(lambda: not pcmk.is_started(rid), 60, f"{rid} stopped")
    pcmk.pcs("resource", "delete", rid, check=False)


def ajs3(pcmk: PacemakerNode, program: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return pcmk.run(str(program), *args, check=False, timeout=90)


def daemon_pid(pcmk: PacemakerNode, lhost: str) -> int:
    """The daemon's pid as seen on the node (its own pid namespace)."""
    info = json.loads((pcmk.workdir / "run" / "ajs3" / lhost / "daemon.json").read_text())
    return int(info["pid"])


def job(pcmk: PacemakerNode, program: Path, lhost: str, jobnet: str, path: str) -> dict:  # type: ignore[type-arg]
    out = ajs3(pcmk, program, "show", "-h", lhost, "--json", jobnet)
    assert out.returncode == 0, out.stderr
    units = json.loads(out.stdout)["units"]
    return next(u for u in units if u["path"] == path)


def test_dummy_resource_proves_the_node(pcmk: PacemakerNode) -> None:
    pcmk.pcs("resource", "create", "dummy", "ocf:pacemaker:Dummy", "op", "monitor", "interval=2s")
    try:
        pcmk.wait_for(lambda: pcmk.is_started("dummy"), 30, "dummy started")
    finally:
        delete(pcmk, "dummy")


def test_create_brings_the_logical_host_up_and_a_jobnet_runs(
    pcmk: PacemakerNode, ajs3_program: Path, datadirs: list[Path]
) -> None:
    datadir = new_datadir(datadirs)
    create(pcmk, "lh1-ajs3", "lh1", datadir, ajs3_program)
    try:
        status = ajs3(pcmk, ajs3_program, "service", "status", "-h", "lh1", "--depth", "20")
        assert status.returncode == 0, status.stdout + status.stderr
        assert ajs3(pcmk, ajs3_program, "define", "-h", "lh1").returncode == 0
        run = ajs3(
            pcmk, ajs3_program, "entry", "-h", "lh1", "/t/quick", "--wait", "--timeout", "60"
        )
        assert run.returncode == 0, run.stdout + run.stderr
        assert job(pcmk, ajs3_program, "lh1", "/t/quick", "/t/quick/hello")["exit_code"] == 0
    finally:
        delete(pcmk, "lh1-ajs3")


def test_kill_9_is_noticed_recovered_and_running_jobs_readopted(
    pcmk: PacemakerNode, ajs3_program: Path, datadirs: list[Path]
) -> None:
    datadir = new_datadir(datadirs)
    create(pcmk, "lh2-ajs3", "lh2", datadir, ajs3_program)
    try:
        assert ajs3(pcmk, ajs3_program, "define", "-h", "lh2").returncode == 0
        assert ajs3(pcmk, ajs3_program, "entry", "-h", "lh2", "/t/slow").returncode == 0
        deadline = time.monotonic() + 20
        while job(pcmk, ajs3_program, "lh2", "/t/slow", "/t/slow/sleeper")["status"] != "running":
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.2)
        run_id = job(pcmk, ajs3_program, "lh2", "/t/slow", "/t/slow/sleeper")["run_id"]

        old = daemon_pid(pcmk, "lh2")
        pcmk.run("kill", "-9", str(old))
        took = pcmk.wait_for(
            lambda: any(f.get("task") == "monitor" for f in pcmk.failures("lh2-ajs3")),
            30, "the monitor to notice the dead daemon",
        )  # fmt: skip
        assert took < 10, f"monitor (2 s interval) took {took:.1f}s to notice"
        pcmk.wait_for(lambda: pcmk.is_started("lh2-ajs3"), 60, "lh2 restarted")
        assert daemon_pid(pcmk, "lh2") != old

        # The job outlived its daemon; the new daemon adopted it and recorded its exit.
        deadline = time.monotonic() + 60
        while (j := job(pcmk, ajs3_program, "lh2", "/t/slow", "/t/slow/sleeper"))["status"] in (
            "running", "queued", "waiting",
        ):  # fmt: skip
            assert time.monotonic() < deadline, f"job never ended: {j}"
            time.sleep(0.5)
        assert j["exit_code"] == 3, j
        assert j["run_id"] == run_id and j["attempt"] == 1, f"the job ran again: {j}"
    finally:
        delete(pcmk, "lh2-ajs3")


def test_disable_stops_cleanly_within_the_timeout(
    pcmk: PacemakerNode, ajs3_program: Path, datadirs: list[Path]
) -> None:
    datadir = new_datadir(datadirs)
    create(pcmk, "lh3-ajs3", "lh3", datadir, ajs3_program)
    pcmk.pcs("resource", "disable", "lh3-ajs3")
    took = pcmk.wait_for(lambda: pcmk.is_stopped("lh3-ajs3"), 60, "lh3 stopped")
    try:
        assert took < 20, f"stop took {took:.1f}s"
        assert not pcmk.failures("lh3-ajs3")
        status = ajs3(pcmk, ajs3_program, "service", "status", "-h", "lh3")
        assert status.returncode == 3, status.stdout + status.stderr
    finally:
        pcmk.pcs("resource", "delete", "lh3-ajs3", check=False)


def test_two_instances_side_by_side(
    pcmk: PacemakerNode, ajs3_program: Path, datadirs: list[Path]
) -> None:
    a, b = new_datadir(datadirs), new_datadir(datadirs)
    create(pcmk, "lha-ajs3", "lha", a, ajs3_program)
    create(pcmk, "lhb-ajs3", "lhb", b, ajs3_program)
    try:
        pid_b = daemon_pid(pcmk, "lhb")
        pcmk.run("kill", "-9", str(daemon_pid(pcmk, "lha")))
        pcmk.wait_for(lambda: bool(pcmk.failures("lha-ajs3")), 30, "lha's failure noticed")
        pcmk.wait_for(lambda: pcmk.is_started("lha-ajs3"), 60, "lha restarted")
        assert daemon_pid(pcmk, "lhb") == pid_b, "recovering lha touched lhb"
        assert not pcmk.failures("lhb-ajs3")
        pcmk.pcs("resource", "disable", "lha-ajs3")
        pcmk.wait_for(lambda: pcmk.is_stopped("lha-ajs3"), 60, "lha stopped")
        assert pcmk.is_started("lhb-ajs3") and daemon_pid(pcmk, "lhb") == pid_b
    finally:
        delete(pcmk, "lha-ajs3")
        delete(pcmk, "lhb-ajs3")


def test_log_level_change_reloads_without_restart(
    pcmk: PacemakerNode, ajs3_program: Path, datadirs: list[Path]
) -> None:
    datadir = new_datadir(datadirs)
    create(pcmk, "lh4-ajs3", "lh4", datadir, ajs3_program)
    try:
        pid = daemon_pid(pcmk, "lh4")
        pcmk.pcs("resource", "update", "lh4-ajs3", "log_level=debug")
        log = pcmk.workdir / "log-pacemaker" / "pacemaker.log"
        pcmk.wait_for(
            lambda: "Result of reload-agent operation for lh4-ajs3" in log.read_text(),
            30, "reload-agent",
        )  # fmt: skip
        assert pcmk.is_started("lh4-ajs3")
        assert daemon_pid(pcmk, "lh4") == pid, "a log level change restarted the daemon"
    finally:
        delete(pcmk, "lh4-ajs3")


def test_missing_data_directory_fails_start_with_a_reason_pcs_shows(
    pcmk: PacemakerNode, ajs3_program: Path, datadirs: list[Path]
) -> None:
    """The volume is not mounted: the probe says "not running", the start says why."""
    missing = new_datadir(datadirs).parent / "not-mounted"
    pcmk.pcs(
        "resource", "create", "lh5-ajs3", "ocf:ajs3:ajs3",
        "lhost=lh5", f"datadir={missing}", f"binary={ajs3_program}",
    )  # fmt: skip
    try:
        pcmk.wait_for(lambda: bool(pcmk.failures("lh5-ajs3")), 30, "the failed start")
        failures = pcmk.failures("lh5-ajs3")
        assert [f["task"] for f in failures] == ["start"], failures  # the probe did not fail
        assert failures[0]["exitcode"] == "5", failures
        assert "does not exist on this node" in failures[0]["exitreason"], failures
        assert "does not exist on this node" in pcmk.pcs("status").stdout
    finally:
        pcmk.pcs("resource", "delete", "lh5-ajs3", "--force", check=False)
