"""Reading typed values out of YAML nodes, and wording the problems found.

A :class:`Ctx` holds the problems of one file and the work budget of its walk; each of
its readers returns the value of a node, or reports why it can not be used (with the
node's line) and returns None. The helpers below word messages the same way everywhere:
what a node is (:func:`describe`), a short quote of it (:func:`short`), and a "did you
mean" (:func:`suggest`).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Sequence

from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ajs3.definitions import schema
from ajs3.errors import Code, Problem
from ajs3.model import UnitKind

TAG = "tag:yaml.org,2002:"
STR = TAG + "str"
INT = TAG + "int"
FLOAT = TAG + "float"
BOOL = TAG + "bool"
NULL = TAG + "null"
MERGE = TAG + "merge"
TIMESTAMP = TAG + "timestamp"

#: ``value(key)`` of a unit's reader: the value node of a key allowed for the unit's type.
Getter = Callable[[str], Node | None]
#: What :func:`_construct` returns for a scalar it can not build.
_BAD = object()


class TooLarge(Exception):
    """The walk of a file passed a bound (AJS3-E113): it stops, with the problem said."""

    def __init__(self, problem: Problem, *, keep: bool) -> None:
        super().__init__(problem.message)
        self.problem = problem
        #: Whether the problems found before are kept (not when they may be the same
        #: few again and again through aliases).
        self.keep = keep


def line_of(node: Node) -> int:
    """The line (from 1) a node starts on."""
    return int(node.start_mark.line) + 1


def describe(node: Node) -> str:
    """What a node is, for a message: 'a list', 'text', 'an integer'..."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return {
        STR: "text",
        INT: "an integer",
        FLOAT: "a decimal number",
        BOOL: "true/false",
        NULL: "empty (null)",
        TIMESTAMP: "a date",
    }.get(str(node.tag), f"a value tagged {str(node.tag).replace(TAG, '!!')}")


#: Choices looked at for a "did you mean", and listed when none is close: a message
#: stays short, and a file of many bad names costs time in proportion to its size.
SUGGEST_POOL = 500
SUGGEST_LISTED = 30


def suggest(word: str, choices: Sequence[str], listing: str = "allowed") -> str:
    """' (did you mean ...?)' for a close choice, else the choices listed."""
    close = difflib.get_close_matches(word[:200], list(choices[:SUGGEST_POOL]), n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    if not choices:
        return ""
    more = f", ... ({len(choices)} in all)" if len(choices) > SUGGEST_LISTED else ""
    return f" ({listing}: {', '.join(choices[:SUGGEST_LISTED])}{more})"


def num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


#: How a unit of each kind is called in messages.
KIND_LABEL = {
    UnitKind.JOB: "job",
    UnitKind.JUDGE: "judge",
    UnitKind.OR: "OR job",
    UnitKind.CONNECTOR: "jobnet connector",
    UnitKind.FILEWATCH: "file-watch job",
    UnitKind.JOBNET: "jobnet",
    UnitKind.GROUP: "group",
}


def _construct(node: ScalarNode) -> object:
    # Explicit tags can pair a type with any text ("!!bool maybe", "!!int x"); the
    # safe constructor then raises all sorts of exceptions, none of which may escape.
    try:
        return SafeConstructor().construct_object(node, deep=True)
    except Exception:
        return _BAD


class Ctx:
    """Problems of one file and the work budget of its walk."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []
        self._seen: set[Problem] = set()
        self.budget = schema.MAX_NODES
        #: Problems reported, the same one again counted too (to tell whether a reader
        #: reported anything, even a problem already listed).
        self.reported = 0

    def report(self, code: Code, at: Node | int, message: str) -> None:
        self.reported += 1
        line = at if isinstance(at, int) else line_of(at)
        problem = Problem(code, self.file, line, message)
        # A node shared through an alias would report the same problem at each use.
        if problem in self._seen:
            return
        if len(self.problems) >= schema.MAX_PROBLEMS:
            raise TooLarge(
                Problem(
                    Code.INPUT_LIMIT,
                    self.file,
                    line,
                    f"more than {schema.MAX_PROBLEMS} problems in this file; reading stopped "
                    "here: fix those listed and run again",
                ),
                keep=True,
            )
        self._seen.add(problem)
        self.problems.append(problem)

    def spend(self, count: int, at: Node) -> None:
        self.budget -= count
        if self.budget < 0:
            raise TooLarge(
                Problem(
                    Code.INPUT_LIMIT,
                    self.file,
                    line_of(at),
                    f"the file expands to more than {schema.MAX_NODES} YAML nodes "
                    "(aliases count each time they are used); split it into several files",
                ),
                keep=False,
            )

    def check_expansion(self, document: Node) -> None:
        """Refuse, before the walk, a document that holds itself or that its aliases
        expand beyond the budget.

        Counted as :meth:`spend` counts, on the tree of distinct nodes (each once, with
        the size of what it expands to), so an alias bomb costs the size of its text.
        """
        sizes: dict[int, int] = {}
        active: set[int] = set()
        loops: list[Node] = []

        def size(node: Node) -> int:
            key = id(node)
            if key in sizes:
                return sizes[key]
            if isinstance(node, ScalarNode):
                return 0
            active.add(key)
            total = len(node.value) + 1
            for item in node.value:
                for child in item if isinstance(item, tuple) else (item,):
                    if id(child) in active:
                        loops.append(node)  # an alias of a node inside that node
                        continue
                    total += size(child)
                    if total > self.budget or loops:
                        break
            active.discard(key)
            sizes[key] = total
            return total

        total = size(document)
        if loops:
            where = loops[0]
            raise TooLarge(
                Problem(
                    Code.BAD_VALUE,
                    self.file,
                    line_of(where),
                    f"{describe(where)} here holds, through an alias, a node that holds it: "
                    "the definitions would be infinitely deep; use the alias elsewhere",
                ),
                keep=False,
            )
        if total <= self.budget:
            return
        # Point at the smallest node that is too large alone: where the expansion is.
        node = document
        while True:
            children = [
                c for item in node.value for c in (item if isinstance(item, tuple) else (item,))
            ]
            big = [c for c in children if sizes.get(id(c), 0) > self.budget]
            if not big:
                break
            node = big[0]
        self.budget = -1
        self.spend(0, node)

    # Each reader returns None after reporting when the value can not be used.

    def mapping(self, node: Node, what: str) -> dict[str, tuple[Node, Node]] | None:
        if not isinstance(node, MappingNode):
            self.report(Code.WRONG_TYPE, node, f"{what} must be a mapping, not {describe(node)}")
            return None
        found: dict[str, tuple[Node, Node]] = {}
        merged: dict[str, tuple[Node, Node]] = {}
        self._collect(node, what, found, merged, set())
        for key, pair in merged.items():
            found.setdefault(key, pair)
        return found

    def _collect(
        self,
        node: MappingNode,
        what: str,
        found: dict[str, tuple[Node, Node]],
        merged: dict[str, tuple[Node, Node]],
        active: set[int],
    ) -> None:
        active.add(id(node))
        self.spend(len(node.value) + 1, node)
        for key_node, value_node in node.value:
            if key_node.tag == MERGE:
                # "<<: *defaults": keys written in the mapping itself win over merged ones.
                sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
                for source in sources:
                    if not isinstance(source, MappingNode):
                        self.report(
                            Code.WRONG_TYPE,
                            source,
                            f"'<<' in {what} must merge a mapping, not {describe(source)}",
                        )
                    elif id(source) in active:
                        self.report(Code.BAD_VALUE, source, f"'<<' in {what} merges itself")
                    else:
                        inner: dict[str, tuple[Node, Node]] = {}
                        self._collect(source, what, inner, merged, active)
                        for key, pair in inner.items():
                            merged.setdefault(key, pair)
                continue
            if not isinstance(key_node, ScalarNode) or key_node.tag != STR:
                self.report(
                    Code.WRONG_TYPE,
                    key_node,
                    f"keys in {what} must be text, not {describe(key_node)}",
                )
                continue
            key = str(key_node.value)
            if key in found:
                self.report(
                    Code.DUPLICATE_NAME,
                    key_node,
                    f"key {key!r} appears twice in {what} (first at line "
                    f"{line_of(found[key][0])}); keep one",
                )
                continue
            found[key] = (key_node, value_node)
        active.discard(id(node))

    def sequence(self, node: Node, what: str) -> list[Node] | None:
        if not isinstance(node, SequenceNode):
            self.report(Code.WRONG_TYPE, node, f"{what} must be a list, not {describe(node)}")
            return None
        self.spend(len(node.value) + 1, node)
        return list(node.value)

    def text(self, node: Node, what: str, *, allow_empty: bool = False) -> str | None:
        if not isinstance(node, ScalarNode) or node.tag != STR:
            hint = "; put it in quotes" if isinstance(node, ScalarNode) and node.value else ""
            self.report(Code.WRONG_TYPE, node, f"{what} must be text, not {describe(node)}{hint}")
            return None
        value = str(node.value)
        if "\x00" in value:
            self.report(Code.BAD_VALUE, node, f"{what} contains a NUL character; remove it")
            return None
        bad = unencodable(value)
        if bad is not None:
            # A job's argv, environment and paths are passed to exec as UTF-8.
            self.report(
                Code.BAD_VALUE,
                node,
                f"{what} contains U+{ord(bad):04X}, a lone surrogate that is not a character "
                "and can not be passed to a program as UTF-8; remove it",
            )
            return None
        if not value and not allow_empty:
            self.report(Code.BAD_VALUE, node, f"{what} is empty; give a value or drop the key")
            return None
        return value

    def boolean(self, node: Node, what: str) -> bool | None:
        if not isinstance(node, ScalarNode) or node.tag != BOOL:
            self.report(
                Code.WRONG_TYPE, node, f"{what} must be true or false, not {describe(node)}"
            )
            return None
        value = _construct(node)
        if not isinstance(value, bool):
            self.report(Code.BAD_VALUE, node, f"{what} is {short(node)}; write true or false")
            return None
        return value

    def integer(self, node: Node, what: str, low: int, high: int) -> int | None:
        if not isinstance(node, ScalarNode) or node.tag != INT:
            self.report(Code.WRONG_TYPE, node, f"{what} must be an integer, not {describe(node)}")
            return None
        value = _construct(node)
        if not isinstance(value, int) or not low <= value <= high:
            self.report(
                Code.BAD_VALUE,
                node,
                f"{what} is {short(node)}; it must be between {low} and {high}",
            )
            return None
        return value

    def number(
        self, node: Node, what: str, low: float, high: float, *, low_open: bool = False
    ) -> float | None:
        if not isinstance(node, ScalarNode) or node.tag not in (INT, FLOAT):
            self.report(Code.WRONG_TYPE, node, f"{what} must be a number, not {describe(node)}")
            return None
        raw = _construct(node)
        try:
            value = float(raw) if isinstance(raw, (int, float)) else math.nan
        except OverflowError:
            value = math.nan
        above_low = value > low if low_open else value >= low
        if not (math.isfinite(value) and above_low and value <= high):
            bound = f"above {num(low)}" if low_open else f"at least {num(low)}"
            self.report(
                Code.BAD_VALUE,
                node,
                f"{what} is {short(node)}; it must be a number {bound} and at most {num(high)}",
            )
            return None
        return value

    def word(self, node: Node, what: str) -> str | None:
        """Text or an integer, as text (argv elements, env values)."""
        if isinstance(node, ScalarNode) and node.tag == INT:
            value = self.integer(node, what, -schema.INT_TEXT_MAX, schema.INT_TEXT_MAX)
            return None if value is None else str(value)
        if isinstance(node, ScalarNode) and node.tag != STR:
            self.report(
                Code.WRONG_TYPE,
                node,
                f"{what} must be text or an integer, not {describe(node)}; put it in quotes",
            )
            return None
        return self.text(node, what, allow_empty=True)

    def argv(self, node: Node, what: str) -> tuple[str, ...] | None:
        if isinstance(node, ScalarNode) and node.tag == STR:
            self.report(
                Code.WRONG_TYPE,
                node,
                f"{what} must be a list (program and arguments), not text; "
                "write [program, arg, ...] or use 'script'",
            )
            return None
        items = self.sequence(node, what)
        if items is None:
            return None
        if not items:
            self.report(Code.BAD_VALUE, node, f"{what} is an empty list; name the program to run")
            return None
        words = [self.word(item, f"element {i + 1} of {what}") for i, item in enumerate(items)]
        if any(w is None for w in words):
            return None
        if not words[0]:
            self.report(Code.BAD_VALUE, items[0], f"the program in {what} is empty")
            return None
        return tuple(w for w in words if w is not None)

    def choice(self, node: Node, what: str, choices: Sequence[str]) -> str | None:
        text = self.text(node, what)
        if text is not None and text not in choices:
            self.report(Code.BAD_VALUE, node, f"unknown {what} {text!r}{suggest(text, choices)}")
            return None
        return text

    def check_keys(
        self, fields: dict[str, tuple[Node, Node]], allowed: Sequence[str], what: str
    ) -> None:
        for key, (key_node, _) in fields.items():
            if key not in allowed:
                self.report(
                    Code.UNKNOWN_KEY,
                    key_node,
                    f"unknown key {key!r} in {what}{suggest(key, allowed)}",
                )


def short(node: Node) -> str:
    """The text of a node, cut for a message (and printable whatever it holds)."""
    text = str(node.value) if isinstance(node, ScalarNode) else describe(node)
    text = text if len(text) <= 40 else text[:37] + "..."
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\0")


def unencodable(text: str) -> str | None:
    """The first character of ``text`` that UTF-8 can not encode (a lone surrogate)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return text[exc.start]
    return None
