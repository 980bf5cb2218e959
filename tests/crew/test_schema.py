"""The crew file format's JSON Schema (``podium schema``), generated from the models that define the format."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from podium.crew import crew_schema
from podium.crew._format import PATTERNS
from tests.crew.test_patterns import AGENTS


def test_the_schema_describes_the_top_level_fields() -> None:
    schema = crew_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["type"] == "object"
    assert list(schema["properties"]) == [
        "name",
        "description",
        "model",
        "store",
        "limits",
        "tools",
        "outputs",
        "events",
        "knowledge",
        "agents",
        "flow",
        "triggers",
    ]
    assert set(schema["required"]) == {"name", "agents", "flow"}
    assert schema["additionalProperties"] is False
    assert all(field.get("description") or "$ref" in field for field in schema["properties"].values()), "undocumented"
    json.dumps(schema)  # plain JSON


def test_the_schema_has_every_pattern_and_every_agent_field() -> None:
    defs: dict[str, Any] = crew_schema()["$defs"]
    flows = {name[: -len("Flow")].lower() for name in defs if name.endswith("Flow")}
    assert flows == set(PATTERNS)
    agent = defs["AgentSpec"]
    assert {"soul", "role", "tools", "output", "approval"} <= set(agent["properties"])
    assert agent["additionalProperties"] is False
    assert "person" in agent["properties"]["approval"]["description"]


def test_crew_files_validate_against_the_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")  # not a dependency: checked where it is installed
    data = yaml.safe_load(AGENTS + "flow:\n  parallel: {branches: [writer, {sequential: [editor]}], merge: judge}\n")
    jsonschema.validate(data, crew_schema())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**data, "colour": "blue"}, crew_schema())


def test_the_example_crews_validate_against_the_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from pathlib import Path

    from podium.crew._yaml import read_yaml

    examples = Path(__file__).resolve().parents[2] / "examples"
    crews = sorted(examples.glob("*/crew.yaml"))
    assert any(c.parent.name == "intake" for c in crews)
    for crew in crews:
        jsonschema.validate(read_yaml(crew).data, crew_schema())  # podium's reading: `on:` is the word, not true
