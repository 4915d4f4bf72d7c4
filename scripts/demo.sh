#!/usr/bin/env bash
# The standalone gateway demo: builds weft and the built-in filters, starts
# a local OCI registry (Debian's docker-registry) on 127.0.0.1:5000 and
# pushes the filters to it with `weft push`, starts demo upstreams on
# 127.0.0.1:9000 (v1), :9001 (v2) and :9002 (shadow), and runs weft on
# 127.0.0.1:8080 (admin on 127.0.0.1:9901), which pulls the filters by
# oci://. Ctrl-C stops them all.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
command -v curl >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -q curl >&2
cargo build -p weft-proxy --bin weft
bash scripts/build-filters.sh

work="$PWD/target/demo"
mkdir -p "$work/registry"
printf '%s\n' \
    'version: 0.1' \
    'log: { level: warn, accesslog: { disabled: true } }' \
    "storage: { filesystem: { rootdirectory: $work/registry } }" \
    'http: { addr: 127.0.0.1:5000, secret: weft-demo }' >"$work/registry.yml"

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    curl -sf -o /dev/null http://127.0.0.1:5000/v2/ && break
    sleep 0.1
done
curl -sf -o /dev/null http://127.0.0.1:5000/v2/ || {
    echo "demo: the registry did not start on 127.0.0.1:5000 (see $work/registry.log)" >&2
    exit 1
}
for f in authz fault router mirror header-rewrite; do
    target/debug/weft push --plain-http \
        "target/wasm/wasm32-wasip1/wasm/weft_filter_${f//-/_}.wasm" \
        "oci://127.0.0.1:5000/weft/filters/$f:dev"
done

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
  curl -s http://127.0.0.1:9901/plugins               # loaded plugins, their oci:// sources and digests
  target/debug/weft inspect --plain-http oci://127.0.0.1:5000/weft/filters/router:dev
Edit examples/gateway/weft.yaml while it runs: weft reloads it (a bad edit is refused and logged).

MSG
target/debug/weft run --config examples/gateway/weft.yaml --cache-dir "$work/cache"
