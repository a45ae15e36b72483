#!/usr/bin/env bash
# CI, after the main test suite (.ci/run): the container tests, `pytest -m container
# tests/deploy`, against a real Docker engine. The engine (plus compose v2, hadolint,
# yamllint, kubernetes-validate) comes from the machine's containers setup script; where
# there is none, or the engine does not come up in time, this says why and exits 0 so that
# CI does not fail for lack of an engine. Otherwise it exits with pytest's code.
#
#   bash .ci/containers.sh
#
# Knobs: CONTAINERS_SETUP (path of setup.sh), SETUP_TIMEOUT_S (default 300),
# PYTHON (the interpreter with chatroom and its dev dependencies, default .venv/bin/python).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

log() { printf '\n== %s\n' "$*"; }
skip() {
  printf '\n== container tests NOT run: %s\n' "$*" >&2
  exit 0
}

setup=""
for candidate in "${CONTAINERS_SETUP:-}" ../shared/tools/containers/setup.sh /work/shared/tools/containers/setup.sh; do
  if [[ -n $candidate && -f $candidate ]]; then
    setup=$candidate
    break
  fi
done
[[ -n $setup ]] || skip "no containers setup script (../shared/tools/containers/setup.sh or /work/shared/...)"

python=${PYTHON:-.venv/bin/python}
[[ -x $python ]] || python=$(command -v python3)
"$python" -c 'import admin_cli, pytest' 2>/dev/null ||
  skip "$python cannot import chatroom and pytest: run .ci/run first (or set PYTHON)"

export DK=${DK:-/tmp/dk}
export DOCKER_CONFIG=$DK/docker-config
# Appended, not prepended: the tools' venv must not shadow the project's python.
export PATH=$PATH:$DK/venv/bin

engine_answers() { timeout 20 docker info >/dev/null 2>&1; }
started_here=0
engine_answers || started_here=1

log "Docker engine and tools ($setup)"
timeout_s=${SETUP_TIMEOUT_S:-300}
ok=0
for attempt in 1 2; do  # setup.sh is idempotent; a second run finishes what a first one tripped on
  timeout "$timeout_s" bash "$setup" tools
  rc=$?
  if ((rc == 0)); then
    ok=1
    break
  fi
  if ((rc == 124)); then
    echo "setup attempt $attempt: not done within ${timeout_s} s" >&2
  else
    echo "setup attempt $attempt failed with exit code $rc" >&2
  fi
done
((ok)) || skip "$setup failed or did not finish in time (see above and $DK/log)"
engine_answers || skip "the Docker engine does not answer (see $DK/log)"
docker compose version >/dev/null 2>&1 || skip "no docker compose v2 after setup"

if ((started_here)); then
  # Stop the engine this script started (by its pid file), whatever pytest does.
  trap 'log "stopping the Docker engine started here"; bash "$setup" stop || true' EXIT
fi

log "Container tests"
"$python" -m pytest -m container tests/deploy
status=$?
if [[ $status -eq 5 ]]; then
  echo "pytest collected no container tests: failing" >&2
  status=1
fi
exit "$status"
