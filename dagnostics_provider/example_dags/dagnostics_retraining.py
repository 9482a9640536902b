"""Retrain the DAGnostics model from reviewed feedback, and deploy it when it beats production.

Weekly by default. Each step is its own task, passing paths and versions through XCom, so steps can run on
different workers (artifacts live under ``[dagnostics] artifact_root``, which may be object storage):

    check_feedback → generate_dataset → train_and_evaluate → gate → deploy → summary

* ``check_feedback`` skips the run (and with it everything after) until ``min_feedback`` reviews arrived since the
  dataset of the model in production.
* ``train_and_evaluate`` trains a LoRA adapter and evaluates it against its base and the production model.
* ``gate`` lets ``deploy`` run only if ``auto_deploy`` is on and the candidate beats production (category accuracy
  and schema-valid rate not worse, one of them better); otherwise ``deploy`` is skipped.
* ``summary`` always runs and logs what happened; set ``[dagnostics] retraining_notifier`` for Slack, e-mail...

Re-running a failed run creates no duplicate versions: the dataset is identified by its content hash, the model
version by (dataset, base model, parameters), and a retried training resumes from its last checkpoint.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, task

from dagnostics_provider.notifications.retraining import configured_notifiers
from dagnostics_provider.operators.dataset import GenerateDatasetOperator
from dagnostics_provider.operators.deploy import OllamaDeployOperator
from dagnostics_provider.operators.training import LoRATrainingOperator

log = logging.getLogger(__name__)
notifiers = configured_notifiers()

with DAG(
    dag_id="dagnostics_retraining",
    description="DAGnostics: dataset from reviews → LoRA fine-tune → evaluate → deploy to Ollama if better",
    start_date=datetime(2026, 1, 1),
    schedule="@weekly",
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=5)},
    dagrun_timeout=timedelta(hours=12),
    on_success_callback=notifiers,
    on_failure_callback=notifiers,
    params={
        "model_name": Param(
            None,
            type=["null", "string"],
            description="Base model: hub id, local folder, GGUF file or packaged base (smollm2-135m)",
        ),
        "epochs": Param(3, type="number", minimum=0.01),
        "learning_rate": Param(2e-4, type="number", exclusiveMinimum=0),
        "batch_size": Param(None, type=["null", "integer"], minimum=1),
        "min_feedback": Param(20, type="integer", minimum=1, description="New reviews needed to retrain"),
        "auto_deploy": Param(False, type="boolean", description="Deploy to Ollama when the model beats production"),
        "use_quantization": Param(False, type="boolean", description="4-bit QLoRA on a CUDA worker"),
        "force_cpu": Param(False, type="boolean"),
        "quantize": Param(
            None,
            type=["null", "string"],
            # Ollama's six create-time types in any case, refused at trigger rather than after training.
            pattern="^([fF]32|[fF]16|[bB][fF]16|[qQ]8_0|[qQ]4_[kK]_[sSmM])$",
            description="Ollama quantization: f32, f16, bf16, q8_0, q4_K_S or q4_K_M",
        ),
    },
    render_template_as_native_obj=True,
    tags=["dagnostics"],
) as dag:

    @task
    def check_feedback(params: dict[str, Any] | None = None) -> dict[str, Any]:
        from dagnostics_provider.compat import AirflowSkipException
        from dagnostics_provider.training.pipeline import NotEnoughFeedback, check_feedback

        try:
            return check_feedback(int(params["min_feedback"]))
        except NotEnoughFeedback as exc:
            raise AirflowSkipException(str(exc)) from exc

    feedback = check_feedback()

    dataset = GenerateDatasetOperator(task_id="generate_dataset", min_examples="{{ params.min_feedback }}")

    model = LoRATrainingOperator(
        task_id="train_and_evaluate",
        model_name="{{ params.model_name or '' }}",
        train_file="{{ ti.xcom_pull(task_ids='generate_dataset')['train_path'] }}",
        validation_file="{{ ti.xcom_pull(task_ids='generate_dataset')['validation_path'] }}",
        epochs="{{ params.epochs }}",
        learning_rate="{{ params.learning_rate }}",
        batch_size="{{ params.batch_size }}",
        use_quantization="{{ params.use_quantization }}",
        force_cpu="{{ params.force_cpu }}",
    )

    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def gate(trained: dict[str, Any], params: dict[str, Any] | None = None) -> bool:
        """True lets ``deploy`` run; False skips it (``summary`` still runs)."""
        from dagnostics_provider.training.pipeline import deployment_gate

        decision = deployment_gate(trained.get("metrics") or {})
        log.info("Deployment gate: %s: %s", "deploy" if decision.deploy else "keep current", decision.reason)
        return bool(params["auto_deploy"]) and decision.deploy

    decision = gate(model.output)

    deploy = OllamaDeployOperator(
        task_id="deploy",
        model_dir="{{ ti.xcom_pull(task_ids='train_and_evaluate')['uri'] }}",
        quantize="{{ params.quantize }}",
    )

    @task(trigger_rule="none_failed")
    def summary(params: dict[str, Any] | None = None, ti=None) -> str:
        from dagnostics_provider.training.pipeline import deployment_gate, summary_text

        steps: dict[str, Any] = {
            "feedback": ti.xcom_pull(task_ids="check_feedback"),
            "dataset": ti.xcom_pull(task_ids="generate_dataset"),
            "model": ti.xcom_pull(task_ids="train_and_evaluate"),
            "deployment": ti.xcom_pull(task_ids="deploy"),
        }
        if steps["model"]:
            decision = deployment_gate(steps["model"].get("metrics") or {})
            steps["gate"] = decision.to_dict()
            if not steps["deployment"]:
                steps["deploy_skipped"] = "auto deploy is off" if not params["auto_deploy"] else decision.reason
        text = summary_text(steps)
        log.info("%s", text)
        return text

    feedback >> dataset >> model >> decision >> deploy >> summary()
