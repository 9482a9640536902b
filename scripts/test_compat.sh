#!/usr/bin/env bash
# `make test-compat`: the plugin, listener, notifier, trigger, REST-hook and review-UI tests on Airflow 3.1, the
# oldest release DAGnostics claims, in a virtualenv of their own (.venv-airflow31; `make test` covers Airflow 3.3).
#
#   bash scripts/test_compat.sh [pytest args...]
#
# COMPAT_VENV          the virtualenv (default .venv-airflow31); created once, re-created when an input changes
# COMPAT_TESTS         more test paths to run, space-separated, on top of DEFAULT_TESTS below
# COMPAT_PYTHON        the interpreter that creates the virtualenv (default: $PYTHON, else python3)
set -euo pipefail
SCRIPT=$(realpath "${BASH_SOURCE[0]}")
cd "$(dirname "$SCRIPT")/.."

VENV=${COMPAT_VENV:-.venv-airflow31}
PYTHON=${COMPAT_PYTHON:-${PYTHON:-python3}}
CONSTRAINTS=constraints-airflow31.txt
PY=$VENV/bin/python

# Paths that do not exist (yet) are skipped with a note, so the list can name tests that are being written. In
# `make test`'s (alphabetical) order: some tests share one api-server and store per session.
# tests/hooks/test_airflow_api_hook.py checks the REST API v2 calls against a real 3.1 api-server;
# tests/e2e/test_failure_to_analysis.py has the listener record a real task's failure; tests/ui includes the
# real-api-server tests (test_api_server.py: the plugin loads, its external_views, /pluginsv2 with both auth
# managers). Not here: everything that needs the training or serving stack, and the browser tests (IGNORE).
DEFAULT_TESTS=(
    tests/e2e/test_failure_to_analysis.py
    tests/hooks/test_airflow_api_hook.py
    tests/notifications
    tests/plugins
    tests/test_compat.py
    tests/test_dags.py
    tests/triggers
    tests/ui
)
DESELECT=(
    # Nothing at present: tests that cannot run on 3.1 skip themselves (dagnostics_provider.compat).
)
# Their screenshots would replace the Airflow 3.3 ones in test-artifacts/ (and, with DAGNOSTICS_DOCS_SCREENSHOTS=1,
# in docs/images/); and Airflow 3.1's UI ignores nav_top_level, so "DAGnostics Feedback" sits in the nav's
# "Plugins" menu where they look for a top-level link (compat.nav_top_level_supported()).
IGNORE=(
    tests/ui/test_browser.py
)
# The [dev] extra brings the test tools; the heavy extras (training, serving) must stay out of this venv, and
# with them torch, transformers and llama.cpp, so a test that needs them fails here instead of passing by luck.
MUST_BE_ABSENT=(torch transformers llama-cpp-python)

# What the virtualenv is built from: when any of it changes, it is built again from scratch.
inputs_digest() {
    {
        cat pyproject.toml "$CONSTRAINTS"
        sed -n '/^install()/,/^}/p' "$SCRIPT"
        "$PYTHON" --version
    } | sha256sum | cut -d' ' -f1
}

install() {
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    # Keeps the virtualenv out of `git status` without touching the shared .gitignore.
    echo '*' >"$VENV/.gitignore"
    # pip shows the build backend's deprecation warnings even with --quiet (hundreds of lines): keep its output in
    # a log and show the end of it only when the install fails.
    local pip_log=$VENV/install.log
    if ! {
        "$PY" -m pip install --quiet --upgrade pip &&
            "$PY" -m pip install --quiet --constraint "$CONSTRAINTS" --editable ".[dev]" \
                apache-airflow apache-airflow-core apache-airflow-task-sdk \
                apache-airflow-providers-fab apache-airflow-providers-smtp
    } >"$pip_log" 2>&1; then
        tail -n 60 "$pip_log" >&2
        echo "test-compat: the install failed (whole output: $pip_log)" >&2
        exit 1
    fi
    local heavy
    for heavy in "${MUST_BE_ABSENT[@]}"; do
        if "$PY" -m pip show --quiet "$heavy" >/dev/null 2>&1; then
            echo "test-compat: $heavy got installed (through the [dev] extra?); keep it out of $VENV" >&2
            exit 1
        fi
    done
}

started=$SECONDS
digest=$(inputs_digest)
if [[ -x $PY && -f $VENV/.installed && $(<"$VENV/.installed") == "$digest" ]]; then
    echo "test-compat: reusing $VENV"
else
    echo "test-compat: installing Airflow 3.1 into $VENV (pins: $CONSTRAINTS)"
    install
    echo "$digest" >"$VENV/.installed"
fi
installed=$SECONDS
echo "test-compat: install took $((installed - started)) s;" \
    "$("$PY" -m pip list --format=freeze 2>/dev/null | grep -E '^apache-airflow(-core|-providers-fab)?==' | tr '\n' ' ')"

tests=()
# shellcheck disable=SC2206  # COMPAT_TESTS is a space-separated list of paths on purpose
for path in "${DEFAULT_TESTS[@]}" ${COMPAT_TESTS:-}; do
    if [[ -e ${path%%::*} ]]; then
        tests+=("$path")
    else
        echo "test-compat: skipping $path (not there)"
    fi
done
excluded=()
for node in "${DESELECT[@]}"; do
    excluded+=(--deselect "$node")
done
for path in "${IGNORE[@]}"; do
    excluded+=(--ignore "$path")
done

# PostgreSQL-backed store tests need the server `make test` starts; the store code is not Airflow-version bound.
# The pytest cache (the migrated-DB cache of tests/airflow_fixtures.py among it) stays inside this venv.
rc=0
"$PY" -m pytest -o cache_dir="$VENV/.pytest_cache" -m "not postgres" "${excluded[@]}" "${tests[@]}" "$@" || rc=$?
echo "test-compat: tests took $((SECONDS - installed)) s on Airflow 3.1"
# Exit code 5 is "no tests collected" (e.g. a -k filter that matches nothing): not a failure, as in `make test`.
if ((rc == 5)); then
    exit 0
fi
exit "$rc"
