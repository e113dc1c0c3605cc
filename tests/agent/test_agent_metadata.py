"""The agent's meta-data and its use by Pacemaker's and pcs's own tools.

Checked against the schemas installed on the machine (resource-agents' DTD,
pcs's OCF 1.1 RelaxNG), then read back by `pcs resource describe` and run by
`crm_resource --validate`, both with this tree's agent at
/usr/lib/ocf/resource.d/ajs3/ajs3 inside a private mount namespace.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from ocf_harness import AGENT, run_agent, run_with_agent_installed, short_tempdir

pytestmark = pytest.mark.agent

etree = pytest.importorskip("lxml.etree")

DTD = Path("/usr/share/resource-agents/ra-api-1.dtd")
PCS_RNG = Path("/usr/share/pcs/data/ocf-1.1.rng")

# What OCF 1.1 added to the 1.0 DTD, and nothing more: the agent's document
# declares exactly these in its internal DTD subset.
OCF_1_1_ADDITIONS = {
    ("parameter", "unique-group"),
    ("parameter", "reloadable"),
    ("action", "reload-agent"),
}


@pytest.fixture(scope="module")
def metadata() -> bytes:
    result = run_agent("meta-data", {}, interval_ms=None, timeout_ms=None)
    assert result.rc == 0, str(result)
    return result.stdout.encode()


@pytest.fixture(scope="module")
def doc(metadata: bytes):  # type: ignore[no-untyped-def]
    return etree.fromstring(metadata)


def require(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"{path} is not installed (run install.sh)")


def test_valid_as_ocf_tester_checks_it(metadata: bytes) -> None:
    """`xmllint --valid` semantics: ra-api-1.dtd plus the document's internal subset."""
    require(DTD)
    parser = etree.XMLParser(dtd_validation=True, load_dtd=True, no_network=True)
    etree.fromstring(metadata, parser, base_url=str(DTD.parent) + "/")


def test_deviates_from_the_1_0_dtd_only_by_ocf_1_1_additions(doc) -> None:  # type: ignore[no-untyped-def]
    require(DTD)
    dtd = etree.DTD(str(DTD))
    assert not dtd.validate(doc), "expected the OCF 1.1 additions to be outside the 1.0 DTD"
    stripped = etree.fromstring(etree.tostring(doc))
    removed = set()
    for param in stripped.iter("parameter"):
        for attr in ("unique-group", "reloadable"):
            if attr in param.attrib:
                del param.attrib[attr]
                removed.add(("parameter", attr))
    actions = stripped.find("actions")
    for action in list(actions):
        if action.get("name") == "reload-agent":
            actions.remove(action)
            removed.add(("action", "reload-agent"))
    assert dtd.validate(stripped), dtd.error_log.filter_from_errors()
    assert removed == OCF_1_1_ADDITIONS


def test_valid_against_pcs_ocf_1_1_schema(doc) -> None:  # type: ignore[no-untyped-def]
    require(PCS_RNG)
    rng = etree.RelaxNG(etree.parse(str(PCS_RNG)))
    assert rng.validate(doc), rng.error_log


def test_declares_ocf_1_1_and_its_own_version(doc) -> None:  # type: ignore[no-untyped-def]
    assert doc.tag == "resource-agent" and doc.get("name") == "ajs3"
    assert doc.findtext("version") == "1.1"
    assert doc.get("version")


def test_every_parameter_is_described_with_type_and_default(doc) -> None:  # type: ignore[no-untyped-def]
    params = {p.get("name"): p for p in doc.iter("parameter")}
    assert {
        "lhost", "datadir", "start_mode", "stop_jobs", "binary", "rundir", "log_level",
    } <= set(params)  # fmt: skip
    for name, p in params.items():
        assert (p.findtext("longdesc") or "").strip(), name
        assert (p.findtext("shortdesc") or "").strip(), name
        content = p.find("content")
        assert content is not None and content.get("type"), name
        assert content.get("default") is not None, name


def test_required_unique_and_reloadable_parameters(doc) -> None:  # type: ignore[no-untyped-def]
    params = {p.get("name"): p for p in doc.iter("parameter")}
    for name in ("lhost", "datadir"):
        assert params[name].get("required") == "1"
        assert params[name].get("unique-group") == name
    assert params["log_level"].get("reloadable") == "1"
    reloadable = {n for n, p in params.items() if p.get("reloadable") == "1"}
    assert reloadable == {"log_level"}, "only what reload-agent can change live"
    defaults = {n: p.find("content").get("default") for n, p in params.items()}
    assert defaults["start_mode"] == "hot"
    assert defaults["stop_jobs"] == "kill"
    assert defaults["binary"] == "/opt/ajs3/venv/bin/ajs3"


def test_actions_have_timeouts_and_monitor_depths(doc) -> None:  # type: ignore[no-untyped-def]
    actions = list(doc.find("actions"))
    names = {a.get("name") for a in actions}
    assert {"start", "stop", "monitor", "validate-all", "meta-data", "reload-agent"} <= names
    assert all(a.get("timeout", "").endswith("s") for a in actions)
    monitors = [a for a in actions if a.get("name") == "monitor"]
    assert sorted(a.get("depth") for a in monitors) == ["0", "10", "20"]
    intervals = [a.get("interval") for a in monitors]
    assert len(set(intervals)) == len(intervals), "Pacemaker needs distinct monitor intervals"


def test_meta_data_needs_no_parameters_and_runs_as_nobody(metadata: bytes) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to nobody")
    proc = subprocess.run(
        ["su", "nobody", "-s", "/bin/sh", "-c", f"{AGENT} meta-data"],
        capture_output=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == metadata


def test_shebang_is_debians_python() -> None:
    first = AGENT.read_text().splitlines()[0]
    assert first == "#!/usr/bin/python3"
    assert os.access(AGENT, os.X_OK)


# -- Pacemaker's and pcs's tools, with the agent installed in a mount namespace ------


@pytest.fixture
def nsdir(root: None) -> Iterator[Path]:
    for tool in ("unshare", "pcs", "crm_resource"):
        if shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin") is None:
            pytest.skip(f"{tool} is not installed (run install.sh)")
    workdir = short_tempdir("ajs3md-")
    yield workdir
    shutil.rmtree(workdir, ignore_errors=True)


def test_pcs_resource_describe(nsdir: Path) -> None:
    proc = run_with_agent_installed(["pcs", "resource", "describe", "ocf:ajs3:ajs3"], nsdir)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("ocf:ajs3:ajs3 - ajs3 job scheduler logical host")
    assert "lhost (required) (unique group: lhost)" in out
    assert "datadir (required) (unique group: datadir)" in out
    assert "OCF_CHECK_LEVEL=10" in out and "OCF_CHECK_LEVEL=20" in out
    assert "usage:" not in out, "pcs would copy a 'usage' op into every resource"


def crm_validate(nsdir: Path, **options: str) -> subprocess.CompletedProcess[str]:
    cmd = ["crm_resource", "--validate", "--class", "ocf", "--provider", "ajs3", "--agent", "ajs3"]
    for key, value in options.items():
        cmd += ["--option", f"{key}={value}"]
    return run_with_agent_installed(cmd, nsdir)


def test_crm_resource_validate_accepts_a_good_configuration(
    nsdir: Path, ajs3_program: Path
) -> None:
    datadir = nsdir / "data"
    datadir.mkdir()
    proc = crm_validate(nsdir, lhost="lh1", datadir=str(datadir), binary=str(ajs3_program))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "returned 0 (ok)" in proc.stdout


def test_crm_resource_validate_reports_a_bad_configuration(nsdir: Path) -> None:
    proc = crm_validate(nsdir, lhost="lh1", datadir="relative")
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "not configured" in out, out
    assert "datadir='relative' must be an absolute path" in out, out


def test_crm_resource_validate_reports_a_missing_program(nsdir: Path) -> None:
    proc = crm_validate(nsdir, lhost="lh1", datadir="/srv/ajs3/lh1", binary="/nonexistent/ajs3")
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "not installed" in out, out
    assert "/nonexistent/ajs3 does not exist" in out, out


def test_pcs_refuses_shared_lhost_or_datadir_and_missing_required(nsdir: Path) -> None:
    """unique-group and required are enforced by pcs from the meta-data alone."""
    script = (
        f"cd {nsdir} && cibadmin --empty > cib.xml"
        " && pcs -f cib.xml resource create a ocf:ajs3:ajs3 lhost=lh1 datadir=/srv/a"
        " && echo created-a"
        "; pcs -f cib.xml resource create b ocf:ajs3:ajs3 lhost=lh1 datadir=/srv/b"
        "; pcs -f cib.xml resource create c ocf:ajs3:ajs3 lhost=lh3 datadir=/srv/a"
        "; pcs -f cib.xml resource create d ocf:ajs3:ajs3 lhost=lh4"
        "; true"
    )
    proc = run_with_agent_installed(["/bin/sh", "-c", script], nsdir)
    assert "created-a" in proc.stdout, proc.stdout + proc.stderr
    err = proc.stderr
    assert "Value 'lh1' of option 'lhost' is not unique" in err, err
    assert "Value '/srv/a' of option 'datadir' is not unique" in err, err
    assert "required resource option 'datadir' is missing" in err, err
