#!/usr/bin/env bash
# Installs what building and testing weft needs, on a fresh machine:
# the wasm32-wasip1 Rust target (filters are built for it) and Debian's
# docker-registry (the OCI tests push to and pull from a real registry on
# 127.0.0.1). Idempotent.
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

if ! command -v docker-registry >/dev/null 2>&1; then
    log "installing docker-registry (apt-get)"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-registry >&2; then
        apt-get update -q >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-registry >&2
    fi
fi
