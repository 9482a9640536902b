"""The retraining DAG end to end with `dag.test()` on a migrated metadata DB, a tiny model and the fake Ollama.

Run 1 has enough new feedback: the dataset version, the model version and its evaluation are recorded, and the gate
keeps the current model because the tiny model is no better than its base. Run 2 on the same feedback reuses the
dataset and the model version (a rerun creates no duplicates). Run 3, after v1.0 became production, finds no
feedback newer than its dataset and skips.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from dagnostics_provider.store.engine import session_scope
from dagnostics_provider.store.migrate import upgrade
from dagnostics_provider.store.models import DatasetVersion, Deployment, ModelStatus, ModelVersion
from tests.airflow_env import AirflowEnv
from tests.fakes.fake_ollama import FakeOllama
from tests.training import tiny_models
from tests.training.dataset_factories import SCENARIOS, StoreFactory

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DAG_FILE = ROOT / "dagnostics_provider" / "example_dags" / "dagnostics_retraining.py"
RUNNER = """
import json, runpy, sys
dag = runpy.run_path(sys.argv[1])["dag"]
run = dag.test(run_conf=json.loads(sys.argv[2]))
states = {ti.task_id: ti.state for ti in run.get_task_instances()}
print("DAGNOSTICS_RESULT=" + json.dumps({"state": str(run.state), "tasks": {k: str(v) for k, v in states.items()}}))
"""
SMOKE_ANSWER = {
    "error_message": SCENARIOS[0].error,
    "category": "dependency_failure",
    "severity": "high",
    "confidence": 0.9,
    "reasoning": "The warehouse refused the connection.",
    "error_lines": [SCENARIOS[0].error],
    "suggested_actions": ["Check the warehouse"],
}


@pytest.fixture(scope="module")
def world(tmp_path_factory, request):
    home = tmp_path_factory.mktemp("retraining-home")
    airflow = AirflowEnv(home)
    airflow.migrate(cache_dir=request.config.cache.mkdir("dagnostics-airflow-db"))
    store_url = f"sqlite:///{home / 'dagnostics.db'}"
    upgrade(store_url)
    # dag.test() serializes the DAG from the dags folder, so the example DAG is linked in as the demo does.
    (airflow.dags_folder / DAG_FILE.name).symlink_to(DAG_FILE)
    model_dir = tiny_models.llama(tmp_path_factory.mktemp("tiny-llama"), hidden=64)
    with FakeOllama(models=[]) as fake:
        fake.answers["dagnostics-slm:latest"] = lambda _request: json.dumps(SMOKE_ANSWER)
        fake.answers["dagnostics-slm:v1.0"] = lambda _request: json.dumps(SMOKE_ANSWER)
        env = {
            **airflow.env,
            "AIRFLOW__DAGNOSTICS__SQL_ALCHEMY_CONN": store_url,
            "AIRFLOW__DAGNOSTICS__ARTIFACT_ROOT": str(home / "artifacts"),
            "AIRFLOW__DAGNOSTICS__LLM_BASE_URL": fake.url,
            "HF_HUB_OFFLINE": "1",
            "OMP_NUM_THREADS": "1",
        }
        yield {"home": home, "store_url": store_url, "model_dir": model_dir, "fake": fake, "env": env}


def _run(world, **conf) -> dict:
    conf = {"model_name": str(world["model_dir"]), "min_feedback": 10, "auto_deploy": True, "batch_size": 4, **conf}
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, str(world["home"] / "dags" / DAG_FILE.name), json.dumps(conf)],
        env=world["env"],
        cwd=world["home"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    runs = sorted(world["home"].glob("dag-test-*.log"))
    (world["home"] / f"dag-test-{len(runs) + 1}.log").write_text(done.stdout + done.stderr)
    lines = [line for line in done.stdout.splitlines() if line.startswith("DAGNOSTICS_RESULT=")]
    assert lines, done.stdout[-6000:] + done.stderr[-6000:]
    result = json.loads(lines[-1].removeprefix("DAGNOSTICS_RESULT="))
    result["gate"] = [line for line in (done.stdout + done.stderr).splitlines() if "Deployment gate:" in line]
    return result


def _one_scenario_reviews(store_url: str, count: int, start: int) -> None:
    """Reviewed failures of one kind (their analyses are identical, the log contexts differ)."""
    factory = StoreFactory(store_url)
    factory._runs = start
    for variant in range(count):
        ids = factory.failure(SCENARIOS[0], variant=start + variant)
        factory.review(ids, SCENARIOS[0], reviewer="alice", rating=5)


def _rows(store_url, model):
    with session_scope(store_url) as session:
        return session.scalars(select(model).order_by(model.id)).all()


def test_retraining_loop(world):
    store_url = world["store_url"]
    _one_scenario_reviews(store_url, 24, start=0)

    first = _run(world, epochs=2, learning_rate=5e-3)
    gate_lines = first.pop("gate")
    assert first["tasks"] == {
        "check_feedback": "success",
        "generate_dataset": "success",
        "train_and_evaluate": "success",
        "gate": "success",
        "deploy": "skipped",
        "summary": "success",
    }, first
    # A tiny random model cannot learn to write the analysis JSON in CI time, so it is no better than its base:
    # the gate keeps the current model, and says why.
    assert any("keep current: no better than base" in line for line in gate_lines), gate_lines
    (dataset,) = _rows(store_url, DatasetVersion)
    (model,) = _rows(store_url, ModelVersion)
    assert model.version == "dagnostics-slm-v1.0" and model.dataset_version_id == dataset.id
    assert model.status is ModelStatus.candidate
    assert set(model.metrics) >= {"fine_tuned", "base", "production"}
    assert model.metrics["fine_tuned"]["examples"] == dataset.validation_count
    version_dir = world["home"] / "artifacts" / "models" / "dagnostics-slm-v1.0"
    for name in ("evaluation_results.json", "training_info.json", "loss_curve.png", "adapter/adapter_config.json"):
        assert (version_dir / name).exists(), name
    assert _rows(store_url, Deployment) == []

    second = _run(world, epochs=2, learning_rate=5e-3)  # same feedback, same parameters: nothing is duplicated
    second.pop("gate")
    assert second["tasks"]["train_and_evaluate"] == "success"
    assert [m.version for m in _rows(store_url, ModelVersion)] == ["dagnostics-slm-v1.0"]
    assert len(_rows(store_url, DatasetVersion)) == 1

    # Once v1.0 is production (promoted by hand here, as `dagnostics training rollback --to` does), the feedback
    # check counts only reviews newer than its dataset: none, so the next run skips.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW__DAGNOSTICS__SQL_ALCHEMY_CONN", store_url)
        patch.setenv("AIRFLOW__DAGNOSTICS__ARTIFACT_ROOT", str(world["home"] / "artifacts"))
        from dagnostics_provider.training import registry

        registry.promote("dagnostics-slm-v1.0")
    third = _run(world, epochs=2, learning_rate=5e-3)
    third.pop("gate")
    assert third["tasks"]["check_feedback"] == "skipped"
    assert third["tasks"]["train_and_evaluate"] == "skipped" and third["tasks"]["summary"] == "success"
    assert [m.version for m in _rows(store_url, ModelVersion)] == ["dagnostics-slm-v1.0"]
