"""Tiny random models, tokenizers and datasets for training, evaluation and deployment tests.

Nothing may be downloaded in tests, so every model here is built on the fly from a config with a tokenizer
trained in milliseconds on the dataset's own text. They have the architectures of real bases: Llama (SmolLM2,
with a ChatML chat template like SmolLM2-Instruct, or Qwen2.5's EOS that is not the end-of-turn marker), GPT-2
(DialoGPT, no chat template), T5 (flan-t5) and an encoder-only DistilBERT (which training must refuse). Their
outputs are noise; their shapes, special tokens and file layouts are the real thing, so everything around the model
is tested for real. :func:`script_answers` makes a Llama say exactly what a test needs, without training it.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable
from pathlib import Path

from dagnostics_provider import prompt_format
from dagnostics_provider.analysis.schema import AnalysisResult

# SmolLM2-Instruct's template: ChatML with <|im_start|>/<|im_end|> and a generation prompt.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_FAILURES = (
    (
        "resource_error",
        "high",
        "MemoryError: Unable to allocate {n}.{m} GiB for an array with shape ({n}000, {m}00)",
        "The worker ran out of memory while building the frame.",
        "Process the input in smaller chunks or give the worker more memory.",
    ),
    (
        "data_quality",
        "medium",
        "ValueError: column 'amount_{m}' contains {n}{m} null values",
        "The input file has nulls in a required column.",
        "Fix the upstream extract or filter the bad rows.",
    ),
    (
        "dependency_failure",
        "high",
        "requests.exceptions.ConnectionError: HTTPSConnectionPool(host='api{n}.example.com', port=443)",
        "The upstream API was unreachable.",
        "Check the API status and retry the task.",
    ),
    (
        "configuration_error",
        "medium",
        "KeyError: 'S3_BUCKET_{m}'",
        "A required setting is missing from the environment.",
        "Set the variable in the deployment configuration.",
    ),
    (
        "permission_error",
        "high",
        "psycopg2.errors.InsufficientPrivilege: permission denied for table orders_{n}",
        "The database user may not write to the table.",
        "Grant the role access to the table.",
    ),
    (
        "timeout_error",
        "low",
        "airflow.exceptions.AirflowTaskTimeout: Timeout, PID: {n}{m}{n}",
        "The task ran longer than its execution_timeout.",
        "Raise the timeout or speed up the query.",
    ),
)


NoiseLines = Callable[[random.Random], int]


def few_lines(rng: random.Random) -> int:
    return rng.randint(1, 4)


def example(index: int, rng: random.Random, noise_lines: NoiseLines = few_lines) -> tuple[str, AnalysisResult]:
    """One synthetic failure: the log context and its correct analysis (categories cycle with ``index``).

    ``noise_lines`` draws how many INFO lines precede the traceback, which sets how long the context is.
    """
    category, severity, error, reasoning, action = _FAILURES[index % len(_FAILURES)]
    line = error.format(n=rng.randint(1, 9), m=rng.randint(1, 9))
    task = rng.choice(("load_orders", "extract_users", "transform_sales", "export_report"))
    noise = [
        f"[2024-05-02, 10:{i % 60:02d}:00 UTC] {{taskinstance.py:{i}00}} INFO - Running {task} step {i}"
        for i in range(noise_lines(rng))
    ]
    context = "\n".join(
        [
            *noise,
            "Traceback (most recent call last):",
            f'  File "/opt/airflow/dags/{task}.py", line {rng.randint(10, 99)}, in execute',
            line,
            f"[2024-05-02, 10:09:59 UTC] {{taskinstance.py:1138}} INFO - Marking task as FAILED. task_id={task}",
        ]
    )
    result = AnalysisResult(
        error_message=line,
        category=category,
        severity=severity,
        confidence=0.9,
        reasoning=reasoning,
        error_lines=[line],
        suggested_actions=[action],
    )
    return context, result


def rows(count: int, seed: int = 0, noise_lines: NoiseLines = few_lines) -> list[dict]:
    """Dataset rows in the dataset builder's shape."""
    rng = random.Random(seed)
    return [
        {**prompt_format.training_example(*example(i, rng, noise_lines)), "metadata": {"source": "synthetic"}}
        for i in range(count)
    ]


def write_jsonl(path: Path, records: Iterable[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def write_dataset(
    directory: Path, train: int = 24, validation: int = 6, seed: int = 0, noise_lines: NoiseLines = few_lines
) -> tuple[Path, Path]:
    """``train_dataset.jsonl`` and ``validation_dataset.jsonl`` under ``directory``."""
    return (
        write_jsonl(directory / "train_dataset.jsonl", rows(train, seed, noise_lines)),
        write_jsonl(directory / "validation_dataset.jsonl", rows(validation, seed + 1, noise_lines)),
    )


def _corpus() -> list[str]:
    texts = [prompt_format.INSTRUCTION, prompt_format.PLAIN_TEMPLATE, "<|im_start|>system\nuser\nassistant\n"]
    for row in rows(60, seed=123):
        texts += [row["input"], row["output"]]
    return texts


def _bpe_tokenizer(special: list[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    return tok


def _save_tokenizer(tok, directory: Path, chat_template: str | None = None, **special: str):
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, **special)
    if chat_template:
        tokenizer.chat_template = chat_template
    tokenizer.save_pretrained(directory, save_jinja_files=False)
    return tokenizer


def llama(
    directory: Path,
    *,
    chat_template: bool = True,
    hidden: int = 32,
    max_positions: int = 1024,
    seed: int = 0,
    eos: str = "<|im_end|>",
) -> Path:
    """A 2-layer Llama with a ChatML tokenizer (like SmolLM2-Instruct); ``chat_template=False`` leaves it out.

    ``eos="<|endoftext|>"`` makes it Qwen2.5-style: turns still end with ``<|im_end|>``, which is then not EOS.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tokenizer = _save_tokenizer(
        _bpe_tokenizer(special, 2000),
        directory,
        CHATML_TEMPLATE if chat_template else None,
        bos_token="<|im_start|>",
        eos_token=eos,
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    LlamaForCausalLM(config).save_pretrained(directory)
    return directory


def gpt2(directory: Path, *, hidden: int = 32, seed: int = 0) -> Path:
    """A 2-layer GPT-2 (DialoGPT's architecture) whose tokenizer has no chat template and no pad token."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = _save_tokenizer(
        _bpe_tokenizer(["<|endoftext|>"], 2000),
        directory,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=hidden,
        n_layer=2,
        n_head=2,
        n_positions=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    GPT2LMHeadModel(config).save_pretrained(directory)
    return directory


def t5(directory: Path, *, hidden: int = 32, seed: int = 0) -> Path:
    """A 2+2-layer T5 (flan-t5's architecture) whose tokenizer appends ``</s>`` like T5's does."""
    import torch
    from tokenizers import processors
    from transformers import T5Config, T5ForConditionalGeneration

    tok = _bpe_tokenizer(["<pad>", "</s>", "<unk>"], 2000)
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tokenizer = _save_tokenizer(tok, directory, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    torch.manual_seed(seed)
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=hidden,
        d_ff=2 * hidden,
        d_kv=hidden // 4,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    T5ForConditionalGeneration(config).save_pretrained(directory)
    return directory


def distilbert(directory: Path) -> Path:
    """An encoder-only DistilBERT config (what the guide offered for 'classification'): training must refuse it."""
    from transformers import DistilBertConfig

    DistilBertConfig(
        vocab_size=100, dim=32, hidden_dim=64, n_layers=1, n_heads=2, architectures=["DistilBertForMaskedLM"]
    ).save_pretrained(directory)
    return directory


def limit_threads() -> None:
    """One torch thread: tests share two cores with other suites, and oversubscribed threads spin (10x slower)."""
    import torch

    torch.set_num_threads(1)


def quick_params(model_dir: Path, **overrides):
    """Training parameters for a run of a few seconds on a tiny model (one epoch, short sequences)."""
    from dagnostics_provider.training.trainer import TrainingParams

    defaults = {"epochs": 1.0, "batch_size": 4, "max_length": 512, "logging_steps": 2, "learning_rate": 5e-3}
    return TrainingParams(model_name=str(model_dir), **{**defaults, **overrides})


def script_answers(model, after: int, answer: list[int]) -> None:
    """Make a tiny Llama answer ``answer`` greedily after the token ``after``, then repeat its last token forever.

    The attention and MLP outputs are zeroed, so each position's hidden state is its token's embedding; the chain's
    tokens get orthogonal embeddings and an untied head maps each to the next. Nothing is trained, yet what the
    model says is known exactly, so a test can see where generation stops (the tokens must all differ).
    """
    import torch

    chain = [after, *answer]
    assert len(set(chain)) == len(chain) <= model.config.hidden_size, "a chain of distinct tokens, one per dimension"
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        embeddings = torch.zeros_like(model.model.embed_tokens.weight)
        head = torch.zeros_like(embeddings)
        for dimension, (token, following) in enumerate(zip(chain, [*answer, answer[-1]], strict=True)):
            embeddings[token, dimension] = 1.0
            head[following, dimension] = 10.0
        model.model.embed_tokens.weight = torch.nn.Parameter(embeddings)
        model.lm_head.weight = torch.nn.Parameter(head)
