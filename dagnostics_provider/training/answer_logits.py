"""The training loss from logits computed at the answer positions only, where TRL would score every position.

The loss of a completion-only run needs the next-token distribution at the answer's positions, a few hundred of a
2,048-token row. TRL's fused LM head projects only those positions where Triton runs (CUDA); elsewhere, a CPU
above all, it projects every position through the 49k-token vocabulary in tiles and keeps what its backward pass
needs, which on SmolLM2-135M costs more memory than the whole model (docs/training.md, "Memory and speed on a
CPU"). Transformers' causal LMs take ``logits_to_keep``: given the positions, the backbone runs as before and only
those hidden states meet the LM head. The loss is the same cross-entropy over the same tokens, normalised the way
TRL normalises it, so a run's losses do not depend on which path computed them.
"""

from __future__ import annotations

import inspect
from typing import Any


def takes_logits_to_keep(model: Any) -> bool:
    """Whether the causal LM under ``model`` (PEFT wrapper or not) can project selected positions only."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(base.forward).parameters


def answer_positions(labels: Any) -> Any:
    """Positions whose logits predict a labelled token, in any row of the batch.

    A position ``p`` predicts token ``p + 1``; right-padded rows of similar length put their answers at nearly the
    same positions, so the union is little more than one row's answer.
    """
    return (labels[:, 1:] != -100).any(dim=0).nonzero().squeeze(-1)


def answer_loss(model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> tuple[Any, dict[str, Any]]:
    """Summed cross-entropy over the labelled tokens divided by their count (or ``num_items_in_batch`` under
    gradient accumulation, as TRL does), plus the token statistics TRL logs (entropy, top-1 accuracy, count)."""
    import torch
    import torch.nn.functional as F

    labels = inputs["labels"]
    positions = answer_positions(labels)
    forward_inputs = {key: value for key, value in inputs.items() if key != "labels"}
    outputs = model(**forward_inputs, use_cache=False, logits_to_keep=positions)
    logits = outputs.logits.float()  # (batch, len(positions), vocab)
    targets = labels[:, 1:][:, positions]
    mask = targets != -100
    token_loss = F.cross_entropy(logits.transpose(1, 2), targets.clamp(min=0), reduction="none") * mask
    count = mask.sum()
    denominator = count if num_items_in_batch is None else num_items_in_batch
    loss = token_loss.sum() / torch.as_tensor(denominator, device=token_loss.device).clamp(min=1)
    with torch.no_grad():
        log_probs = logits.log_softmax(dim=-1)
        entropy = -(log_probs.exp() * log_probs).sum(dim=-1)
        stats = {
            "tokens": count,
            "entropy_sum": (entropy * mask).sum(),
            "correct": ((logits.argmax(dim=-1) == targets) & mask).sum(),
        }
    return loss, stats


def answer_logits_trainer_class() -> type:
    """``SFTTrainer`` whose loss comes from :func:`answer_loss` (imported lazily: TRL is the training extra's).

    Only for models that :func:`takes_logits_to_keep`; the trainer checks that once, when it picks the class.
    """
    from trl import SFTTrainer

    class AnswerLogitsSFTTrainer(SFTTrainer):
        """SFTTrainer that projects only the answer positions; its logs keep TRL's keys and meaning."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if return_outputs:  # the logits themselves were asked for: only TRL's path builds them
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            mode = "train" if self.model.training else "eval"
            loss, stats = answer_loss(model, inputs, num_items_in_batch)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes  # DDP averages gradients, as in TRL's own loss
            gather = self.accelerator.gather_for_metrics
            tokens = gather(stats["tokens"]).sum()
            entropy_sum, correct = gather(stats["entropy_sum"]).sum(), gather(stats["correct"]).sum()
            self._metrics[mode]["entropy"].append((entropy_sum / tokens).item() if tokens > 0 else 0.0)
            self._metrics[mode]["mean_token_accuracy"].append((correct / tokens).item() if tokens > 0 else 0.0)
            if mode == "train" and "attention_mask" in inputs:
                self._total_train_tokens += gather(inputs["attention_mask"].sum()).sum().item()
            self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
            return loss

    return AnswerLogitsSFTTrainer
