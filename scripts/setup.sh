#!/usr/bin/env bash
# Installs what building and testing weft needs, on a fresh machine:
# the wasm32-wasip1 Rust target (filters are built for it). Idempotent.
# Go (for the Go test filter) is installed on demand by scripts/ensure-go.sh.
set -euo pipefail

log() { echo "setup: $*" >&2; }

if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: error: cargo is not installed (weft needs a Rust toolchain via rustup)" >&2
    exit 1
fi

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
    log "installing the wasm32-wasip1 target"
    rustup target add wasm32-wasip1 >&2
fi
