"""Does the exported GGUF answer as the evaluated model did? transformers and llama.cpp on the same examples.

Evaluation scores a version in transformers; users get the GGUF file in Ollama or in the ``llamacpp`` analyzer.
Between the two lie the merge, the conversion (weights, tokenizer, rope settings), quantization and the prompt
template, and a mistake in any of them changes answers while every schema check still passes. So both engines
answer the same examples greedily under the same schema grammar: transformers through
:mod:`dagnostics_provider.training.schema_decoding`, llama.cpp with the prompt rendered by the Ollama TEMPLATE the
deployment sends and the grammar llama-cpp-python builds for ``response_format``. The share of examples with the
same category and error message is the agreement; the prompt token ids are compared too, since a tokenizer or
template difference is the commonest cause of disagreement and the easiest to fix.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dagnostics_provider.analysis.schema import InvalidAnalysis, json_schema, parse_analysis
from dagnostics_provider.deploy import gguf_evaluation, modelfile
from dagnostics_provider.training import evaluation, sft_data
from dagnostics_provider.training.schema_decoding import SchemaGrammar

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExampleAgreement:
    """Both engines' answers to one example, and where they agree."""

    index: int
    transformers: str
    llama_cpp: str
    same_prompt_tokens: bool
    same_category: bool
    same_error_message: bool
    complete: bool  # both answers are whole, valid analyses (not cut at the token limit)

    @property
    def agrees(self) -> bool:
        return self.same_category and self.same_error_message


@dataclass(frozen=True)
class EngineAgreement:
    """The agreement of a GGUF file with its version in transformers over some examples."""

    gguf_file: str
    examples: list[ExampleAgreement] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Share of examples whose answers start with the same error message and category."""
        return sum(e.agrees for e in self.examples) / len(self.examples) if self.examples else 0.0

    @property
    def identical_rate(self) -> float:
        return sum(e.transformers == e.llama_cpp for e in self.examples) / len(self.examples) if self.examples else 0.0

    @property
    def complete_rate(self) -> float:
        return sum(e.complete for e in self.examples) / len(self.examples) if self.examples else 0.0

    @property
    def prompt_mismatches(self) -> int:
        return sum(not e.same_prompt_tokens for e in self.examples)

    def summary(self) -> dict[str, Any]:
        return {
            "gguf_file": self.gguf_file,
            "examples": len(self.examples),
            "agreement": round(self.rate, 4),
            "identical": round(self.identical_rate, 4),
            "complete": round(self.complete_rate, 4),
            "prompt_token_mismatches": self.prompt_mismatches,
        }

    def to_dict(self) -> dict[str, Any]:
        return {**self.summary(), "per_example": [asdict(e) for e in self.examples]}


def compare_engines(
    version_dir: Path,
    gguf_files: Sequence[Path],
    contexts: Sequence[str],
    *,
    max_new_tokens: int,
    loaded: evaluation.LoadedModel | None = None,
    batch_size: int = 4,
) -> list[EngineAgreement]:
    """Answer ``contexts`` with the version in transformers once, and with each of ``gguf_files`` in llama.cpp.

    ``loaded`` reuses a version already in memory. The files must hold the version's tokenizer (its f16 and
    quantized exports do): the first one's vocabulary builds transformers' grammar.
    """
    loaded = loaded or evaluation.load_version(version_dir, device="cpu")
    info = evaluation.read_training_info(version_dir)
    fitted = evaluation.fit_contexts(loaded.tokenizer, contexts, loaded.style, loaded.max_length, max_new_tokens)
    kept = [(i, context) for i, context in enumerate(fitted) if context is not None]
    schema = json_schema()
    started = time.monotonic()
    constraint = SchemaGrammar(gguf_files[0], schema)
    try:
        answers = evaluation.generate_answers(
            loaded, [c for _, c in kept], max_new_tokens=max_new_tokens, batch_size=batch_size, constraint=constraint
        )
    finally:
        constraint.close()
    log.info(
        "transformers answered %d example(s) under the schema grammar in %.1f s", len(kept), time.monotonic() - started
    )
    # What transformers did is the same for every GGUF file: its prompt tokens and its answer's reading.
    references = [
        _Reference(index, context, answer, sft_data.prompt_ids(loaded.tokenizer, context, loaded.style), _read(answer))
        for (index, context), answer in zip(kept, answers, strict=True)
    ]
    template = modelfile.prompt_template(info["prompt_style"], loaded.tokenizer)
    return [
        _llama_cpp_agreement(Path(gguf), references, template, loaded.max_length, max_new_tokens) for gguf in gguf_files
    ]


@dataclass(frozen=True)
class _Reading:
    """What one answer says, read once: its leading fields (even when cut short) and whether it is whole."""

    fields: tuple[str, str] | None  # (error_message, category)
    complete: bool


@dataclass(frozen=True)
class _Reference:
    """One example as transformers saw and answered it."""

    index: int
    context: str
    answer: str
    prompt_ids: list[int]
    reading: _Reading


def _llama_cpp_agreement(
    gguf_file: Path,
    references: list[_Reference],
    template: modelfile.PromptTemplate,
    n_ctx: int,
    max_new_tokens: int,
) -> EngineAgreement:
    """llama.cpp's answers from ``gguf_file``, prompted through the Ollama TEMPLATE, against transformers' ones."""
    started = time.monotonic()
    answers = gguf_evaluation.answer_contexts(
        gguf_file,
        [expected.context for expected in references],
        template=template,
        n_ctx=n_ctx,
        max_new_tokens=max_new_tokens,
        label=gguf_file.name,
    )
    results = [
        _compare(expected, answer.text, answer.prompt_tokens)
        for expected, answer in zip(references, answers, strict=True)
    ]
    agreement = EngineAgreement(str(gguf_file), results)
    log.info("%s: %s in %.1f s", gguf_file.name, agreement.summary(), time.monotonic() - started)
    return agreement


def _compare(expected: _Reference, answer: str, prompt_tokens: list[int]) -> ExampleAgreement:
    first, second = expected.reading, _read(answer)
    both = first.fields is not None and second.fields is not None
    return ExampleAgreement(
        index=expected.index,
        transformers=expected.answer,
        llama_cpp=answer,
        same_prompt_tokens=prompt_tokens == expected.prompt_ids,
        same_category=both and first.fields[1] == second.fields[1],
        same_error_message=both and first.fields[0] == second.fields[0],
        complete=first.complete and second.complete,
    )


# Under the schema grammar an answer opens with these two fields, in this order, so they can be read from an
# answer that was cut at max_new_tokens before it closed.
_LEADING_FIELDS = re.compile(r'^\{\s*"error_message"\s*:\s*("(?:[^"\\]|\\.)*")\s*,\s*"category"\s*:\s*"(\w+)"')


def _read(answer: str) -> _Reading:
    """The answer's (error_message, category), complete or cut short, and whether it is a whole analysis."""
    try:
        analysis = parse_analysis(answer)
    except InvalidAnalysis:
        match = _LEADING_FIELDS.match(answer)
        fields = None if match is None else (json.loads(match.group(1)), match.group(2))
        return _Reading(fields, complete=False)
    return _Reading((analysis.error_message, analysis.category), complete=True)
