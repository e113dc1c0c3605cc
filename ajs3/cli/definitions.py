"""Definitions in and out: `define` (validate and apply YAML), `import` (JP1/AJS3 unit
definitions to YAML) and `export` (to JP1/AJS3 unit definitions)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ajs3.cli.arguments import definitions_for, paths_of
from ajs3.cli.bars import bars
from ajs3.cli.exits import EXIT_ERROR, EXIT_UNMAPPED
from ajs3.cli.output import emit, note, writing
from ajs3.errors import Code, DataDirError


def cmd_define(args: argparse.Namespace) -> int:
    from ajs3.definitions.loader import load_dir, load_files

    paths = paths_of(args)
    if args.files:
        defs = load_files(args.files)
        sources = [str(f) for f in args.files]
    else:
        directory = paths.definitions_dir
        defs = load_dir(directory)
        sources = [str(directory)]
    summary = {
        "jobnets": sorted(defs.jobnets),
        "units": sum(len(u.walk()) for u in defs.jobnets.values()),
    }
    if args.check:
        emit(
            args,
            {"valid": True, **summary},
            f"definitions valid: {len(defs.jobnets)} jobnet(s), {summary['units']} unit(s)",
        )
        return 0
    from ajs3.service import apply

    # Applied through the daemon's socket if one runs (the daemon checks who asks),
    # else straight into the journal, which needs the data directory's owner.
    try:
        version = apply.apply_definitions(paths, defs, sources)
    except PermissionError as exc:
        raise DataDirError(
            f"cannot apply the definitions: {exc.filename} is not writable by this user",
            code=Code.DATADIR_ACCESS,
            hint="run the command as the owner of the data directory, or start the logical "
            "host and apply through its daemon",
        ) from exc
    emit(
        args,
        {"version": version, **summary},
        f"definitions applied as version {version}: {len(defs.jobnets)} jobnet(s), "
        f"{summary['units']} unit(s)",
    )
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from ajs3.jp1 import importer

    with bars(args) as progress:
        result = importer.import_file(args.jp1, time_zone=args.tz, progress=progress)
        written: list[str] = []
        unmapped = bool(result.notes) and not args.allow_unmapped  # exit 3, nothing written
        if args.out is not None and not args.check and not unmapped:
            with writing(args.out):
                written = [str(p) for p in importer.write_yaml(result, args.out, progress)]
    data = result.summary()
    data["written"] = written
    lines = [f"{args.jp1}: {data['units']} unit(s), {len(result.defs.jobnets)} root jobnet(s)"]
    lines += [f"  {n}" for n in result.notes]
    lines += [f"wrote {w}" for w in written]
    if args.check:
        lines.append("check only: nothing written")
    elif unmapped:
        lines.append("nothing written: not every unit maps (exit 3); see above or --allow-unmapped")
    emit(args, data, "\n".join(lines))
    for text in result.notes if args.json else []:
        note(text)
    return EXIT_ERROR if args.strict and result.notes else EXIT_UNMAPPED if unmapped else 0


def cmd_export(args: argparse.Namespace) -> int:
    from ajs3.jp1 import exporter

    defs = definitions_for(args)
    text, notes = exporter.export(defs)
    if str(args.jp1) == "-":
        sys.stdout.write(text)
    else:
        with writing(args.jp1):
            Path(args.jp1).write_text(text, encoding="utf-8")
        emit(
            args,
            {"file": str(args.jp1), "notes": notes},
            "\n".join([f"wrote {args.jp1}", *(f"  {n}" for n in notes)]),
        )
    for remark in notes if str(args.jp1) == "-" else []:
        note(remark)
    return 0
