#!/usr/bin/env bash
# Lint, format check, type check and tests. Extra arguments go to pytest.
# Runs every step even if an earlier one fails, then exits non-zero if any failed.
set -euo pipefail

# shellcheck source=scripts/_venv.sh
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"   # also cds to the repo root

failed=()

step() {
    local name="$1"
    shift
    echo
    echo "==> $name"
    local rc=0
    "$@" || rc=$?
    if [[ $rc -ne 0 ]]; then
        echo "==> FAILED: $name (exit $rc)"
        failed+=("$name")
    fi
    return 0
}

step "ruff check" ruff check .
step "ruff format --check" ruff format --check .
step "mypy" mypy

echo
echo "==> pytest $*"
rc=0
python -m pytest "$@" || rc=$?
if [[ $rc -eq 5 ]]; then
    echo "==> FAILED: pytest collected no tests (exit 5)"
    failed+=("pytest (no tests collected)")
elif [[ $rc -ne 0 ]]; then
    echo "==> FAILED: pytest (exit $rc)"
    failed+=("pytest")
fi

echo
if [[ ${#failed[@]} -gt 0 ]]; then
    summary="$(printf '%s, ' "${failed[@]}")"
    echo "==> test.sh: ${#failed[@]} step(s) failed: ${summary%, }"
    exit 1
fi
echo "==> test.sh: all checks passed"
