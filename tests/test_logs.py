"""A failure is logged by its type: no traceback, path or provider text at the default levels."""

from __future__ import annotations

import logging

import pytest

from agnt_traces.logs import log_failure


def test_a_failure_is_logged_without_its_text_or_traceback(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("agnt_traces.test")
    caplog.set_level(logging.WARNING, logger="agnt_traces.test")
    try:
        raise OSError("/srv/secret/path.db: provider said sk-live-123")
    except OSError:
        log_failure(logger, "GET %s failed", "/traces")
    (record,) = caplog.records
    assert record.getMessage() == "GET /traces failed (OSError)"
    assert record.exc_info is None
    assert "/srv" not in caplog.text and "sk-live" not in caplog.text and "Traceback" not in caplog.text


def test_the_traceback_is_there_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("agnt_traces.test.debug")
    caplog.set_level(logging.DEBUG, logger="agnt_traces.test.debug")
    try:
        raise ValueError("boom")
    except ValueError:
        log_failure(logger, "replay %s failed", "r1")
    assert [r.levelno for r in caplog.records] == [logging.ERROR, logging.DEBUG]
    assert caplog.records[1].exc_info is not None
