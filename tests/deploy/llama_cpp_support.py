"""The real llama.cpp converter for tests, taught the tiny test tokenizers' pre-tokenizer.

llama.cpp's ``convert_hf_to_gguf.py`` recognises a byte-level BPE tokenizer by the hash of how it splits a fixed
text, and refuses tokenizers it has never seen: every real base has an entry, the tokenizers that
:mod:`tests.training.tiny_models` trains in milliseconds cannot. They split text with GPT-2's own regex
(``ByteLevel`` pre-tokenization), which is llama.cpp's ``gpt-2`` pre-tokenizer, so this wrapper answers ``gpt-2``
where the converter would give up and runs the unmodified converter otherwise. Tests pass it where users pass their
own script (``convert_script``), so everything else, conversion included, is the real thing.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

WRAPPER = textwrap.dedent(
    """
    import runpy
    import sys
    from pathlib import Path

    script = Path({script!r})
    sys.path[:0] = [str(script.parent), str(script.parent / "gguf-py")]
    from conversion import base

    recognised = base.TextModel.get_vocab_base_pre


    def tiny_tokenizers_are_gpt2(self, tokenizer):
        try:
            return recognised(self, tokenizer)
        except NotImplementedError:
            return "gpt-2"


    base.TextModel.get_vocab_base_pre = tiny_tokenizers_are_gpt2
    sys.argv[0] = str(script)
    runpy.run_path(str(script), run_name="__main__")
    """
)


def tiny_tokenizer_converter(real_script: Path, directory: Path) -> Path:
    """A converter script that runs ``real_script`` and accepts the tiny test tokenizers."""
    directory.mkdir(parents=True, exist_ok=True)
    wrapper = directory / "convert_tiny_hf_to_gguf.py"
    wrapper.write_text(WRAPPER.format(script=str(real_script)), encoding="utf-8")
    return wrapper
