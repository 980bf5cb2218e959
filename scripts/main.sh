#!/usr/bin/env bash
# The main job: the content team (examples/content_team) on the embedded model, journaled in .podium/podium.db.
#   bash scripts/main.sh                                  # topic "tidal power"
#   bash scripts/main.sh --input "wind farms" --json      # any `podium run` option is passed through
set -euo pipefail

# shellcheck source=scripts/_venv.sh
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"   # also cds to the repo root

args=("$@")
if [[ " ${args[*]-} " != *" --input "* ]]; then
    args+=(--input "tidal power")
fi
exec podium run examples/content_team/crew.yaml "${args[@]}"
