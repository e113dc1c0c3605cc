"""A jobnet of 60+ units with nesting, judgment jobs, OR jobs and recovery units.

The same template is defined three times; only the exit code of one job (`risky`)
differs, so the root ends normally, with warning, or abnormally. Every unit's final
status is written out by hand below, not computed by re-implementing the rules.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import yaml
from lhost import FINAL

# (name, op, extra) of judges after `probe`, which exits 3; and whether each is true.
JUDGES: list[tuple[str, dict[str, Any], bool]] = [
    ("j_eq", {"op": "eq", "value": 3}, True),
    ("j_ne", {"op": "ne", "value": 3}, False),
    ("j_gt", {"op": "gt", "value": 2}, True),
    ("j_ge", {"op": "ge", "value": 4}, False),
    ("j_lt", {"op": "lt", "value": 4}, True),
    ("j_le", {"op": "le", "value": 2}, False),
    ("j_in", {"op": "in_range", "low": 1, "high": 5}, True),
    ("j_in_f", {"op": "in_range", "low": 4, "high": 9}, False),
    ("j_out", {"op": "out_range", "low": 4, "high": 9}, True),
    ("j_out_f", {"op": "out_range", "low": 0, "high": 5}, False),
    ("j_fe", {"op": "file_exists", "path": "{marker}"}, True),
    ("j_fe_f", {"op": "file_exists", "path": "{missing}"}, False),
    ("j_fm", {"op": "file_missing", "path": "{missing}"}, True),
    ("j_fm_f", {"op": "file_missing", "path": "{marker}"}, False),
]


def job(name: str, *after: str, **extra: Any) -> dict[str, Any]:
    unit: dict[str, Any] = {"name": name, "command": ["/bin/true"]}
    if after:
        unit["after"] = list(after)
    unit.update(extra)
    if "script" in extra:
        del unit["command"]
    return unit


def net(name: str, units: list[dict[str, Any]], *after: str, **extra: Any) -> dict[str, Any]:
    unit: dict[str, Any] = {"name": name, "type": "jobnet", "units": units}
    if after:
        unit["after"] = list(after)
    unit.update(extra)
    return unit


def template(name: str, risky_code: int, marker: Path, missing: Path) -> dict[str, Any]:
    units: list[dict[str, Any]] = [
        job("begin"),
        # exit 3 is normal here (no warning threshold): judges test the code itself
        job("probe", "begin", command=["/bin/sh", "-c", "exit 3"], abnormal_threshold=10),
    ]
    for jname, cond, _ in JUDGES:
        cond = {
            k: (v.format(marker=marker, missing=missing) if isinstance(v, str) else v)
            for k, v in cond.items()
        }
        units.append({"name": jname, "type": "judge", "after": ["probe"], "condition": cond})
        units.append(job("t" + jname[1:], jname))
    units += [
        # skipping is transitive along a false branch
        job("t_ne2", "t_ne"),
        job("t_ge2", "t_ge"),
        {"name": "or_mixed", "type": "or", "after": ["t_eq", "t_ne"]},
        {"name": "or_none", "type": "or", "after": ["t_ne", "t_ge"]},
        job("after_or_none", "or_none"),
        job("merge", "or_mixed"),
        net(
            "stage",
            [
                job("s1"),
                job("s_rec", "s1", recovery=True),
                net(
                    "inner",
                    [
                        job("i1"),
                        job("i2", "i1"),
                        net(
                            "deep",
                            [
                                job("d1"),
                                job("d2", "d1"),
                                net("deeper", [job("e1"), job("e2", "e1")], "d2"),
                                {"name": "d_or", "type": "or", "after": ["d1"]},
                            ],
                            "i2",
                        ),
                        net("i_rec", [job("r1")], "deep", recovery=True),
                    ],
                    "s1",
                ),
                job("s_end", "inner"),
            ],
            "merge",
        ),
        job(
            "risky",
            "stage",
            script="exit $RISKY_CODE",
            env={"RISKY_CODE": risky_code},
            warning_threshold=2,
            abnormal_threshold=5,
        ),
        job("after_risky", "risky"),
        job("after_risky2", "after_risky"),
        job("rec_job", "risky", recovery=True),
        net(
            "rec_net",
            [
                job("rn1"),
                job("rn2", "rn1"),
                net("rn_inner", [job("rn3")], "rn2"),
            ],
            "risky",
            recovery=True,
        ),
        {"name": "final_or", "type": "or", "after": ["after_risky", "rec_job"]},
    ]
    return {"name": name, "units": units}


def expected(root: str, variant: str) -> dict[str, str]:
    en, ne = "ended_normally", "not_executed"
    exp: dict[str, str] = {"begin": en, "probe": en}
    for jname, _, truth in JUDGES:
        exp[jname] = en  # a judgment job ends normally either way
        exp["t" + jname[1:]] = en if truth else ne
    exp.update(
        {
            "t_ne2": ne,
            "t_ge2": ne,
            "or_mixed": en,
            "or_none": ne,
            "after_or_none": ne,
            "merge": en,
            "stage": en,
            "stage/s1": en,
            "stage/s_rec": ne,
            "stage/inner": en,
            "stage/inner/i1": en,
            "stage/inner/i2": en,
            "stage/inner/deep": en,
            "stage/inner/deep/d1": en,
            "stage/inner/deep/d2": en,
            "stage/inner/deep/deeper": en,
            "stage/inner/deep/deeper/e1": en,
            "stage/inner/deep/deeper/e2": en,
            "stage/inner/deep/d_or": en,
            "stage/inner/i_rec": ne,
            "stage/s_end": en,
            "final_or": en,
        }
    )
    if variant == "abnormal":
        exp.update(
            {
                "risky": "ended_abnormally",
                "after_risky": ne,
                "after_risky2": ne,
                "rec_job": en,
                "rec_net": en,
                "rec_net/rn1": en,
                "rec_net/rn2": en,
                "rec_net/rn_inner": en,
                "rec_net/rn_inner/rn3": en,
            }
        )
        exp[""] = "ended_abnormally"
    else:
        exp.update(
            {
                "risky": "ended_warning" if variant == "warning" else en,
                "after_risky": en,
                "after_risky2": en,
                "rec_job": ne,
                "rec_net": ne,
            }
        )
        exp[""] = "ended_warning" if variant == "warning" else en
    return {(f"{root}/{k}" if k else root): v for k, v in exp.items()}


CODES = {"normal": 0, "warning": 3, "abnormal": 9}


def test_big_nested_jobnet_ends_with_the_right_statuses(lhost: Any, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    marker.write_text("x")
    missing = tmp_path / "no-such-file"
    doc = {
        "group": "/big",
        "jobnets": [template(v, code, marker, missing) for v, code in CODES.items()],
    }
    (lhost.datadir / "definitions" / "big.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    lhost.run("define")

    began = time.monotonic()
    runs = {v: lhost.entry(f"/big/{v}") for v in CODES}
    for run in runs.values():
        lhost.wait(run, timeout=90)
    elapsed = time.monotonic() - began

    for variant, run in runs.items():
        units = lhost.units(run)
        exp = expected(f"/big/{variant}", variant)
        assert len(units) >= 60
        nested = max(p.count("/") for p in units) - 2
        assert nested >= 4  # root -> stage -> inner -> deep -> deeper -> e1
        wrong = {
            p: (units[p]["status"], want) for p, want in exp.items() if units[p]["status"] != want
        }
        assert not wrong, f"{variant}: (got, expected) {json.dumps(wrong, indent=1)}"
        # every unit of an ended run has a final status, including those in a skipped jobnet
        pending = {p: u["status"] for p, u in units.items() if u["status"] not in FINAL}
        assert not pending, f"{variant}: units left pending in an ended run: {pending}"
        # the judged job really exited 3, and a not-executed unit never got a process
        assert units[f"/big/{variant}/probe"]["exit_code"] == 3
        assert units[f"/big/{variant}/t_ne"]["run_id"] is None
        assert units[f"/big/{variant}/t_eq"]["attempt"] == 1
        assert units[f"/big/{variant}/risky"]["exit_code"] == CODES[variant]

    # the text view shows the tree with labels
    out = lhost.run("show", "/big/abnormal").stdout
    assert "Ended abnormally" in out and "Not executed + Ended" in out and "  e2" in out
    assert elapsed < 60


def test_entry_wait_exit_code_follows_the_root_status(lhost: Any) -> None:
    lhost.define("""
        group: /w
        jobnets:
          - name: good
            units: [{name: a, command: [/bin/true]}]
          - name: warn
            units: [{name: a, script: 'exit 1', warning_threshold: 0, abnormal_threshold: 5}]
          - name: bad
            units: [{name: a, command: [/bin/false]}]
    """)
    assert lhost.run("entry", "/w/good", "--wait").returncode == 0
    assert lhost.run("entry", "/w/warn", "--wait").returncode == 0
    done = lhost.run("entry", "/w/bad", "--wait", check=False)
    assert done.returncode == 1
    assert "AJS3-E404" in done.stderr and "Traceback" not in done.stderr
