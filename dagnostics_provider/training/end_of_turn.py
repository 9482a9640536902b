"""Where a model's answer ends: the marker its chat template writes after an assistant turn.

A chat template may end assistant turns with a marker that is not the tokenizer's EOS (Qwen2.5: EOS
``<|endoftext|>``, turns end with ``<|im_end|>``). A model trained on that template learns to write the marker, not
EOS, after its answer; whatever runs it (evaluation's ``generate``, the Ollama Modelfile's stop sequences, a llama.cpp
analyzer) must stop there, or the answer runs on to the length limit. All of them take the marker from
:func:`marker`, derived mechanically from the template, so they cannot disagree about where an answer ends.
"""

from __future__ import annotations

from typing import Any

from dagnostics_provider import prompt_format

# A string no real answer contains, so what follows it in a rendering is what the template writes after an answer.
ANSWER_SENTINEL = "DAGNOSTICS-ANSWER-2e9b4f"


def marker(tokenizer: Any) -> str:
    """The end-of-turn marker of ``tokenizer``'s chat template; empty without a template or where none follows.

    It is the first non-blank line after the assistant content of a rendered conversation (``<|im_end|>``,
    ``<|eot_id|>``, ``<end_of_turn>``): the newline a template writes after the marker is not what a model stops on.
    """
    if not getattr(tokenizer, "chat_template", None):
        return ""
    messages = [*prompt_format.chat_messages(""), {"role": "assistant", "content": ANSWER_SENTINEL}]
    conversation = tokenizer.apply_chat_template(messages, tokenize=False)
    return _first_line(conversation.partition(ANSWER_SENTINEL)[2])


def stop_token_ids(tokenizer: Any, end_marker: str) -> list[int]:
    """The token ids ``generate`` must stop at: EOS, and the marker where it is a single token.

    A marker of several tokens cannot be an EOS id; :func:`cut` removes it and what follows from the answer text.
    """
    ids = [] if tokenizer.eos_token_id is None else [tokenizer.eos_token_id]
    if end_marker:
        marker_ids = tokenizer(end_marker, add_special_tokens=False)["input_ids"]
        if len(marker_ids) == 1:
            ids.append(marker_ids[0])
    return list(dict.fromkeys(ids))


def cut(text: str, end_marker: str) -> str:
    """``text`` up to the end-of-turn marker: a model that did not stop on it still answered only what precedes it."""
    return text.partition(end_marker)[0] if end_marker else text


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")
