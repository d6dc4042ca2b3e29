"""User-facing failures: one clear line, a non-zero exit, never a traceback."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]  # pyright: ignore[reportPrivateUsage]
    """The object ``add_subparsers`` returns; each command module adds its parser to it."""
else:
    SubParsers = argparse._SubParsersAction


class CliError(Exception):
    """A mistake or condition the user can fix; printed as one line (plus optional detail)."""

    def __init__(self, message: str, *, detail: str | None = None, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.exit_code = exit_code
