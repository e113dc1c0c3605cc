"""Every action of ocf:ajs3:ajs3 in every state, with the exact OCF exit code.

The agent runs as pacemaker-execd runs it: minimal PATH, parameters as
OCF_RESKEY_*, the operation's timeout and interval as OCF_RESKEY_CRM_meta_*.
States are made with the engine's CLI directly, so that a state never depends on
the action under test.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from lhost import LogicalHost
from ocf_harness import AgentRun, run_agent

pytestmark = pytest.mark.agent

OK, GENERIC, UNIMPLEMENTED, INSTALLED, CONFIGURED, NOT_RUNNING = 0, 1, 3, 5, 6, 7


@dataclass
class State:
    """A logical host put in some state, and what the agent is called with."""

    lh: LogicalHost
    params: dict[str, str]
    other: LogicalHost | None = None  # a second daemon, for "locked"


def not_running(make: Callable[..., LogicalHost]) -> State:
    lh = make()
    return State(lh, lh.params)


def running(make: Callable[..., LogicalHost]) -> State:
    lh = make()
    lh.start()
    return State(lh, lh.params)


def crashed(make: Callable[..., LogicalHost]) -> State:
    lh = make()
    lh.start()
    lh.crash()
    return State(lh, lh.params)


def datadir_missing(make: Callable[..., LogicalHost]) -> State:
    """The shared volume is not mounted on this node: the directory is not there."""
    lh = make()
    lh.datadir.rmdir()
    return State(lh, lh.params)


def bad_params(make: Callable[..., LogicalHost]) -> State:
    lh = make()
    return State(lh, {**lh.params, "start_mode": "lukewarm"})


def binary_missing(make: Callable[..., LogicalHost]) -> State:
    lh = make()
    return State(lh, {**lh.params, "binary": "/nonexistent/ajs3"})


def locked(make: Callable[..., LogicalHost]) -> State:
    """Another logical host's live daemon owns the data directory."""
    lh = make("lh1")
    other = make("other")
    proc = other.service("start", "--datadir", str(lh.datadir), "--timeout", "30")
    assert proc.returncode == 0, proc.stderr
    return State(lh, lh.params, other=other)


STATES = {
    "not-running": not_running,
    "running": running,
    "crashed": crashed,
    "datadir-missing": datadir_missing,
    "bad-params": bad_params,
    "binary-missing": binary_missing,
    "locked": locked,
}

# (action, how it is called) -> expected code per state, in the order of STATES.
#   monitor: a recurring monitor (interval 10 s); probe: interval 0.
#   monitor-10 / monitor-20: OCF_CHECK_LEVEL 10 / 20.
#   validate-10: validate-all with OCF_CHECK_LEVEL 10 (checks of this node).
N, ERR, INST, CONF = NOT_RUNNING, GENERIC, INSTALLED, CONFIGURED


def row(*codes: int) -> dict[str, int]:
    return dict(zip(STATES, codes, strict=True))


TABLE: dict[str, dict[str, int]] = {
    #                 not-running running crashed datadir-missing bad-params binary-missing locked
    "start":        row(OK,         OK,     OK,     INST,           CONF,      INST,          ERR),
    "stop":         row(OK,         OK,     OK,     OK,             OK,        OK,            OK),
    "monitor":      row(N,          OK,     N,      N,              CONF,      INST,          N),
    "monitor-10":   row(N,          OK,     N,      N,              CONF,      INST,          N),
    "monitor-20":   row(N,          OK,     N,      N,              CONF,      INST,          N),
    "probe":        row(N,          OK,     N,      N,              N,         N,             N),
    "validate-all": row(OK,         OK,     OK,     OK,             CONF,      INST,          OK),
    "validate-10":  row(OK,         OK,     OK,     INST,           CONF,      INST,          OK),
    "reload-agent": row(OK,         OK,     OK,     OK,             CONF,      INST,          OK),
    "meta-data":    row(OK,         OK,     OK,     OK,             OK,        OK,            OK),
    "usage":        row(OK,         OK,     OK,     OK,             OK,        OK,            OK),
    "promote":      row(*(UNIMPLEMENTED,) * len(STATES)),
}  # fmt: skip

CASES = [(action, state, rc) for action, row in TABLE.items() for state, rc in row.items()]


def call(action: str, params: dict[str, str]) -> AgentRun:
    if action == "probe":
        return run_agent("monitor", params, interval_ms=0)
    if action.startswith("monitor-"):
        return run_agent("monitor", params, check_level=int(action.split("-")[1]))
    if action == "validate-10":
        return run_agent("validate-all", params, check_level=10)
    return run_agent(action, params)


@pytest.mark.parametrize(
    ("action", "state", "expected"), CASES, ids=[f"{a}-{s}" for a, s, _ in CASES]
)
def test_action_in_state(make_lhost, action: str, state: str, expected: int) -> None:  # type: ignore[no-untyped-def]
    st = STATES[state](make_lhost)
    result = call(action, st.params)
    assert result.rc == expected, str(result)

    # What a failure says, and that success and probes stay quiet about reasons.
    if expected in (GENERIC, INSTALLED, CONFIGURED):
        assert result.exit_reasons, f"no ocf-exit-reason for rc={result.rc}\n{result}"
    else:
        assert not result.exit_reasons, str(result)
    if action == "probe":
        assert result.stderr == "", "a probe must be quiet"

    # The state afterwards is what the code claims.
    if action == "start" and expected == OK:
        assert st.lh.status(10) == 0
    if action == "stop":
        assert st.lh.status() == 3
    if st.other is not None:
        assert st.other.status() == 0, "the agent touched another logical host's daemon"
    if action == "meta-data":
        assert result.stdout.startswith("<?xml")


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"lhost": ""}, "lhost is required"),
        ({"datadir": ""}, "datadir is required"),
        ({"lhost": "bad/name"}, "not a valid logical host name"),
        ({"lhost": "-x"}, "not a valid logical host name"),
        ({"datadir": "relative/dir"}, "absolute path"),
        ({"rundir": "run"}, "absolute path"),
        ({"binary": "ajs3"}, "absolute path"),
        ({"start_mode": "HOT"}, "start_mode"),
        ({"stop_jobs": "abandon"}, "stop_jobs"),
        ({"log_level": "verbose"}, "log_level"),
        ({"require_mount": "perhaps"}, "require_mount"),
    ],
)
def test_validate_all_names_what_to_fix(make_lhost, params: dict[str, str], needle: str) -> None:  # type: ignore[no-untyped-def]
    lh = make_lhost()
    result = run_agent("validate-all", {**lh.params, **params})
    assert result.rc == CONFIGURED, str(result)
    assert any(needle in reason for reason in result.exit_reasons), str(result)


def test_rundir_inside_datadir_is_refused(make_lhost) -> None:  # type: ignore[no-untyped-def]
    lh = make_lhost()
    result = run_agent("validate-all", {**lh.params, "rundir": str(lh.datadir / "run")})
    assert result.rc == CONFIGURED
    assert "node-local" in result.exit_reasons[0]


def test_validate_reports_every_problem_at_once(make_lhost) -> None:  # type: ignore[no-untyped-def]
    lh = make_lhost()
    result = run_agent("validate-all", {**lh.params, "start_mode": "x", "stop_jobs": "y"})
    assert result.rc == CONFIGURED
    assert "start_mode" in result.exit_reasons[0] and "stop_jobs" in result.exit_reasons[0]


def test_require_mount_refuses_a_datadir_on_the_root_fs(make_lhost) -> None:  # type: ignore[no-untyped-def]
    lh = make_lhost(require_mount="true")
    if lh.datadir.stat().st_dev != __import__("os").stat("/").st_dev:
        pytest.skip("/tmp is its own file system here")
    result = run_agent("start", lh.params)
    assert result.rc == INSTALLED, str(result)
    assert "require_mount" in result.exit_reasons[0]
    assert lh.status() == 3


def test_stop_with_unusable_lhost_succeeds_without_calling_anything(make_lhost) -> None:  # type: ignore[no-untyped-def]
    lh = make_lhost()
    result = run_agent("stop", {**lh.params, "lhost": "", "binary": "/nonexistent/ajs3"})
    assert result.rc == OK, str(result)


def test_stop_with_broken_config_still_stops_a_running_daemon(make_lhost) -> None:  # type: ignore[no-untyped-def]
    lh = make_lhost()
    lh.start()
    result = run_agent("stop", {**lh.params, "start_mode": "lukewarm", "stop_jobs": "?"})
    assert result.rc == OK, str(result)
    assert lh.status() == 3


def test_probe_without_lhost_is_quiet_not_running() -> None:
    result = run_agent("monitor", {}, interval_ms=0)
    assert (result.rc, result.stderr) == (NOT_RUNNING, "")


def test_monitor_notices_a_daemon_that_lost_its_data_directory(make_lhost) -> None:  # type: ignore[no-untyped-def]
    lh = make_lhost()
    lh.start()
    moved = lh.base / "moved"
    lh.datadir.rename(moved)  # the volume went away under the daemon
    try:
        result = run_agent("monitor", lh.params)
        assert result.rc == GENERIC, str(result)
        assert result.exit_reasons
    finally:
        moved.rename(lh.datadir)


def test_stop_escalates_within_its_timeout_on_a_hung_daemon(make_lhost) -> None:  # type: ignore[no-untyped-def]
    """A daemon that answers nothing (SIGSTOPped) is still gone before the timeout."""
    import os
    import signal

    lh = make_lhost()
    lh.start()
    pid = lh.daemon_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        result = run_agent("stop", lh.params, timeout_ms=10000)
        took = time.monotonic() - started
    finally:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
    assert result.rc == OK, str(result)
    assert took < 10, f"stop took {took:.1f}s of its 10s"
    assert lh.status() == 3


def test_start_uses_the_start_timeout(make_lhost) -> None:  # type: ignore[no-untyped-def]
    lh = make_lhost()
    result = run_agent("start", lh.params, timeout_ms=20000, extra_env={"HA_debug": "1"})
    assert result.rc == OK, str(result)
    # 20 s minus the agent's margin (3 s) and what already passed goes to the engine.
    assert re.search(r"service start .* --timeout 1[67]$", result.stderr, re.M), result.stderr


def test_reload_agent_changes_the_log_level_live(make_lhost) -> None:  # type: ignore[no-untyped-def]
    lh = make_lhost()
    lh.start()
    pid = lh.daemon_pid()
    result = run_agent("reload-agent", {**lh.params, "log_level": "debug"})
    assert result.rc == OK, str(result)
    assert lh.daemon_pid() == pid, "reload-agent must not restart the daemon"


def test_start_in_each_mode(make_lhost) -> None:  # type: ignore[no-untyped-def]
    for mode in ("cold", "warm", "hot"):
        lh = make_lhost(f"lh-{mode}", start_mode=mode)
        result = run_agent("start", lh.params)
        assert result.rc == OK, str(result)


def test_two_instances_do_not_touch_each_other(make_lhost) -> None:  # type: ignore[no-untyped-def]
    a, b = make_lhost("lha"), make_lhost("lhb")
    for lh in (a, b):
        assert run_agent("start", lh.params).rc == OK
    assert run_agent("stop", a.params).rc == OK
    assert run_agent("monitor", a.params).rc == NOT_RUNNING
    assert run_agent("monitor", b.params, check_level=20).rc == OK
