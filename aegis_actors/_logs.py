"""Logging set-up for programs (the CLI). The library itself never configures logging.

Library code logs through structlog with the actor path (and, inside an
instance, the instance id) bound as context variables, so every line says
which actor wrote it. Applications choose the rendering here: human-readable
for a terminal, JSON lines for machines.
"""

from __future__ import annotations

import logging
import sys
from enum import StrEnum
from typing import Any, Final

import structlog

#: The levels `configure_logging` takes (the CLI's `--log-level` choices).
LEVELS: Final = ("debug", "info", "warning", "error", "critical")


class LogFormat(StrEnum):
    HUMAN = "human"
    JSON = "json"


def configure_logging(fmt: LogFormat = LogFormat.HUMAN, level: str = "info") -> None:
    """Route structlog (and stdlib logging, e.g. nats-py's) to stderr in `fmt`."""
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        raise ValueError(f"unknown log level {level!r}")
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt is LogFormat.JSON
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            # The console renderer draws exceptions itself; JSON needs them as text.
            *([structlog.processors.format_exc_info] if fmt is LogFormat.JSON else []),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                renderer,
            ],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.WARNING))
