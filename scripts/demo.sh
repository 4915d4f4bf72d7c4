#!/usr/bin/env bash
# The standalone gateway demo: builds weft and the header-rewrite filter,
# starts a demo upstream on 127.0.0.1:9000 and weft on 127.0.0.1:8080
# (admin on 127.0.0.1:9901). Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
cargo build -p weft-proxy --bin weft
cargo build --target wasm32-wasip1 --profile wasm -p weft-filter-header-rewrite --target-dir target/wasm

python3 examples/gateway/upstream.py 127.0.0.1:9000 &
upstream=$!
trap 'kill $upstream 2>/dev/null || true' EXIT

cat >&2 <<'MSG'

weft is starting on http://127.0.0.1:8080 (admin: http://127.0.0.1:9901). Try:
  curl -i http://127.0.0.1:8080/hello                 # x-gateway/x-client added upstream, x-request-id back
  curl -i http://127.0.0.1:8080/api/items             # the /api rule adds x-api: true
  curl -s http://127.0.0.1:9901/metrics | grep weft_  # Prometheus metrics
  curl -s http://127.0.0.1:9901/plugins               # loaded plugins and their digests
Edit examples/gateway/weft.yaml while it runs: weft reloads it (a bad edit is refused and logged).

MSG
target/debug/weft run --config examples/gateway/weft.yaml
