"""Every DAG in dags/ (the demo's folder, and the provider's example DAGs it links to) imports cleanly."""

from __future__ import annotations

from pathlib import Path

from dagnostics_provider.compat import dag_bag

DAGS = Path(__file__).resolve().parents[1] / "dags"


def test_every_dag_imports_without_errors():
    bag = dag_bag(DAGS)
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {"dagnostics_demo_failures", "dagnostics_analyze_failures", "dagnostics_retraining"}


def test_example_dags_in_dags_are_links_not_copies():
    for name in ("dagnostics_analyze_failures.py", "dagnostics_retraining.py"):
        link = DAGS / name
        assert link.is_symlink(), f"{name} must link to the provider's example DAG"
        assert link.resolve() == (DAGS.parent / "dagnostics_provider" / "example_dags" / name).resolve()


def test_retraining_dag_shape():
    dag = dag_bag(DAGS).dags["dagnostics_retraining"]
    assert dag.task_ids == ["check_feedback", "generate_dataset", "train_and_evaluate", "gate", "deploy", "summary"]
    assert set(dag.params) >= {
        "model_name",
        "epochs",
        "learning_rate",
        "min_feedback",
        "auto_deploy",
        "use_quantization",
    }
    assert dag.get_task("summary").trigger_rule == "none_failed"
