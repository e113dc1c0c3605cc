"""YAML text to a tree of nodes, with every YAML-level fault as a problem with a line.

The text is only *composed* (no objects are built), so that each later problem can
carry the line of the key or value it is about. Reading is bounded: a text of at most
:data:`~ajs3.definitions.schema.MAX_FILE_BYTES`, collections nested at most
:data:`~ajs3.definitions.schema.MAX_YAML_DEPTH` deep (both AJS3-E113). Events come
from libyaml when PyYAML has it (about twenty times faster than its pure Python
parser, the same results) and the nodes are composed here, so that:

- an explicit YAML tag on any node, scalar, list or mapping alike (``!!python/...``,
  ``!foo {}``, ``!!map``, ``!!str``), is refused (AJS3-E115), never ignored: only the
  standard implicit resolution of plain YAML is used;
- the depth bound is checked as the tree is built, before any deep recursion.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.events import AliasEvent, Event, StreamEndEvent
from yaml.nodes import Node
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import Resolver
from yaml.scanner import Scanner

from ajs3.definitions import schema
from ajs3.errors import Code, Problem

_STANDARD = "tag:yaml.org,2002:"


class _Limit(Exception):
    """A bound of :data:`schema.MAX_YAML_DEPTH` was passed at ``line``."""

    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


def _depth_problem(filename: str, line: int) -> Problem:
    return Problem(
        Code.INPUT_LIMIT,
        filename,
        line,
        f"the YAML nests lists and mappings more than {schema.MAX_YAML_DEPTH} deep; flatten it",
    )


class _Bounded(Composer):
    """Composes nodes from the events of a parser, checking depth and refusing tags."""

    # Given by the parser mixed in before this class (libyaml's or PyYAML's).
    peek_event: Callable[[], Any]
    get_event: Callable[[], Any]
    check_event: Callable[..., bool]

    def _start(self) -> None:
        Composer.__init__(self)
        self.depth = 0
        #: (line, tag) of every explicit tag met, in the order met.
        self.tags: list[tuple[int, str]] = []

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event: Event = self.peek_event()
        line = int(event.start_mark.line) + 1 if event.start_mark is not None else 1
        if not isinstance(event, AliasEvent):
            tag = getattr(event, "tag", None)
            if tag is not None:
                self.tags.append((line, str(tag)))
        self.depth += 1
        if self.depth > schema.MAX_YAML_DEPTH:
            raise _Limit(line)
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def single(self) -> Node | None:
        # As Composer.get_single_node, through this class's compose_node.
        self.get_event()  # the stream start
        document: Node | None = None
        if not self.check_event(StreamEndEvent):
            document = self.compose_document()
        if not self.check_event(StreamEndEvent):
            event = self.get_event()
            raise yaml.composer.ComposerError(
                "expected a single document in the stream",
                document.start_mark if document is not None else None,
                "but found another document",
                event.start_mark,
            )
        self.get_event()
        return document


class _PurePython(Reader, Scanner, Parser, _Bounded, Resolver):
    """PyYAML's own parser, with the flow depth bounded in the scanner.

    Its scanner pays for every open bracket at every token (quadratic without a bound).
    """

    def __init__(self, text: str) -> None:
        Reader.__init__(self, text)
        Scanner.__init__(self)
        Parser.__init__(self)
        Resolver.__init__(self)
        self._start()

    def fetch_flow_collection_start(self, token_class: Any) -> None:
        if self.flow_level >= schema.MAX_YAML_DEPTH:
            raise _Limit(int(self.line) + 1)
        super().fetch_flow_collection_start(token_class)


_Fast: type[Any] | None
try:
    from yaml._yaml import CParser

    class _Fast(CParser, _Bounded, Resolver):  # type: ignore[no-redef]
        """libyaml's parser (its own depth bound is 1000; ours, lower, comes first)."""

        def __init__(self, text: bytes) -> None:
            CParser.__init__(self, text)
            Resolver.__init__(self)
            self._start()

except ImportError:  # PyYAML built without libyaml
    _Fast = None

#: Whether libyaml parses (tests set it False to check the pure Python path too).
USE_LIBYAML = _Fast is not None


def _tag_text(tag: str) -> str:
    text = "!!" + tag[len(_STANDARD) :] if tag.startswith(_STANDARD) else tag
    return repr(text if len(text) <= 60 else text[:57] + "...")


def compose(text: str, filename: str) -> tuple[Node | None, list[Problem]]:
    """The document of ``text`` (None when empty), or the problems that stop reading it."""
    if len(text) > schema.MAX_FILE_BYTES:
        line = text.count("\n", 0, schema.MAX_FILE_BYTES) + 1
        return None, [
            Problem(
                Code.INPUT_LIMIT,
                filename,
                line,
                f"the file is longer than {schema.MAX_FILE_BYTES} characters; "
                "split it into several files",
            )
        ]
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        line = text.count("\n", 0, exc.start) + 1
        return None, [
            Problem(
                Code.YAML_SYNTAX,
                filename,
                line,
                f"the text holds U+{ord(text[exc.start]):04X}, a lone surrogate that is not "
                "a character; is it a text file?",
            )
        ]
    problems: list[Problem] = []
    try:
        if USE_LIBYAML and _Fast is not None:
            reader: _Bounded = _Fast(data)
        else:
            reader = _PurePython(text)
        document = reader.single()
    except _Limit as exc:
        return None, [_depth_problem(filename, exc.line)]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        # At the end of the stream the mark is past the last line; point at that line.
        line = max(1, min(line, len(text.splitlines())))
        if "maximum nesting depth" in str(exc.problem):  # libyaml's own bound
            return None, [_depth_problem(filename, line)]
        what = " ".join(str(s) for s in (exc.context, exc.problem) if s)
        problems.append(
            Problem(Code.YAML_SYNTAX, filename, line, f"YAML syntax error: {what}; fix the YAML")
        )
        return None, problems
    except yaml.reader.ReaderError as exc:
        # libyaml counts the position in bytes of the UTF-8 text, PyYAML in characters.
        before = (
            data[: exc.position].count(b"\n") if USE_LIBYAML else text.count("\n", 0, exc.position)
        )
        problems.append(
            Problem(
                Code.YAML_SYNTAX,
                filename,
                before + 1,
                f"the file holds a character YAML does not allow ({exc.reason}, "
                f"#x{exc.character if isinstance(exc.character, int) else 0:04x}); "
                "is it a text file?",
            )
        )
        return None, problems
    except yaml.YAMLError as exc:
        problems.append(Problem(Code.YAML_SYNTAX, filename, 1, f"YAML error: {exc}; fix the YAML"))
        return None, problems
    except RecursionError:
        return None, [_depth_problem(filename, 1)]
    if reader.tags:
        return None, [
            Problem(
                Code.YAML_TAG,
                filename,
                line,
                f"YAML tag {_tag_text(tag)} is not allowed: definitions are plain YAML "
                "and no tag is ever applied; remove it (quote a value to make it text)",
            )
            for line, tag in reader.tags[: schema.MAX_PROBLEMS]
        ]
    return document, []
