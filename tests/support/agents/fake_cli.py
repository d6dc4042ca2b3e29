"""A fake one-shot agent CLI (gemini, opencode, aider...) for preset tests (stdlib only).

Appends ``{"argv", "stdin", "env"}`` to ``FAKE_CLI_RECORD``, prints the lines of
``FAKE_CLI_LINES`` to stdout (and ``FAKE_CLI_STDERR``, if set, to stderr), then exits with
``FAKE_CLI_EXIT`` (default 0).
"""

from __future__ import annotations

import json
import os
import sys


def main() -> int:
    stdin = "" if sys.stdin is None else sys.stdin.read()
    with open(os.environ["FAKE_CLI_RECORD"], "a", encoding="utf-8") as handle:
        entry = {"argv": sys.argv[1:], "stdin": stdin, "env": sorted(os.environ)}
        handle.write(json.dumps(entry) + "\n")
    lines = os.environ.get("FAKE_CLI_LINES")
    if lines:
        with open(lines, encoding="utf-8") as handle:
            for line in handle:
                sys.stdout.write(line)
                sys.stdout.flush()
    if message := os.environ.get("FAKE_CLI_STDERR"):
        sys.stderr.write(message + "\n")
    return int(os.environ.get("FAKE_CLI_EXIT", "0"))


if __name__ == "__main__":
    sys.exit(main())
