#!/usr/bin/env bash
# Builds the go-filter example (weft Go SDK) with standard Go (not TinyGo):
#   GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared
# Usage: build.sh OUTPUT.wasm
set -euo pipefail

if [[ $# -ne 1 || -z "$1" ]]; then
    echo "usage: $0 OUTPUT.wasm" >&2
    exit 2
fi

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$1
case "$out" in
    /*) ;;
    *) out="$PWD/$out" ;;
esac

go=$(bash "$root/scripts/ensure-go.sh")

# Offline, reproducible, no dependencies: never download modules or
# toolchains, ignore any user `go env -w` settings, keep the build cache
# inside the project's target/ so it works for any user on a fresh machine.
export GOTOOLCHAIN=local
export GOPROXY=off
export GOSUMDB=off
export GOFLAGS=-buildvcs=false
export GOENV=off
export GOCACHE="$root/target/go-cache"
export GOPATH="$root/target/go-path"
export CGO_ENABLED=0
mkdir -p "$GOCACHE" "$(dirname "$out")"

cd "$here"
GOOS=wasip1 GOARCH=wasm "$go" build -buildmode=c-shared -o "$out" .
