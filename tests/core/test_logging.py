"""Logging (issue 13, item 1), the pure parts: credential masking in any record, structured
keyword fields, ``AI_LIB_LOG``. The full run at DEBUG is in tests/client/test_logging_run.py."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from ailib_anyio import ConfigurationError
from ailib_anyio._core._logging import (
    AiLibLogger,
    configure_from_env,
    get_logger,
    render_fields,
)
from ailib_anyio._core._secrets import REDACTED, RedactingFilter, mask_credentials


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("GET https://h/v1beta/models/g:generateContent?key=AIzaS3cret&alt=sse", "AIzaS3cret"),
        ("POST https://h/x?alt=sse&api_key=abcdef-123 HTTP/1.1", "abcdef-123"),
        ("send_request_headers [(b'Authorization', b'Bearer sk-live-1234')]", "sk-live-1234"),
        ('headers=[(b"x-api-key", b"sk-ant-api03-zz")]', "sk-ant-api03-zz"),
        ("Authorization: Bearer sk-proj-abcdef", "sk-proj-abcdef"),
        ("authorization=Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
        ('{"x-goog-api-key": "AIzaG00gle"}', "AIzaG00gle"),
        ("Proxy-Authorization: token 0123456789", "0123456789"),
        ("api-key: azure-key-42", "azure-key-42"),
    ],
)
def test_credential_looking_values_are_masked(text: str, secret: str) -> None:
    masked = mask_credentials(text)
    assert secret not in masked
    assert REDACTED in masked


@pytest.mark.parametrize(
    "text",
    [
        "attempt target=openai/gpt-4o attempt=1",
        "the monkey=3 and keys are fine",
        "tokens used: 120",
        "https://h/v1/chat/completions?alt=sse",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert mask_credentials(text) == text


def test_the_filter_masks_any_logger_s_record_even_with_no_client_open() -> None:
    record = logging.LogRecord(
        "httpx",
        logging.INFO,
        __file__,
        1,
        'HTTP Request: %s %s "HTTP/1.1 200 OK"',
        ("GET", "https://h/v1beta/models?key=AIzaNOCLIENT"),
        None,
    )
    assert RedactingFilter().filter(record) is True
    assert "AIzaNOCLIENT" not in record.getMessage()
    assert "key=<redacted>" in record.getMessage()


def test_render_fields() -> None:
    assert render_fields("start", {}) == "start"
    assert (
        render_fields("Request started", {"model": "gpt-4o", "tokens": 100, "note": "a b"})
        == "Request started model=gpt-4o tokens=100 note='a b'"
    )
    assert render_fields("x", {"status": None, "empty": ""}) == "x status=None empty=''"


def test_structured_fields_reach_the_message_and_the_record(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = get_logger("my_app")
    assert isinstance(logger, AiLibLogger)
    with caplog.at_level(logging.INFO, logger="my_app"):
        logger.info("Request started", model="gpt-4o", tokens=100)
        logger.debug("not shown", model="x")  # below the level: no record at all
        logger.warning("with exc_info", exc_info=False, url="https://h/?key=AIzaAPPKEY")
    first, second = caplog.records
    assert first.getMessage() == "Request started model=gpt-4o tokens=100"
    assert first.fields == {"model": "gpt-4o", "tokens": 100}  # type: ignore[attr-defined]
    assert first.name == "my_app"
    assert "AIzaAPPKEY" not in second.getMessage()  # an application's logger is masked too


def test_extra_is_kept_beside_the_fields(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="my_app.extra"):
        get_logger("my_app.extra").info("m", extra={"request_id": "r1"}, n=1)
    (record,) = caplog.records
    assert record.request_id == "r1"  # type: ignore[attr-defined]
    assert record.fields == {"n": 1}  # type: ignore[attr-defined]


@pytest.fixture
def clean_loggers() -> Iterator[None]:
    names = ("ailib_anyio", "httpx")
    saved = {n: (logging.getLogger(n).level, list(logging.getLogger(n).handlers)) for n in names}
    import ailib_anyio._core._logging as module

    configured = list(module._configured)
    yield
    for name, (level, handlers) in saved.items():
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.handlers[:] = handlers
    module._configured[:] = configured


@pytest.mark.usefixtures("clean_loggers")
def test_ai_lib_log_debug_adds_one_stderr_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AI_LIB_LOG", "DEBUG")
    before = len(logging.getLogger("ailib_anyio").handlers)
    configure_from_env()
    configure_from_env()  # once per process
    assert len(logging.getLogger("ailib_anyio").handlers) == before + 1
    assert logging.getLogger("ailib_anyio").level == logging.DEBUG
    assert logging.getLogger("httpx").level == logging.DEBUG


@pytest.mark.usefixtures("clean_loggers")
def test_ai_lib_log_with_a_wrong_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AI_LIB_LOG", "loud")
    with pytest.raises(ConfigurationError, match="AI_LIB_LOG must be one of debug, info"):
        configure_from_env()


@pytest.mark.usefixtures("clean_loggers")
def test_ai_lib_log_unset_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AI_LIB_LOG", raising=False)
    before = list(logging.getLogger("ailib_anyio").handlers)
    configure_from_env()
    assert logging.getLogger("ailib_anyio").handlers == before
