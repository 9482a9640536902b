"""The retraining DAG end to end with `dag.test()` on a migrated metadata DB, a tiny model and the fake Ollama.

Run 1 has enough new feedback: dataset, model version, evaluation, deployment and promotion are all recorded.
Run 2 has no feedback newer than the production model's dataset: the run skips. Run 3 has new feedback but its
model is worse than production (trained with a learning rate of 1e-9, it stays the base): nothing is deployed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from dagnostics_provider import prompt_format
from dagnostics_provider.analysis.schema import AnalysisResult
from dagnostics_provider.store.engine import session_scope
from dagnostics_provider.store.migrate import upgrade
from dagnostics_provider.store.models import DatasetVersion, Deployment, DeploymentStatus, ModelStatus, ModelVersion
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
def world(tmp_path_factory, request, tiny_converter):
    home = tmp_path_factory.mktemp("retraining-home")
    airflow = AirflowEnv(home)
    airflow.migrate(cache_dir=request.config.cache.mkdir("dagnostics-airflow-db"))
    store_url = f"sqlite:///{home / 'dagnostics.db'}"
    upgrade(store_url)
    # dag.test() serializes the DAG from the dags folder, so the example DAG is linked in as the demo does.
    (airflow.dags_folder / DAG_FILE.name).symlink_to(DAG_FILE)
    model_dir = _base_that_mostly_answers_unknown(tmp_path_factory.mktemp("tiny-llama"))
    with FakeOllama(models=[]) as fake:
        fake.answers["dagnostics-slm:latest"] = lambda _request: json.dumps(SMOKE_ANSWER)
        fake.answers["dagnostics-slm:v1.0"] = lambda _request: json.dumps(SMOKE_ANSWER)
        env = {
            **airflow.env,
            "AIRFLOW__DAGNOSTICS__SQL_ALCHEMY_CONN": store_url,
            "AIRFLOW__DAGNOSTICS__ARTIFACT_ROOT": str(home / "artifacts"),
            "AIRFLOW__DAGNOSTICS__LLM_BASE_URL": fake.url,
            # The deploy task exports GGUF with llama.cpp's converter, taught the tiny test tokenizer.
            "AIRFLOW__DAGNOSTICS__LLAMA_CPP_CONVERT_SCRIPT": str(tiny_converter),
            "HF_HUB_OFFLINE": "1",
            "OMP_NUM_THREADS": "1",
        }
        yield {"home": home, "store_url": store_url, "model_dir": model_dir, "fake": fake, "env": env}


def _reviewed_answer(category: str) -> AnalysisResult:
    """The analysis every review of :func:`_one_scenario_reviews` holds (with ``category`` swapped in)."""
    scenario = SCENARIOS[0]
    return AnalysisResult(
        error_message=scenario.error,
        category=category,
        severity=scenario.severity,
        confidence=0.9,
        reasoning=f"Checked by alice: the root cause is the {scenario.category.replace('_', ' ')}.",
        error_lines=[scenario.error],
        suggested_actions=[f"Fix the {scenario.task_id} dependency", "Re-run the task"],
    )


# What the stand-in "instruct model" says for this failure: usually the wrong category, sometimes the right one.
BASE_ANSWER_MIX = ("unknown",) * 5 + ("configuration_error",) * 3 + ("dependency_failure",) * 2


def _base_that_mostly_answers_unknown(directory: Path) -> Path:
    """A tiny Llama taught (full fine-tuning, ~10 s) to answer this failure with valid analysis JSON whose category is
    mostly wrong, like a general instruct model before it learns the team's corrections. Greedy decoding picks the
    wrong category, so the base scores 0 on category accuracy; a short LoRA run on the reviews only has to shift
    one choice the base already knows. (A random tiny model cannot learn the JSON with LoRA in CI time.)"""
    import random

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tiny_models.llama(directory, hidden=64)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModelForCausalLM.from_pretrained(directory)
    answers = [prompt_format.render_completion(_reviewed_answer(c)) + tokenizer.eos_token for c in BASE_ANSWER_MIX]
    prompts = [
        tokenizer.apply_chat_template(
            prompt_format.chat_messages(SCENARIOS[0].context.format(n=n)), tokenize=False, add_generation_prompt=True
        )
        for n in range(30)
    ]
    torch.manual_seed(0)
    rng = random.Random(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(150):
        batch = [(rng.choice(prompts), rng.choice(answers)) for _ in range(8)]
        encoded = tokenizer([p + a for p, a in batch], return_tensors="pt", padding=True)
        labels = encoded.input_ids.clone()
        labels[encoded.attention_mask == 0] = -100
        for row, (prompt, _) in enumerate(batch):
            labels[row, : len(tokenizer(prompt).input_ids)] = -100
        model(**encoded, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(directory)
    return directory


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
    store_url, fake = world["store_url"], world["fake"]
    _one_scenario_reviews(store_url, 24, start=0)

    first = _run(world, epochs=8, learning_rate=2e-3)
    gate_lines = first.pop("gate")
    assert first["tasks"] == {
        "check_feedback": "success",
        "generate_dataset": "success",
        "train_and_evaluate": "success",
        "gate": "success",
        "deploy": "success",
        "summary": "success",
    }, (first, gate_lines)
    assert any("deploy: beats base" in line for line in gate_lines), gate_lines
    (dataset,) = _rows(store_url, DatasetVersion)
    (model,) = _rows(store_url, ModelVersion)
    assert model.version == "dagnostics-slm-v1.0" and model.dataset_version_id == dataset.id
    assert model.status is ModelStatus.production
    fine_tuned, base = model.metrics["fine_tuned"], model.metrics["base"]
    assert fine_tuned["category_accuracy"] > base["category_accuracy"]
    assert fine_tuned["schema_valid_rate"] >= base["schema_valid_rate"]
    version_dir = world["home"] / "artifacts" / "models" / "dagnostics-slm-v1.0"
    for name in ("evaluation_results.json", "training_info.json", "loss_curve.png", "adapter/adapter_config.json"):
        assert (version_dir / name).exists(), name
    (deployment,) = _rows(store_url, Deployment)
    assert (deployment.status, deployment.ollama_model, deployment.alias) == (
        DeploymentStatus.succeeded,
        "dagnostics-slm:v1.0",
        "dagnostics-slm:latest",
    )
    assert {"dagnostics-slm:v1.0", "dagnostics-slm:latest"} <= set(fake.models)

    second = _run(world, epochs=8, learning_rate=2e-3)  # no feedback newer than the production model's dataset
    second.pop("gate")
    assert second["tasks"]["check_feedback"] == "skipped"
    assert second["tasks"]["train_and_evaluate"] == "skipped" and second["tasks"]["summary"] == "success"
    assert len(_rows(store_url, ModelVersion)) == 1

    _one_scenario_reviews(store_url, 12, start=100)
    third = _run(world, epochs=1, learning_rate=1e-9)  # learns nothing: still the base, worse than production
    gate_lines = third.pop("gate")
    assert third["tasks"]["train_and_evaluate"] == "success"
    assert third["tasks"]["deploy"] == "skipped" and third["tasks"]["summary"] == "success"
    assert any("keep current: worse than production" in line for line in gate_lines), gate_lines
    models = _rows(store_url, ModelVersion)
    assert [(m.version, m.status) for m in models] == [
        ("dagnostics-slm-v1.0", ModelStatus.production),
        ("dagnostics-slm-v1.1", ModelStatus.candidate),
    ]
    assert len(_rows(store_url, Deployment)) == 1
