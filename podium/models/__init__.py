"""Models behind one protocol: any OpenAI-compatible server, Anthropic, the embedded local model, test and replay.

Name a model with a string, or pass a :class:`Model` object:

======================================  =========================================================================
``"test"``                              :class:`TestModel`: deterministic, scripted, offline
``"local"``                             SmolLM2-135M-Instruct embedded via llama-cpp-python (``podium[local]``)
``"openai:gpt-4.1-mini"``               OpenAI (``OPENAI_API_KEY``)
``"ollama:llama3.2"``                   Ollama on 127.0.0.1:11434
``"http://127.0.0.1:8080/v1#name"``     any OpenAI-compatible chat-completions server (vLLM, LM Studio,
                                        llama.cpp's server...), by base URL, ``#model`` optional
``"anthropic:claude-sonnet-4-5"``       Anthropic (``ANTHROPIC_API_KEY``, ``podium[anthropic]``)
======================================  =========================================================================
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from podium.errors import ConfigError
from podium.models._prices import PRICES, Price, cost
from podium.models._test import TestModel
from podium.models._types import Message, Model, ModelRequest, ModelResponse, ToolCall, ToolSpec, Usage

if TYPE_CHECKING:
    from podium.models._replay import ReplayModel

__all__ = [
    "PRICES",
    "Message",
    "Model",
    "ModelRequest",
    "ModelResponse",
    "Price",
    "ReplayModel",
    "TestModel",
    "ToolCall",
    "ToolSpec",
    "Usage",
    "cost",
    "current_model",
    "resolve_model",
    "use_model",
]

_default: ContextVar[str | Model | None] = ContextVar("podium_model", default=None)


@contextlib.contextmanager
def use_model(model: str | Model) -> Iterator[None]:
    """Within this block, agents without a model of their own use ``model`` (a crew's default, a test's).

    A spec string is resolved once, here, so every agent of the block shares one model object (one HTTP client;
    one :class:`TestModel` whose per-agent answers go down the options in turn).
    """
    token = _default.set(resolve_model(model))
    try:
        yield
    finally:
        _default.reset(token)


def current_model() -> str | Model | None:
    """The model set by the innermost :func:`use_model`, if any."""
    return _default.get()


def __getattr__(name: str) -> Any:
    if name == "ReplayModel":  # it reads journals: loaded when asked for
        from podium.models._replay import ReplayModel

        return ReplayModel
    raise AttributeError(f"module 'podium.models' has no attribute {name!r}")


_REMOTE: dict[tuple[str | None, ...], Model] = {}
"""Models of remote providers by spec (and the environment they were made with): one HTTP client and connection
pool per endpoint for the process, however many tasks name it by its spec."""


def resolve_model(spec: str | Model) -> Model:
    """The model a spec names (see the module docstring); a :class:`Model` is returned as it is.

    A remote provider's model is made once per spec and shared (its HTTP client keeps its connections, per event
    loop); ``test`` and ``local`` give a fresh object each time (a ``TestModel`` counts its own calls).

    Raises:
        ConfigError: the spec names no model podium knows, or its extra is not installed.
    """
    if not isinstance(spec, str):
        return spec
    if spec == "test":
        return TestModel()
    if spec == "local":
        from podium.models._local import LocalModel

        return LocalModel()
    key = (spec, *(os.environ.get(v) for v in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "ANTHROPIC_API_KEY")))
    model = _REMOTE.get(key)
    if model is None:
        model = _REMOTE[key] = _remote(spec)
    return model


def _remote(spec: str) -> Model:
    if spec.startswith(("http://", "https://")):
        from podium.models._openai import OpenAICompatible

        base_url, _, model = spec.partition("#")
        return OpenAICompatible(base_url=base_url, model=model or "default")
    provider, sep, model = spec.partition(":")
    if not sep or not model:
        raise ConfigError(
            f"unknown model {spec!r}; use test, local, openai:<model>, ollama:<model>, anthropic:<model>, "
            f"or an OpenAI-compatible base URL like http://127.0.0.1:8080/v1#<model>"
        )
    if provider == "openai":
        from podium.models._openai import OpenAICompatible

        return OpenAICompatible(
            base_url=os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1"),
            model=model,
            api_key=os.environ.get("OPENAI_API_KEY"),
            name=spec,
        )
    if provider == "ollama":
        from podium.models._openai import OpenAICompatible

        return OpenAICompatible(base_url="http://127.0.0.1:11434/v1", model=model, name=spec)
    if provider == "anthropic":
        from podium.models._anthropic import AnthropicModel

        return AnthropicModel(model=model)
    raise ConfigError(f"unknown model provider {provider!r} in {spec!r}; use openai, ollama or anthropic")
