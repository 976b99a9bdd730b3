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

# The venvs the tests use: Debian's Python, so that it matches the
# libpython the binaries are built against (PYO3_PYTHON=/usr/bin/python3).
# .venv has the rpyc the server speaks (6.0.2); .venv-rpyc5 has an rpyc 5
# client, for the tests of 5.x clients (issue 11).
venv_python="$repo/.venv/bin/python"
# shellcheck disable=SC2034 # used by the scripts that source this file
venv5_python="$repo/.venv-rpyc5/bin/python"
# shellcheck disable=SC2034
# .venv-rpyc4 has rpyc 4.1.5, Debian 11's python3-rpyc
venv4_python="$repo/.venv-rpyc4/bin/python"

# venv_ready [PYTHON VERSION]: whether PYTHON has rpyc VERSION and pytest.
venv_ready() {
    local python=${1:-$venv_python} version=${2:-6.0.2}
    [[ -x $python ]] &&
        "$python" -c "import rpyc, pytest; v = rpyc.__version__; assert (v if isinstance(v, str) else '.'.join(map(str, v))) == '$version'" 2>/dev/null
}

# The linter scripts/test runs on the Python sources, in .venv. Pinned: a
# release with new checks must not fail a run of unchanged code.
pyflakes_version=4.1.0

# lint_ready: whether .venv has that pyflakes.
lint_ready() {
    [[ -x $venv_python ]] &&
        "$venv_python" -c "import pyflakes; assert pyflakes.__version__ == '$pyflakes_version'" 2>/dev/null
}

# ensure_lint: .venv (made by ensure_venv) with that pyflakes.
ensure_lint() {
    if lint_ready; then
        echo "venv: $repo/.venv already has pyflakes $pyflakes_version"
        return 0
    fi
    echo "venv: installing pyflakes==$pyflakes_version from PyPI"
    PIP_NO_INPUT=1 "$venv_python" -m pip install --disable-pip-version-check --quiet \
        "pyflakes==$pyflakes_version"
    lint_ready
}

# ensure_venv [DIR VERSION]: a venv in DIR with rpyc VERSION and pytest.
ensure_venv() {
    local dir=${1:-$repo/.venv} version=${2:-6.0.2}
    local python="$dir/bin/python"
    if venv_ready "$python" "$version"; then
        echo "venv: $dir already has rpyc $version and pytest"
        return 0
    fi
    if [[ ! -x $python ]]; then
        echo "venv: creating $dir"
        /usr/bin/python3 -m venv "$dir"
    fi
    echo "venv: installing rpyc==$version and pytest from PyPI"
    PIP_NO_INPUT=1 "$python" -m pip install --disable-pip-version-check --quiet \
        "rpyc==$version" pytest
    venv_ready "$python" "$version"
}
