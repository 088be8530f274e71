"""What every command-line tool of the package shares: logging set-up and
turning expected errors into one ``ERROR: <tool>: ...`` line and exit status 1."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Type

LOG_FORMAT = "%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s"
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")


def add_log_level(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log_level", type=lambda x: x.upper(), default="INFO", choices=LOG_LEVELS,
                        help="logging level")


def str2bool_or_none(value: str) -> Optional[bool]:
    """ESPnet's ``str2bool`` with a third value, ``none``/``auto`` (the
    option's default applies), for switches whose default depends on the host."""
    from espnet2.utils.types import str2bool

    return None if value.strip().lower() in ("none", "auto") else str2bool(value)


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format=LOG_FORMAT)
    logging.getLogger().setLevel(level)


def run_tool(
    tool: str,
    body: Callable[[], object],
    errors: Tuple[Type[BaseException], ...] = (ValueError, FileNotFoundError),
) -> int:
    """Run ``body``; an expected error becomes a message naming the tool and
    exit status 1 instead of a traceback."""
    try:
        body()
    except errors as e:
        print(f"ERROR: {tool}: {e}", file=sys.stderr)
        return 1
    return 0


def run_cli(
    tool: str,
    parser: argparse.ArgumentParser,
    func: Callable[..., Any],
    cmd: Optional[Sequence[str]] = None,
    report: Optional[Callable[[Any], str]] = None,
    errors: Tuple[Type[BaseException], ...] = (ValueError, FileNotFoundError, RuntimeError),
) -> int:
    """The ``main`` of a tool whose options are its function's arguments:
    parse ``cmd``, set up logging (``--log_level``), call ``func`` with the
    other options, print ``report(result)``; expected errors as in :func:`run_tool`."""
    args = parser.parse_args(cmd)
    setup_logging(args.log_level)
    kwargs = {k: v for k, v in vars(args).items() if k != "log_level"}

    def body() -> None:
        result = func(**kwargs)
        if report is not None:
            print(report(result))

    return run_tool(tool, body, errors)


def print_dirs(dirs: Dict[str, Path]) -> None:
    """Print ``name -> folder`` for the data dirs a preparation step wrote."""
    for name, folder in dirs.items():
        print(f"{name} -> {folder}")
