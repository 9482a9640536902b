"""llama.cpp in the analysis task itself: the ``llamacpp`` analyzer needs no model server.

A small fine-tuned model (SmolLM2-135M is about 100 MB as GGUF) answers in seconds on a worker's CPU, so a site
without an Ollama or vLLM server can still analyse with its own model. :class:`LlamaCppHook` loads the GGUF file
that :mod:`.llamacpp_source` picks with llama-cpp-python (the ``[serving]`` extra) and asks it exactly what the
server analyzers ask:

* **the same prompt**: ``prompt_format.chat_messages`` rendered with the chat template stored in the GGUF
  (``tokenizer.chat_template``, written from the tokenizer training used) by llama-cpp-python's own renderer,
  with the generation prompt, as TRL rendered the training prompts; a GGUF without a template gets the plain
  prompt, as such models were trained;
* **the same stop sequences as the Ollama Modelfile**, derived from that template by
  :func:`dagnostics_provider.deploy.modelfile.prompt_template`: EOS, the end-of-turn marker (which need not be
  EOS: Qwen2.5 ends turns with ``<|im_end|>``, its EOS is ``<|endoftext|>``) and the next turn's header;
* **the same structured output**: the analysis JSON schema as a llama.cpp grammar (its strings free of raw control
  characters, as with Ollama), compiled once per model and checked before sampling, because llama.cpp cannot
  compile large repetition bounds and the process then crashes.

This is not an Airflow hook: no connection describes a file on the worker; the name says where it sits among the
analyzer's engines. The loaded model is kept per process (keyed by path, modification time and settings, so a
re-deployed file is loaded again) because loading per analysis costs more than the analysis; one model at a time,
since each holds its weights in memory. A lock serialises generation because a ``Llama`` object is not thread-safe.
"""

from __future__ import annotations

import atexit
import importlib.util
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from dagnostics_provider import config, prompt_format
from dagnostics_provider.hooks import llamacpp_source
from dagnostics_provider.hooks.llm_errors import LLMRequestInvalid, LLMTimeout, LLMUnavailable
from dagnostics_provider.hooks.llm_http import config_timeout, positive_seconds

log = logging.getLogger(__name__)

MISSING_PACKAGE = (
    "llm_provider = llamacpp needs llama-cpp-python, which the [serving] extra installs: "
    "pip install 'airflow-provider-dagnostics[serving]'"
)
CHAT_TEMPLATE_KEY = "tokenizer.chat_template"
# llama-cpp-python's JSON-schema converter lets strings hold raw control characters (its ``char`` rule is
# ``[^"\\]``), which no JSON parser accepts: a model copying a log line with a tab would write an answer the grammar
# allowed and validation refuses. llama.cpp's own converter (Ollama's) excludes them; so does this rule.
LOOSE_CHAR_RULE = r'char ::= [^"\\] | '
STRICT_CHAR_RULE = r'char ::= [^"\\\x7F\x00-\x1F] | '


def llama_cpp_installed() -> bool:
    """Whether llama-cpp-python can be imported, without importing it (that loads the native library)."""
    return importlib.util.find_spec("llama_cpp") is not None


def require_llama_cpp() -> None:
    """Refuse, naming the extra to install, where llama-cpp-python is missing: a setup error, not a bad answer."""
    if not llama_cpp_installed():
        raise ImportError(MISSING_PACKAGE)


def _llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise LLMUnavailable(f"{MISSING_PACKAGE} ({exc})") from None
    return llama_cpp


@dataclass(frozen=True)
class Completion:
    """One answer: the text up to the stop sequence, and why generation ended (``stop`` or ``length``)."""

    content: str
    model: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int


class TemplateTokenizer:
    """A GGUF's chat template behind the part of a tokenizer's API that the prompt derivations read.

    :mod:`dagnostics_provider.deploy.modelfile` and :mod:`dagnostics_provider.training.end_of_turn` derive the
    stop sequences from a transformers tokenizer; this gives them the GGUF's template rendered by llama-cpp-python's
    ``Jinja2ChatFormatter`` (the renderer its chat completions use), so the stops are derived from the very
    renderings this process feeds the model.
    """

    def __init__(self, chat_template: str | None, *, eos_token: str, bos_token: str) -> None:
        self.chat_template = chat_template
        self.eos_token = eos_token
        self.bos_token = bos_token
        self._formatters: dict[bool, Any] = {}

    def apply_chat_template(
        self, messages: list[dict[str, str]], *, tokenize: bool = False, add_generation_prompt: bool = False
    ) -> str:
        if tokenize:
            raise NotImplementedError("TemplateTokenizer renders text only; llama.cpp tokenizes")
        return self._formatter(add_generation_prompt)(messages=messages).prompt

    def _formatter(self, add_generation_prompt: bool) -> Any:
        if add_generation_prompt not in self._formatters:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            self._formatters[add_generation_prompt] = Jinja2ChatFormatter(
                template=self.chat_template or "",
                eos_token=self.eos_token,
                bos_token=self.bos_token,
                add_generation_prompt=add_generation_prompt,
            )
        return self._formatters[add_generation_prompt]


@dataclass(frozen=True)
class PromptFormat:
    """How one model is prompted: its prompt style, where its answers end, whether the prompt gets BOS."""

    style: str  # sft_data.CHAT_TEMPLATE or sft_data.PLAIN
    stop: tuple[str, ...]
    add_bos: bool
    tokenizer: TemplateTokenizer = field(repr=False)

    def render(self, messages: list[dict[str, str]]) -> str:
        """The prompt text for ``messages`` (a system and a user message), as training rendered it."""
        from dagnostics_provider.training.sft_data import CHAT_TEMPLATE

        if self.style == CHAT_TEMPLATE:
            return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True)
        contents = {message["role"]: message["content"] for message in messages}
        return prompt_format.PLAIN_TEMPLATE.format(system=contents.get("system", ""), user=contents.get("user", ""))


def prompt_format_of(llama: Any) -> PromptFormat:
    """The prompt style and stop sequences of a loaded model, from its GGUF metadata.

    The stops come from :func:`~dagnostics_provider.deploy.modelfile.prompt_template`, the derivation the Ollama
    Modelfile of the same model uses. A template it cannot turn into an Ollama template (one that renders the system
    message twice) still has an end-of-turn marker, and that marker and EOS are what an answer must stop on.

    Chat prompts get no BOS from the tokenizer: a template writes the BOS it wants (``{{ bos_token }}``), as TRL's
    tokenization of the rendered template added none. Plain prompts were tokenized with the tokenizer's special
    tokens, so llama.cpp adds BOS where the GGUF says the tokenizer does.
    """
    from dagnostics_provider.deploy import modelfile
    from dagnostics_provider.training import end_of_turn
    from dagnostics_provider.training.sft_data import CHAT_TEMPLATE, PLAIN

    template = llama.metadata.get(CHAT_TEMPLATE_KEY) or None
    tokenizer = TemplateTokenizer(
        template, eos_token=_token_text(llama, llama.token_eos()), bos_token=_token_text(llama, llama.token_bos())
    )
    style = CHAT_TEMPLATE if template else PLAIN
    try:
        stop = modelfile.prompt_template(style, tokenizer).stop
    except modelfile.TemplateDerivationError:
        stop = tuple(dict.fromkeys(s for s in (tokenizer.eos_token, end_of_turn.marker(tokenizer)) if s))
    return PromptFormat(style=style, stop=stop, add_bos=style == PLAIN, tokenizer=tokenizer)


def _token_text(llama: Any, token_id: int) -> str:
    if token_id is None or token_id < 0:
        return ""
    return llama.detokenize([token_id], special=True).decode("utf-8", "replace")


class LoadedModel:
    """A ``Llama`` with its prompt format, its grammars and the lock every use of it holds."""

    def __init__(self, llama: Any, path: Path) -> None:
        self.llama = llama
        self.path = path
        self.prompt = prompt_format_of(llama)
        self.lock = threading.Lock()
        self.closed = False  # set under the lock: a user that waited for it must load the model again
        self._grammars: dict[str, Any] = {}

    def grammar(self, schema_json: str) -> Any:
        """The grammar of ``schema_json``, converted and compiled once; call with :attr:`lock` held.

        llama-cpp-python's chat completions fall back silently to "any JSON" when a schema cannot be converted,
        and a grammar llama.cpp cannot compile (large ``maxLength``/``maxItems`` bounds) crashes the process when
        sampling starts; here both are errors with a reason instead.
        """
        if schema_json not in self._grammars:
            llama_cpp = _llama_cpp()
            grammar = schema_grammar(llama_cpp, schema_json)
            if not _compiles(llama_cpp, self.llama, grammar):
                raise LLMRequestInvalid(
                    "llama.cpp cannot compile the grammar of the analysis schema (repetition bounds such as "
                    "maxLength or maxItems are too large for its grammar engine)"
                )
            self._grammars[schema_json] = grammar
        return self._grammars[schema_json]

    def close(self) -> None:
        with self.lock:
            self.closed = True
            self.llama.close()


def schema_grammar(llama_cpp: Any, schema_json: str) -> Any:
    """The ``LlamaGrammar`` of a JSON schema, its strings free of raw control characters (:data:`STRICT_CHAR_RULE`)."""
    try:
        grammar = llama_cpp.LlamaGrammar.from_json_schema(schema_json, verbose=False)
    except Exception as exc:  # the converter raises bare Exceptions and ValueErrors alike
        raise LLMRequestInvalid(f"llama.cpp cannot express the analysis schema as a grammar: {exc}") from None
    grammar._grammar = grammar._grammar.replace(LOOSE_CHAR_RULE, STRICT_CHAR_RULE)
    return grammar


def _compiles(llama_cpp: Any, llama: Any, grammar: Any) -> bool:
    """Whether llama.cpp compiles ``grammar`` for this model's vocabulary (it returns no sampler where it cannot)."""
    vocab = getattr(getattr(llama, "_model", None), "vocab", None)
    if vocab is None:  # a llama-cpp-python without these internals: leave the check to sampling
        return True
    sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar._grammar.encode("utf-8"), grammar._root.encode())
    if not sampler:
        return False
    llama_cpp.llama_sampler_free(sampler)
    return True


_CACHE: dict[tuple[Any, ...], LoadedModel] = {}
_LOAD_ATTEMPTS = 3
_CACHE_LOCK = threading.Lock()
_ATEXIT_REGISTERED = False


def load(path: Path, *, n_ctx: int, n_threads: int | None) -> LoadedModel:
    """The model at ``path``, loaded once per process and settings; a file changed on disk is loaded again.

    Loading another model (another file, the file rewritten, other settings) closes the previous one: an analysis
    task analyses with one model, and a promotion mid-run must not leave two models' weights in memory.
    """
    resolved = path.resolve()
    stat = resolved.stat()
    key = (str(resolved), stat.st_mtime_ns, stat.st_size, n_ctx, n_threads)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is not None:
            return cached
        while _CACHE:
            _CACHE.popitem()[1].close()
        loaded = LoadedModel(new_llama(resolved, n_ctx=n_ctx, n_threads=n_threads), resolved)
        _CACHE[key] = loaded
        _close_at_exit()
        return loaded


def new_llama(path: Path, *, n_ctx: int, n_threads: int | None) -> Any:
    """A ``Llama`` for ``path``; llama.cpp's refusal (unknown architecture, damaged file) as LLMUnavailable."""
    llama_cpp = _llama_cpp()
    started = time.monotonic()
    try:
        llama = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads, verbose=False)
    except (ValueError, RuntimeError) as exc:
        raise LLMUnavailable(f"llama.cpp cannot load {path}: {exc}") from None
    log.info(
        "Loaded GGUF model %s in %.1fs (context %d tokens, %s threads)",
        path,
        time.monotonic() - started,
        llama.n_ctx(),
        n_threads or "default",
    )
    return llama


def clear_cache() -> None:
    """Close every loaded model (tests, and the interpreter's exit: a ``Llama`` freed late logs errors)."""
    with _CACHE_LOCK:
        while _CACHE:
            _CACHE.popitem()[1].close()


def _close_at_exit() -> None:
    global _ATEXIT_REGISTERED
    if not _ATEXIT_REGISTERED:
        atexit.register(clear_cache)
        _ATEXIT_REGISTERED = True


class _Deadline:
    """A stopping criterion that ends generation once ``seconds`` have passed, and remembers that it did."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._end = clock() + seconds
        self.passed = False

    def __call__(self, input_ids: Any, logits: Any) -> bool:
        self.passed = self.passed or self._clock() > self._end
        return self.passed


class LlamaCppHook:
    """Analyses with a GGUF model loaded into this process.

    ``model_path`` defaults to ``[dagnostics] llamacpp_model`` (empty: the production version's GGUF); ``n_ctx``,
    ``n_threads`` and ``max_tokens`` to the ``llamacpp_*`` options; ``timeout`` to ``llm_timeout``, checked between
    tokens. Nothing is read or loaded until the first request, so building an analyzer stays cheap, and a missing
    model is looked for once per hook and explained once in the log.
    """

    provider_name = "llama.cpp"

    def __init__(
        self,
        model_path: str | None = None,
        *,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        max_tokens: int | None = None,
        timeout: float | None = None,
    ) -> None:
        self._model_path = model_path
        self.n_ctx = _non_negative(config.get_int("llamacpp_n_ctx") if n_ctx is None else n_ctx, "llamacpp_n_ctx")
        threads = config.get_int("llamacpp_n_threads") if n_threads is None else n_threads
        self.n_threads = _non_negative(threads, "llamacpp_n_threads") or None
        self.max_tokens = max_tokens if max_tokens is not None else config.get_int("llamacpp_max_tokens")
        if self.max_tokens < 1:
            raise ValueError(f"[dagnostics] llamacpp_max_tokens must be at least 1, got {self.max_tokens}")
        self._timeout = timeout
        self._seeds = itertools.count()
        self._missing: LLMUnavailable | None = None

    @cached_property
    def timeout(self) -> float:
        return positive_seconds(self._timeout, "timeout") or config_timeout()

    @property
    def gguf(self) -> llamacpp_source.GgufModel:
        """The GGUF file to load, found on first use; a missing one is explained once and then remembered."""
        if self._missing is not None:
            raise self._missing
        try:
            return self._gguf
        except LLMUnavailable as exc:
            log.warning("The llamacpp analyzer has no model, analyses fall back to the heuristic: %s", exc)
            self._missing = exc
            raise

    @cached_property
    def _gguf(self) -> llamacpp_source.GgufModel:
        configured = config.get("llamacpp_model") if self._model_path is None else self._model_path
        found = llamacpp_source.resolve(configured)
        log.info("The llamacpp analyzer uses %s (from %s)", found.path, found.source)
        return found

    @property
    def model(self) -> str:
        """The name analyses record: the registry version, or the configured file."""
        return self.gguf.label

    @property
    def truncation_hint(self) -> str:
        """What to raise when answers are cut off at the token limit (the analyzer puts it in the reason)."""
        return f"[dagnostics] llamacpp_max_tokens = {self.max_tokens}, llamacpp_n_ctx = {self.n_ctx}"

    def loaded(self) -> LoadedModel:
        """The loaded model (loading it on first use)."""
        return load(self.gguf.path, n_ctx=self.n_ctx, n_threads=self.n_threads)

    def chat(
        self,
        messages: list[dict[str, str]],
        *,
        json_schema: dict[str, Any] | None = None,
        temperature: float | None = None,
    ) -> Completion:
        """One answer to ``messages``, constrained to ``json_schema`` when given.

        Each request gets its own seed: llama-cpp-python otherwise reuses one, so a retry after an invalid answer
        would sample the same answer again.
        """
        temperature = config.get_float("llm_temperature") if temperature is None else temperature
        for _ in range(_LOAD_ATTEMPTS):
            loaded = self.loaded()
            with loaded.lock:
                if not loaded.closed:  # another model was loaded (and this one closed) while we waited
                    return self._generate(loaded, messages, json_schema, temperature)
        raise LLMUnavailable(f"the model was replaced {_LOAD_ATTEMPTS} times while waiting to generate")

    def _generate(
        self,
        loaded: LoadedModel,
        messages: list[dict[str, str]],
        json_schema: dict[str, Any] | None,
        temperature: float,
    ) -> Completion:
        """Generate with ``loaded``, whose lock the caller holds."""
        llama = loaded.llama
        prompt = loaded.prompt.render(messages)
        tokens = llama.tokenize(prompt.encode("utf-8"), add_bos=loaded.prompt.add_bos, special=True)
        if len(tokens) >= llama.n_ctx():
            raise LLMRequestInvalid(
                f"the prompt is {len(tokens)} tokens, more than the {llama.n_ctx()}-token context window; "
                "raise [dagnostics] llamacpp_n_ctx or lower max_context_chars"
            )
        # Not sorted: the grammar writes the fields in the schema's order, the order the model was trained on.
        grammar = None if json_schema is None else loaded.grammar(json.dumps(json_schema))
        deadline = _Deadline(self.timeout)
        result = llama.create_completion(
            prompt=tokens,
            max_tokens=self.max_tokens,
            temperature=temperature,
            stop=list(loaded.prompt.stop),
            seed=next(self._seeds),
            grammar=grammar,
            stopping_criteria=_llama_cpp().StoppingCriteriaList([deadline]),
        )
        if deadline.passed:
            raise LLMTimeout(f"llama.cpp did not finish the answer within {self.timeout:g}s")
        choice = result["choices"][0]
        usage = result.get("usage") or {}
        return Completion(
            content=choice["text"],
            model=self.model,
            finish_reason=choice.get("finish_reason"),
            prompt_tokens=int(usage.get("prompt_tokens", len(tokens))),
            completion_tokens=int(usage.get("completion_tokens", 0)),
        )


def _non_negative(value: int, option: str) -> int:
    if value < 0:
        raise ValueError(f"[dagnostics] {option} must be 0 or more, got {value}")
    return value
