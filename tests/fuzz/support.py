"""What the fuzz properties share: the settings of the active profile, a guard that turns a hang
into a failure, an audit of the paths a call opens, and strategies for hostile JSON, text and
mutations of realistic documents.

Every property calls the code under test through :func:`bounded`: the call runs on a thread
and the property fails when it has not returned within :data:`CALL_LIMIT_S`. A call stuck in C
code that holds the GIL (a regular expression, a parser) cannot be interrupted by any Python
means, so ``faulthandler`` backs the guard: past :data:`HARD_LIMIT_S` it writes every thread's
stack to :data:`HANG_LOG` and ends the process, which fails the run instead of hanging CI.
"""

from __future__ import annotations

import asyncio
import copy
import faulthandler
import json
import math
import os
import tempfile
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TextIO, TypeVar, cast

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.strategies import DrawFn

T = TypeVar("T")

CALL_LIMIT_S = 5.0
"""The longest any single call under test may take before the property calls it a hang."""
HARD_LIMIT_S = 60.0
"""Past this, ``faulthandler`` dumps the stacks to :data:`HANG_LOG` and ends the process (a
hang in C code). pytest captures descriptor 2 into a file it never shows when the process
ends this way, so the stacks go to a file of their own."""
HANG_LOG = os.path.join(tempfile.gettempdir(), "jidoka-fuzz-hang.txt")
_hang_logs: list[TextIO] = []


def _hang_log() -> TextIO:
    if not _hang_logs:
        _hang_logs.append(open(HANG_LOG, "a"))  # noqa: SIM115 - open for the whole session
    return _hang_logs[0]


def fuzzing(ci_examples: int = 100) -> settings:
    """The settings of a property: the ``fuzz`` profile when it is loaded (``make fuzz``),
    otherwise the derandomized ``ci`` profile with ``ci_examples`` examples."""
    if settings.get_current_profile_name() == "fuzz":
        return settings(settings.get_profile("fuzz"))
    return settings(settings.get_profile("ci"), max_examples=ci_examples)


def bounded(call: Callable[[], T], limit_s: float = CALL_LIMIT_S) -> T:
    """``call()``, its exception re-raised here; the property fails if it takes over
    ``limit_s`` seconds."""
    outcome: list[tuple[bool, object]] = []

    def run() -> None:
        try:
            outcome.append((True, call()))
        except BaseException as error:
            outcome.append((False, error))

    worker = threading.Thread(target=run, name="fuzz-call", daemon=True)
    faulthandler.dump_traceback_later(limit_s + HARD_LIMIT_S, exit=True, file=_hang_log())
    try:
        worker.start()
        worker.join(limit_s)
    finally:
        faulthandler.cancel_dump_traceback_later()
    if worker.is_alive():
        pytest.fail(f"the call did not return within {limit_s:g} s: a hang", pytrace=False)
    returned, value = outcome[0]
    if not returned:
        raise cast(BaseException, value)
    return cast(T, value)


def bounded_async(make: Callable[[], Coroutine[Any, Any, T]], limit_s: float = CALL_LIMIT_S) -> T:
    """:func:`bounded` for a coroutine: it runs on a fresh event loop in the guard's thread."""
    return bounded(lambda: _run(make), limit_s)


def _run(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(make())


# --------------------------------------------------------------------------------------------
# Which paths a call opens (Python audit events, from every thread)
# --------------------------------------------------------------------------------------------

from tests.support.opened_paths import inside, opened_paths  # noqa: E402

__all__ = ["inside", "opened_paths"]


# --------------------------------------------------------------------------------------------
# JSON, text and mutations
# --------------------------------------------------------------------------------------------

HUGE_NUMBERS = [
    10**400,
    -(10**400),
    int("9" * 4299),
    1e308,
    -1e308,
    5e-324,
    math.inf,
    -math.inf,
    math.nan,
    2**63,
    -(2**63) - 1,
    2**64,
]
NASTY_TEXT = [
    "",
    " ",
    "\x00",
    "\t\r\n",
    "\u2028\u2029",
    "\ufeff",
    "\u202e",
    "²",
    "١٢٣",
    "../../etc/passwd",
    "/",
    "..",
    "-",
    "@{-1}",
    "HEAD",
    "x" * 10_000,
    "é" * 300,
    "😀" * 100,
    "\x1b[2J",
    "<!-- jidoka:x -->",
    "${HOME}",
    "{{ issue.title }}",
    "{% raw %}",
    "null",
    "true",
    "0",
    "-0",
    "1e999",
    "NaN",
]
json_scalars: st.SearchStrategy[object] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from(HUGE_NUMBERS),
    st.floats(),
    st.text(max_size=30),
    st.sampled_from(NASTY_TEXT),
)
json_values: st.SearchStrategy[object] = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.text(max_size=10) | st.sampled_from(NASTY_TEXT), children, max_size=5)
    ),
    max_leaves=20,
)


def deep(depth: int, leaf: str = "1") -> str:
    """JSON nested ``depth`` deep, alternating arrays and objects."""
    opening = "".join("[" if level % 2 == 0 else '{"k":' for level in range(depth))
    closing = "".join("]" if level % 2 == 0 else "}" for level in reversed(range(depth)))
    return opening + leaf + closing


def _paths(value: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    found: list[tuple[object, ...]] = [prefix]
    if isinstance(value, dict):
        for key, child in cast(dict[object, object], value).items():
            found.extend(_paths(child, (*prefix, key)))
    elif isinstance(value, list):
        for index, child in enumerate(cast(list[object], value)):
            found.extend(_paths(child, (*prefix, index)))
    return found


def _at(value: object, path: tuple[object, ...]) -> object:
    for step in path:
        value = cast(Any, value)[step]
    return value


@st.composite
def mutated(draw: DrawFn, seed: object, values: st.SearchStrategy[object] = json_values) -> object:
    """``seed`` with one to four mutations: a value replaced (by any JSON, or by a value of
    another type), a key or item deleted, a key added, a value wrapped in a list or an object,
    a string truncated or doubled."""
    document = copy.deepcopy(seed)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(_paths(document)))
        operation = draw(
            st.sampled_from(["replace", "replace", "delete", "add", "wrap", "stretch", "swap"])
        )
        target = _at(document, path)
        if operation == "replace":
            new: object = draw(values)
        elif operation == "wrap":
            new = draw(st.sampled_from([[target], {"k": target}, {"nodes": [target]}]))
        elif operation == "stretch" and isinstance(target, str):
            new = draw(st.sampled_from([target[: len(target) // 2], target * 50, f" {target} "]))
        elif operation == "swap":
            new = draw(st.sampled_from([None, 0, -1, True, "", [], {}, "0", 1.5]))
        elif operation == "add" and isinstance(target, dict):
            cast(dict[str, object], target)[draw(st.text(max_size=12))] = draw(values)
            continue
        elif operation == "delete" and path:
            parent = _at(document, path[:-1])
            if isinstance(parent, dict):
                del cast(dict[object, object], parent)[path[-1]]
            elif isinstance(parent, list):
                del cast(list[object], parent)[cast(int, path[-1])]
            continue
        else:
            new = draw(values)
        if not path:
            document = new
        else:
            cast(Any, _at(document, path[:-1]))[path[-1]] = new
    return document


def wire(value: object) -> bytes:
    """``value`` as a JSON body, as a server (or an agent) could send it: Python's encoder,
    which writes NaN and Infinity, and escapes any lone surrogate."""
    return json.dumps(value).encode()


@st.composite
def flipped(draw: DrawFn, raw: bytes) -> bytes:
    """``raw`` with a few bytes changed, cut short, or a slice repeated."""
    data = bytearray(raw)
    for _ in range(draw(st.integers(1, 3))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        match draw(st.sampled_from(["flip", "cut", "repeat", "insert"])):
            case "flip":
                data[at] = draw(st.integers(0, 255))
            case "cut":
                del data[at:]
            case "repeat":
                data[at:at] = data[at : at + draw(st.integers(1, 64))] * draw(st.integers(2, 50))
            case _:
                data[at:at] = draw(st.binary(min_size=1, max_size=8))
    return bytes(data)
