"""JP1/AJS3 unit definitions -> ajs3 YAML definitions.

Every unit and parameter that has no ajs3 counterpart is reported with its line
(AJS3-E112) instead of being dropped quietly; layout-only parameters (``el``, ``sz``)
and the unit attributes (permission, owner, resource group) are the exception.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ajs3.definitions import schema
from ajs3.definitions.loader import load_texts
from ajs3.definitions.units import DefinitionSet
from ajs3.errors import Code, DefinitionError, Problem
from ajs3.exechost_config import NAME_RE as EXEC_HOST_NAME
from ajs3.jp1 import catalog, delaymap, origin, relations
from ajs3.jp1 import events as jp1events
from ajs3.jp1.connections import CONNECTOR_KEYS, DESTINATION_KEYS, Connections, prune
from ajs3.jp1.parser import MAX_BYTES, Jp1Unit, Param, parse, unquote
from ajs3.jp1.schedmap import LAYOUT, Mapper
from ajs3.jp1.values import INT32_MAX, INT32_MIN
from ajs3.keep import RUNS_MAX as MAX_GENERATIONS
from ajs3.progress import Progress, silent
from ajs3.tz import local_zone_name, zone

JOB_TYPES = {"j": False, "rj": True}
JOBNET_TYPES = {"n": False, "rn": True}
JUDGE_OPS = {
    "gt": "gt",
    "ge": "ge",
    "lt": "lt",
    "le": "le",
    "eq": "eq",
    "ne": "ne",
    "ri": "in_range",
    "ro": "out_range",
    "ef": "file_exists",
    "nf": "file_missing",
}


@dataclass
class ImportResult:
    defs: DefinitionSet
    #: File name -> YAML text, one file per job group.
    files: dict[str, str]
    #: "file:line: AJS3-E112: ..." for each unit or parameter not mapped.
    notes: list[str] = field(default_factory=list)
    units: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "units": self.units,
            "jobnets": sorted(self.defs.jobnets),
            "groups": list(self.defs.groups),
            "unmapped": self.notes,
            "files": sorted(self.files),
        }


#: Units mapped between two reports of the ``map`` phase.
PROGRESS_EVERY = 500


class _Importer(Mapper):
    def __init__(
        self, filename: str, time_zone: str, progress: Progress = silent, total: int = 0
    ) -> None:
        self.file = filename
        self.tz = time_zone
        self.progress = progress
        #: the units of the file, for the progress of the ``map`` phase
        self.total = total
        self.notes: list[Problem] = []
        self.problems: list[Problem] = []
        self.groups: dict[str, dict[str, Any]] = {}
        self.count = 0
        self.origin: dict[int, int] = {}
        self.bases: dict[str, dict[str, Any]] = {}
        self.group = "/"
        #: names of the jobnets being read, from the root jobnet down
        self.trail: list[str] = []
        self.links = Connections()

    def counted(self) -> None:
        self.count += 1
        if self.count % PROGRESS_EVERY == 0:
            self.progress("map", min(self.count, self.total), self.total)

    def untyped(self, unit: Jp1Unit) -> bool:
        """A unit without ``ty=`` or of a type JP1 does not have: an error (E111)."""
        ty = unit.param("ty")
        if ty is not None and ty.value in catalog.UNIT_TYPES:
            return False
        if ty is None or not ty.value:
            line, why = unit.line, f"unit {unit.name!r} has no ty= (its unit type)"
        else:
            line, why = (
                ty.line,
                f"ty={ty.value[:30]} of {unit.name!r} is not a JP1/AJS3 unit type "
                "(g, n, rn, j, rj, jdj, orj, pj, flwj, ... as in ajsprint's output)",
            )
        self.problems.append(Problem(Code.JP1_SYNTAX, self.file, line, why))
        return True

    def group_doc(self, path: str) -> dict[str, Any]:
        return self.groups.setdefault(path, {"group": path, "jobnets": []})

    # -- units ------------------------------------------------------------------------

    def top(self, unit: Jp1Unit) -> None:
        parent = "/"
        name = unit.name
        if "/" in name:
            parent = "/" + "/".join(p for p in name.split("/")[:-1] if p) or "/"
            name = name.rsplit("/", 1)[1]
        unit.name = name
        self.place(unit, parent)

    def place(self, unit: Jp1Unit, group: str) -> None:
        """A unit directly in job group ``group``: a group or a root jobnet."""
        self.counted()
        ty = unit.ty
        self.links.seen.add(group.rstrip("/") + "/" + unit.name)
        if self.untyped(unit):
            return
        if not schema.NAME_RE.match(unit.name):
            self.note(
                unit.line,
                f"unit name {unit.name!r} is not a valid ajs3 name (ASCII "
                "letters, digits, _ . -); the unit and its contents are skipped",
            )
            return
        if ty == "g":
            path = group.rstrip("/") + "/" + unit.name
            doc = self.group_doc(path)
            self.group_calendar(unit, path, doc)
            for child in unit.children:
                self.place(child, path)
            return
        if ty in JOBNET_TYPES:
            if JOBNET_TYPES[ty]:
                self.note(
                    unit.line,
                    f"recovery jobnet {unit.name!r} directly in a job group "
                    "has no predecessor to recover; imported as a jobnet",
                )
            self.group = group
            root = self.jobnet(unit, root=True)
            if root is not None:
                self.group_doc(group)["jobnets"].append(self.mark(root, unit.line))
                self.links.imported.add(group.rstrip("/") + "/" + unit.name)
            return
        self.note(
            unit.line,
            f"unit {unit.name!r} of type {ty or '?'!r} can not be a root "
            "jobnet in ajs3 (only g, n, rn here); skipped",
        )

    def common(self, unit: Jp1Unit, out: dict[str, Any]) -> None:
        comment = unit.first("cm")
        if comment:
            out["description"] = unquote(comment)

    def child(self, unit: Jp1Unit) -> dict[str, Any] | None:
        self.counted()
        ty = unit.ty
        if self.untyped(unit):
            return None
        if not schema.NAME_RE.match(unit.name):
            self.note(unit.line, f"unit name {unit.name!r} is not a valid ajs3 name; skipped")
            return None
        if ty in JOBNET_TYPES:
            return self.jobnet(unit, root=False)
        if ty in JOB_TYPES:
            return self.job(unit)
        if ty == "jdj":
            return self.judge(unit)
        if ty == "nc":
            path = self.group.rstrip("/") + "/" + "/".join([*self.trail, unit.name])
            link = self.links.connector(self, unit, path)
            if link is not None:
                self.common(unit, link)
                self.rest(unit, link, set(CONNECTOR_KEYS))
            return link
        if ty in jp1events.FILEWATCH_TYPES:  # a file monitoring job (ajs3.jp1.events)
            watch = jp1events.filewatch(self, unit)
            if watch is not None:
                self.common(unit, watch)
                self.rest(unit, watch, jp1events.used_keys())
            return watch
        if ty == "orj":
            out: dict[str, Any] = {"name": unit.name, "type": "or"}
            self.common(unit, out)
            self.rest(unit, out, set())
            return out
        self.note(
            unit.line,
            f"unit {unit.name!r} of type {ty or '?'!r} has no ajs3 "
            "counterpart (supported: g, n, rn, j, rj, jdj, orj, nc, flwj, rflwj, rc); skipped",
        )
        return None

    def rest(self, unit: Jp1Unit, out: dict[str, Any], used: set[str]) -> None:
        for param in unit.params:
            if param.key in LAYOUT or param.key in used:
                continue
            if param.key == "ha":
                jobnet = unit.ty in JOBNET_TYPES
                if param.value not in (catalog.HOLD_VALUES if jobnet else catalog.YES_NO):
                    self.invalid(unit, param, f"expected ha={'y, w, a' if jobnet else 'y'} or n")
                elif param.value == "y":
                    out["hold"] = True
                elif param.value != "n":
                    self.unmapped(unit, param, "only ha=y (hold) and ha=n map")
                continue
            self.unmapped(unit, param)

    def jobnet(self, unit: Jp1Unit, *, root: bool) -> dict[str, Any] | None:
        self.trail.append(unit.name)
        try:
            return self._jobnet(unit, root=root)
        finally:
            self.trail.pop()

    def _jobnet(self, unit: Jp1Unit, *, root: bool) -> dict[str, Any] | None:
        out: dict[str, Any] = {"name": unit.name}
        if not root:
            out["type"] = "jobnet"
            if JOBNET_TYPES[unit.ty]:
                out["recovery"] = True
        self.common(unit, out)
        conds = [ch for ch in unit.children if ch.ty == jp1events.CONDITION_TYPE]
        children = [
            self.mark(c, ch.line)
            for ch in unit.children
            if ch.ty != jp1events.CONDITION_TYPE and (c := self.child(ch)) is not None
        ]
        self.relations(unit, {c["name"]: c for c in children})
        condition = jp1events.start_condition(self, unit, conds, root=root)
        if condition is not None:  # .CONDITION and the valid range wc/wt
            out["start_condition"] = condition
        used = {"ar", "wc", "wt"}
        if root:
            schedule = self.schedule(unit, used)
            if schedule is not None:
                out["schedule"] = schedule
            self.links.destination(self, unit, self.group.rstrip("/") + "/" + unit.name)
            used.update(DESTINATION_KEYS)
            used.add("rg")  # number of logs to keep: the generations retention keeps
            for param in unit.get("rg"):
                kept = self.number(unit, param, 1, MAX_GENERATIONS)
                if kept is not None:
                    out["keep"] = {"runs": kept}
        else:
            used.add("ln")  # a nested jobnet follows its parent's schedule
        self.delay(unit, out, used, jobnet=True, root=root)
        self.rest(unit, out, used)
        if not children:
            self.note(
                unit.line,
                f"jobnet {unit.name!r} has no unit ajs3 could import; "
                "it is skipped (an ajs3 jobnet needs at least one unit)",
            )
            return None
        out["units"] = children
        return out

    def relations(self, unit: Jp1Unit, imported: dict[str, dict[str, Any]]) -> None:
        """``ar=`` as ``after``: a relation JP1 would refuse (malformed, naming a unit the
        jobnet does not have, on a cycle) is an error at its line; one to a unit that was
        not imported is a note, and dropped."""
        names = {child.name for child in unit.children}
        edges: list[tuple[str, str, Param]] = []
        for param in unit.get("ar"):
            match = re.fullmatch(r"\(f=([^,]+),t=([^,)]+)(?:,(seq|con))?\)", param.value)
            if match is None:
                self.invalid(unit, param, "expected ar=(f=FROM,t=TO[,seq|con])")
                continue
            src, dst = match.group(1), match.group(2)
            missing = [name for name in (src, dst) if name not in names]
            if missing:
                self.invalid(unit, param, f"{missing[0]!r} is not a unit of this jobnet")
                continue
            edges.append((src, dst, param))
        cyclic = relations.in_cycles([(src, dst) for src, dst, _ in edges])
        for i in cyclic:
            self.invalid(
                unit,
                edges[i][2],
                "this relation is part of a cycle: these units would wait for each other for ever",
            )
        if cyclic:
            return
        for src, dst, param in edges:
            if src not in imported or dst not in imported:
                self.note(
                    param.line,
                    f"ar={param.value} in {unit.name!r} names a unit that "
                    "was not imported; the dependency is dropped",
                )
                continue
            imported[dst].setdefault("after", []).append(src)

    def job(self, unit: Jp1Unit) -> dict[str, Any]:
        out: dict[str, Any] = {"name": unit.name}
        if JOB_TYPES[unit.ty]:
            out["recovery"] = True
        self.common(unit, out)
        used: set[str] = set()
        sc, prm, te = unit.first("sc"), unit.first("prm"), unit.first("te")
        if te is not None:
            out["script"] = delaymap.import_macros(self, unit, "te", unquote(te))
            used.add("te")
        if sc is not None:
            argv = [delaymap.import_macros(self, unit, "sc", unquote(sc))]
            if prm is not None:
                text = delaymap.import_macros(self, unit, "prm", unquote(prm))
                try:
                    argv += shlex.split(text)
                except ValueError:
                    argv.append(text)
                    self.note(
                        unit.line,
                        f"prm of {unit.name!r} could not be split into "
                        "arguments; passed as one argument",
                    )
                used.add("prm")
            if te is None:
                out["command"] = argv
            used.add("sc")
        if "command" not in out and "script" not in out:
            self.note(unit.line, f"job {unit.name!r} has no sc= or te=; it runs 'true'")
            out["command"] = ["true"]
        for key, target in (("un", "user"), ("wkp", "cwd")):
            value = unit.first(key)
            if value is not None:
                out[target] = unquote(value)
                used.add(key)
        ex = unit.param("ex")
        if ex is not None:  # the execution host (agent or agent group): docs/exechosts.md
            used.add("ex")
            name = unquote(ex.value)
            if EXEC_HOST_NAME.match(name):
                out["host"] = name
            else:
                self.unmapped(unit, ex, f"{name!r} is no execution host name ajs3 can take")
        envs = unit.get("env")
        if envs:
            env: dict[str, str] = {}
            for param in envs:
                for item in unquote(param.value).splitlines() or [""]:
                    name, sep, val = item.partition("=")
                    if sep and schema.ENV_NAME_RE.match(name):
                        env[name] = val
                    elif item.strip():
                        self.unmapped(unit, param, f"{item!r} is not NAME=value")
            if env:
                out["env"] = env
            used.add("env")
        jd = unit.param("jd")
        if jd is not None:
            used.add("jd")
            if jd.value not in catalog.END_JUDGMENTS:
                self.invalid(unit, jd, "expected jd=nm, ab, cod, mdf or exf")
            elif jd.value != "cod":
                self.unmapped(unit, jd, "ajs3 judges by exit code thresholds (jd=cod)")
        for key, target in (("wth", "warning_threshold"), ("tho", "abnormal_threshold")):
            found = unit.param(key)
            if found is not None:
                used.add(key)
                threshold = self.number(unit, found, 0, INT32_MAX)
                if threshold is not None and threshold <= schema.EXIT_CODE_MAX:
                    out[target] = threshold
                elif threshold is not None:
                    self.unmapped(unit, found, "ajs3 thresholds are 0..255")
        etm = unit.param("etm")
        if etm is not None:
            used.add("etm")
            minutes = self.number(unit, etm, 1, schema.SECONDS_MAX // 60)
            if minutes is not None:
                out["timeout"] = minutes * 60
        self.delay(unit, out, used, jobnet=False, root=False)
        self.retry(unit, out, used)
        self.rest(unit, out, used)
        return out

    def delay(
        self, unit: Jp1Unit, out: dict[str, Any], used: set[str], *, jobnet: bool, root: bool
    ) -> None:
        delay = delaymap.import_delay(self, unit, used, jobnet=jobnet, root=root)
        if delay is not None:
            out["delay"] = delay

    def retry(self, unit: Jp1Unit, out: dict[str, Any], used: set[str]) -> None:
        """JP1's automatic retry: ``abr=y`` with ``rec`` (count), ``rei`` (minutes) and
        the return codes ``rjs``..``rje``; without ``abr=y`` the others do nothing."""
        abr, rec, rei, rjs, rje = (unit.param(k) for k in ("abr", "rec", "rei", "rjs", "rje"))
        used.update({"abr", "rec", "rei", "rjs", "rje"})
        count = None if rec is None else self.number(unit, rec, 0, schema.RETRY_COUNT_MAX)
        interval = None if rei is None else self.number(unit, rei, 1, schema.SECONDS_MAX // 60)
        low = None if rjs is None else self.number(unit, rjs, 0, 2**32 - 1)
        high = None if rje is None else self.number(unit, rje, 0, 2**32 - 1)
        if abr is not None and abr.value not in catalog.YES_NO:
            self.invalid(unit, abr, "expected abr=y or abr=n")
            return
        if abr is None or abr.value == "n":
            return
        retry: dict[str, Any] = {"count": 1 if count is None else count}
        if interval is not None:
            retry["interval"] = interval * 60
        if low is not None or high is not None:
            codes = range(max(low or 1, 1), min(255 if high is None else high, 255) + 1)
            if codes:
                retry["on_exit_codes"] = list(codes)
        out["retry"] = retry

    def judge(self, unit: Jp1Unit) -> dict[str, Any]:
        out: dict[str, Any] = {"name": unit.name, "type": "judge"}
        self.common(unit, out)
        used = {"ej", "ejc", "ejl", "ejh", "ejf"}
        ej = unit.first("ej") or "gt"
        op = JUDGE_OPS.get(ej)
        cond: dict[str, Any]
        if op is None:
            self.note(
                unit.line,
                f"judgment ej={ej} of {unit.name!r} is not mapped (ajs3 "
                "judges exit codes and files); judged as exit code > 0",
            )
            op, cond = "gt", {"value": 0}
        elif op in ("file_exists", "file_missing"):
            cond = {"path": unquote(unit.first("ejf") or "")}
        elif op in ("in_range", "out_range"):
            cond = {"low": self.judge_value(unit, "ejl"), "high": self.judge_value(unit, "ejh")}
        else:
            cond = {"value": self.judge_value(unit, "ejc")}
        out["condition"] = {"op": op, **cond}
        self.rest(unit, out, used)
        return out

    def judge_value(self, unit: Jp1Unit, key: str) -> int:
        param = unit.param(key)
        value = None if param is None else self.number(unit, param, INT32_MIN, INT32_MAX)
        return value or 0


#: libyaml's emitter when PyYAML has it (several times faster), else the Python one.
_DUMPER: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _file_name(group: str) -> str:
    return ("root" if group == "/" else group.strip("/").replace("/", ".")) + ".yaml"


def _size(units: list[Jp1Unit]) -> int:
    return sum(1 + _size(u.children) for u in units)


def import_text(
    text: str, filename: str, time_zone: str | None = None, progress: Progress = silent
) -> ImportResult:
    """Map a unit definition file to ajs3 definitions, validated as ``ajs3 define`` would.
    ``progress`` hears the phases ``parse``, ``map`` (units), ``yaml`` (files) and
    ``validate`` (files) (ajs3.progress)."""
    tz = time_zone or local_zone_name()
    zone(tz)
    progress("parse", 0, 1)
    units = parse(text, filename)
    progress("parse", 1, 1)
    total = _size(units)
    imp = _Importer(filename, tz, progress, total)
    progress("map", 0, total)
    for unit in units:
        imp.top(unit)
    progress("map", total, total)
    imp.links.pair(imp)
    for doc in imp.groups.values():
        prune(doc["jobnets"])
    if imp.problems:
        raise DefinitionError(imp.problems)
    files: dict[str, str] = {}
    bodies: dict[str, dict[str, Any]] = {}
    progress("yaml", 0, len(imp.groups))
    for group, doc in sorted(imp.groups.items()):
        body = bodies[_file_name(group)] = {
            k: v for k, v in doc.items() if k != "group" or group != "/"
        }
        header = f"# imported from {filename} by ajs3 import --jp1\n"
        files[_file_name(group)] = header + yaml.dump(
            body,
            Dumper=_DUMPER,
            sort_keys=False,
            allow_unicode=True,
            default_flow_style=None,
            width=100,
        )
        progress("yaml", len(files), len(imp.groups))
    try:
        defs = load_texts(list(files.items()), progress)
    except DefinitionError as exc:
        # Each problem at the JP1 line its generated mapping comes from (origin.py).
        raise DefinitionError(
            origin.to_jp1_lines(exc.problems, files, bodies, imp.origin, filename)
        ) from None
    notes = [str(p) for p in sorted(imp.notes, key=lambda p: p.line)]
    return ImportResult(defs, files, notes, imp.count)


def import_file(
    path: Path, time_zone: str | None = None, progress: Progress = silent
) -> ImportResult:
    try:
        with Path(path).open("rb") as stream:
            data = stream.read(MAX_BYTES + 1)  # never more than the limit into memory
    except OSError as exc:
        raise DefinitionError(
            [
                Problem(
                    Code.DEFINITION_FILE,
                    str(path),
                    1,
                    f"cannot read the file: {exc.strerror or exc}",
                )
            ]
        ) from None
    if len(data) > MAX_BYTES:
        raise DefinitionError(
            [
                Problem(
                    Code.INPUT_LIMIT,
                    str(path),
                    1,
                    f"the file is larger than {MAX_BYTES // 2**20} MiB; "
                    "split it into several files",
                )
            ]
        )
    for encoding in ("utf-8-sig", "shift_jis", "euc_jp"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise DefinitionError(
            [
                Problem(
                    Code.DEFINITION_FILE,
                    str(path),
                    1,
                    "the file is not UTF-8, Shift_JIS or EUC-JP text",
                )
            ]
        )
    return import_text(text, str(path), time_zone, progress)


def write_yaml(result: ImportResult, directory: Path, progress: Progress = silent) -> list[Path]:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    progress("write", 0, len(result.files))
    for name, text in result.files.items():
        target = directory / name
        target.write_text(text, encoding="utf-8")
        written.append(target)
        progress("write", len(written), len(result.files))
    return written
