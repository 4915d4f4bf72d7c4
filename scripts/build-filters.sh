#!/usr/bin/env bash
# Builds weft's built-in filters for wasm32-wasip1 (profile `wasm`):
#   target/wasm/wasm32-wasip1/wasm/weft_filter_<name>.wasm
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

packages=()
for dir in filters/*/; do
    name=$(basename "$dir")
    [ "$name" = matching ] && continue     # a library, not a module
    packages+=(-p "weft-filter-$name")
done
cargo build --target wasm32-wasip1 --profile wasm "${packages[@]}" --target-dir target/wasm
