"""docs/runbooks, run against the namespace lab: each page's blocks in the page's
order, with checks that the cluster ends as the page says.

The tests share one lab and run in this file's order (each page leaves the
cluster settled for the next). `pytest tests/runbooks` as root; 3-5 minutes.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
from lab import Lab, wait_until
from runbook import REPO, RUNBOOKS, Runbook, parse, unmarked_shell_blocks

pytestmark = pytest.mark.runbook
PAGES = sorted(p.name for p in RUNBOOKS.glob("*.md"))


def settle(lab: Lab) -> None:
    """Every node on and online (a fenced node reboots by itself), every group running."""
    for n in lab.node_names():
        if not lab.is_on(n):
            lab.power_on(n)
    lab.wait_cluster(timeout=120)
    lab.wait_groups(timeout=120)
    wait_until(
        lambda: set(lab.online_nodes()) == set(lab.node_names()), 120, 0.5, "every node online"
    )


def ajs3(lab: Lab, node: str, *args: str) -> str:
    proc = lab.exec(node, ["/usr/local/bin/ajs3", *args], timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def statuses(lab: Lab, node: str, jobnet: str) -> dict[str, str]:
    out = ajs3(lab, node, "show", "-h", "lh1", jobnet)
    found = {}
    for line in out.splitlines():
        m = re.match(r"\s*(\S+)\s{2,}(\S.*?)\s{2,}", line)
        if m and not line.startswith(("run ", "UNIT")):
            found[m.group(1).rsplit("/", 1)[-1]] = m.group(2)
    return found


# ------------------------------------------------------------------ without a lab


@pytest.mark.parametrize("page", PAGES)
def test_runbook_blocks_marked(page: str) -> None:
    """Every shell block says whether the lab runs it (and where) or why not."""
    path = RUNBOOKS / page
    assert unmarked_shell_blocks(path) == [], f"{page}: unmarked shell blocks at these lines"
    blocks = parse(path)
    if page != "README.md":
        assert blocks, f"{page} has no command blocks"
    for b in blocks:
        if b.kind == "skip":
            assert len(b.reason) > 20, f"{page}:{b.line}: say why the lab can not run it"
    ids = [b.id for b in blocks if b.kind == "run"]
    assert len(ids) == len(set(ids)), f"{page}: block ids must be unique: {ids}"


def test_every_page_has_a_test() -> None:
    text = Path(__file__).read_text()
    for page in PAGES:
        if page != "README.md":
            assert f'"{page}"' in text, f"no test runs {page}"


# ------------------------------------------------------------------ against the lab


def test_install(rb_lab: Lab) -> None:
    rb = Runbook(rb_lab, "install.md")
    out = rb.run("check-install")
    assert re.search(r"^ajs3 \d+\.\d+", out, re.M), out
    assert "returned 0 (ok)" in out
    rb.assert_all_run()


def test_create_cluster(rb_lab: Lab) -> None:
    rb = Runbook(rb_lab, "create-cluster.md", {"AJS3_SRC": str(REPO)})
    out = rb.run("membership")
    assert "Quorate:          Yes" in out and "Nodes:            3" in out, out
    assert "Online: [ node1 node2 node3 ]" in out
    out = rb.run("check-configured")
    assert "stonith-enabled: true" in out and "no-quorum-policy: stop" in out
    for lh, node in (("lh1", "node1"), ("lh2", "node2")):
        for member in ("fs", "ip", "ajs3"):
            assert re.search(rf"{lh}-{member}\s.*Started {node}", out), out
    rb.assert_all_run()


def test_logical_hosts(rb_lab: Lab) -> None:
    lab = rb_lab
    # A spare volume for lh3, recorded in the lab's state first, so that `down`
    # detaches it whatever happens.
    img = lab.state_dir / "volumes" / "lh3.img"
    with open(img, "wb") as f:
        f.truncate(64 * 1024 * 1024)
    lab._record("lh3", {"image": str(img), "device": ""}, "loops")
    dev = subprocess.run(
        ["losetup", "-f", "--show", str(img)], capture_output=True, text=True, check=True
    ).stdout.strip()
    lab._record("lh3", {"image": str(img), "device": dev}, "loops")

    rb = Runbook(
        lab,
        "logical-hosts.md",
        {
            "LH": "lh3",
            "NODE": "node3",
            "DEV": dev,
            "IP": f"{lab.subnet}.103/24",
            "AJS3_SRC": str(REPO),
        },
    )
    assert rb.run("mkfs").strip().endswith("ext4")
    out = rb.run("create")
    assert "resource lh3 is running on: node3" in out, out
    assert lab.group_location("lh3") == "node3"
    out = rb.run("check")
    assert f"{dev} /srv/ajs3/lh3" in out and f" {lab.subnet}.103/24" in out, out
    assert "logical host lh3 is running" in out
    out = rb.run("define")
    assert "Ended normally" in out, out
    # The page's own output example is what a reader compares with.
    assert "/ops/hello: run 1 Ended normally" in out
    out = rb.run("remove")
    assert "no lh3 left" in out
    assert lab.group_nodes("lh3") == {}
    assert "lh3" not in lab.exec("node3", ["findmnt", "-rn", "-o", "TARGET"]).stdout
    out = rb.run("script-add-remove")
    assert "resource lh3 is running on: node3" in out and "group lh3 removed" in out, out
    assert lab.group_nodes("lh3") == {}
    constraints = lab.exec("node1", ["pcs", "constraint", "--full"]).stdout
    assert "lh3" not in constraints, constraints
    rb.assert_all_run()
    settle(lab)


def test_switchover(rb_lab: Lab) -> None:
    lab = rb_lab
    settle(lab)
    assert lab.group_location("lh1") == "node1"
    pid_before = lab.node_pid("node1")
    rb = Runbook(lab, "switchover.md")
    rb.run("jobs")
    out = rb.run("move")
    assert "resource lh1 is running on: node2" in out, out
    assert lab.group_location("lh1") == "node2"
    out = rb.run("clear")
    assert "no move constraints" in out
    assert lab.node_pid("node1") == pid_before, "a switchover must not fence anyone"
    out = rb.run("standby")
    assert "Node node2: standby" in out and re.search(r"^0$", out, re.M), out
    where = lab.wait_groups(timeout=120)
    assert "node2" not in where.values(), where
    out = rb.run("unstandby")
    assert "Online: [ node1 node2 node3 ]" in out, out
    assert not [
        e for e in lab.pdu_log() if e.get("phase") == "off" and e.get("action") != "shutdown"
    ], "nobody fenced"
    rb.assert_all_run()


def test_failover(rb_lab: Lab) -> None:
    lab = rb_lab
    settle(lab)
    rb = Runbook(lab, "failover.md")
    out = rb.run("define")
    assert "registered as run 1" in out, out
    node = lab.group_location("lh1")
    assert node
    wait_until(
        lambda: list(statuses(lab, node, "/batch/nightly").values()).count("Now running") >= 3,
        30,
        0.5,
        "copy, archive and index running",
    )
    fo = lab.failover("lh1", "kill")
    out = rb.run("where")
    assert f"resource lh1 is running on: {fo.survivor}" in out
    assert f"reboot of {fo.victim} successful" in out, out
    wait_until(
        lambda: statuses(lab, fo.survivor, "/batch/nightly").get("index") == "Ended normally",
        60,
        0.5,
        "index to be rerun",
    )
    out = rb.run("find")
    st = statuses(lab, fo.survivor, "/batch/nightly")
    assert st["copy"] == st["archive"] == "Unknown end status", out
    assert st["report"] == "Waiting to execute", out
    assert '"policy": "unknown"' in out and '"event": "job in doubt"' in out, out
    out = rb.run("why")
    assert re.search(r"NO\s+predecessors\s+waits for (copy|archive)", out), out
    rb.run("release")
    rb.run("rerun")
    out = rb.run("after")
    st = statuses(lab, fo.survivor, "/batch/nightly")
    assert set(st.values()) == {"Ended normally"}, out
    assert re.search(r"^\s+archive\s+Ended normally\s+2\s+0", out, re.M), out
    assert re.search(r"^\s+index\s+Ended normally\s+2\s+0", out, re.M), out
    rb.assert_all_run()
    settle(lab)


def test_state(rb_lab: Lab) -> None:
    """After test_failover: /batch/nightly has run on lh1."""
    lab = rb_lab
    settle(lab)
    rb = Runbook(lab, "state.md")
    out = rb.run("crm-mon")
    assert "partition with quorum" in out and "Online: [ node1 node2 node3 ]" in out, out
    out = rb.run("pcs-status")
    assert "Resource Group: lh1" in out and re.search(r"\d+ events? found", out), out
    out = rb.run("locate")
    assert "resource lh1 is running on" in out and "datadir=/srv/ajs3/lh1" in out, out
    assert "logical host lh1 is running" in rb.run("daemon")
    out = rb.run("show")
    assert re.search(r"/batch/nightly\s+run 1: Ended normally", out), out
    assert "/batch/nightly/report (run 1): Ended normally" in out, out
    assert "report done" in out
    out = rb.run("logs")
    assert '"level": "warning"' in out and '"lhost": "lh1"' in out, out
    out = rb.run("failures")
    assert "No failcounts" in out, out
    rb.assert_all_run()


def test_backup(rb_lab: Lab) -> None:
    lab = rb_lab
    settle(lab)
    # /srv is the node's own tmpfs in the lab: a node-local backup directory.
    rb = Runbook(lab, "backup.md", {"BACKUP": "/srv/ajs3-backup"})
    node = lab.group_location("lh1")
    assert node
    before = ajs3(lab, node, "show", "-h", "lh1")
    out = rb.run("backup")
    assert re.search(r"^ok$", out, re.M) and "lh1-journal-latest.db" in out, out
    # A change after the backup, which the restore must undo.
    lab.sh(
        node,
        "cp /srv/ajs3/lh1/definitions/nightly.yaml /srv/ajs3/lh1/definitions/b.yaml"
        " && sed -i 's/name: nightly/name: extra/' /srv/ajs3/lh1/definitions/b.yaml"
        " && /usr/local/bin/ajs3 define -h lh1",
        check=True,
    )
    changed = ajs3(lab, node, "show", "-h", "lh1")
    assert "/batch/extra" in changed and changed != before
    out = rb.run("restore")
    assert "logical host lh1 is running" in out, out
    assert lab.group_location("lh1") == node
    after = ajs3(lab, node, "show", "-h", "lh1")
    assert "/batch/extra" not in after and "/batch/nightly" in after, after
    assert after.splitlines()[0] == before.splitlines()[0]  # definitions version
    defs = lab.exec(node, ["ls", "/srv/ajs3/lh1/definitions"]).stdout.split()
    assert defs == ["nightly.yaml"]
    rb.assert_all_run()


def test_upgrade(rb_lab: Lab) -> None:
    lab = rb_lab
    settle(lab)
    rb = Runbook(lab, "upgrade.md", {"AJS3_SRC": str(REPO)})
    out = rb.run("standby")
    assert re.search(r"^0$", out, re.M), out
    assert "node3" not in lab.wait_groups(timeout=120).values()
    out = rb.run("check")
    assert "returned 0 (ok)" in out and re.search(r"^ajs3 \d", out, re.M), out
    out = rb.run("unstandby")
    assert "Online: [ node1 node2 node3 ]" in out
    rb.assert_all_run()


def test_troubleshooting(rb_lab: Lab) -> None:
    lab = rb_lab
    settle(lab)
    dev = lab.logical_hosts()[0].device
    rb = Runbook(lab, "troubleshooting.md", {"DEV": dev})
    node = lab.group_location("lh1")
    assert node
    pid = ajs3(lab, node, "service", "status", "-h", "lh1")
    out = rb.run("cleanup")
    assert "Cleaned up" in out, out
    lab.wait_groups(timeout=120)
    out = rb.run("timeouts")
    assert out.count("timeout=120s") >= 2, out
    time.sleep(3)
    node_after = lab.group_location("lh1")
    assert node_after == node
    assert ajs3(lab, node, "service", "status", "-h", "lh1") == pid, "timeouts restarted it"
    out = rb.run("volume")
    assert "ext4" in out and re.search(rf"/srv/ajs3/lh1\s+{dev}\s", out), out
    out = rb.run("lock")
    assert f'"node": "{node}"' in out and '"lhost": "lh1"' in out, out
    out = rb.run("fencing")
    assert "localhost" in out and "runtime.config.totem.token" in out, out
    rb.assert_all_run()


# ------------------------------------------------------- day-to-day operation (issue 15)


def test_suspend(rb_lab: Lab) -> None:
    lab = rb_lab
    settle(lab)
    rb = Runbook(lab, "suspend.md")
    rb.run("define")
    out = rb.run("suspend")
    assert "/ops/export: suspended since" in out and "by root" in out, out
    assert "SUSPENDED since" in out, out
    out = rb.run("resume")
    assert "/ops/export: resumed (suspended since" in out, out
    out = rb.run("audit")
    assert "|root|suspend|" in out and "storage maintenance, change 4711" in out, out
    assert "|root|resume|" in out and "storage back" in out, out
    rb.assert_all_run()


def test_plan_changes(rb_lab: Lab) -> None:
    lab = rb_lab
    settle(lab)
    rb = Runbook(lab, "plan-changes.md")
    rb.run("define")
    out = rb.run("change")
    assert "skipped" in out and "moved to" in out and "extra run at" in out, out
    out = rb.run("see")
    assert "(skipped by root: bank holiday)" in out, out
    assert "(moved from " in out and "(added by root: month-end rerun)" in out, out
    assert "plan: run of" in out, out
    out = rb.run("undo")
    assert "no longer runs" in out, out
    out = rb.run("wrong")
    assert "AJS3-E408" in out, out
    rb.assert_all_run()


def test_chgstat(rb_lab: Lab) -> None:
    lab = rb_lab
    settle(lab)
    rb = Runbook(lab, "chgstat.md")
    rb.run("define")
    out = rb.run("run")
    assert "Ended abnormally" in out and "AJS3-E404" in out, out
    out = rb.run("change")
    assert "/ops/feed/fetch (run" in out and ": ended_normally" in out, out
    assert re.search(r"^/ops/feed\s+Ended normally", out, re.M), out
    assert re.search(r"^\s+fetch\s+Ended normally\s+1\s+3", out, re.M), out
    out = rb.run("forbidden")
    assert "AJS3-E405" in out and "it may become ended_warning, ended_abnormally" in out, out
    out = rb.run("audit")
    assert "ticket 815" in out and "|AJS3-E405" in out, out
    rb.assert_all_run()


def test_variables(rb_lab: Lab) -> None:
    lab = rb_lab
    settle(lab)
    rb = Runbook(lab, "variables.md")
    rb.run("define")
    out = rb.run("entry")
    assert "value DAY=2027-01-04  (from entry)" in out, out
    assert "value ROWS=42  (from /ops/load/extract)" in out, out
    assert "importing 42 rows of 2027-01-04" in out, out
    out = rb.run("bad")
    assert "AJS3-E407" in out and "PATH is reserved" in out and "'day'" in out, out


def test_notifications(rb_lab: Lab) -> None:
    """Last: it leaves a notification route in lh1's settings."""
    lab = rb_lab
    settle(lab)
    rb = Runbook(lab, "notifications.md")
    rb.run("receiver")
    rb.run("route")
    lab.wait_groups(timeout=120)
    node = rb.locate("lh1")
    wait_until(
        lambda: (
            lab.exec(node, ["/usr/local/bin/ajs3", "service", "status", "-h", "lh1"]).returncode
            == 0
        ),
        60,
        0.5,
        "lh1's daemon answers after the restart",
    )
    out = rb.run("test")
    assert re.search(r"ops-log: test event [0-9a-f]{32} delivered", out), out
    out = rb.run("status")
    assert "notify route ops-log (command): 0 waiting" in out, out
    assert '"kind": "test"' in out, out
    rb.run("failures")
    rb.assert_all_run()


def test_retention(rb_lab: Lab) -> None:
    lab = rb_lab
    settle(lab)
    rb = Runbook(lab, "retention.md")
    rb.run("define")
    out = rb.run("dry")
    # the background round (every 60 s) may have taken them already
    assert "/ops/rotate: 2 runs (keep runs 3)" in out or "would remove 0 jobnet runs" in out, out
    out = rb.run("purge")
    assert out.strip().splitlines()[-1] == "3", out
    rb.assert_all_run()


# ------------------------------------------------------------ execution hosts (issue 16)


def test_add_execution_host_settings_are_what_ajs3_reads(tmp_path: Path) -> None:
    """The namespace lab has no execution host yet, so the page's blocks are skipped
    there (each says why); what the page tells an operator to write into ajs3.yaml
    is checked here against the real settings reader, so the page cannot drift."""
    from ajs3.settings import load_settings

    page = RUNBOOKS / "add-execution-host.md"
    blocks = parse(page)
    assert blocks and all(b.kind == "skip" and b.reason for b in blocks)
    step = next(b.body for b in blocks if "execution_hosts:" in b.body)
    yaml_text = step.split("<<EOF\n", 1)[1].split("\nEOF", 1)[0]
    datadir = tmp_path / "lh1"
    (datadir / "exechost").mkdir(parents=True)
    values = {
        "$XH_ADDR": "db1.example.com",
        "$XH_USER": "root",
        "$XH": "db1",
        "$DATADIR": str(datadir),
    }
    for name, value in values.items():
        yaml_text = yaml_text.replace(name, value)
    (datadir / "ajs3.yaml").write_text(yaml_text + "\n")
    settings = load_settings(datadir, "lh1")
    host = settings.exechosts.host("db1")
    assert host is not None and host.destination == "db1.example.com", settings.exechosts
    assert host.max_jobs == 20
