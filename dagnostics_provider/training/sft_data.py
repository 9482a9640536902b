"""Dataset rows → what the trainer and the evaluator feed a model, rendered exactly as the analyzer asks.

Rows are re-rendered from their log context with :mod:`dagnostics_provider.prompt_format`, never from a stored
prompt string, so training text is always the current prompt. Two renderings exist: the tokenizer's chat template
(conversational prompt/completion; TRL applies the template) where the tokenizer has one, and
:data:`~dagnostics_provider.prompt_format.PLAIN_TEMPLATE` where it has none (GPT-2 style, seq2seq).

Every example must fit ``max_length`` *with its whole answer*: TRL truncates from the end, which would cut the
JSON and its EOS, so the model would never learn to finish an analysis. An overlong example gets the middle of
its log context cut out instead (marked with the extraction's own gap marker, which the model already knows from
real contexts); an example whose answer alone does not fit is dropped and counted.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from dagnostics_provider import prompt_format
from dagnostics_provider.analysis.context_lines import GAP, gutter, split_gutter

log = logging.getLogger(__name__)

PromptStyle = Literal["chat_template", "plain"]
CHAT_TEMPLATE: PromptStyle = "chat_template"
PLAIN: PromptStyle = "plain"
# Special tokens a tokenizer may add around a string beyond what the counted text shows.
_SPECIAL_TOKEN_SLACK = 4


@dataclass(frozen=True)
class Example:
    """One training or validation example: the log context a model sees and the analysis it should answer."""

    context: str
    output: str
    id: str | None = None  # the row's "id", or its review id: what the predictions file names it by


def _example_id(row: dict[str, Any], number: int) -> str:
    if isinstance(row.get("id"), (str, int)):
        return str(row["id"])
    review = (row.get("metadata") or {}).get("review_id") if isinstance(row.get("metadata"), dict) else None
    return f"review-{review}" if review is not None else f"line-{number}"


def read_examples(lines: Iterable[str]) -> list[Example]:
    """Examples from JSONL dataset rows (the ``input`` field is the rendered user turn, ``output`` the answer)."""
    examples = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        row = json.loads(line)
        try:
            context = row["input"].removeprefix(prompt_format.INPUT_HEADER)
            examples.append(Example(context, row["output"], _example_id(row, number)))
        except (KeyError, AttributeError, TypeError):
            raise ValueError(f"dataset line {number} has no 'input'/'output' text fields") from None
    return examples


def prompt_style(tokenizer: Any, task_type: str) -> PromptStyle:
    """The chat template for a causal LM whose tokenizer has one; the plain template otherwise."""
    return CHAT_TEMPLATE if task_type == "CAUSAL_LM" and getattr(tokenizer, "chat_template", None) else PLAIN


def prompt_ids(tokenizer: Any, context: str, style: PromptStyle) -> list[int]:
    """The prompt's token ids exactly as TRL tokenizes it for training (and so as the evaluator must)."""
    if style == CHAT_TEMPLATE:
        encoded = tokenizer.apply_chat_template(
            prompt_format.chat_messages(context), add_generation_prompt=True, tokenize=True, return_dict=True
        )
        return list(encoded["input_ids"])
    return list(tokenizer(prompt_format.render_plain_prompt(context))["input_ids"])


def _answer_tokens(tokenizer: Any, output: str) -> int:
    return len(tokenizer(output, add_special_tokens=False)["input_ids"]) + _SPECIAL_TOKEN_SLACK


def cut_middle(context: str, keep_chars: int) -> str:
    """``context`` with its middle replaced by the gap marker, keeping whole lines from both ends where it can.

    Context lines carry their log line number in front (:mod:`~dagnostics_provider.analysis.context_lines`); whole
    lines keep theirs.  Where not even one whole line fits at an end, a piece of that line is kept: the start of the
    first line (its number comes first) or the end of the last line, behind the last line's own number, so that
    every line of a numbered context stays numbered.
    """
    if len(context) <= keep_chars:
        return context
    half = max(0, keep_chars // 2)
    head, tail = context[:half], context[len(context) - half :] if half else ""
    if "\n" in head:
        head = head.rsplit("\n", 1)[0]
    elif split_gutter(context)[0] is not None and split_gutter(head)[0] is None:
        head = ""  # a piece of the first line's number, without any of its text
    if "\n" in tail:
        tail = tail.split("\n", 1)[1]
    elif tail:
        number, _ = split_gutter(context.rsplit("\n", 1)[-1])
        if number is not None:
            tail = gutter(number) + tail[len(gutter(number)) :]
    return "\n".join(part for part in (head, GAP, tail) if part)


def fit_context(tokenizer: Any, context: str, style: PromptStyle, budget: int) -> str | None:
    """The longest middle-cut of ``context`` whose prompt takes at most ``budget`` tokens; None if none does."""
    if len(prompt_ids(tokenizer, context, style)) <= budget:
        return context
    low, high, best = 0, len(context) - 1, None
    while low <= high:  # binary search on the characters kept
        keep = (low + high) // 2
        candidate = cut_middle(context, keep)
        if len(prompt_ids(tokenizer, candidate, style)) <= budget:
            best, low = candidate, keep + 1
        else:
            high = keep - 1
    return best


def fit_examples(
    tokenizer: Any, examples: list[Example], style: PromptStyle, max_length: int, *, answer_budget: int | None = None
) -> tuple[list[Example], int, int]:
    """Examples whose prompt plus answer fit ``max_length``: (fitted, how many were cut, how many dropped).

    ``answer_budget`` reserves a fixed number of tokens for the answer (generation, seq2seq targets) instead of
    the example's own answer length.
    """
    fitted, cut, dropped = [], 0, 0
    for example in examples:
        answer = answer_budget if answer_budget is not None else _answer_tokens(tokenizer, example.output)
        context = fit_context(tokenizer, example.context, style, max_length - answer)
        if context is None:
            dropped += 1
            continue
        cut += context != example.context
        fitted.append(Example(context, example.output))
    if cut or dropped:
        log.warning(
            "%d of %d examples were longer than max_length=%d tokens: %d had the middle of their log context cut, "
            "%d were dropped because the instruction and the answer alone do not fit",
            cut + dropped,
            len(examples),
            max_length,
            cut,
            dropped,
        )
    return fitted, cut, dropped


def sft_record(example: Example, style: PromptStyle) -> dict[str, Any]:
    """A TRL prompt/completion record: conversational for a chat template, strings for the plain template.

    TRL appends EOS to a string completion; a chat template ends the assistant turn with its own end token.
    """
    if style == CHAT_TEMPLATE:
        return {
            "prompt": prompt_format.chat_messages(example.context),
            "completion": [{"role": "assistant", "content": example.output}],
        }
    return {"prompt": prompt_format.render_plain_prompt(example.context), "completion": example.output}


def seq2seq_features(tokenizer: Any, example: Example) -> dict[str, list[int]]:
    """Encoder input and decoder labels; the loss falls on the answer alone by construction (T5 adds ``</s>``).

    Nothing is truncated: the prompt was fitted by :func:`fit_examples` (``answer_budget=0``, since the answer
    has a sequence of its own) and a cut answer would teach the model to stop mid-JSON.
    """
    source = tokenizer(prompt_format.render_plain_prompt(example.context))
    target = tokenizer(text_target=example.output)
    return {"input_ids": source["input_ids"], "attention_mask": source["attention_mask"], "labels": target["input_ids"]}
