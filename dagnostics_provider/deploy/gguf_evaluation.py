"""Evaluation as the model is served: GGUF exports of a version and of its base, answering in llama.cpp.

In transformers a 2-core CPU generates about 12 tokens/s, and a batch waits for its slowest answer. A base model
that repeats itself until ``max_new_tokens`` therefore turns an evaluation on a few hundred held-out logs into
many hours. llama.cpp generates about four times faster on the same CPU (docs/training.md, "Inference speed on
this machine"). Its GGUF file is also what Ollama and the ``llamacpp`` analyzer serve, so these answers are the
ones users get, merge, conversion and prompt template included.

The fine-tuned version is exported exactly as ``training deploy`` exports it (:func:`~.bundle.build_bundle`). Its
base is converted from the folder it was trained on, at the same precision, so the two differ only by the
adapter. Every prompt is the deployment's TEMPLATE rendered with the one instruction
(:mod:`dagnostics_provider.prompt_format`), tokenized as llama.cpp tokenizes a text prompt. The schema grammar is
the one the ``llamacpp`` analyzer uses.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagnostics_provider import prompt_format
from dagnostics_provider.analysis.schema import json_schema
from dagnostics_provider.deploy import architectures, gguf, llama_cpp_converter, modelfile
from dagnostics_provider.deploy.bundle import GGUF_FILE, build_bundle
from dagnostics_provider.training import model_loading
from dagnostics_provider.training.evaluation import BASE, PRODUCTION, fit_contexts, read_training_info
from dagnostics_provider.training.layout import TOKENIZER_DIR
from dagnostics_provider.training.progress import format_duration

log = logging.getLogger(__name__)

# Progress goes to the task log at least this often: one long answer can take a minute on a small CPU.
PROGRESS_EVERY_S = 30.0


class GgufEvaluationError(ValueError):
    """The version cannot be evaluated in llama.cpp; the message says what to use instead."""


@dataclass(frozen=True)
class LlamaCppAnswer:
    """One answer and the prompt tokens llama.cpp read, so callers can check the tokenization too."""

    text: str
    prompt_tokens: list[int]


def export_version(
    version_dir: Path, work_dir: Path, *, quantize: str | None = None, convert_script: str | None = None
) -> Path:
    """The version's GGUF file as ``training deploy`` writes it: the adapter merged, converted by llama.cpp."""
    bundle = build_bundle(
        version_dir,
        quantize=quantize,
        convert_script=convert_script,
        output_dir=work_dir,
        import_format=architectures.GGUF,
    )
    return bundle.directory / GGUF_FILE


def export_base(
    info: dict[str, Any], work_dir: Path, *, quantize: str | None = None, convert_script: str | None = None
) -> Path:
    """The base model the version was trained on (``training_info.json``), converted at the version's precision."""
    base = model_loading.resolve(
        info["base_model"],
        trust_remote_code=bool(info.get("trust_remote_code", False)),
        revision=info.get("base_model_revision"),
    )
    if base.local:
        folder = Path(base.source)
    else:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(base.source, revision=base.revision))
    work_dir.mkdir(parents=True, exist_ok=True)
    outtype, _ = gguf.outtypes(quantize)
    return gguf.convert(llama_cpp_converter.converter_script(convert_script), folder, work_dir / GGUF_FILE, outtype)


def check_supported(info: dict[str, Any]) -> None:
    """llama-cpp-python completes prompts with decoder-only models; a seq2seq version needs transformers."""
    if info.get("task_type") == model_loading.SEQ_2_SEQ_LM:
        raise GgufEvaluationError(
            f"{info.get('base_model')} is a sequence-to-sequence model, which llama.cpp does not complete; "
            "evaluate it with the transformers engine"
        )


def answer_contexts(
    gguf_file: Path,
    contexts: Sequence[str | None],
    *,
    template: modelfile.PromptTemplate,
    n_ctx: int,
    max_new_tokens: int,
    schema_constrained: bool = True,
    label: str = "the model",
    n_threads: int | None = None,
) -> list[LlamaCppAnswer]:
    """Greedy answers to ``contexts`` from ``gguf_file``, in order; a ``None`` context (too long) gets ``""``.

    ``n_threads`` defaults to every core: an evaluation is a batch job with its worker slot to itself, while
    llama-cpp-python's own default is half the cores.
    """
    import llama_cpp

    from dagnostics_provider.hooks.llamacpp import schema_grammar

    threads = n_threads or os.cpu_count() or 1
    grammar = schema_grammar(llama_cpp, json.dumps(json_schema())) if schema_constrained else None
    engine = llama_cpp.Llama(
        model_path=str(gguf_file), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, verbose=False
    )
    adds_bos = engine.metadata.get("tokenizer.ggml.add_bos_token") == "true"
    answers: list[LlamaCppAnswer] = []
    started = reported = time.monotonic()
    try:
        for done, context in enumerate(contexts, start=1):
            if context is None:
                answers.append(LlamaCppAnswer("", []))
                continue
            prompt = modelfile.render(
                template.template, system=prompt_format.INSTRUCTION, prompt=prompt_format.render_input(context)
            )
            # As llama.cpp tokenizes a text prompt: BOS where the GGUF asks for it, special tokens parsed.
            tokens = engine.tokenize(prompt.encode("utf-8"), add_bos=adds_bos, special=True)
            completion = engine.create_completion(
                tokens, max_tokens=max_new_tokens, temperature=0.0, grammar=grammar, stop=list(template.stop)
            )
            answers.append(LlamaCppAnswer(completion["choices"][0]["text"].strip(), tokens))
            now = time.monotonic()
            if now - reported >= PROGRESS_EVERY_S or done == len(contexts):
                reported, elapsed = now, now - started
                log.info(
                    "Generating with %s in llama.cpp: %d/%d answered, elapsed %s, ETA %s",
                    label,
                    done,
                    len(contexts),
                    format_duration(elapsed),
                    format_duration(elapsed / done * (len(contexts) - done)),
                )
    finally:
        engine.close()
    return answers


class _Version:
    """What a version's prompts are built from: its tokenizer, prompt style, template and length limit."""

    def __init__(self, version_dir: Path) -> None:
        self.info = read_training_info(version_dir)
        check_supported(self.info)
        self.tokenizer = model_loading.load_tokenizer(str(version_dir / TOKENIZER_DIR))
        if self.info.get("chat_template") and not self.tokenizer.chat_template:
            self.tokenizer.chat_template = self.info["chat_template"]
        self.style = self.info["prompt_style"]
        self.max_length = int(self.info["max_length"])
        self.template = modelfile.prompt_template(self.style, self.tokenizer)

    def fitted(self, contexts: Sequence[str], max_new_tokens: int) -> list[str | None]:
        """Each context cut to leave ``max_new_tokens`` of the version's length for the answer, as in training."""
        return fit_contexts(self.tokenizer, contexts, self.style, self.max_length, max_new_tokens)


class GgufAnswers:
    """The models of an evaluation as GGUF files in llama.cpp: exported on first use into a scratch folder.

    The exports are deleted by :meth:`close`: a 135M model takes about a minute to export, a kept f16 copy of
    every version and base several hundred MB each.
    """

    def __init__(
        self,
        version_dir: Path,
        production_dir: Path | None,
        *,
        quantize: str | None = None,
        convert_script: str | None = None,
        schema_constrained: bool = True,
    ) -> None:
        self._version_dir, self._production_dir = version_dir, production_dir
        self._version = _Version(version_dir)
        self.tokenizer = self._version.tokenizer
        self._quantize, self._convert_script = quantize, convert_script
        self._schema_constrained = schema_constrained
        self._scratch = Path(tempfile.mkdtemp(prefix="dagnostics-gguf-evaluation-"))
        self._files: dict[str, tuple[Path, _Version]] = {}

    def prepare(self, model: str) -> None:
        """Export ``model`` (``fine_tuned``, ``base`` or ``production``) to GGUF, once."""
        if model in self._files:
            return
        export = {"quantize": self._quantize, "convert_script": self._convert_script}
        work = self._scratch / model
        if model == BASE:  # the base answers the version's prompts: LoRA leaves tokenizer and template alone
            self._files[model] = (export_base(self._version.info, work, **export), self._version)
        elif model == PRODUCTION:
            assert self._production_dir is not None
            production = _Version(self._production_dir)
            self._files[model] = (export_version(self._production_dir, work, **export), production)
        else:
            self._files[model] = (export_version(self._version_dir, work, **export), self._version)

    def answers(self, model: str, contexts: Sequence[str], max_new_tokens: int, label: str) -> list[str]:
        """``model`` answering every context, in order; its export is deleted afterwards."""
        self.prepare(model)
        gguf_file, version = self._files.pop(model)
        answers = answer_contexts(
            gguf_file,
            version.fitted(contexts, max_new_tokens),
            template=version.template,
            n_ctx=version.max_length,
            max_new_tokens=max_new_tokens,
            schema_constrained=self._schema_constrained,
            label=label,
        )
        shutil.rmtree(gguf_file.parent, ignore_errors=True)
        return [answer.text for answer in answers]

    def close(self) -> None:
        shutil.rmtree(self._scratch, ignore_errors=True)
