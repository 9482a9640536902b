"""Evaluation by generation: the model answers every validation example through the analyzer's own prompt.

The original evaluation never generated, so it could not tell a model that writes valid analyses from one that
merely lowers a loss. Here each model answers greedily (bounded ``max_new_tokens``, batched), the answers are
judged by :mod:`dagnostics_provider.training.metrics`, and the same examples are answered by the base model
without the adapter and by the current production version, so the comparison is on equal terms. Results go to
``evaluation_results.json`` in the version directory, and every answer with its per-field verdicts to
``evaluation_predictions.jsonl`` beside it, so a person can see where a model goes wrong, not only how often.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dagnostics_provider.analysis.schema import json_schema, parse_analysis
from dagnostics_provider.training import end_of_turn, metrics, model_loading, sft_data
from dagnostics_provider.training.layout import (
    ADAPTER_DIR,
    ENGINES,
    EVALUATION_FILE,
    LLAMA_CPP,
    PREDICTIONS_FILE,
    TOKENIZER_DIR,
    TRAINING_INFO_FILE,
    TRANSFORMERS,
)
from dagnostics_provider.training.schema_decoding import SchemaGrammar, SchemaLogitsProcessor
from dagnostics_provider.training.trainer import read_lines, write_json

log = logging.getLogger(__name__)

# Room above the longest reference answer before an answer counts as unfinished.
ANSWER_HEADROOM_TOKENS = 32
MAX_NEW_TOKENS_CAP = 1024
SAMPLES_KEPT = 3
# The models an evaluation compares, as keys of evaluation_results.json and the predictions file.
FINE_TUNED, BASE, PRODUCTION = "fine_tuned", "base", "production"


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to answer, with the rendering it was trained on."""

    model: Any
    tokenizer: Any
    style: sft_data.PromptStyle
    task_type: str
    max_length: int


def read_training_info(version_dir: Path) -> dict[str, Any]:
    return json.loads((version_dir / TRAINING_INFO_FILE).read_text(encoding="utf-8"))


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_version(version_dir: Path, *, device: str | None = None) -> LoadedModel:
    """A trained version (base + adapter + its tokenizer) from its directory, for inference."""
    info = read_training_info(version_dir)
    trust = bool(info.get("trust_remote_code", False))
    base = model_loading.resolve(info["base_model"], trust_remote_code=trust, revision=info.get("base_model_revision"))
    tokenizer = model_loading.load_tokenizer(str(version_dir / TOKENIZER_DIR))
    model = model_loading.load_for_inference(
        base, version_dir / ADAPTER_DIR, device=device or default_device(), trust_remote_code=trust
    )
    return LoadedModel(model, tokenizer, info["prompt_style"], info["task_type"], int(info["max_length"]))


def generate_answers(
    loaded: LoadedModel,
    contexts: Sequence[str],
    *,
    max_new_tokens: int,
    batch_size: int = 8,
    constraint: SchemaGrammar | None = None,
    label: str = "the model",
) -> list[str]:
    """Greedy answers to ``contexts``, in order; a context that cannot fit even cut down gets an empty answer.

    Generation on a CPU takes minutes per batch, so every batch logs how many answers ``label`` has given and an
    estimate of the time left (a low one: batches go from the shortest prompts to the longest).

    ``constraint`` keeps every answer inside the analysis schema's grammar, as serving does
    (:mod:`.schema_decoding`).

    An answer ends at EOS or at the chat template's end-of-turn marker, which a model trained on the template writes
    instead of EOS where the two differ (Qwen2.5's ``<|im_end|>`` against its EOS ``<|endoftext|>``).
    """
    import torch

    from dagnostics_provider.training.progress import format_duration

    tokenizer, model = loaded.tokenizer, loaded.model
    end_marker = end_of_turn.marker(tokenizer) if loaded.style == sft_data.CHAT_TEMPLATE else ""
    stop_ids = end_of_turn.stop_token_ids(tokenizer, end_marker)
    seq2seq = loaded.task_type == model_loading.SEQ_2_SEQ_LM
    prompts = [
        None if fitted is None else sft_data.prompt_ids(tokenizer, fitted, loaded.style)
        for fitted in fit_contexts(
            tokenizer, contexts, loaded.style, loaded.max_length, 0 if seq2seq else max_new_tokens
        )
    ]
    answers = [""] * len(contexts)
    # Similar lengths together: less padding, and the order is restored by index.
    order = sorted((i for i, ids in enumerate(prompts) if ids is not None), key=lambda i: len(prompts[i]))
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id
    started = time.monotonic()
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        # Causal LMs continue from the last position, so their prompts are padded on the left.
        rows, mask = _padded([prompts[i] for i in batch], pad, left=not seq2seq)
        processors = _constrained(constraint, len(batch), 1 if seq2seq else len(rows[0]))
        try:
            with torch.no_grad():
                output = model.generate(
                    input_ids=torch.tensor(rows, device=device),
                    attention_mask=torch.tensor(mask, device=device),
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=pad,
                    eos_token_id=stop_ids,
                    logits_processor=processors,
                )
        finally:
            for processor in processors or ():
                processor.close()
        new_tokens = output if seq2seq else output[:, len(rows[0]) :]
        for i, text in zip(batch, tokenizer.batch_decode(new_tokens, skip_special_tokens=True), strict=True):
            answers[i] = end_of_turn.cut(text, end_marker).strip()
        done, elapsed = start + len(batch), time.monotonic() - started
        log.info(
            "Generating with %s: %d/%d answered, elapsed %s, ETA %s",
            label,
            done,
            len(order),
            format_duration(elapsed),
            format_duration(elapsed / done * (len(order) - done)),
        )
    return answers


def fit_contexts(
    tokenizer: Any, contexts: Sequence[str], style: sft_data.PromptStyle, max_length: int, max_new_tokens: int
) -> list[str | None]:
    """Each context cut so its prompt leaves ``max_new_tokens`` of ``max_length`` for the answer; None if none fits.

    A seq2seq model's answer has its own length, so its callers pass 0.
    """
    budget = max_length - max_new_tokens
    if budget <= 0:
        raise ValueError(f"max_new_tokens={max_new_tokens} leaves no room for a prompt in {max_length}")
    return [sft_data.fit_context(tokenizer, context, style, budget) for context in contexts]


def _constrained(constraint: SchemaGrammar | None, rows: int, prompt_width: int) -> Any:
    """The logits processors of one batch: a grammar state per row, or none without a constraint."""
    if constraint is None:
        return None
    from transformers import LogitsProcessorList

    return LogitsProcessorList([SchemaLogitsProcessor(constraint, rows, prompt_width)])


def _padded(batch: list[list[int]], pad: int, *, left: bool) -> tuple[list[list[int]], list[list[int]]]:
    """Token rows padded to the batch's longest, and their attention masks."""
    longest = max(len(ids) for ids in batch)
    rows, mask = [], []
    for ids in batch:
        fill = longest - len(ids)
        rows.append([pad] * fill + ids if left else ids + [pad] * fill)
        mask.append([0] * fill + [1] * len(ids) if left else [1] * len(ids) + [0] * fill)
    return rows, mask


def default_max_new_tokens(tokenizer: Any, outputs: Sequence[str]) -> int:
    """Enough for the longest reference answer plus headroom: a longer answer is junk, not worth waiting for."""
    longest = max((len(tokenizer(o, add_special_tokens=False)["input_ids"]) for o in outputs), default=0)
    return min(MAX_NEW_TOKENS_CAP, longest + ANSWER_HEADROOM_TOKENS)


def _score(label: str, answer: Callable[[str], list[str]], references: Sequence[Any]) -> tuple:
    """``answer``'s answers judged against ``references``; ``generation_s`` is the time the answering took."""
    started = time.monotonic()
    answers = answer(label)
    scores = metrics.compute_metrics(answers, references)
    scores["generation_s"] = round(time.monotonic() - started, 2)
    log.info("Evaluation of %s on %d examples: %s", label, len(answers), json.dumps(scores))
    return scores, answers


def vocabulary_gguf(info: dict[str, Any]) -> Path:
    """A GGUF file with the version's tokenizer, for the schema grammar: the GGUF its base was converted from.

    LoRA leaves the tokenizer alone, so the base's GGUF (a packaged base such as ``smollm2-135m``, or a ``.gguf``
    base file) holds the very vocabulary the version answers with.  A base from the hub or a folder has none.
    """
    from dagnostics_provider.training import base_models

    base = str(info.get("base_model") or "")
    if base in base_models.PACKAGED_BASES:
        return base_models.packaged_gguf(base)
    if base_models.is_gguf_file(base) and Path(base).is_file():
        return Path(base)
    raise ValueError(
        f"schema-constrained evaluation needs the tokenizer as a GGUF file, and the base {base!r} was not one "
        "(a packaged base or a .gguf file); evaluate without the constraint, or compare the exported GGUF with "
        "`dagnostics training check-gguf`"
    )


def evaluate_version(
    version_dir: Path,
    dataset_file: str | os.PathLike[str] | None = None,
    *,
    production_dir: Path | None = None,
    production_version: str | None = None,
    include_base: bool = True,
    max_new_tokens: int | None = None,
    batch_size: int = 8,
    device: str | None = None,
    schema_constrained: bool = False,
    engine: str = TRANSFORMERS,
    quantize: str | None = None,
    convert_script: str | None = None,
) -> dict[str, Any]:
    """Evaluate the version in ``version_dir`` (and its base, and production) and write evaluation_results.json.

    ``dataset_file`` defaults to the validation split the version was trained with.  With ``schema_constrained``
    every model answers under the analysis schema's llama.cpp grammar, as Ollama and the ``llamacpp`` analyzer
    serve it (see :mod:`.schema_decoding`).  ``engine`` is where the models answer: ``transformers`` (the
    trained weights; the grammar then needs the tokenizer's vocabulary as a GGUF file, which
    :func:`vocabulary_gguf` finds for a base that came from one) or ``llamacpp`` (GGUF exports at ``quantize``'s
    precision, as deployed: :mod:`dagnostics_provider.deploy.gguf_evaluation`; ``batch_size`` and ``device`` do
    not apply).
    """
    from dagnostics_provider.training.progress import quiet_progress_bars

    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if not sys.stderr.isatty():
        quiet_progress_bars()
    info = read_training_info(version_dir)
    dataset_file = dataset_file or info.get("dataset", {}).get("validation_file")
    if not dataset_file:
        raise ValueError(f"no dataset given and {version_dir / TRAINING_INFO_FILE} names no validation file")
    examples = sft_data.read_examples(read_lines(dataset_file))
    if not examples:
        raise ValueError(f"{dataset_file} has no examples")
    references = [parse_analysis(e.output) for e in examples]
    contexts = [e.context for e in examples]
    if engine == LLAMA_CPP:
        from dagnostics_provider.deploy.gguf_evaluation import GgufAnswers

        answerer: Any = GgufAnswers(
            version_dir,
            production_dir,
            quantize=quantize,
            convert_script=convert_script,
            schema_constrained=schema_constrained,
        )
    else:
        constraint = SchemaGrammar(vocabulary_gguf(info), json_schema()) if schema_constrained else None
        answerer = _TransformersAnswers(version_dir, production_dir, device, batch_size, constraint)
    max_new_tokens = max_new_tokens or default_max_new_tokens(answerer.tokenizer, [e.output for e in examples])
    results: dict[str, Any] = {
        "version": info.get("version"),
        "dataset": str(dataset_file),
        "examples": len(examples),
        "max_new_tokens": max_new_tokens,
        "schema_constrained": schema_constrained,
        "engine": engine,
    }

    def ask(model: str) -> Callable[[str], list[str]]:
        answerer.prepare(model)  # loading or exporting the model is not answering: generation_s leaves it out
        return lambda label: answerer.answers(model, contexts, max_new_tokens, label)

    try:
        results[FINE_TUNED], answers = _score("the fine-tuned model", ask(FINE_TUNED), references)
        all_answers = {FINE_TUNED: answers}
        results[BASE] = None
        if include_base:
            results[BASE], all_answers[BASE] = _score("the base model", ask(BASE), references)
        results[PRODUCTION], results["production_version"] = None, production_version
        if production_dir is not None:
            label = f"production ({production_version or production_dir.name})"
            results[PRODUCTION], all_answers[PRODUCTION] = _score(label, ask(PRODUCTION), references)
    finally:
        answerer.close()
    results["samples"] = [
        {"reference": e.output, "fine_tuned": a}
        for e, a in zip(examples[:SAMPLES_KEPT], answers[:SAMPLES_KEPT], strict=True)
    ]
    results["generated_at"] = datetime.now(timezone.utc).isoformat()
    results["predictions_file"] = PREDICTIONS_FILE
    write_predictions(version_dir / PREDICTIONS_FILE, examples, references, all_answers)
    write_json(version_dir / EVALUATION_FILE, results)
    return results


class _TransformersAnswers:
    """Answers from the trained weights: the version loaded once, its base as the same weights without LoRA."""

    def __init__(
        self,
        version_dir: Path,
        production_dir: Path | None,
        device: str | None,
        batch_size: int,
        constraint: SchemaGrammar | None,
    ) -> None:
        self._loaded: LoadedModel | None = load_version(version_dir, device=device)
        self.tokenizer = self._loaded.tokenizer
        self._production_dir, self._device = production_dir, device
        self._batch_size, self._constraint = batch_size, constraint

    def prepare(self, model: str) -> None:
        if model == PRODUCTION:
            assert self._production_dir is not None
            self._loaded = None  # production is asked last: the version's memory is freed first
            self._loaded = load_version(self._production_dir, device=self._device)

    def answers(self, model: str, contexts: Sequence[str], max_new_tokens: int, label: str) -> list[str]:
        def generate(loaded: LoadedModel) -> list[str]:
            return generate_answers(
                loaded,
                contexts,
                max_new_tokens=max_new_tokens,
                batch_size=self._batch_size,
                constraint=self._constraint,
                label=label,
            )

        assert self._loaded is not None
        if model == BASE:
            with self._loaded.model.disable_adapter():
                return generate(self._loaded)
        return generate(self._loaded)

    def close(self) -> None:
        self._loaded = None
        if self._constraint is not None:
            self._constraint.close()


def write_predictions(
    path: Path, examples: Sequence[Any], references: Sequence[Any], answers: dict[str, list[str]]
) -> None:
    """One JSON line per example: its id, the reference analysis, and each model's raw answer with its verdicts."""
    with path.open("w", encoding="utf-8") as out:
        for index, (example, reference) in enumerate(zip(examples, references, strict=True)):
            row: dict[str, Any] = {"index": index, "id": example.id, "reference": reference.model_dump()}
            for model, texts in answers.items():
                verdicts = metrics.verdicts(metrics.judge(texts[index]), reference)
                row[model] = {"answer": texts[index], "verdicts": verdicts}
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
