"""Structured logs: JSON lines in the data directory, readable text on a terminal.

Every line about a run carries its ``run_id``; bind it with ``log.bind(run_id=...)``.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path
from typing import Any

import structlog

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

_shared: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def setup(
    lhost: str, logdir: Path | None, *, level: str = "info", console: bool = False
) -> structlog.stdlib.BoundLogger:
    """Configure logging for a daemon (file) or a foreground run (file + console)."""
    root = logging.getLogger("ajs3")
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.setLevel(LEVELS.get(level, logging.INFO))
    root.propagate = False
    if logdir is not None:
        logdir.mkdir(mode=0o750, parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            logdir / "ajs3.log", maxBytes=20 * 1024 * 1024, backupCount=5
        )
        handler.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                processor=structlog.processors.JSONRenderer(), foreign_pre_chain=_shared
            )
        )
        root.addHandler(handler)
    if console:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                processor=structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()),
                foreign_pre_chain=_shared,
            )
        )
        root.addHandler(stream)
    structlog.configure(
        # A line below the level is dropped first, before its time stamp and the rest:
        # the daemon logs each job's start and end at info.
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    log: structlog.stdlib.BoundLogger = structlog.get_logger("ajs3").bind(lhost=lhost)
    return log


def enabled(level: str) -> bool:
    """Whether a line at ``level`` is written now: what logs a line for every job asks
    first, and builds nothing when it is not (the bound logger and its event dict)."""
    return logging.getLogger("ajs3").isEnabledFor(LEVELS[level])


def set_level(level: str) -> None:
    logging.getLogger("ajs3").setLevel(LEVELS[level])
