"""YAML text to a tree of nodes, with every YAML-level fault as a problem with a line.

The text is only *composed* (safe loader, no objects built from tags), so that each
later problem can carry the line of the key or value it is about.
"""

from __future__ import annotations

import yaml
from yaml.nodes import Node

from ajs3.errors import Code, Problem


def compose(text: str, filename: str) -> tuple[Node | None, list[Problem]]:
    """The document of ``text`` (None when empty), or the problems that stop reading it."""
    problems: list[Problem] = []
    try:
        document = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        # At the end of the stream the mark is past the last line; point at that line.
        line = max(1, min(line, len(text.splitlines())))
        what = " ".join(str(s) for s in (exc.context, exc.problem) if s)
        problems.append(
            Problem(Code.YAML_SYNTAX, filename, line, f"YAML syntax error: {what}; fix the YAML")
        )
        return None, problems
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        problems.append(
            Problem(
                Code.YAML_SYNTAX,
                filename,
                line,
                f"the file holds a character YAML does not allow ({exc.reason}, "
                f"#x{exc.character if isinstance(exc.character, int) else 0:04x}); "
                "is it a text file?",
            )
        )
        return None, problems
    except yaml.YAMLError as exc:
        problems.append(
            Problem(Code.YAML_SYNTAX, filename, 1, f"YAML error: {exc}; fix the YAML")
        )
        return None, problems
    except RecursionError:
        problems.append(
            Problem(
                Code.YAML_SYNTAX,
                filename,
                1,
                "the YAML is nested too deeply to read; flatten it",
            )
        )
        return None, problems
    return document, []
