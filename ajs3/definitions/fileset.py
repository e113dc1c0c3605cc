"""A set of definition files: reading them, and the checks across files.

Root jobnet paths are unique across the set and distinct from job group paths; calendar
names are unique, each job group is given one calendar, and every scheduled jobnet gets
the calendar it names or that of its nearest group.
"""

from __future__ import annotations

import os
import stat
from dataclasses import replace
from pathlib import Path

from ajs3.definitions import schema
from ajs3.definitions.calendars import layered, no_open_year
from ajs3.definitions.connectors import check_connectors
from ajs3.definitions.document import FileResult, Root, parse_file
from ajs3.definitions.nodes import suggest
from ajs3.definitions.units import Calendar, DefinitionSet
from ajs3.errors import Code, DefinitionError, Problem
from ajs3.fileperms import unsafe_reason


def read_dir(directory: Path) -> list[FileResult]:
    """Every ``*.yaml`` / ``*.yml`` file directly in ``directory``, in name order.

    Hidden files (editor leftovers such as ``.x.yaml.swp``) are skipped. The directory
    is opened once and its files are opened relative to it, so what is checked
    (:func:`_unsafe`) is what is read.
    """
    name = str(directory)
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
    try:
        fd = os.open(directory, flags)
    except OSError as exc:
        raise DefinitionError([_listing_problem(name, exc)]) from None
    try:
        st = os.fstat(fd)
        problem = _unsafe(name, st, "directory")
        if problem is not None:
            raise DefinitionError([problem])
        try:
            with os.scandir(fd) as entries:
                names = sorted(
                    e.name
                    for e in entries
                    if e.name.endswith((".yaml", ".yml"))
                    and not e.name.startswith(".")
                    and e.is_file()
                )
        except OSError as exc:
            raise DefinitionError([_listing_problem(name, exc)]) from None
        return [read_file(directory / n, dir_fd=fd) for n in names]
    finally:
        os.close(fd)


def _listing_problem(name: str, exc: OSError) -> Problem:
    return Problem(
        Code.DEFINITION_FILE,
        name,
        1,
        f"cannot list the definitions directory: {exc.strerror or exc}; "
        "check that it is a readable directory",
    )


def _unsafe(name: str, st: os.stat_result, what: str) -> Problem | None:
    why = unsafe_reason(st)
    if why is None:
        return None
    return Problem(
        Code.UNSAFE_FILE,
        name,
        1,
        f"the definitions {what} is refused: {why} (mode {stat.S_IMODE(st.st_mode):04o}, "
        f"owner uid {st.st_uid}); definitions decide what runs as whom, so only root or "
        f"the daemon's user may write them: chown it and `chmod go-w {name}`",
    )


def read_file(path: Path, *, dir_fd: int | None = None) -> FileResult:
    """Read one file from disk (``path`` relative to ``dir_fd`` when given).

    A problem (E110) when it can not be read as UTF-8 text; E113 when it is larger than
    :data:`schema.MAX_FILE_BYTES`; E114 when a user other than root or the daemon's may
    write it. A symbolic link is followed, and the file it leads to is the one checked
    (owner and mode of the very file opened): a link to a file another user may write
    is refused like that file.
    """
    name = str(path)
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK
    try:
        fd = os.open(path.name if dir_fd is not None else path, flags, dir_fd=dir_fd)
    except OSError as exc:
        return _file_problem(name, 1, f"cannot read the file: {exc.strerror or exc}")
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
            return _file_problem(name, 1, f"cannot read the file: it is {kind}")
        problem = _unsafe(name, st, "file")
        if problem is not None:
            return FileResult(name, [problem])
        data = _read_bounded(fd)
    except OSError as exc:
        return _file_problem(name, 1, f"cannot read the file: {exc.strerror or exc}")
    finally:
        os.close(fd)
    if len(data) > schema.MAX_FILE_BYTES:
        line = data.count(b"\n", 0, schema.MAX_FILE_BYTES) + 1
        return FileResult(
            name,
            [
                Problem(
                    Code.INPUT_LIMIT,
                    name,
                    line,
                    f"the file is larger than {schema.MAX_FILE_BYTES} bytes; "
                    "split it into several files",
                )
            ],
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return _file_problem(
            name, line, f"the file is not UTF-8 text (byte {exc.start}); save it as UTF-8"
        )
    return parse_file(text, name)


def _read_bounded(fd: int) -> bytes:
    """At most one byte more than :data:`schema.MAX_FILE_BYTES`: enough to see it is too big."""
    chunks: list[bytes] = []
    left = schema.MAX_FILE_BYTES + 1
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _file_problem(name: str, line: int, message: str) -> FileResult:
    return FileResult(name, [Problem(Code.DEFINITION_FILE, name, line, message)])


def finish(results: list[FileResult]) -> DefinitionSet:
    """The set of the files read, or every problem of every file at once."""
    problems = [p for r in results for p in r.problems]
    jobnets: dict[str, Root] = {}
    groups: dict[str, tuple[str, int]] = {}
    for result in results:
        if result.problems:
            continue
        path = result.group
        while path != "/":
            groups.setdefault(path, (result.file, result.group_line))
            path = path.rsplit("/", 1)[0] or "/"
        for root in result.roots:
            first = jobnets.get(root.unit.path)
            if first is not None:
                problems.append(
                    Problem(
                        Code.DUPLICATE_NAME,
                        root.file,
                        root.line,
                        f"jobnet {root.unit.path} is already defined at {first.file}:{first.line}; "
                        "rename one of them or put them in different groups",
                    )
                )
                continue
            jobnets[root.unit.path] = root
    for path, root in jobnets.items():
        if path in groups:
            gfile, gline = groups[path]
            problems.append(
                Problem(
                    Code.DUPLICATE_NAME,
                    root.file,
                    root.line,
                    f"jobnet {path} has the same path as the job group declared at "
                    f"{gfile}:{gline}; rename the jobnet or the group",
                )
            )
    calendars, group_calendars = _resolve_calendars(results, jobnets, problems)
    problems.extend(
        check_connectors({p: (r.unit, r.file, r.line) for p, r in jobnets.items()}, groups)
    )
    if problems:
        raise DefinitionError(problems)
    return DefinitionSet(
        jobnets={path: root.unit for path, root in sorted(jobnets.items())},
        groups=tuple(sorted(groups)),
        calendars=dict(sorted(calendars.items())),
        group_calendars=dict(sorted(group_calendars.items())),
    )


def _resolve_calendars(
    results: list[FileResult], jobnets: dict[str, Root], problems: list[Problem]
) -> tuple[dict[str, Calendar], dict[str, str]]:
    """Check calendar names set-wide and give each scheduled jobnet its calendar.

    A jobnet uses the calendar named in its schedule, else the one assigned to its job
    group or the nearest group above it.
    """
    calendars: dict[str, tuple[Calendar, str, int]] = {}
    assigned: dict[str, tuple[str, str, int]] = {}
    for result in results:
        if result.problems:
            continue
        for cal, line in result.calendars:
            first = calendars.get(cal.name)
            if first is not None:
                problems.append(
                    Problem(
                        Code.DUPLICATE_NAME,
                        result.file,
                        line,
                        f"calendar {cal.name!r} is already defined at {first[1]}:{first[2]}; "
                        "rename one of them",
                    )
                )
                continue
            calendars[cal.name] = (cal, result.file, line)
        if result.group_calendar is not None:
            name, line = result.group_calendar
            other = assigned.get(result.group)
            if other is not None and other[0] != name:
                problems.append(
                    Problem(
                        Code.DUPLICATE_NAME,
                        result.file,
                        line,
                        f"job group {result.group} is given calendar {name!r} here and "
                        f"{other[0]!r} at {other[1]}:{other[2]}; give a group one calendar",
                    )
                )
                continue
            assigned.setdefault(result.group, (name, result.file, line))
    chains: dict[tuple[str, ...], Calendar] = {}
    names = sorted(calendars)
    for group, (name, file, line) in sorted(assigned.items()):
        if name not in calendars:
            problems.append(
                Problem(
                    Code.UNKNOWN_NAME,
                    file,
                    line,
                    f"job group {group} uses calendar {name!r}, but no calendar of that name is "
                    f"defined{suggest(name, names, 'calendars')}; define it under 'calendars:'",
                )
            )
    for path, root in jobnets.items():
        schedule = root.unit.schedule
        if schedule is None:
            continue
        if root.calendar_ref is not None:
            name, line = root.calendar_ref
            if name not in calendars:
                problems.append(
                    Problem(
                        Code.UNKNOWN_NAME,
                        root.file,
                        line,
                        f"jobnet {path} uses calendar {name!r}, but no calendar of that name is "
                        f"defined{suggest(name, names, 'calendars')}",
                    )
                )
                continue
        # The jobnet's own calendar, then its group's and those above: a calendar that
        # leaves days undefined takes them from the next one (docs/schedules.md).
        chain = [] if root.calendar_ref is None else [root.calendar_ref[0]]
        group = path.rsplit("/", 1)[0] or "/"
        while True:
            if group in assigned and assigned[group][0] in calendars:
                chain.append(assigned[group][0])
            if group == "/":
                break
            group = group.rsplit("/", 1)[0] or "/"
        if not chain:
            continue
        key = tuple(chain)
        if key not in chains:
            chains[key] = layered([calendars[n][0] for n in chain])
            problem = no_open_year(chains[key]) if len(chain) > 1 else None
            if problem is not None:
                _, file, line = calendars[chain[0]]
                problems.append(
                    Problem(
                        Code.BAD_VALUE,
                        file,
                        line,
                        f"calendar {chain[0]!r} with the calendars above it "
                        f"({', '.join(chain[1:])}) {problem}",
                    )
                )
        root.unit = replace(root.unit, schedule=replace(schedule, calendar=chains[key]))
    return (
        {name: cal for name, (cal, _, _) in calendars.items()},
        {group: name for group, (name, _, _) in assigned.items()},
    )
