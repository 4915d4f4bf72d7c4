#!/usr/bin/env bash
# The standalone gateway demo: builds weft and the built-in filters, starts
# demo upstreams on 127.0.0.1:9000 (v1), :9001 (v2) and :9002 (shadow) and
# weft on 127.0.0.1:8080 (admin on 127.0.0.1:9901). Ctrl-C stops them all.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
cargo build -p weft-proxy --bin weft
bash scripts/build-filters.sh

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
python3 examples/gateway/upstream.py 127.0.0.1:9000 v1 & pids+=($!)
python3 examples/gateway/upstream.py 127.0.0.1:9001 v2 & pids+=($!)
python3 examples/gateway/upstream.py 127.0.0.1:9002 shadow & pids+=($!)

# The demo JWT: HS256 with the demo key in examples/gateway/weft.yaml,
# iss https://demo.weft.dev, aud demo, sub alice, valid until 2100.
TOKEN=eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImRlbW8ifQ.eyJpc3MiOiJodHRwczovL2RlbW8ud2VmdC5kZXYiLCJzdWIiOiJhbGljZSIsImF1ZCI6ImRlbW8iLCJleHAiOjQxMDI0NDQ4MDB9.gv2FfYsg-hCab9URrRER7l6FaeboUWln6C00NjncIJY

cat >&2 <<MSG

weft is starting on http://127.0.0.1:8080 (admin: http://127.0.0.1:9901). Try:
  curl -i http://127.0.0.1:8080/hello                      # router → v1; header-rewrite adds x-gateway/x-client, x-route back
  for i in \$(seq 20); do curl -s -o /dev/null -D - http://127.0.0.1:8080/api/items | grep x-upstream; done
                                                           # canary: ~90% v1, ~10% v2 (each /api request is mirrored to shadow)
  curl -i -H 'x-version: v2' http://127.0.0.1:8080/hello   # header match → v2
  curl -i http://127.0.0.1:8080/old                        # 301 to /hello
  curl -s http://127.0.0.1:8080/legacy/users               # upstream sees /v1/users
  curl -i http://127.0.0.1:8080/gateway/healthz            # direct response from the router
  curl -i -H 'x-chaos: delay' http://127.0.0.1:8080/hello  # fault: 1 s delay
  curl -i -H 'x-chaos: abort' http://127.0.0.1:8080/hello  # fault: 503
  curl -i http://127.0.0.1:8080/admin                      # authz: 403 without a token
  curl -i -H "authorization: Bearer $TOKEN" http://127.0.0.1:8080/admin   # 200, upstream sees x-user: alice
  curl -i -H 'authorization: Bearer not.a.jwt' http://127.0.0.1:8080/     # 401 with www-authenticate
  curl -s http://127.0.0.1:9901/metrics | grep weft_  # Prometheus metrics
  curl -s http://127.0.0.1:9901/plugins               # loaded plugins and their digests
Edit examples/gateway/weft.yaml while it runs: weft reloads it (a bad edit is refused and logged).

MSG
target/debug/weft run --config examples/gateway/weft.yaml
