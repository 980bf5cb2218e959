"""The ``triggers:`` section of crew files: schedules, watched folders and webhooks, checked when the file loads
(errors name the line and field), and what serving needs checked when it starts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from podium import ConfigError
from podium.crew import load_crew
from podium.errors import CrewFileError
from podium.triggers import Schedule, WatchFolder, Webhook
from tests.crew.conftest import WriteCrew

HEAD = """\
name: desk
model: test
agents:
  intake: {role: Intake}
flow:
  sequential: [intake]
triggers:
"""
# HEAD is 7 lines: the first trigger is on line 8


def test_each_kind_of_trigger_is_made_from_the_file(write_crew: WriteCrew, tmp_path: Path) -> None:
    crew = load_crew(
        write_crew(
            HEAD
            + """\
  morning:
    schedule: {cron: "0 7 * * MON-FRI", timezone: Europe/Berlin, catch_up: 3600}
    input: "Sweep the inbox ({due})"
  inbox:
    folder: {path: inbox, pattern: "*.pdf", recursive: true, settle: 3, poll: 2}
  tickets:
    webhook: {path: /hooks/tickets, port: 9001, secret_env: PODIUM_TEST_UNSET_SECRET}
"""
        )
    )
    morning, inbox, tickets = crew.triggers.values()
    assert isinstance(morning, Schedule)
    assert (morning.name, morning.cron, morning.timezone, morning.catch_up) == (
        "morning", "0 7 * * MON-FRI", "Europe/Berlin", 3600
    )  # fmt: skip
    assert morning.input == "Sweep the inbox ({due})"
    assert isinstance(inbox, WatchFolder)
    assert inbox.folder == (tmp_path / "inbox").resolve()  # relative to the crew file
    assert (inbox.pattern, inbox.recursive, inbox.settle, inbox.poll) == ("*.pdf", True, 3, 2)
    assert isinstance(tickets, Webhook)
    assert (tickets.path, tickets.host, tickets.port, tickets.secret) == ("/hooks/tickets", "127.0.0.1", 9001, None)
    assert crew.summary()["triggers"]["inbox"] == {
        "folder": {"path": "inbox", "pattern": "*.pdf", "recursive": True, "settle": 3.0, "poll": 2.0}
    }


def test_a_webhooks_secret_comes_from_the_environment(write_crew: WriteCrew, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODIUM_TEST_SECRET", "s3cret")
    crew = load_crew(write_crew(HEAD + "  hook: {webhook: {path: /h, secret_env: PODIUM_TEST_SECRET}}\n"))
    assert crew.triggers["hook"].secret == "s3cret"  # type: ignore[union-attr]


async def test_serving_refuses_an_unset_secret_and_a_crew_without_triggers(write_crew: WriteCrew) -> None:
    crew = load_crew(write_crew(HEAD + "  hook: {webhook: {path: /h, secret_env: PODIUM_TEST_UNSET_SECRET}}\n"))
    with pytest.raises(ConfigError, match="webhook 'hook': its secret's environment variable PODIUM_TEST_UNSET_SECRET"):
        await crew.serve(asyncio.Event(), store="memory://")
    bare = load_crew(write_crew(HEAD.removesuffix("triggers:\n"), name="bare.yaml"))
    with pytest.raises(ConfigError, match="crew 'desk' has no triggers: add a 'triggers:' section"):
        await bare.serve(asyncio.Event(), store="memory://")


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        ('  t: {schedule: {cron: "* * *"}}', "triggers.t.schedule.cron", "has 3 fields; it needs 5"),
        ('  t: {schedule: {cron: "0 25 * * *"}}', "triggers.t.schedule.cron", "Bad hour"),
        (
            '  t: {schedule: {cron: "@daily", timezone: Europe/Berln}}',
            "triggers.t.schedule.timezone",
            "did you mean 'Europe/Berlin'?",
        ),
        (
            "  t: {schedule: {cron: '@daily', catch_up: -1}}",
            "triggers.t.schedule.catch_up",
            "greater than or equal to 0",
        ),
        (
            "  t: {folder: {path: in}, input: 'file {nmae}'}",
            "triggers.t.input",
            "names 'nmae', which a folder's payload does not have (did you mean 'name'?)",
        ),
        ("  t: {schedule: {cron: '@daily'}, input: 'at {}'}", "triggers.t.input", "name the payload's fields"),
        ("  t: {schedule: {cron: '@daily'}, input: 'at {due'}", "triggers.t.input", "is not a template"),
        (
            "  t: {folder: {path: in}, webhook: {path: /h}}",
            "triggers.t",
            "give exactly one of 'schedule', 'folder' or 'webhook'",
        ),
        ("  t: {input: x}", "triggers.t", "give exactly one of"),
        ("  t: {webhook: {path: hooks}}", "triggers.t.webhook.path", "'hooks' is not a path: start it with '/'"),
        ("  t: {webhook: {path: /h, port: 70000}}", "triggers.t.webhook.port", "less than or equal to 65535"),
        ("  t: {webhok: {path: /h}}", "triggers.t.webhok", "is not a known field (did you mean 'webhook'?)"),
        ("  bad name: {webhook: {path: /h}}", "triggers.bad name", "'bad name' is not a name"),
    ],
)
def test_mistakes_name_the_line_and_field(write_crew: WriteCrew, text: str, field: str, message: str) -> None:
    with pytest.raises(CrewFileError) as caught:
        load_crew(write_crew(HEAD + text + "\n"))
    assert caught.value.field == field
    assert message in str(caught.value)
    assert caught.value.line == 8


def test_a_webhook_template_is_checked_when_a_request_comes(write_crew: WriteCrew) -> None:
    crew = load_crew(write_crew(HEAD + "  hook: {webhook: {path: /h}, input: 'ticket {anything}'}\n"))
    assert crew.triggers["hook"].input == "ticket {anything}"
