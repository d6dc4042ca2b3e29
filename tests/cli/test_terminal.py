"""What the CLI prints stays text on an operator's terminal: a hostile agent's escapes (in its
verdict, its stderr, a file name) are shown as ``?``, never obeyed."""

from __future__ import annotations

import io
import sys
from pathlib import Path

from cli.terminal import InertText, control, inert, inert_streams
from tests.support.cli import cli_env, jidoka

HOSTILE = (
    "\x1b]52;c;Y3VybCBldmlsLnNoIHwgc2g=\x07"  # OSC 52: write the clipboard
    "\x1b[2J"  # clear the screen
    "\rfake line\x9b31m"  # overwrite the line; a C1 CSI
)


def test_every_control_but_tab_and_newline_becomes_visible() -> None:
    shown = inert("a\tb\n" + HOSTILE + "\x00\x7f")
    assert shown.startswith("a\tb\n")
    assert not any(ord(c) < 0x20 and c not in "\t\n" for c in shown)
    assert "\x7f" not in shown and "\x9b" not in shown
    assert "fake line" in shown and "Y3VybCBldmlsLnNoIHwgc2g=" in shown  # still readable


def test_streams_are_inert_while_a_command_runs_and_the_clis_own_escapes_pass() -> None:
    real = io.StringIO()
    saved = sys.stdout
    sys.stdout = real
    try:
        with inert_streams():
            assert isinstance(sys.stdout, InertText)
            print(HOSTILE)
            control("\x1b[2J\x1b[H")
        assert sys.stdout is real
    finally:
        sys.stdout = saved
    text = real.getvalue()
    assert text.startswith("?]52;c;") and text.endswith("\x1b[2J\x1b[H")
    assert text.count("\x1b") == 2  # only the CLI's own clear-screen


async def test_a_hostile_name_printed_by_the_cli_reaches_the_terminal_inert(
    tmp_path: Path,
) -> None:
    """A real ``jidoka`` process: a WORKFLOW.md path carrying escapes (as a folder an agent
    named could) is quoted in the error, and no escape reaches stderr."""
    path = tmp_path / f"evil{HOSTILE.replace('/', '_')}" / "WORKFLOW.md"
    path.parent.mkdir()
    path.write_text("not front matter\n")
    code, out, err = await jidoka("check", str(path), env=cli_env(None))
    assert code != 0
    assert "fake line" in out + err  # the name is shown...
    assert "\x1b" not in out + err and "\r" not in out + err  # ...as text
