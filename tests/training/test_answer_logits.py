"""The CPU loss from answer-position logits: the same loss and gradients as TRL's fused head, fewer projections."""

from __future__ import annotations

import pytest

from dagnostics_provider.training import answer_logits
from dagnostics_provider.training.trainer import build_trainer
from tests.training import tiny_models
from tests.training.tiny_models import quick_params

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        tiny_models.limit_threads()
        data = tiny_models.write_dataset(tmp_path_factory.mktemp("data"))
        model_dir = tiny_models.llama(tmp_path_factory.mktemp("llama"))
        built, _ = build_trainer(quick_params(model_dir), *data, tmp_path_factory.mktemp("out") / "v")
        yield built


def _batch(trainer, count: int = 4) -> dict:
    """Rows of different lengths, right-padded by the trainer's own collator: answers at different positions."""
    rows = [trainer.train_dataset[i] for i in range(count)]
    batch = trainer.data_collator(rows)
    assert len({len(row["input_ids"]) for row in rows}) > 1
    return batch


def _grads(model) -> dict[str, torch.Tensor]:
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    return grads


def test_a_cpu_run_uses_the_answer_logits_trainer(trainer):
    assert type(trainer).__name__ == "AnswerLogitsSFTTrainer"
    assert answer_logits.takes_logits_to_keep(trainer.model)


def test_loss_and_gradients_equal_trls_fused_head(trainer):
    model, batch = trainer.model, _batch(trainer)
    model.eval()  # no LoRA dropout, so both forwards see the same network
    fused = model(**batch, fused_lm_head=True)
    fused.loss.backward()
    expected = _grads(model)
    loss, stats = answer_logits.answer_loss(model, dict(batch))
    loss.backward()
    got = _grads(model)

    assert loss.item() == pytest.approx(fused.loss.item(), rel=1e-5)
    assert stats["tokens"].item() == fused.label_mask.sum().item()
    assert stats["correct"].item() == fused.is_top1.sum().item()
    assert stats["entropy_sum"].item() == pytest.approx(fused.entropy.sum().item(), rel=1e-4)
    assert expected.keys() == got.keys() and expected
    for name, grad in expected.items():
        torch.testing.assert_close(got[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_accumulation_divides_by_the_tokens_of_all_micro_batches(trainer):
    model, batch = trainer.model, _batch(trainer)
    model.eval()
    with torch.no_grad():
        mean, stats = answer_logits.answer_loss(model, dict(batch))
        summed, _ = answer_logits.answer_loss(model, dict(batch), num_items_in_batch=3 * stats["tokens"])
    assert summed.item() == pytest.approx(mean.item() / 3, rel=1e-5)


def test_only_the_answer_positions_meet_the_lm_head(trainer):
    model, batch = trainer.model, _batch(trainer)
    projected = []
    head = model.get_output_embeddings()
    hook = head.register_forward_hook(lambda _module, args, _out: projected.append(args[0].shape[1]))
    try:
        with torch.no_grad():
            answer_logits.answer_loss(model, dict(batch))
    finally:
        hook.remove()
    answer_tokens_per_row = (batch["labels"] != -100).sum(dim=1)
    assert projected == [len(answer_logits.answer_positions(batch["labels"]))]
    assert int(answer_tokens_per_row.max()) <= projected[0] < batch["input_ids"].shape[1] // 2


def test_training_logs_keep_trls_metrics(trainer):
    from transformers import EarlyStoppingCallback

    trainer.args.max_steps, trainer.args.eval_strategy, trainer.args.save_strategy = 2, "no", "no"
    trainer.args.load_best_model_at_end = False
    trainer.remove_callback(EarlyStoppingCallback)
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert logged
    for entry in logged:
        assert entry["loss"] > 0
        assert 0 <= entry["mean_token_accuracy"] <= 1
        assert entry["entropy"] > 0
        assert entry["num_tokens"] > 0
