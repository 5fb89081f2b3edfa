"""structlog setup: JSON lines when asked or when stderr is not a TTY, pretty otherwise; or
JSON lines into a size-rotated, owner-only file (the background agent's agent.log)."""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from pathlib import Path
from typing import TextIO

import structlog

LOG_MAX_BYTES = 10 * 1024 * 1024      # agent.log, then agent.log.1..3: at most 40 MiB
LOG_BACKUPS = 3
_FILE_LOGGER = "gitops.agent_log"     # a stdlib logger of its own: nothing else writes there


class OwnerOnlyRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """RotatingFileHandler whose files are 0600 whatever the umask: agent logs name the
    repo, objects and errors, which are nobody else's business."""

    def _open(self):
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(fd, 0o600)            # an older version's agent.log may be 0644
        return open(fd, self.mode, encoding=self.encoding, errors=self.errors)


def configure(fmt: str = "auto", level: str = "info", stream: TextIO | None = None,
              log_file: Path | None = None, max_bytes: int = LOG_MAX_BYTES,
              backups: int = LOG_BACKUPS) -> None:
    """Configure structlog once for the process. fmt: auto | json | console. With log_file,
    records go there (JSON unless fmt says console), rotated at max_bytes, not to stream."""
    stream = stream or sys.stderr
    _close_file_logger()                # configured again: the previous file is closed
    if log_file is not None:
        logger_factory = _file_logger_factory(log_file, max_bytes, backups)
        fmt = "json" if fmt == "auto" else fmt
        colors = False
    else:
        logger_factory = structlog.PrintLoggerFactory(file=stream)
        fmt = ("console" if stream.isatty() else "json") if fmt == "auto" else fmt
        colors = stream.isatty()
    renderer = (structlog.processors.JSONRenderer(sort_keys=False) if fmt == "json"
                else structlog.dev.ConsoleRenderer(colors=colors))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=logger_factory,
        # Not cached: a module-level logger must follow a later configure() (the CLI
        # reconfigures for `run`; tests capture logs), and logging is off the hot paths.
        cache_logger_on_first_use=False,
    )


def _file_logger_factory(path: Path, max_bytes: int, backups: int):
    """structlog renders each record to one line; a stdlib logger with the rotating handler
    writes it (structlog filters levels, so this logger takes everything)."""
    logger = logging.getLogger(_FILE_LOGGER)
    handler = OwnerOnlyRotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups,
                                           encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False            # never into the root logger's handlers too
    return lambda *_args: logger


def _close_file_logger() -> None:
    logger = logging.getLogger(_FILE_LOGGER)
    for old in logger.handlers[:]:
        logger.removeHandler(old)
        old.close()


def get(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(component=name)
