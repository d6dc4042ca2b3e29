"""The verdict file, fuzzed: ``.jidoka/verdict.json`` is written by the agent, so it is hostile.

:func:`activities.evidence.parse_verdict` is total: any bytes give a :class:`VerdictReading`
(a verdict, or an error saying why the file was refused), never an exception, since one would
fail the evidence activity instead of judging the attempt. The reading travels to the workflow
in a Temporal payload, so it must encode as JSON too.

The inputs: arbitrary bytes; random JSON; valid verdicts mutated (fields of the wrong type,
unknown fields, huge numbers, NaN, deep nesting, lone surrogates, limits crossed by one); and
the same through :func:`read_verdict`, which reads the file from a workspace.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import event, given
from hypothesis import strategies as st
from hypothesis.strategies import DrawFn

from activities.evidence import MAX_VERDICT_BYTES, parse_verdict, read_verdict
from jidoka.models import Verdict, VerdictReading
from tests.fuzz.support import NASTY_TEXT, bounded, deep, flipped, fuzzing, json_values, mutated

VALID = {
    "verdict": "DONE",
    "summary": "Added the flag and its tests.",
    "questions": ["Should -v imply --debug?"],
    "halt_reason": None,
}

verdicts = st.builds(
    Verdict,
    verdict=st.text(min_size=1, max_size=64),
    summary=st.text(max_size=200),
    questions=st.lists(st.text(max_size=50), max_size=5),
    halt_reason=st.none() | st.text(max_size=50),
)


@st.composite
def verdict_files(draw: DrawFn) -> bytes:
    match draw(st.integers(0, 7)):
        case 0:
            return json.dumps(draw(mutated(VALID))).encode()
        case 1:
            return json.dumps(draw(json_values)).encode()
        case 2:
            return draw(flipped(json.dumps(VALID).encode()))
        case 3:
            depth = draw(st.sampled_from([10, 999, 1_001, 5_000, 50_000]))
            return ('{"verdict": "DONE", "summary": ' + deep(depth, '"x"') + "}").encode()
        case 4:
            field = draw(st.sampled_from(["verdict", "summary", "questions", "halt_reason"]))
            raw = draw(
                st.sampled_from(
                    [
                        "1" * 5_000,
                        "-" + "9" * 4_301,
                        "1e999",
                        "NaN",
                        "-Infinity",
                        '"\\ud800"',
                        '"a\\u0000b"',
                        '["\\udfff"]',
                        '"' + "x" * 16_001 + '"',
                        "[" + ", ".join(['"q"'] * 51) + "]",
                        '"' + "v" * 65 + '"',
                        "true",
                        "{}",
                    ]
                )
            )
            return ('{"verdict": "DONE", "' + field + '": ' + raw + "}").encode()
        case 5:
            text = draw(st.sampled_from(NASTY_TEXT))
            prefix = draw(st.sampled_from([b"", b"\xef\xbb\xbf", b" \n", b"\xff\xfe"]))
            return prefix + json.dumps({"verdict": text, "summary": text}).encode()
        case 6:
            return draw(st.binary(max_size=200))
        case _:
            return draw(verdicts).model_dump_json().encode()


def check_reading(reading: VerdictReading) -> None:
    assert isinstance(reading, VerdictReading)
    assert reading.present
    assert (reading.verdict is None) != (reading.error is None), reading
    if reading.error is not None:
        assert reading.error and len(reading.error) <= 1_000
    # the reading crosses the Temporal boundary as JSON
    assert VerdictReading.model_validate_json(reading.model_dump_json()) == reading


@fuzzing(ci_examples=200)
@given(raw=verdict_files())
def test_any_verdict_file_gives_a_reading(raw: bytes) -> None:
    reading = bounded(lambda: parse_verdict(raw))
    check_reading(reading)
    event("verdict" if reading.verdict is not None else "refused")


@fuzzing(ci_examples=100)
@given(verdict=verdicts)
def test_a_valid_verdict_reads_back_as_written(verdict: Verdict) -> None:
    reading = bounded(lambda: parse_verdict(verdict.model_dump_json().encode()))
    assert reading.error is None, reading.error
    assert reading.verdict == verdict


@fuzzing(ci_examples=40)
@given(raw=verdict_files())
def test_a_verdict_file_in_a_workspace_reads_like_its_bytes(raw: bytes) -> None:
    with tempfile.TemporaryDirectory(prefix="jidoka-fuzz-") as workspace:
        folder = Path(workspace) / ".jidoka"
        folder.mkdir()
        (folder / "verdict.json").write_bytes(raw)
        reading = bounded(lambda: read_verdict(workspace))
    check_reading(reading)
    if len(raw) <= MAX_VERDICT_BYTES:
        assert reading == bounded(lambda: parse_verdict(raw))


def test_a_number_past_the_digit_limit_is_a_refused_file_not_an_exception() -> None:
    """Found by this campaign: ``json.loads`` raises a plain ValueError (not a
    JSONDecodeError) for an integer of more than 4,300 digits."""
    reading = parse_verdict(b'{"verdict": ' + b"1" * 5_000 + b"}")
    assert reading.verdict is None
    assert reading.error is not None and reading.error.startswith("not valid JSON")
