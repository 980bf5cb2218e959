"""SOUL.md: an agent's persona in one Markdown file — YAML front matter for the facts, prose for the voice.

::

    ---
    name: writer                      # required: how the crew refers to the agent
    role: Senior writer               # who it is
    goal: Turn research notes into a clear blog post
    backstory: Ten years of explaining engineering to engineers.
    model: local                      # optional: test, local, openai:..., anthropic:..., a base URL
    tools: [search_notes]             # optional: names of tools the agent is granted
    output: Draft                     # optional: the name of the answer's schema (a pydantic model)
    rules:                            # optional: short rules, shown as a list
      - Every claim traceable to the notes
    max_reasks: 2                     # optional: re-asks when the answer does not fit its schema
    ---
    You write for busy engineers. Short sentences, concrete numbers.

Everything after the front matter is the agent's instructions. Unknown fields are errors (a typo should not be
silently ignored), and every error names the file, the line and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from podium.errors import CrewFileError

__all__ = ["Soul", "load_soul", "parse_soul"]


class Soul(BaseModel):
    """The front matter of a SOUL.md file, and its body as ``instructions``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$")
    role: str = ""
    goal: str = ""
    backstory: str = ""
    model: str | None = None
    tools: list[str] = []
    output: str | None = None
    rules: list[str] = []
    max_reasks: int = Field(default=2, ge=0, le=10)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    instructions: str = ""
    lines: dict[str, int] = Field(default={}, exclude=True)
    """Each front-matter field's line in the file, for errors found later (an unknown tool, say)."""


def load_soul(path: str | Path) -> Soul:
    """Read and check a SOUL.md file.

    Raises:
        CrewFileError: the file is missing, has no front matter, or a field is wrong (with its line).
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise CrewFileError(f"cannot read it: {exc.strerror or exc}", path=str(file)) from exc
    return parse_soul(text, path=str(file))


def parse_soul(text: str, *, path: str = "<SOUL.md>") -> Soul:
    """Parse SOUL.md text; see :func:`load_soul`."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        raise CrewFileError("must start with '---' and YAML front matter (name, role, goal...)", path=path, line=1)
    try:
        end = next(i for i, line in enumerate(lines[1:], start=1) if line.strip() == "---")
    except StopIteration:
        raise CrewFileError("the front matter is not closed by a '---' line", path=path, line=1) from None
    front = "\n".join(lines[1:end])
    data, key_lines = _yaml_mapping(front, path=path, first_line=2)
    body = "\n".join(lines[end + 1 :]).strip()
    if "instructions" in data:
        raise CrewFileError(
            "the instructions are the text after the front matter, not a field",
            path=path,
            line=key_lines.get("instructions"),
            field="instructions",
        )
    try:
        return Soul.model_validate({**data, "instructions": body, "lines": key_lines})
    except ValidationError as exc:
        raise _first(exc, path, key_lines) from exc


def _yaml_mapping(text: str, *, path: str, first_line: int) -> tuple[dict[str, Any], dict[str, int]]:
    """Parse YAML that must be a mapping; also return each top-level key's line in the file."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + first_line if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        raise CrewFileError(f"is not valid YAML: {exc.problem}", path=path, line=line, column=column) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode | type(None)):
        raise CrewFileError("the front matter must be a mapping of fields", path=path, line=first_line)
    key_lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, _value in node.value:
            key_lines[str(key.value)] = key.start_mark.line + first_line
    return {str(k): v for k, v in data.items()}, key_lines


def _first(exc: ValidationError, path: str, key_lines: dict[str, int]) -> CrewFileError:
    error = exc.errors(include_url=False)[0]
    loc = [str(p) for p in error["loc"]]
    field = ".".join(loc) or None
    line = key_lines.get(loc[0]) if loc else None
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = f"is not a field of an agent; the fields are {sorted(Soul.model_fields)}"
    elif "input" in error and error["type"] != "missing":
        message = f"{message} (got {error['input']!r})"
    return CrewFileError(message, path=path, line=line, field=field)
