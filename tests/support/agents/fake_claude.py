"""A fake ``claude`` CLI that replays stream-json transcripts, for adapter tests (stdlib only).

Each invocation appends ``{"argv", "stdin", "env"}`` to ``FAKE_CLAUDE_RECORD`` (argv is what
Jidoka passed after the executable, stdin is the prompt), then prints the transcript for this
invocation and exits:

* ``FAKE_CLAUDE_SCRIPTS``: comma-separated transcript paths, one per invocation (the last one
  repeats);
* ``FAKE_CLAUDE_EXIT``: comma-separated exit codes, one per invocation (default 0).

Transcript lines are printed as they are, except ``{"fake": "write_verdict"}``, which commits a
file and writes ``.jidoka/verdict.json`` (DONE) the way a real agent would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys


def main() -> int:
    record = os.environ["FAKE_CLAUDE_RECORD"]
    invocation = 0
    if os.path.exists(record):
        with open(record, encoding="utf-8") as handle:
            invocation = sum(1 for line in handle if line.strip())
    prompt = sys.stdin.read()
    with open(record, "a", encoding="utf-8") as handle:
        entry = {"argv": sys.argv[1:], "stdin": prompt, "env": sorted(os.environ)}
        handle.write(json.dumps(entry) + "\n")

    scripts = os.environ["FAKE_CLAUDE_SCRIPTS"].split(",")
    codes = os.environ.get("FAKE_CLAUDE_EXIT", "0").split(",")
    with open(scripts[min(invocation, len(scripts) - 1)], encoding="utf-8") as handle:
        lines = [line.rstrip("\n") for line in handle if line.strip()]
    for line in lines:
        if json.loads(line).get("fake") == "write_verdict":
            write_verdict(invocation)
            continue
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    return int(codes[min(invocation, len(codes) - 1)])


def write_verdict(invocation: int) -> None:
    name = f"claude-change-{invocation}.txt"
    with open(name, "w", encoding="utf-8") as handle:
        handle.write("a change made by the fake claude\n")
    subprocess.run(["git", "add", name], check=True)
    subprocess.run(["git", "commit", "-q", "-m", f"add {name}"], check=True)
    os.makedirs(".jidoka", exist_ok=True)
    with open(".jidoka/verdict.json", "w", encoding="utf-8") as handle:
        json.dump({"verdict": "DONE", "summary": "done by the fake claude"}, handle)


if __name__ == "__main__":
    sys.exit(main())
