"""Read JP1/AJS3 unit definition files (the format of ajsprint and ajsdefine).

    unit=name,permission,jp1-user,resource-group;
    {
        ty=n;
        el=JOB1,j,+80 +48;
        ar=(f=JOB1,t=JOB2,seq);
        unit=JOB1,,,;{ty=j;sc="/bin/true";}
    }

Comments are ``/* ... */``. Values run to the next ``;`` outside double quotes; in
quotes ``#"`` is a quote and ``##`` a ``#``. Every syntax problem is reported with
its line (AJS3-E111). The reader is linear in its input and bounded: a file over
:data:`MAX_BYTES`, units nested deeper than :data:`MAX_DEPTH`, or more than
:data:`MAX_PROBLEMS` syntax problems stop it with AJS3-E113 and the line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import NoReturn

from ajs3.errors import Code, DefinitionError, Problem

#: The largest unit definition file read (bytes; characters for text given directly).
MAX_BYTES = 32 * 1024 * 1024
#: How deep units may nest (job groups, jobnets and their units together).
MAX_DEPTH = 64
#: Syntax problems reported before reading stops.
MAX_PROBLEMS = 100


@dataclass(slots=True)
class Param:
    key: str
    value: str
    line: int


@dataclass(slots=True)
class Jp1Unit:
    name: str
    attrs: list[str]
    line: int
    params: list[Param] = field(default_factory=list)
    children: list[Jp1Unit] = field(default_factory=list)

    def get(self, key: str) -> list[Param]:
        return [p for p in self.params if p.key == key]

    def param(self, key: str) -> Param | None:
        """The first parameter ``key`` (JP1 uses the first when a key repeats)."""
        for param in self.params:
            if param.key == key:
                return param
        return None

    def first(self, key: str) -> str | None:
        found = self.get(key)
        return found[0].value if found else None

    @property
    def ty(self) -> str:
        return self.first("ty") or ""


def unquote(value: str) -> str:
    """``"a#"b"`` -> ``a"b``; a value without quotes is returned as it is."""
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        inner, out, i = value[1:-1], [], 0
        while i < len(inner):
            if inner[i] == "#" and i + 1 < len(inner) and inner[i + 1] in '"#':
                out.append(inner[i + 1])
                i += 2
                continue
            out.append(inner[i])
            i += 1
        return "".join(out)
    return value


def quote(text: str) -> str:
    return '"' + text.replace("#", "##").replace('"', '#"') + '"'


class _Stop(Exception):
    """Parsing can not go on: a limit was reached (the problem is already recorded)."""


#: The common statement, ``key=value;`` on one line without quotes, read in one step.
_PLAIN = re.compile(r'[ \t\r\n]*([^=;{}"\s][^=;{}"]*)=([^;"\n]*);')
_KEY_END = re.compile(r"[=;{}]")
_OUT_QUOTES = re.compile(r'[;"]')
_IN_QUOTES = re.compile(r'["#]')
_COMMENT_SCAN = re.compile(r'/\*|["\n]')
_NOT_NEWLINE = re.compile(r"[^\n]")


class _Reader:
    """One pass over the text: every step moves forward, so the work is linear."""

    def __init__(self, text: str, filename: str) -> None:
        self.text = _strip_comments(text)
        self.file = filename
        self.pos = 0
        self.problems: list[Problem] = []
        # The line of the last position asked for: lines are asked for in the order of
        # the text, so counting on from there keeps the whole read linear.
        self.line_at = (0, 1)
        # (start, end): text[start:end] holds no ';' and no '"' and text[end] is one
        # of them. Known after a statement without its ';' was cut at a line's end,
        # so that reading the next lines does not scan to that ';' again and again.
        self.clear = (0, 0)

    def line(self, pos: int | None = None) -> int:
        pos = self.pos if pos is None else pos
        last, line = self.line_at
        if pos >= last:
            line += self.text.count("\n", last, pos)
        else:
            line -= self.text.count("\n", pos, last)
        self.line_at = (pos, line)
        return line

    def error(self, message: str, pos: int | None = None) -> None:
        line = self.line(pos)
        if len(self.problems) >= MAX_PROBLEMS:
            self.limit(
                line,
                f"more than {MAX_PROBLEMS} syntax problems; reading stopped here "
                "(is this a unit definition file?)",
            )
        self.problems.append(Problem(Code.JP1_SYNTAX, self.file, line, message))

    def limit(self, line: int, message: str) -> NoReturn:
        self.problems.append(Problem(Code.INPUT_LIMIT, self.file, line, message))
        raise _Stop

    def skip_space(self) -> None:
        text, pos, end = self.text, self.pos, len(self.text)
        while pos < end and text[pos] in " \t\r\n":
            pos += 1
        self.pos = pos

    def statement(self) -> tuple[str, str, int] | None:
        """``key=value;`` -> (key, value, line); None at '}' or the end.

        A statement that is not ``key=value;`` is reported and yields an empty key. Every
        call either moves past at least one character or stops at a '}' (which the caller
        consumes), so no input can make the reader loop.
        """
        plain = _PLAIN.match(self.text, self.pos)
        if plain is not None:
            self.pos = plain.end()
            return plain.group(1).strip(), plain.group(2).strip(), self.line(plain.start(1))
        self.skip_space()
        text, start, size = self.text, self.pos, len(self.text)
        if start >= size or text[start] == "}":
            return None
        if text[start] == "{":
            self.error("'{' without a 'unit=name,,,;' before it", start)
            self.pos = start + 1
            return ("", "", self.line(start))
        found = _KEY_END.search(text, start)
        eq = found.start() if found else size
        if eq >= size or text[eq] != "=":
            self.error(f"expected 'key=value;' but found {text[start : start + 20]!r}", start)
            self.pos = eq + 1 if eq < size and text[eq] == ";" else eq
            return ("", "", self.line(start))
        key = text[start:eq].strip()
        i, quoted, saw_quote = eq + 1, False, False
        while True:
            if not quoted and self.clear[0] <= i < self.clear[1]:
                i = self.clear[1]  # known: the next ';' or '"' is there
            found = (_IN_QUOTES if quoted else _OUT_QUOTES).search(text, i)
            if found is None:
                i = size
                break
            i = found.start()
            if text[i] == "#":  # only inside quotes: '#"' is a quote, '##' a '#'
                i += 2 if i + 1 < size and text[i + 1] in '"#' else 1
            elif text[i] == '"':
                quoted, saw_quote = not quoted, True
                i += 1
            else:  # ';' outside quotes
                break
        if i >= size:
            what = "an unclosed quote" if quoted else "no ';'"
            self.error(f"parameter {key!r} has {what} before the end of the file", start)
            self.pos = size
            return (key, text[eq + 1 :].strip(), self.line(start))
        newline = -1 if saw_quote else text.find("\n", eq + 1, i)
        if newline >= 0 and text.find("=", newline, i) >= 0:
            # 'st=1,02:00' without its ';': the next lines' statements would be read as
            # its value. Reported at its own line; reading goes on at the next line.
            self.error(f"parameter {key!r} has no ';' at the end of its line", start)
            self.clear = (eq + 1, i)
            self.pos = newline + 1
            return ("", "", self.line(start))
        self.pos = i + 1
        return key, text[eq + 1 : i].strip(), self.line(start)

    def units(self) -> list[Jp1Unit]:
        found: list[Jp1Unit] = []
        while True:
            stmt = self.statement()
            if stmt is None:
                if self.pos < len(self.text):
                    self.error("'}' without a matching '{'")
                    self.pos += 1
                    continue
                return found
            key, value, line = stmt
            if not key:
                continue
            if key != "unit":
                self.error(f"expected 'unit=' but found {key!r}", None)
                continue
            found.append(self.unit(value, line, 1))

    def unit(self, value: str, line: int, depth: int) -> Jp1Unit:
        if depth > MAX_DEPTH:
            self.limit(
                line,
                f"units nested more than {MAX_DEPTH} deep; split the file or "
                "flatten the job groups",
            )
        attrs = [a.strip() for a in value.split(",")]
        if len(attrs) != 4:
            self.error(
                f"unit={value[:60]} needs 4 fields 'name,permission,user,resource' "
                f"(it has {len(attrs)})",
                None,
            )
            attrs = [*attrs, "", "", "", ""][:4]
        unit = Jp1Unit(attrs[0], attrs, line)
        if not unit.name:
            self.error("a unit has no name")
        self.skip_space()
        if self.pos >= len(self.text) or self.text[self.pos] != "{":
            self.error(f"unit {unit.name!r} has no '{{' after its attributes")
            return unit
        self.pos += 1
        while True:
            stmt = self.statement()
            if stmt is None:
                break
            key, val, pline = stmt
            if not key:
                continue
            if key == "unit":
                unit.children.append(self.unit(val, pline, depth + 1))
            else:
                unit.params.append(Param(key, val, pline))
        if self.pos >= len(self.text):
            self.error(f"unit {unit.name!r} (line {line}) has no closing '}}'")
        else:
            self.pos += 1  # '}'
        return unit


def _strip_comments(text: str) -> str:
    """Blank out /* */ comments, keeping newlines so lines stay right.

    JP1 allows no comment on a line that holds a parameter, and "/*" occurs in values
    (sd=1,2027/01/*3): a comment starts only where its line is blank so far. Quoted text
    may hold '/*' and is copied whole. Linear: the scan jumps from one '/*', quote or
    newline to the next.
    """
    if "/*" not in text:
        return text
    out: list[str] = []
    size, i, copied, blank = len(text), 0, 0, True
    while True:
        found = _COMMENT_SCAN.search(text, i)
        if found is None:
            break
        j, token = found.start(), found.group()
        if blank and text[i:j].strip():
            blank = False
        if token == "\n":
            blank, i = True, j + 1
        elif token == '"':
            k = j + 1
            while True:
                quote_end = _IN_QUOTES.search(text, k)
                if quote_end is None:
                    k = size
                    break
                k = quote_end.start()
                if text[k] == "#":
                    k += 2
                    continue
                k += 1
                break
            blank, i = False, k
        elif blank:
            end = text.find("*/", j + 2)
            stop = size if end < 0 else end + 2
            out.append(text[copied:j])
            out.append(_NOT_NEWLINE.sub(" ", text[j:stop]))
            copied = i = stop
            blank = False
        else:
            i = j + 2
    out.append(text[copied:])
    return "".join(out)


def parse(text: str, filename: str) -> list[Jp1Unit]:
    """The top-level units of a unit definition file; every syntax error raised at once."""
    if len(text) > MAX_BYTES:
        raise DefinitionError(
            [
                Problem(
                    Code.INPUT_LIMIT,
                    filename,
                    1,
                    f"the file is larger than {MAX_BYTES // 2**20} MiB; "
                    "split it into several files",
                )
            ]
        )
    reader = _Reader(text, filename)
    try:
        found = reader.units()
    except _Stop:
        raise DefinitionError(reader.problems) from None
    if not found and not reader.problems:
        reader.error("the file defines no unit; expected 'unit=name,,,;{ ... }'", 0)
    if reader.problems:
        raise DefinitionError(reader.problems)
    return found
