"""``scaffold``: a crew to start from (``podium init``), runnable at once with ``--model test``."""

from __future__ import annotations

import re
from pathlib import Path

from podium.errors import ConfigError

__all__ = ["scaffold"]

_CREW = """\
# A podium crew. Check it: podium validate crew.yaml
# Try it offline: podium run crew.yaml --input "tidal power" --model test
# The format: podium schema prints its JSON Schema; the personas are the SOUL.md files in agents/.
name: {name}
model: local    # agents without a model: test | local | openai:<model> | anthropic:<model> | http://host/v1#<model>
limits: {{max_steps: 50, max_seconds: 600}}
tools:
  word_count: tools:word_count
outputs:
  Draft: tools:Draft
agents:
  researcher: {{soul: agents/researcher.md, tools: [word_count]}}
  writer: {{soul: agents/writer.md, output: Draft}}
  editor: {{soul: agents/editor.md, output: Draft}}
flow:
  sequential: [researcher, writer, editor]
"""

_SOULS = {
    "researcher": ("Researcher", "Collect the facts the writer needs", "List facts as short bullet points."),
    "writer": ("Writer", "Turn the research into a short post", "Short sentences; every claim from the research."),
    "editor": ("Editor", "Tighten the post and its title", "Keep the writer's facts; cut what adds nothing."),
}

_TOOLS = '''\
"""The crew's tools and output types; crew.yaml names them as tools:<name>."""

from pydantic import BaseModel

from podium import tool


class Draft(BaseModel):
    """A post."""

    title: str
    body: str


@tool(idempotent=True)
def word_count(text: str) -> int:
    """Count the words of a text.

    Args:
        text: the text.
    """
    return len(text.split())
'''


def scaffold(directory: str | Path, *, name: str | None = None) -> list[Path]:
    """Write ``crew.yaml``, ``agents/*.md`` and ``tools.py`` into ``directory``; return the files written.

    Raises:
        ConfigError: one of the files exists already (nothing is written).
    """
    folder = Path(directory)
    crew_name = name or re.sub(r"[^A-Za-z0-9_.-]+", "-", folder.resolve().name).strip("-.") or "my-crew"
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", crew_name):
        raise ConfigError(f"{crew_name!r} cannot name a crew: use letters, digits, '_', '.' and '-'")
    files = {folder / "crew.yaml": _CREW.format(name=crew_name), folder / "tools.py": _TOOLS}
    for agent, (role, goal, body) in _SOULS.items():
        files[folder / "agents" / f"{agent}.md"] = f"---\nname: {agent}\nrole: {role}\ngoal: {goal}\n---\n{body}\n"
    existing = [str(path) for path in files if path.exists()]
    if existing:
        raise ConfigError(f"{', '.join(existing)} exist(s) already; choose another folder")
    (folder / "agents").mkdir(parents=True, exist_ok=True)
    for path, text in files.items():
        path.write_text(text, encoding="utf-8")
    return list(files)
