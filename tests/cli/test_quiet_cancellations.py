"""A cancelled activity (a worker's shutdown stopping an agent) is an outcome, not a crash: the
jidoka commands keep the SDK's warning line and drop the cancellation's traceback, which an
operator reading ``jidoka run`` would take for a bug. Any other failure keeps its traceback."""

from __future__ import annotations

import asyncio
import logging

import pytest
import temporalio.activity

from cli.main import quiet_cancellations


def warn_with(error: BaseException) -> None:
    try:
        raise error
    except BaseException:
        temporalio.activity.logger.warning("Completing activity as failed", exc_info=True)


def test_a_cancellation_is_one_line_and_a_real_failure_keeps_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    quiet_cancellations()
    with caplog.at_level(logging.WARNING, logger="temporalio.activity"):
        warn_with(asyncio.CancelledError("Activity cancelled"))
        warn_with(ValueError("a real bug"))
    cancelled, failed = caplog.records[-2:]
    assert cancelled.exc_info is None
    assert cancelled.getMessage() == (
        "Completing activity as failed (CancelledError: Activity cancelled)"
    )
    assert failed.exc_info is not None and isinstance(failed.exc_info[1], ValueError)
