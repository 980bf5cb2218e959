#!/usr/bin/env bash
# Run the example entry point (examples/main.py). Arguments are passed through.
set -euo pipefail

# shellcheck source=scripts/_venv.sh
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"   # also cds to the repo root

exec python -m examples.main "$@"
