"""GGUF export with llama.cpp's ``convert_hf_to_gguf.py``: the file every Ollama version and llama.cpp load.

The script is the pinned one from the llama-cpp-python source distribution (:mod:`.llama_cpp_converter`) or a
user's own llama.cpp checkout (``[dagnostics] llama_cpp_convert_script``). It runs as
``python <script> <merged model folder> --outfile model.gguf --outtype <type>`` in a subprocess whose output goes
to the log, and its result is checked for the GGUF magic number so a script that "succeeds" without writing a
model fails here rather than inside Ollama.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

log = logging.getLogger(__name__)

GGUF_MAGIC = b"GGUF"
# convert_hf_to_gguf.py writes these itself; any other quantization is left to Ollama's create.
CONVERTER_OUTTYPES = ("f32", "f16", "bf16", "q8_0")


class GGUFConversionError(RuntimeError):
    """The converter failed or did not produce a GGUF file."""


def outtypes(quantize: str | None) -> tuple[str, str | None]:
    """(the converter's ``--outtype``, the quantization still to ask Ollama for).

    ``f32``, ``bf16`` and ``q8_0`` are written directly by the converter; Ollama refuses to quantize an already
    quantized GGUF, so it is not asked again. The k-quants (``q4_K_M``...) start from an f16 GGUF that Ollama
    quantizes during create.
    """
    if quantize and quantize.lower() in CONVERTER_OUTTYPES:
        return quantize.lower(), None
    return "f16", quantize


def convert(script: str | Path, model_dir: Path, outfile: Path, outtype: str) -> Path:
    """Run the converter on the merged model in ``model_dir``; return ``outfile`` once it holds a GGUF model."""
    script = Path(script).expanduser()
    if not script.is_file():
        raise GGUFConversionError(f"llama.cpp converter script {script} does not exist")
    command = [sys.executable, str(script), str(model_dir), "--outfile", str(outfile), "--outtype", outtype]
    log.info("Converting %s to GGUF (%s): %s", model_dir, outtype, " ".join(command))
    outfile.unlink(missing_ok=True)
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    ) as process:
        assert process.stdout is not None
        tail: list[str] = []
        for line in process.stdout:
            log.info("convert_hf_to_gguf: %s", line.rstrip())
            tail = [*tail[-19:], line.rstrip()]
    if process.returncode != 0:
        raise GGUFConversionError(
            f"{script.name} exited with status {process.returncode}; last output:\n" + "\n".join(tail)
        )
    if not outfile.is_file():
        raise GGUFConversionError(f"{script.name} exited successfully but wrote no {outfile.name}")
    with open(outfile, "rb") as stream:
        if stream.read(len(GGUF_MAGIC)) != GGUF_MAGIC:
            raise GGUFConversionError(f"{outfile} is not a GGUF file (it does not start with {GGUF_MAGIC!r})")
    return outfile
