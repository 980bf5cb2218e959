"""The triggers' examples in README.md and in ``podium.triggers``'s docstring construct what they show."""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path

import pytest

import podium.triggers
from podium.triggers import Schedule, WatchFolder, Webhook

README = Path(__file__).parents[2] / "README.md"


def _example(text: str) -> str:
    """The example from its first import to its ``await serve(...)``, dedented."""
    found = re.search(r"^( *)import os$.*?^\1await serve\(.*?$", text, re.M | re.S)
    assert found is not None, "no triggers example from 'import os' to 'await serve(...)'"
    return textwrap.dedent(found.group(0))


def _triggers_section() -> str:
    readme = README.read_text(encoding="utf-8")
    return readme.split("\n## Triggers\n", 1)[1].split("\n## ", 1)[0]


@pytest.mark.parametrize("where", ["README.md", "podium.triggers"])
def test_the_example_constructs_its_triggers(where: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKETS_SECRET", "s3cret")
    text = _triggers_section() if where == "README.md" else podium.triggers.__doc__ or ""
    module = ast.parse(_example(text))
    # the imports and assignments, as written; the rest (await serve(...)) needs a workflow and a store
    module.body = [node for node in module.body if isinstance(node, ast.Import | ast.ImportFrom | ast.Assign)]
    namespace: dict[str, object] = {}
    exec(compile(module, where, "exec"), namespace)
    triggers = namespace["triggers"]
    assert isinstance(triggers, list)
    schedule, folder, webhook = triggers
    assert isinstance(schedule, Schedule)
    assert (schedule.cron, schedule.name, schedule.timezone) == ("0 7 * * MON-FRI", "morning", "Europe/Berlin")
    assert isinstance(folder, WatchFolder)
    assert (folder.path, folder.pattern) == ("inbox", "*.pdf")
    assert isinstance(webhook, Webhook)
    assert (webhook.path, webhook.name, webhook.secret) == ("/hooks/tickets", "tickets", "s3cret")
