"""The retraining loop's decisions, shared by the retraining DAG and ``dagnostics training pipeline``.

feedback check → dataset → training + evaluation → deployment gate → deployment → summary. The DAG runs each step
as its own task (so steps can run on different workers and retry alone); the CLI runs them in one process. Both
take their decisions here, so the loop behaves the same from a terminal and from Airflow.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

log = logging.getLogger(__name__)

# The metrics the gate compares: both must not get worse, and at least one must improve.
GATE_METRICS = ("category_accuracy", "schema_valid_rate")


class NotEnoughFeedback(Exception):
    """Fewer new reviews than asked for since the production model's dataset: nothing to retrain on yet."""

    def __init__(self, new_reviews: int, needed: int, since: str | None) -> None:
        self.new_reviews, self.needed, self.since = new_reviews, needed, since
        origin = f"since dataset {since} (the production model's)" if since else "so far (no model in production)"
        super().__init__(f"Only {new_reviews} new reviews {origin}; at least {needed} are needed to retrain.")


def production_dataset():
    """The dataset version the production model was trained on (None without a production model or dataset)."""
    from dagnostics_provider.store.engine import session_scope
    from dagnostics_provider.store.models import DatasetVersion
    from dagnostics_provider.training import registry

    version = registry.production_version()
    if version is None:
        return None
    dataset_id = registry.get_version(version).dataset_version_id
    if dataset_id is None:
        return None
    with session_scope() as session:
        dataset = session.get(DatasetVersion, dataset_id)
        if dataset is not None:
            session.expunge(dataset)
        return dataset


def check_feedback(min_feedback: int, min_rating: int | None = None) -> dict[str, Any]:
    """Count reviews newer than the production model's dataset; raise :class:`NotEnoughFeedback` below the bar."""
    from dagnostics_provider.store.datasets import new_reviews_since

    dataset = production_dataset()
    new_reviews = new_reviews_since(dataset, min_rating=min_rating)
    since = dataset.version if dataset is not None else None
    if new_reviews < min_feedback:
        raise NotEnoughFeedback(new_reviews, min_feedback, since)
    log.info("%d new reviews since %s: retraining", new_reviews, since or "the start")
    return {"new_reviews": new_reviews, "since_dataset": since}


@dataclass(frozen=True)
class GateDecision:
    """Whether a candidate replaces what serves now, and why (for the task log and the summary)."""

    deploy: bool
    reason: str
    compared_to: str  # "production" or "base"
    candidate: dict[str, Any] = field(default_factory=dict)
    reference: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def deployment_gate(metrics: dict[str, Any]) -> GateDecision:
    """The documented gate: against production (or, with none, the base model), category accuracy and schema-valid
    rate must not be worse and at least one must be better. Missing metrics never pass."""
    candidate = metrics.get("fine_tuned") or {}
    compared_to = "production" if metrics.get("production") else "base"
    reference = metrics.get(compared_to) or {}
    picked = {name: candidate.get(name) for name in GATE_METRICS}
    against = {name: reference.get(name) for name in GATE_METRICS}
    missing = [name for name in GATE_METRICS if picked[name] is None or against[name] is None]
    if missing:
        return GateDecision(False, f"missing metrics {', '.join(missing)}", compared_to, picked, against)
    worse = [name for name in GATE_METRICS if picked[name] < against[name]]
    better = [name for name in GATE_METRICS if picked[name] > against[name]]
    details = ", ".join(f"{name} {picked[name]:.3f} vs {against[name]:.3f}" for name in GATE_METRICS)
    if worse:
        return GateDecision(
            False, f"worse than {compared_to} on {', '.join(worse)} ({details})", compared_to, picked, against
        )
    if not better:
        return GateDecision(False, f"no better than {compared_to} ({details})", compared_to, picked, against)
    return GateDecision(True, f"beats {compared_to} on {', '.join(better)} ({details})", compared_to, picked, against)


def summary_text(steps: dict[str, Any]) -> str:
    """One readable paragraph of what a retraining run did, for the task log and notifiers."""
    lines = ["DAGnostics retraining summary:"]
    feedback = steps.get("feedback") or {}
    if feedback:
        lines.append(f"  new reviews: {feedback.get('new_reviews')} (since {feedback.get('since_dataset') or 'start'})")
    dataset = steps.get("dataset") or {}
    if dataset:
        lines.append(
            f"  dataset: {dataset.get('version')} ({dataset.get('train_count')} train / "
            f"{dataset.get('validation_count')} validation){' reused' if dataset.get('reused') else ''}"
        )
    model = steps.get("model") or {}
    if model:
        fine_tuned = (model.get("metrics") or {}).get("fine_tuned") or {}
        lines.append(
            f"  model: {model.get('version')} category accuracy {fine_tuned.get('category_accuracy')}, "
            f"schema-valid {fine_tuned.get('schema_valid_rate')}"
        )
    gate = steps.get("gate") or {}
    if gate:
        lines.append(f"  gate: {'deploy' if gate.get('deploy') else 'keep current'}: {gate.get('reason')}")
    deployment = steps.get("deployment") or {}
    if deployment:
        lines.append(f"  deployed: {deployment.get('tag')} as {deployment.get('alias')} on {deployment.get('target')}")
    elif steps.get("deploy_skipped"):
        lines.append(f"  not deployed: {steps['deploy_skipped']}")
    return "\n".join(lines)


@dataclass(frozen=True)
class PipelineOptions:
    """The guide's ``dagnostics training pipeline`` options (and the retraining DAG's params)."""

    model_name: str | None = None
    min_feedback: int = 20
    epochs: float = 3
    learning_rate: float = 2e-4
    batch_size: int | None = None
    use_quantization: bool = False
    force_cpu: bool = False
    auto_deploy: bool = False
    quantize: str | None = None
    min_rating: int | None = None
    # Further TrainingParams fields (None keeps the default), e.g. the CPU levers of `make train-workflow-cpu`.
    training_options: dict[str, Any] = field(default_factory=dict)


def run_pipeline(options: PipelineOptions) -> dict[str, Any]:
    """Run the loop in this process (the CLI); returns the steps' results. Raises NotEnoughFeedback / skips."""
    from dagnostics_provider.training.dataset import DatasetOptions, generate_dataset
    from dagnostics_provider.training.trainer import training_params
    from dagnostics_provider.training.workflow import train_version

    steps: dict[str, Any] = {"feedback": check_feedback(options.min_feedback, options.min_rating)}
    rating = {} if options.min_rating is None else {"min_rating": options.min_rating}
    dataset = generate_dataset(options=DatasetOptions(min_examples=options.min_feedback, **rating))
    steps["dataset"] = dataset.to_dict()
    params = training_params(
        options.model_name,
        epochs=options.epochs,
        learning_rate=options.learning_rate,
        batch_size=options.batch_size,
        use_quantization=options.use_quantization,
        force_cpu=options.force_cpu,
        **options.training_options,
    )
    trained = train_version(params, str(dataset.train_path), str(dataset.validation_path), resume=True)
    steps["model"] = trained.to_xcom()
    gate = deployment_gate(trained.metrics or {})
    steps["gate"] = gate.to_dict()
    if not options.auto_deploy:
        steps["deploy_skipped"] = "auto deploy is off"
    elif not gate.deploy:
        steps["deploy_skipped"] = gate.reason
    else:
        from dagnostics_provider.deploy import ollama_deploy

        deployed = ollama_deploy.deploy(trained.uri, ollama_deploy.ollama_hook(), quantize=options.quantize)
        steps["deployment"] = deployed.to_dict()
    log.info("%s", summary_text(steps))
    return steps
