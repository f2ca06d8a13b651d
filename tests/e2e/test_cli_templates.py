"""`outreach templates list|show`: the library as staff and scripts read it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli_templates import templates_app

REGISTERED = "templates_app" in (Path(__file__).parents[2] / "api" / "cli.py").read_text()


def templates_command(*args: str):
    return CliRunner().invoke(templates_app, list(args), env={"COLUMNS": "200"})


def test_the_json_list_has_every_template_with_its_subject_and_body():
    result = templates_command("list", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    by_name = {r["name"]: r for r in rows}
    assert {"Ad hoc email", "Email with logo", "Ad hoc text"} <= by_name.keys()
    assert set(by_name["Mammogram reminder"]) == {
        "name", "channel", "subject", "body", "editable", "description", "logo"}
    assert by_name["Mammogram reminder"]["editable"] is False
    assert "{{ first_name }}" in by_name["Mammogram reminder"]["body"]


def test_the_list_for_one_channel_is_a_table_of_that_channel():
    result = templates_command("list", "--channel", "email")
    assert result.exit_code == 0, result.output
    assert "Ad hoc email" in result.stdout and "Flu vaccination" in result.stdout
    assert "Ad hoc text" not in result.stdout
    assert "editable" in result.stdout and "description" in result.stdout


def test_show_prints_a_templates_subject_and_body():
    result = templates_command("show", "flu VACCINATION")
    assert result.exit_code == 0, result.output
    assert "Subject: A reminder from {{ organisation }}" in result.stdout
    assert "<p>Hello {{ first_name }},</p>" in result.stdout
    shown = json.loads(templates_command("show", "Ad hoc email", "--json").stdout)
    assert (shown["name"], shown["editable"], shown["body"]) == ("Ad hoc email", True, "")


def test_an_unknown_template_is_one_error_line_and_a_non_zero_exit():
    result = templates_command("show", "Birthday card")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no template named 'Birthday card'" in lines[0]


@pytest.mark.skipif(not REGISTERED, reason="api/cli.py does not register templates_app yet")
def test_the_real_command_line_lists_templates_as_json():
    ran = subprocess.run([sys.executable, "-c", "from api.cli import main; main()",
                          "templates", "list", "--channel", "email", "--json"],
                         env={**os.environ, "OUTREACH_LOG_LEVEL": "WARNING"},
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    rows = json.loads(ran.stdout)
    assert rows and {r["channel"] for r in rows} == {"email"}
