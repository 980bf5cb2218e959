"""Writing crew files (and SOUL.md files, and modules beside them) into a test's own folder."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

WriteCrew = Callable[..., Path]


def write_files(folder: Path, text: str, files: Mapping[str, str] | None = None, name: str = "crew.yaml") -> Path:
    """Write the crew file (dedented) and other files by relative path (``agents/w.md``); return the crew file."""
    for relative, content in (files or {}).items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(content).lstrip("\n"))
    crew = folder / name
    crew.write_text(textwrap.dedent(text).lstrip("\n"))
    return crew


@pytest.fixture
def write_crew(tmp_path: Path) -> WriteCrew:
    """``write_crew(text, files={...}, name="crew.yaml")`` in the test's own folder."""

    def write(text: str, files: Mapping[str, str] | None = None, name: str = "crew.yaml") -> Path:
        return write_files(tmp_path, text, files, name)

    return write
