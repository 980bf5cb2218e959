"""Chunking: sections by heading, paragraphs packed within a size, overlap between neighbours, lines kept."""

from __future__ import annotations

import itertools

import pytest

from podium.errors import ConfigError
from podium.knowledge import Chunk, Chunking, chunk_text

DOC = """# Refunds

Customers can ask for a refund within 30 days.

Refunds go back to the original card.

## Processing time

A refund takes five business days.

```python
# not a heading: inside fenced code
refund(days=5)
```

### Exceptions
Gift cards are never refunded.
"""


def test_each_section_is_chunked_with_its_headings_and_first_line() -> None:
    assert chunk_text(DOC) == [
        Chunk("Customers can ask for a refund within 30 days.\n\nRefunds go back to the original card.", "Refunds", 3),
        Chunk(
            "A refund takes five business days.\n\n```python\n# not a heading: inside fenced code\nrefund(days=5)\n```",
            "Refunds > Processing time",
            9,
        ),
        Chunk("Gift cards are never refunded.", "Refunds > Processing time > Exceptions", 17),
    ]


def test_long_sections_are_cut_within_the_size_with_overlap() -> None:
    sentences = [f"Sentence {n} is about tides and the moon." for n in range(80)]
    text = "# Tides\n\n" + " ".join(sentences[:40]) + "\n\n" + " ".join(sentences[40:])
    rules = Chunking(max_chars=300, overlap=60)
    chunks = chunk_text(text, rules)
    assert len(chunks) > 5
    assert all(len(c.text) <= 300 for c in chunks)
    assert all(c.heading == "Tides" for c in chunks)
    for before, after in itertools.pairwise(chunks):
        assert after.text.split()[0] in before.text[-70:]  # begins with the end of the one before
    for sentence in sentences:  # every sentence is whole in some chunk
        assert any(sentence in c.text for c in chunks), sentence
    assert chunks[-1].line == 5  # the second paragraph's pieces point at its line


def test_plain_text_and_odd_input() -> None:
    assert chunk_text("one\n\ntwo") == [Chunk("one\n\ntwo", "", 1)]
    assert chunk_text("") == []
    assert chunk_text("# Only a heading") == [Chunk("# Only a heading", "", 1)]
    long_word = "x" * 500
    pieces = [c.text for c in chunk_text(long_word, Chunking(max_chars=200, overlap=0))]
    assert "".join(pieces) == long_word
    assert all(len(p) <= 200 for p in pieces)


def test_chunking_is_checked() -> None:
    with pytest.raises(ConfigError, match="max_chars"):
        Chunking(max_chars=10)
    with pytest.raises(ConfigError, match="overlap"):
        Chunking(max_chars=200, overlap=150)
