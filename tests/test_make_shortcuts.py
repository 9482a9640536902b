"""The Makefile's training shortcuts are commands the CLI accepts, with the options the docs promise."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from dagnostics_provider.cli.main import build_parser


@pytest.mark.parametrize("target", ["train-cpu", "train-workflow-cpu", "train-local", "train-cpu-test"])
def test_the_makefiles_training_shortcuts_parse(target):
    """A misspelt option in a make shortcut would only show on a fresh machine, after the install."""
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text().replace("\\\n", " ")
    recipe = re.search(rf"^{re.escape(target)}:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE).group(1)
    command = next(line for line in recipe.splitlines() if "/dagnostics training " in line)
    words = shlex.split(command.split("/dagnostics ", 1)[1].replace("$(TRAIN_TEST_DIR)", "t"))
    parsed = build_parser().parse_args(words)
    assert parsed.handler is not None
    if target in ("train-cpu", "train-workflow-cpu"):
        assert (parsed.batch_size, parsed.gradient_accumulation_steps, parsed.lora_dropout) == (1, 4, 0.0)
        assert parsed.cpu_activation_checkpointing and parsed.cpu_bf16 and parsed.force_cpu
