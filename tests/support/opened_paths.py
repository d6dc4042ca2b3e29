"""Which paths a block of code touched: opened, listed, renamed or removed, by any thread.

One audit hook for the whole session (Python cannot remove one), shared by every test that
checks code stays inside its folder (the local board's property tests, the fuzz campaign).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Generator
from typing import Any

_PATH_EVENTS = {
    "open": 1,
    "os.scandir": 1,
    "os.listdir": 1,
    "os.remove": 1,
    "os.rename": 2,
    "os.replace": 2,
    "os.mkdir": 1,
    "os.chmod": 1,
    "os.truncate": 1,
    "os.link": 2,
    "os.symlink": 2,
}
_recorders: list[list[str]] = []
_IMPORT_ROOTS = tuple(
    os.path.realpath(root) + os.sep
    for root in {*sys.path, sys.prefix, sys.base_prefix, sys.exec_prefix}
    if root
)


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _recorders or event not in _PATH_EVENTS:
        return
    for path in args[: _PATH_EVENTS[event]]:
        if not isinstance(path, str | bytes):
            continue  # a descriptor: what it names was opened, and recorded, before
        text = os.fsdecode(path)
        real = os.path.realpath(text)
        if (real + os.sep).startswith(_IMPORT_ROOTS) and (
            os.path.isdir(real) or real.endswith((".py", ".pyc", ".so", ".pth"))
        ):
            continue  # Python importing a module (a lazy import inside asyncio, say)
        for recorder in _recorders:
            recorder.append(text)


sys.addaudithook(_audit)


@contextlib.contextmanager
def opened_paths() -> Generator[list[str]]:
    """The paths opened, listed, renamed or removed inside the block, by any thread."""
    recorder: list[str] = []
    _recorders.append(recorder)
    try:
        yield recorder
    finally:
        _recorders.remove(recorder)


def inside(folder: str, path: str) -> bool:
    """``path`` resolves to ``folder`` itself or to something below it."""
    real_folder = os.path.realpath(folder)
    try:
        real = os.path.realpath(path)
    except ValueError:  # a NUL: nothing can be opened there
        return True
    return real == real_folder or real.startswith(real_folder + os.sep)
