"""Build a tiny random Llama-style model and a synthetic dataset for `make train-cpu-test` (no hub, no network).

The same factories the test suite uses; the model learns nothing useful, it proves the training path works on
this machine in seconds.  Usage: python scripts/tiny_training_inputs.py OUTPUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.training import tiny_models


def main(output: Path) -> None:
    model_dir = tiny_models.llama(output / "tiny-llama")
    train, validation = tiny_models.write_dataset(output / "data")
    print(f"model: {model_dir}\ntrain: {train}\nvalidation: {validation}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
