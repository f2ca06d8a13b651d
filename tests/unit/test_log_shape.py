"""All logs go through structlog: lines written with the standard library's logging (uvicorn,
kafka-python, any library) get the same shape and the same PHI redaction as ours."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator

import pytest
import structlog
from kafka import KafkaAdminClient

from application.logging import HANDLER_NAME, configure_logging, resolve_format
from tests.fixtures_servers import _free_port

SHAPE = {"timestamp", "level", "logger", "event"}


@pytest.fixture
def configured() -> Iterator[Callable[[str], None]]:
    """configure_logging as the app does it; afterwards our handler is removed and
    structlog's defaults and the loggers' levels restored."""
    names = ("", "kafka", "uvicorn.error", "uvicorn.access")
    levels = {name: logging.getLogger(name).level for name in names}
    yield lambda fmt: configure_logging(fmt, "INFO")
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(handler)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    structlog.reset_defaults()


def json_lines(err: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in err.splitlines() if line.strip()]


def test_foreign_loggers_write_the_same_json_shape_as_ours(
        configured: Callable[[str], None], capsys: pytest.CaptureFixture[str]) -> None:
    # Given JSON logging as the app configures it
    configured("json")
    # When our code, the standard library, uvicorn and kafka-python each log a line
    structlog.get_logger("dispatcher").info("sent", communication="c-1", attempt=1)
    logging.getLogger("outreach.anything").info("plain %s line", "stdlib")
    logging.getLogger("uvicorn.error").info("Uvicorn running on http://127.0.0.1:8080")
    logging.getLogger("kafka.conn").warning("Connection to node 1 failed")
    lines = json_lines(capsys.readouterr().err)
    # Then each is one JSON object with the same keys, naming its logger
    assert [line["logger"] for line in lines] == [
        "dispatcher", "outreach.anything", "uvicorn.error", "kafka.conn"]
    assert all(set(line) >= SHAPE for line in lines), lines
    assert lines[1]["event"] == "plain stdlib line" and lines[3]["level"] == "warning"


def test_a_phone_number_in_a_uvicorn_or_kafka_line_is_masked(
        configured: Callable[[str], None], capsys: pytest.CaptureFixture[str]) -> None:
    configured("json")
    logging.getLogger("uvicorn.access").warning(
        '%s - "POST /webhooks/twilio/sms?From=%s HTTP/1.1" 200', "10.0.0.1", "+13125550187")
    try:
        raise ConnectionError("broker refused a record for 312-555-0187")
    except ConnectionError:
        logging.getLogger("kafka.producer").exception("send failed for (312) 555-0187")
    output = capsys.readouterr().err
    assert "5550187" not in output and "555-0187" not in output, output
    access, failure = json_lines(output)
    assert "[phone]" in str(access["event"]) and failure["event"] == "send failed for [phone]"
    assert failure["exception"][0]["exc_value"] == "broker refused a record for [phone]"  # type: ignore[index]


def test_kafka_pythons_own_lines_come_out_as_json(
        configured: Callable[[str], None], capsys: pytest.CaptureFixture[str]) -> None:
    # Given JSON logging, when a real kafka-python client fails to reach a closed port
    configured("json")
    with pytest.raises(Exception, match="bootstrap"):
        KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{_free_port()}",
                         request_timeout_ms=500, bootstrap_timeout_ms=500)
    # Then what it logged (at WARNING and above) is JSON of our shape
    lines = json_lines(capsys.readouterr().err)
    kafka_lines = [line for line in lines if str(line["logger"]).startswith("kafka")]
    assert kafka_lines and all(set(line) >= SHAPE for line in kafka_lines), lines


def test_console_lines_of_foreign_loggers_have_our_prefix(
        configured: Callable[[str], None], capsys: pytest.CaptureFixture[str]) -> None:
    configured("console")
    structlog.get_logger("scheduler").warning("intents_issued", count=3)
    logging.getLogger("uvicorn.error").warning("Invalid HTTP request received.")
    ours, theirs = capsys.readouterr().err.splitlines()
    # "<timestamp> [warning  ] <event> … [<logger>]": the same columns for both
    assert ours.split(" ", 1)[1].startswith("[warning  ] intents_issued")
    assert theirs.split(" ", 1)[1].startswith("[warning  ] Invalid HTTP request received.")
    assert ours.rstrip().endswith("count=3") and "[scheduler]" in ours
    assert theirs.rstrip().endswith("[uvicorn.error]")


def test_auto_format_is_json_when_stderr_is_not_a_terminal(
        capsys: pytest.CaptureFixture[str]) -> None:
    # capsys: stderr is not a terminal here, as under a supervisor or in a pipe
    assert resolve_format("auto") == "json"
    assert resolve_format("console") == "console" and resolve_format("json") == "json"
