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
its line (AJS3-E111).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ajs3.errors import Code, DefinitionError, Problem


@dataclass
class Param:
    key: str
    value: str
    line: int


@dataclass
class Jp1Unit:
    name: str
    attrs: list[str]
    line: int
    params: list[Param] = field(default_factory=list)
    children: list[Jp1Unit] = field(default_factory=list)

    def get(self, key: str) -> list[Param]:
        return [p for p in self.params if p.key == key]

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


class _Reader:
    def __init__(self, text: str, filename: str) -> None:
        self.text = _strip_comments(text)
        self.file = filename
        self.pos = 0
        self.problems: list[Problem] = []

    def line(self, pos: int | None = None) -> int:
        return self.text.count("\n", 0, self.pos if pos is None else pos) + 1

    def error(self, message: str, pos: int | None = None) -> None:
        self.problems.append(Problem(Code.JP1_SYNTAX, self.file, self.line(pos), message))

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t\r\n":
            self.pos += 1

    def statement(self) -> tuple[str, str, int] | None:
        """``key=value;`` -> (key, value, line); None at '}' or the end."""
        self.skip_space()
        if self.pos >= len(self.text) or self.text[self.pos] == "}":
            return None
        start = self.pos
        eq = self.text.find("=", self.pos)
        semi_or_brace = min(
            (i for i in (self.text.find(";", self.pos), self.text.find("{", self.pos),
                         self.text.find("}", self.pos)) if i >= 0),
            default=len(self.text),
        )
        if eq < 0 or eq > semi_or_brace:
            self.error(f"expected 'key=value;' but found {self.text[start:start + 20]!r}")
            self.pos = semi_or_brace + (1 if semi_or_brace < len(self.text)
                                        and self.text[semi_or_brace] == ";" else 0)
            return ("", "", self.line(start))
        key = self.text[start:eq].strip()
        i, quoted = eq + 1, False
        while i < len(self.text):
            ch = self.text[i]
            if quoted and ch == "#" and i + 1 < len(self.text) and self.text[i + 1] in '"#':
                i += 2
                continue
            if ch == '"':
                quoted = not quoted
            elif ch == ";" and not quoted:
                break
            elif ch == "\n" and quoted:
                pass
            i += 1
        if i >= len(self.text):
            what = "an unclosed quote" if quoted else "no ';'"
            self.error(f"parameter {key!r} has {what} before the end of the file", start)
            self.pos = len(self.text)
            return (key, self.text[eq + 1:].strip(), self.line(start))
        value = self.text[eq + 1:i].strip()
        self.pos = i + 1
        return key, value, self.line(start)

    def units(self, top: bool) -> list[Jp1Unit]:
        found: list[Jp1Unit] = []
        while True:
            stmt = self.statement()
            if stmt is None:
                if top and self.pos < len(self.text):
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
            found.append(self.unit(value, line))

    def unit(self, value: str, line: int) -> Jp1Unit:
        attrs = [a.strip() for a in value.split(",")]
        if len(attrs) != 4:
            self.error(f"unit={value} needs 4 fields 'name,permission,user,resource' "
                       f"(it has {len(attrs)})", None)
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
                unit.children.append(self.unit(val, pline))
            else:
                unit.params.append(Param(key, val, pline))
        if self.pos >= len(self.text):
            self.error(f"unit {unit.name!r} (line {line}) has no closing '}}'")
        else:
            self.pos += 1  # '}'
        return unit


def _strip_comments(text: str) -> str:
    """Blank out /* */ comments, keeping newlines so lines stay right."""
    out: list[str] = []
    i = 0
    while i < len(text):
        # JP1 allows no comment on a line that holds a parameter, and "/*" occurs in
        # values (sd=1,2027/01/*3): a comment starts only where its line is blank so far.
        line_start = text.rfind("\n", 0, i) + 1
        if text.startswith("/*", i) and not text[line_start:i].strip():
            end = text.find("*/", i + 2)
            stop = len(text) if end < 0 else end + 2
            out.append("".join("\n" if c == "\n" else " " for c in text[i:stop]))
            i = stop
            continue
        if text[i] == '"':
            # Quoted text may hold '/*'; copy it whole.
            j = i + 1
            while j < len(text) and text[j] != '"':
                j += 2 if text[j] == "#" else 1
            out.append(text[i:j + 1])
            i = j + 1
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


def parse(text: str, filename: str) -> list[Jp1Unit]:
    """The top-level units of a unit definition file; every syntax error raised at once."""
    reader = _Reader(text, filename)
    found = reader.units(top=True)
    if not found and not reader.problems:
        reader.error("the file defines no unit; expected 'unit=name,,,;{ ... }'")
    if reader.problems:
        raise DefinitionError(reader.problems)
    return found
