"""Training progress people can follow: log lines for the Airflow task log, a loss curve saved with the model.

The Trainer's own progress bar is a tqdm bar that only makes sense on a terminal (in a task log it is a wall of
carriage returns) and its fallback prints raw dicts, so progress goes through Python logging, which Airflow
captures into the task log and the CLI prints to stderr.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

log = logging.getLogger(__name__)


def format_duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"


class ProgressLogCallback(TrainerCallback):
    """Logs step, epoch, loss, learning rate and ETA at every Trainer log event, and every evaluation's loss.

    The ETA is measured from the steps this run has done, so a resumed run does not count the checkpoint's steps
    as done in no time.
    """

    def __init__(self) -> None:
        self._started = 0.0
        self._first_step = 0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._started = time.monotonic()
        self._first_step = state.global_step
        log.info(
            "Training: %d steps over %s epoch(s), %d example(s) per step%s",
            state.max_steps,
            f"{args.num_train_epochs:g}",
            args.train_batch_size * args.gradient_accumulation_steps * max(1, args.world_size),
            f", resuming at step {state.global_step}" if state.global_step else "",
        )

    def eta_seconds(self, step: int, max_steps: int) -> float | None:
        done = step - self._first_step
        if done <= 0:
            return None
        return (time.monotonic() - self._started) / done * (max_steps - step)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        logs = logs or {}
        if "eval_loss" in logs:
            log.info(
                "Evaluation at step %d (epoch %.2f): eval_loss %.4f",
                state.global_step,
                state.epoch or 0,
                logs["eval_loss"],
            )
            return
        if "loss" not in logs:
            return  # the end-of-training summary; the caller logs its own
        eta = self.eta_seconds(state.global_step, state.max_steps)
        log.info(
            "Step %d/%d (epoch %.2f): loss %.4f, learning rate %.2e, elapsed %s, ETA %s",
            state.global_step,
            state.max_steps,
            state.epoch or 0,
            logs["loss"],
            logs.get("learning_rate", 0.0),
            format_duration(time.monotonic() - self._started),
            "unknown" if eta is None else format_duration(eta),
        )


def quiet_progress_bars() -> None:
    """Silence the per-file and per-map progress bars of transformers and datasets (noise in a task log)."""
    import datasets
    from transformers.utils import logging as transformers_logging

    datasets.disable_progress_bars()
    transformers_logging.disable_progress_bar()


def loss_points(log_history: list[dict[str, Any]]) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """(step, training loss) and (step, validation loss) pairs from ``trainer.state.log_history``."""
    train = [(entry["step"], entry["loss"]) for entry in log_history if "loss" in entry and "step" in entry]
    validation = [(entry["step"], entry["eval_loss"]) for entry in log_history if "eval_loss" in entry]
    return train, validation


def save_loss_curve(log_history: list[dict[str, Any]], path: Path, title: str) -> Path:
    """A PNG of training and validation loss per step, for people judging a run (over- or under-fitting)."""
    import matplotlib

    matplotlib.use("Agg")  # no display on workers
    from matplotlib import pyplot as plt

    train, validation = loss_points(log_history)
    figure, axes = plt.subplots(figsize=(7, 4), dpi=100)
    if train:
        axes.plot(*zip(*train, strict=True), label="training loss", color="#1f77b4")
    if validation:
        axes.plot(*zip(*validation, strict=True), label="validation loss (answer tokens)", color="#d62728", marker="o")
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    if train or validation:
        axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path
