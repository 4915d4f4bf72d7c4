#!/usr/bin/env bash
# The whole test suite: unit tests, ABI tests against real Wasm filters,
# and end-to-end tests through the `weft` binary on loopback.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
# The end-to-end tests run the real binary; build it first.
cargo build --workspace --bins
cargo test --workspace "$@"
