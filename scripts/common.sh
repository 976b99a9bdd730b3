# shellcheck shell=bash
# Helpers shared by scripts/install-deps, scripts/test and .ci/run.
# Sourced, not run: it sets no shell options of its own.

# The repository root, whichever directory the script was started from.
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# rustup installs into ~/.cargo/bin, which a non-login shell (CI, sudo,
# cron) may not have on PATH.
if ! command -v cargo >/dev/null 2>&1 && [[ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]]; then
    PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
    export PATH
fi

# Stage bookkeeping: each stage prints its name and how long it took, and
# if the script dies inside one, the EXIT trap names it.
current_stage=""
stage_started=0
script_started=$SECONDS

stage() {
    current_stage=$1
    stage_started=$SECONDS
    printf '\n==> %s\n' "$current_stage"
}

stage_done() {
    printf '<== %s: ok, %ds\n' "$current_stage" $((SECONDS - stage_started))
    current_stage=""
}

report_exit() {
    local status=$?
    if [[ $status -ne 0 && -n $current_stage ]]; then
        printf '\n*** %s FAILED after %ds (exit %d)\n' \
            "$current_stage" $((SECONDS - stage_started)) "$status" >&2
    fi
    printf '\n%s: %s in %ds\n' "$(basename "$(dirname "$0")")/$(basename "$0")" \
        "$([[ $status -eq 0 ]] && echo passed || echo FAILED)" $((SECONDS - script_started))
}

# Warnings that must not scroll by unnoticed.
loud_warning() {
    {
        printf '\n'
        printf '!%.0s' {1..72}
        printf '\n!! WARNING: %s\n' "$1"
        shift
        [[ $# -eq 0 ]] || printf '!!          %s\n' "$@"
        printf '!%.0s' {1..72}
        printf '\n\n'
    } >&2
}

# The venv the tests use: Debian's Python, so that it matches the
# libpython the binaries are built against (PYO3_PYTHON=/usr/bin/python3).
venv_python="$repo/.venv/bin/python"

venv_ready() {
    [[ -x $venv_python ]] &&
        "$venv_python" -c 'import rpyc, pytest; assert rpyc.__version__ == "6.0.2"' 2>/dev/null
}

ensure_venv() {
    if venv_ready; then
        echo "venv: $repo/.venv already has rpyc 6.0.2 and pytest"
        return 0
    fi
    if [[ ! -x $venv_python ]]; then
        echo "venv: creating $repo/.venv"
        /usr/bin/python3 -m venv "$repo/.venv"
    fi
    echo "venv: installing rpyc==6.0.2 and pytest from PyPI"
    PIP_NO_INPUT=1 "$venv_python" -m pip install --disable-pip-version-check --quiet \
        'rpyc==6.0.2' pytest
    venv_ready
}
