"""Load YAML definition files into the typed unit tree, validating the whole set.

Every problem in every file is collected and raised together as one
:class:`~ajs3.errors.DefinitionError`; nothing partial is ever returned. The format is
described in ``docs/definitions.md``; the key tables live in :mod:`ajs3.definitions.schema`.

This module is the entry point; the work is cut by idea:

- :mod:`~ajs3.definitions.yamltext`: YAML text to nodes, YAML faults as problems;
- :mod:`~ajs3.definitions.nodes`: typed values out of nodes, and the wording of problems;
- :mod:`~ajs3.definitions.unittree` and :mod:`~ajs3.definitions.jobs`: unit entries;
- :mod:`~ajs3.definitions.graph`: the relation graph of siblings (names, ``after``, cycles);
- :mod:`~ajs3.definitions.schedules`: schedules, rules and calendars;
- :mod:`~ajs3.definitions.document`: one file; :mod:`~ajs3.definitions.fileset`: a set.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ajs3.definitions.document import parse_file
from ajs3.definitions.fileset import finish, read_dir, read_file
from ajs3.definitions.units import DefinitionSet
from ajs3.progress import Progress, silent

__all__ = ["load_dir", "load_files", "load_text", "load_texts"]


def load_text(text: str, filename: str) -> DefinitionSet:
    """Load one definition file given as text; ``filename`` is used in messages."""
    return finish([parse_file(text, filename)])


def load_files(paths: Sequence[Path]) -> DefinitionSet:
    """Load and validate several files as one set (root jobnet paths must be unique).

    Each file must be safe (AJS3-E114): owned by root or the daemon's user, and not
    writable by group or others; a symbolic link is judged by the file it leads to.
    """
    return finish([read_file(Path(p)) for p in paths])


def load_texts(files: Sequence[tuple[str, str]], progress: Progress = silent) -> DefinitionSet:
    """Load several files given as (name, text) as one set, as :func:`load_files` does
    (the daemon's `define`: the files travel over the control socket). ``progress``
    hears the phase ``validate``: the files read."""
    results = []
    progress("validate", 0, len(files))
    for name, text in files:
        results.append(parse_file(text, name))
        progress("validate", len(results), len(files))
    return finish(results)


def load_dir(directory: Path) -> DefinitionSet:
    """Load every ``*.yaml`` / ``*.yml`` file directly in ``directory``, sorted by name.

    Hidden files (editor leftovers such as ``.x.yaml.swp``) are skipped. A directory
    that does not exist holds no definitions and gives an empty set. The directory and
    each file must be safe (AJS3-E114): owned by root or the daemon's user, and not
    writable by group or others.
    """
    directory = Path(directory)
    if not directory.exists():
        return DefinitionSet(jobnets={}, groups=())
    return finish(read_dir(directory))
