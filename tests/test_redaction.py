"""Redaction is one mechanism, applied at every exit (issue 11, item 4).

``servefn._redact.redact`` masks every form of credential in :data:`TEXT_FORMS` and leaves
ordinary text alone, fast and idempotently; ``install_redaction`` (what ``servefn serve``,
``serve_http`` and the storage loaders call) makes every log record of every library logger
redacted at DEBUG, however it is formatted (arguments, tracebacks, stacks) and whichever handler
receives it; exception messages (``describe_error``), the CLI's error line, problem bodies and
the storage account shown in messages are redacted too. The end-to-end sweep over Azurite,
the CLI, health and problem bodies is at the end of ``tests/test_secrets.py``.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from servefn import _redact
from servefn._redact import (
    MASK,
    RedactingFilter,
    describe_error,
    install_redaction,
    redact,
)
from servefn.errors import LoaderError
from servefn.http._problems import Problem
from servefn.loaders import base
from servefn.loaders.connection import resolve_connection
from support.secretforms import MARK, ORDINARY, PASSWORD, SAS_QUERY, TEXT_FORMS

FORMS = sorted(TEXT_FORMS)

LIBRARY_LOGGERS = (
    "servefn.loaders",
    "servefn.http",
    "azure.core.pipeline.policies.http_logging_policy",
    "azure.storage.blob._shared.base_client",
    "azure.identity._credentials.environment",
    "urllib3.connectionpool",
    "fsspec.http",
    "adlfs.spec",
    "aiohttp.client",
    "uvicorn.error",
    "a.user.module",
)
"""Where credentials get logged: children of the loggers servefn configures, and any other."""


# -- redact() -------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", FORMS)
def test_every_form_is_masked(form: str) -> None:
    text = TEXT_FORMS[form]
    assert MARK in text
    shown = redact(text)
    assert MARK not in shown
    assert MASK in shown
    assert redact(shown) == shown  # idempotent


@pytest.mark.parametrize("line", ORDINARY)
def test_ordinary_text_is_left_alone(line: str) -> None:
    assert redact(line) == line


def test_what_stays_readable() -> None:
    url = f"https://acct.blob.core.windows.net/models/model.zip?restype=blob&{SAS_QUERY}"
    shown = redact(url)
    assert shown.startswith("https://acct.blob.core.windows.net/models/model.zip?restype=blob&")
    assert "sig=***" in shown and "skoid=***" in shown
    assert redact(f"http://u:{PASSWORD}@127.0.0.1:10000/x") == "http://***@127.0.0.1:10000/x"
    shown = redact(TEXT_FORMS["AccountKey="])
    assert shown.startswith("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=***;")


@pytest.mark.parametrize("form", FORMS)
def test_exception_messages_are_redacted(form: str) -> None:
    shown = describe_error(RuntimeError(f"request failed: {TEXT_FORMS[form]}"))
    assert shown.startswith("RuntimeError: request failed:") and MARK not in shown


def test_problem_bodies_are_redacted() -> None:
    for form in FORMS:
        problem = Problem(503, f"storage said {TEXT_FORMS[form]}", reason=TEXT_FORMS[form])
        body = problem.to_bytes().decode()
        assert MARK not in body and MASK in body, form


@pytest.mark.parametrize(
    "form", ["BlobEndpoint with a SAS query", "BlobEndpoint with user:password@"]
)
def test_the_account_shown_in_messages_carries_no_credential(form: str) -> None:
    account = resolve_connection(TEXT_FORMS[form])
    for shown in (account.display_url, account.describe(), repr(account)):
        assert MARK not in shown and "@" not in shown and "?" not in shown
    assert account.display_url in (
        "https://acct.blob.core.windows.net",
        "http://127.0.0.1:10000/devstoreaccount1",
    )


def test_loaders_base_re_exports_the_one_mechanism() -> None:
    assert base.redact is redact and base.describe_error is describe_error
    assert base.RedactingFilter is RedactingFilter and base.install_redaction is install_redaction


# -- logging --------------------------------------------------------------------------------------


@pytest.fixture
def fresh_logging() -> Iterator[None]:
    """The logging module as a process starts: no redacting record factory, no filters."""
    factory = logging.getLogRecordFactory()
    logging.setLogRecordFactory(logging.LogRecord)
    handlers = {
        handler: list(handler.filters)
        for name in ("", *_redact.REDACTED_LOGGERS)
        for handler in logging.getLogger(name).handlers
    }
    loggers = {name: list(logging.getLogger(name).filters) for name in _redact.REDACTED_LOGGERS}
    try:
        yield
    finally:
        logging.setLogRecordFactory(factory)
        for handler, filters in handlers.items():
            handler.filters[:] = filters
        for name, filters in loggers.items():
            logging.getLogger(name).filters[:] = filters


@pytest.fixture
def debug_output(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> Iterator[io.StringIO]:
    """Every logger at DEBUG, as servefn installs redaction; what a handler added later
    writes, with tracebacks."""
    install_redaction()
    caplog.set_level(logging.DEBUG)
    for name in LIBRARY_LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
        # uvicorn's logging config (an earlier in-process server) stops propagation at
        # "uvicorn" and may disable loggers: undo it here, for the logger and its ancestors
        parts = name.split(".")
        for ancestor in (".".join(parts[:i]) for i in range(len(parts), 0, -1)):
            monkeypatch.setattr(logging.getLogger(ancestor), "propagate", True)
            monkeypatch.setattr(logging.getLogger(ancestor), "disabled", False)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)  # added after install_redaction: still redacted
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    logging.getLogger().addHandler(handler)
    try:
        yield stream
    finally:
        logging.getLogger().removeHandler(handler)


def log_every_way(logger: logging.Logger, text: str) -> None:
    """How libraries log a URL, a header or an error: arguments, repr, message, traceback."""
    logger.debug("Request URL: %r", text)
    logger.debug("%s", text)
    logger.info(text)
    logger.debug("headers %s and %d retries", {"line": text}, 2)
    try:
        raise ConnectionError(f"cannot connect: {text}")
    except ConnectionError:
        logger.debug("request failed", exc_info=True)
        logger.warning("request failed: %s", text, stack_info=True)


@pytest.mark.parametrize("name", LIBRARY_LOGGERS)
def test_every_logger_at_debug_is_redacted(
    name: str, debug_output: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    logger = logging.getLogger(name)
    for form in FORMS:
        log_every_way(logger, TEXT_FORMS[form])
    records = [record for record in caplog.records if record.name == name]
    assert len(records) == 6 * len(FORMS)
    for shown in (caplog.text, debug_output.getvalue()):
        assert name in shown and "ConnectionError: cannot connect" in shown
        assert MARK not in shown
        assert MASK in shown
    for record in records:
        assert MARK not in record.getMessage()


def test_install_redaction_is_idempotent_and_covers_later_handlers(
    fresh_logging: None,
) -> None:
    root = logging.getLogger()
    early = logging.StreamHandler(io.StringIO())
    root.addHandler(early)
    try:
        install_redaction()
        factory = logging.getLogRecordFactory()
        install_redaction()
        assert logging.getLogRecordFactory() is factory
        assert sum(isinstance(f, RedactingFilter) for f in early.filters) == 1
        for name in _redact.REDACTED_LOGGERS:
            filters = logging.getLogger(name).filters
            assert sum(isinstance(f, RedactingFilter) for f in filters) == 1
        # a record made without the factory (a socket log server, a queue) meets the filter
        record = logging.makeLogRecord({"msg": "GET %s", "args": (TEXT_FORMS["SAS query"],)})
        early.handle(record)
        shown = early.stream.getvalue()  # type: ignore[attr-defined]
        assert MARK not in shown and "sig=***" in shown
    finally:
        root.removeHandler(early)


def test_a_record_whose_arguments_do_not_format_is_left_to_logging(
    debug_output: io.StringIO,
) -> None:
    record = logging.getLogRecordFactory()(
        "x", logging.INFO, __file__, 1, "%d items", ("many",), None
    )
    assert record.args == ("many",)  # untouched: logging reports the bad format when emitted


# -- where it is installed ------------------------------------------------------------------------


def installed() -> bool:
    return bool(getattr(logging.getLogRecordFactory(), "_servefn_redacts", False))


def test_serve_http_installs_redaction(fresh_logging: None, tmp_path: Path) -> None:
    from servefn.azure import serve_http
    from support.iris import IrisData, IrisPrediction

    assert not installed()

    @serve_http(IrisData, IrisPrediction, model=tmp_path / "model.zip")
    def predict(model: Any, inputs: Any) -> Any:
        return model.predict(inputs)

    assert installed()


def test_servefn_serve_installs_redaction(
    fresh_logging: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("uvicorn")
    from servefn.devhost._host import DevHost
    from support.reliability import model_bytes

    (tmp_path / "model.zip").write_bytes(model_bytes())
    monkeypatch.chdir(tmp_path)
    _, sock = DevHost(tmp_path / "model.zip", port=0).server()
    sock.close()
    assert installed()
    uvicorn_handlers = logging.getLogger("uvicorn").handlers
    assert all(any(isinstance(f, RedactingFilter) for f in h.filters) for h in uvicorn_handlers)


@pytest.mark.parametrize("url", ["memory://redaction/model.zip", "blob://models/model.zip"])
def test_storage_loaders_install_redaction(fresh_logging: None, url: str) -> None:
    from servefn.loaders import loader_for

    options = {"retries": 0, "timeout": 1} if url.startswith("blob") else {}
    connection = f"BlobEndpoint=http://127.0.0.1:9/x?sig={MARK}" if options else None
    loader = loader_for(url, connection, **options)
    assert not installed()
    with contextlib.suppress(LoaderError):  # nothing there: building the client installs it
        loader.fetch()
    assert installed()


def test_the_cli_error_line_is_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    from servefn.cli import main

    url = f"http://127.0.0.1:9/model.zip?code=c0de-{MARK}&sig=s-{MARK}"
    assert main(["inspect", f"{url}&x=http://u:{PASSWORD}@h/"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("servefn inspect: error:") and error.count("\n") == 1
    assert MARK not in error and MASK in error
