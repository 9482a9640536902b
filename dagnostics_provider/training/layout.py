"""The names inside a model version directory, in one place for the trainer, the evaluator, the registry and the
deploy step (see docs/training.md, "Version directory")::

    <artifact root>/models/
        production.json                  {"version": "dagnostics-slm-v1.2", ...}
        dagnostics-slm-v1.2/
            adapter/                     adapter_config.json, adapter_model.safetensors (peft)
            tokenizer/                   tokenizer files; the chat template inlined in tokenizer_config.json
            training_info.json           how it was trained (written last: the directory's commit marker)
            evaluation_results.json      fine-tuned vs base vs production on the validation split
            loss_curve.png
            checkpoints/                 trainer checkpoints for --resume (the best one is kept)
"""

from __future__ import annotations

ADAPTER_DIR = "adapter"
TOKENIZER_DIR = "tokenizer"
CHECKPOINTS_DIR = "checkpoints"
TRAINING_INFO_FILE = "training_info.json"
EVALUATION_FILE = "evaluation_results.json"
PREDICTIONS_FILE = "evaluation_predictions.jsonl"  # every answer with its per-field verdicts
LOSS_CURVE_FILE = "loss_curve.png"
PRODUCTION_FILE = "production.json"

# Where an evaluation's models answer: the trained weights in transformers, or their GGUF exports in llama.cpp as
# served.  Here rather than in evaluation.py so the CLI can offer the choice without the [training] extra's imports.
TRANSFORMERS, LLAMA_CPP = "transformers", "llamacpp"
ENGINES = (TRANSFORMERS, LLAMA_CPP)
