"""The one prompt format of DAGnostics.

The analyzer's request, every dataset row, the training examples, evaluation and the Ollama template are all
built from the functions here.  A fine-tuned model is only as good as the match between what it was trained on
and what it is later asked, so nothing else in the code base may spell out prompt text.

Bump :data:`PROMPT_VERSION` whenever a change here would change the text a model sees: analyses record the
version they were made with, and datasets record the version their rows were rendered in.
"""

from __future__ import annotations

from typing import Any

from dagnostics_provider.analysis.schema import CATEGORY_DEFINITIONS, SEVERITIES, AnalysisResult

# v2: the instruction defines every category (docs/categories.md) instead of only naming them.
# v3: every log context line starts with its line number in the task log and "| " (analysis/context_lines.py), so
# that the reasoning, the review page and the training text refer to the same lines; the instruction says so.
PROMPT_VERSION = "dagnostics-v3"

INSTRUCTION = (
    "You are an expert data engineer analyzing Airflow ETL logs. Find the root cause of the failed task in the "
    'log context (each of its lines starts with its line number in the task log and "| ", which are not part of '
    "the log text) and answer with one JSON object with these fields: "
    '"error_message" (the root-cause error line, verbatim where possible), '
    '"category" (one of the categories defined at the end), '
    f'"severity" (one of {", ".join(SEVERITIES)}), '
    '"confidence" (a number from 0 to 1), '
    '"reasoning" (one or two sentences), '
    '"error_lines" (the log lines that show the error, verbatim, without that number) and '
    '"suggested_actions" (short, concrete steps for the on-call engineer).'
    " Categories, chosen by what has to change to fix the failure: "
    + "; ".join(f"{name}: {definition}" for name, definition in CATEGORY_DEFINITIONS.items())
    + "."
)

INPUT_HEADER = "Log Context:\n"


def render_input(context: str) -> str:
    """The user turn: the extracted log context (never the whole log) under a fixed header.

    The context is passed on as extraction built it, each line behind its log line number (``12| text``, see
    :mod:`dagnostics_provider.analysis.context_lines`), so the model sees the numbers the reviewer sees.
    """
    return INPUT_HEADER + context


def render_completion(result: AnalysisResult) -> str:
    """The assistant turn a model is trained to produce: the analysis as compact JSON in schema field order."""
    return result.to_json()


def chat_messages(context: str) -> list[dict[str, str]]:
    """System + user messages for chat APIs (Ollama ``/api/chat``, OpenAI-compatible ``/v1/chat/completions``)."""
    return [
        {"role": "system", "content": INSTRUCTION},
        {"role": "user", "content": render_input(context)},
    ]


def training_example(context: str, result: AnalysisResult) -> dict[str, Any]:
    """One training example in both forms its consumers read.

    ``instruction``/``input``/``output`` is the guide's documented format (and what people inspect);
    ``prompt``/``completion`` is the conversational form TRL's ``SFTTrainer`` trains on, computing the loss on
    the completion only.  Both are built here from the analyzer's own request, so training text cannot drift from
    what the deployed model is later asked.
    """
    output = render_completion(result)
    return {
        "instruction": INSTRUCTION,
        "input": render_input(context),
        "output": output,
        "prompt": chat_messages(context),
        "completion": [{"role": "assistant", "content": output}],
    }


# The rendering for models without a chat template (GPT-2 style bases such as DialoGPT, flan-t5). A fine-tuned
# model learns exactly these markers, so a server must reproduce them byte for byte: in an Ollama TEMPLATE,
# "### System:\n{{ .System }}\n\n### User:\n{{ .Prompt }}\n\n### Assistant:\n" with "### User:" as a stop
# sequence besides the tokenizer's EOS.
PLAIN_TEMPLATE = "### System:\n{system}\n\n### User:\n{user}\n\n### Assistant:\n"


def render_plain_prompt(context: str) -> str:
    """The whole prompt as one string for a model without a chat template; the answer follows it directly."""
    return PLAIN_TEMPLATE.format(system=INSTRUCTION, user=render_input(context))
