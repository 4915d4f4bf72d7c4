#!/usr/bin/env bash
# Compares weft with nginx as an HTTP/1.1 reverse proxy on this machine.
#
# Starts, all on 127.0.0.1 and each with one worker:
#   :18000  nginx, the upstream ("ok\n", 200)          -> "direct"
#   :18081  nginx reverse proxy to :18000 (keep-alive)  -> "nginx proxy"
#   :18080  weft, no plugins                  (admin :9901)
#   :18082  weft + the header-rewrite filter  (admin :9902)
#   :18083  weft + the five built-in filters configured as in the demo
#           (examples/gateway/weft.yaml, every cluster pointed at :18000;
#           admin :9903)
# then runs a warm-up and `wrk -t1 -c32 -d${DURATION}s --latency` against each
# and prints req/s, p50, p99 and the proxy's RSS, plus the ratios the
# performance targets are stated in. See bench/README.md.
#
# Environment:
#   DURATION=10       seconds of each measured wrk run
#   WARMUP=2          seconds of the warm-up wrk run before each measured run
#   H2=0              1: also run h2load (h2c) against weft without plugins
#   H2_REQUESTS=20000 requests of that h2load run
#   BUILD=1           0: skip the cargo builds (use the existing binaries)
#   KEEP_WORKDIR=0    1: keep the temp dir (configs, logs, raw wrk output)
#   VERBOSE=0         1: print each raw wrk/h2load output as well
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-2}"
H2="${H2:-0}"
H2_REQUESTS="${H2_REQUESTS:-20000}"
BUILD="${BUILD:-1}"
KEEP_WORKDIR="${KEEP_WORKDIR:-0}"
VERBOSE="${VERBOSE:-0}"
CONNS=32

UP_PORT=18000
NGINX_PORT=18081
WEFT_PORT=18080
WEFT_F_PORT=18082
WEFT_D_PORT=18083
WEFT_ADMIN=9901
WEFT_F_ADMIN=9902
WEFT_D_ADMIN=9903

WEFT="$ROOT/target/release/weft"
FILTER_WASM="$ROOT/target/wasm/wasm32-wasip1/wasm/weft_filter_header_rewrite.wasm"

log() { echo "compare: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

for v in DURATION WARMUP H2_REQUESTS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done

# --- 1. tools ----------------------------------------------------------------

find_nginx() {
    command -v nginx 2>/dev/null || { [[ -x /usr/sbin/nginx ]] && echo /usr/sbin/nginx; } || true
}

need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v h2load >/dev/null 2>&1 || need+=(nghttp2-client)
[[ -n "$(find_nginx)" ]] || need+=(nginx)
if ((${#need[@]})); then
    [[ $EUID -eq 0 ]] || die "missing ${need[*]}; run as root to install them with apt-get"
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends "${need[@]}" >&2
fi
NGINX="$(find_nginx)"
[[ -n $NGINX ]] || die "nginx not found after installing it"
command -v wrk >/dev/null 2>&1 || die "wrk not found after installing it"
command -v h2load >/dev/null 2>&1 || die "h2load not found after installing it"

# --- 2. build ----------------------------------------------------------------

if [[ $BUILD == 1 ]]; then
    bash scripts/setup.sh
    log "building weft (release) and the built-in filters (niced; slow the first time)"
    nice -n 10 cargo build --release -p weft-proxy --bin weft >&2
    nice -n 10 bash scripts/build-filters.sh >&2
fi
[[ -x $WEFT ]] || die "$WEFT is missing (run without BUILD=0)"
[[ -f $FILTER_WASM ]] || die "$FILTER_WASM is missing (run without BUILD=0)"

# --- processes and cleanup ---------------------------------------------------

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

for p in $UP_PORT $NGINX_PORT $WEFT_PORT $WEFT_F_PORT $WEFT_D_PORT $WEFT_ADMIN $WEFT_F_ADMIN $WEFT_D_ADMIN; do
    ! port_busy "$p" || die "127.0.0.1:$p is already in use; stop whatever listens there first"
done

WORK="$(mktemp -d /tmp/weft-bench.XXXXXX)"
chmod 755 "$WORK" # nginx workers run as nobody
PIDS=()

stop_pid() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 150; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid did not stop after SIGTERM; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do
        stop_pid "$pid"
    done
    if [[ $KEEP_WORKDIR == 1 || $rc -ne 0 ]]; then
        log "configs, logs and raw outputs kept in $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_http URL PID LOGFILE: until URL answers 2xx, or PID dies, or 60 s pass.
wait_http() {
    local url=$1 pid=$2 logfile=$3 i
    for ((i = 0; i < 600; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$logfile" >&2 || true
            die "process $pid exited before $url answered"
        fi
        curl -sf -o /dev/null --max-time 1 "$url" && return 0
        sleep 0.1
    done
    tail -n 20 "$logfile" >&2 || true
    die "$url did not answer within 60 s"
}

# RSS in kB of a process plus its direct children (nginx: master + worker).
rss_kb() {
    local pid=$1 total=0 kb f stat rest ppid
    kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    total=$((total + ${kb:-0}))
    for f in /proc/[0-9]*/stat; do
        { read -r stat <"$f"; } 2>/dev/null || continue
        rest=${stat##*) }
        read -r _ ppid _ <<<"$rest"
        if [[ $ppid == "$pid" ]]; then
            kb=$(awk '/^VmRSS:/ {print $2}' "${f%/stat}/status" 2>/dev/null || true)
            total=$((total + ${kb:-0}))
        fi
    done
    echo "$total"
}

# --- 3. nginx: upstream and reverse proxy --------------------------------------

nginx_common() { # $1 = its dir
    cat <<EOF
worker_processes 1;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $1/client_body;
    proxy_temp_path $1/proxy;
    fastcgi_temp_path $1/fastcgi;
    uwsgi_temp_path $1/uwsgi;
    scgi_temp_path $1/scgi;
    keepalive_requests 1000000;
EOF
}

start_nginx() { # $1 = name; its config is $WORK/$1/nginx.conf
    local dir="$WORK/$1"
    "$NGINX" -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log" >"$dir/stderr.log" 2>&1 &
    PIDS+=($!)
    LAST_PID=$!
}

# The upstream echoes the x-bench request header (set only by weft's
# header-rewrite filter) as x-seen-bench, so the filter can be seen working.
mkdir -p "$WORK/upstream" "$WORK/proxy"
{
    nginx_common "$WORK/upstream"
    cat <<EOF
    server {
        listen 127.0.0.1:$UP_PORT;
        location / {
            default_type text/plain;
            add_header x-seen-bench \$http_x_bench;
            return 200 "ok\n";
        }
    }
}
EOF
} >"$WORK/upstream/nginx.conf"
start_nginx upstream
UP_PID=$LAST_PID
wait_http "http://127.0.0.1:$UP_PORT/" "$UP_PID" "$WORK/upstream/stderr.log"

{
    nginx_common "$WORK/proxy"
    cat <<EOF
    upstream up {
        server 127.0.0.1:$UP_PORT;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
} >"$WORK/proxy/nginx.conf"
start_nginx proxy
NGINX_PID=$LAST_PID
wait_http "http://127.0.0.1:$NGINX_PORT/" "$NGINX_PID" "$WORK/proxy/stderr.log"

# --- 4. weft, without and with the filter ---------------------------------------

start_weft() { # $1 = name, $2 = port, $3 = admin port, $4 = plugins YAML
    local cfg="$WORK/$1.yaml"
    cat >"$cfg" <<EOF
admin: { address: "127.0.0.1:$3" }
workers: 1
listeners:
  - { name: public, address: "127.0.0.1:$2", default_cluster: up }
clusters:
  - { name: up, endpoints: ["127.0.0.1:$UP_PORT"] }
$4
EOF
    NO_COLOR=1 "$WEFT" run --config "$cfg" --no-watch >"$WORK/$1.log" 2>&1 &
    PIDS+=($!)
    LAST_PID=$!
    wait_http "http://127.0.0.1:$3/ready" "$LAST_PID" "$WORK/$1.log"
}

start_weft weft $WEFT_PORT $WEFT_ADMIN "plugins: []"
WEFT_PID=$LAST_PID
start_weft weft-filter $WEFT_F_PORT $WEFT_F_ADMIN "plugins:
  - name: header-rewrite
    url: file://$FILTER_WASM
    pluginConfig: { rules: [ { requestHeaderModifier: { set: [ { name: x-bench, value: \"1\" } ] } } ] }"
WEFT_F_PID=$LAST_PID

# The demo's five filters, loaded from the local build (file://), every
# cluster pointed at the bench upstream, no access log (as the others).
DEMO_CFG="$WORK/weft-demo.yaml"
sed -e "s#oci://127.0.0.1:5000/weft/filters/\([a-z-]*\):dev#file://$ROOT/target/wasm/wasm32-wasip1/wasm/weft_filter_\1.wasm#" \
    -e 's#weft_filter_header-rewrite#weft_filter_header_rewrite#' \
    -e "s#127.0.0.1:900[0-2]#127.0.0.1:$UP_PORT#" \
    -e "s#127.0.0.1:8080#127.0.0.1:$WEFT_D_PORT#" \
    -e "s#127.0.0.1:9901#127.0.0.1:$WEFT_D_ADMIN#" \
    -e 's#^workers: .*#workers: 1#' \
    -e '/^access_log:/d' -e '/^registries:/d' -e '/health_check:/d' \
    "$ROOT/examples/gateway/weft.yaml" >"$DEMO_CFG"
NO_COLOR=1 "$WEFT" run --config "$DEMO_CFG" --no-watch >"$WORK/weft-demo.log" 2>&1 &
PIDS+=($!)
WEFT_D_PID=$!
wait_http "http://127.0.0.1:$WEFT_D_ADMIN/ready" "$WEFT_D_PID" "$WORK/weft-demo.log"

# Sanity: every target answers "ok", and only the filtered weft adds x-bench.
for port in $UP_PORT $NGINX_PORT $WEFT_PORT $WEFT_F_PORT $WEFT_D_PORT; do
    body=$(curl -sf --max-time 5 "http://127.0.0.1:$port/") || die "GET :$port/ failed"
    [[ $body == ok ]] || die "GET :$port/ answered '$body', not 'ok'"
done
curl -sf --max-time 5 -D - -o /dev/null "http://127.0.0.1:$WEFT_F_PORT/" | grep -qi '^x-seen-bench: *1' ||
    die "the header-rewrite filter did not set x-bench on :$WEFT_F_PORT"
curl -sf --max-time 5 -D - -o /dev/null "http://127.0.0.1:$WEFT_D_PORT/" | grep -qi '^x-route: *default' ||
    die "the demo filters did not route the request on :$WEFT_D_PORT (no x-route: default)"
if curl -sf --max-time 5 -D - -o /dev/null "http://127.0.0.1:$WEFT_PORT/" | grep -qi '^x-seen-bench'; then
    die "weft without plugins set x-bench on :$WEFT_PORT"
fi

# --- 5. load --------------------------------------------------------------------

declare -A RPS P50 P99 RSS NON2XX SOCKERR REQS LABEL
TARGETS=(direct nginx weft weft_filter weft_demo)
LABEL=([direct]="direct (upstream)" [nginx]="nginx proxy" [weft]="weft, no plugins" [weft_filter]="weft + header filter" [weft_demo]="weft + 5 demo filters")
declare -A PORT=([direct]=$UP_PORT [nginx]=$NGINX_PORT [weft]=$WEFT_PORT [weft_filter]=$WEFT_F_PORT [weft_demo]=$WEFT_D_PORT)
declare -A PID=([direct]=$UP_PID [nginx]=$NGINX_PID [weft]=$WEFT_PID [weft_filter]=$WEFT_F_PID [weft_demo]=$WEFT_D_PID)

# wrk latency ("152.00us", "1.20ms", "2.00s") to microseconds.
to_us() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) m = 1; else if (v ~ /ms$/) m = 1000; else if (v ~ /m$/) m = 60e6; else if (v ~ /s$/) m = 1e6; else { print "n/a"; exit }
        printf "%.1f", n * m }'
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
for t in "${TARGETS[@]}"; do
    port=${PORT[$t]}
    url="http://127.0.0.1:$port/"
    out="$WORK/wrk-$t.txt"
    log "${LABEL[$t]}: warm-up ${WARMUP}s, then wrk -t1 -c$CONNS -d${DURATION}s --latency $url"
    timeout $((WARMUP + 20)) wrk -t1 -c$CONNS -d"${WARMUP}s" "$url" >"$WORK/warmup-$t.txt" 2>&1 ||
        log "warning: warm-up against ${LABEL[$t]} failed"
    RPS[$t]=n/a P50[$t]=n/a P99[$t]=n/a NON2XX[$t]=n/a SOCKERR[$t]=n/a REQS[$t]=n/a
    if timeout $((DURATION + 30)) wrk -t1 -c$CONNS -d"${DURATION}s" --latency "$url" >"$out" 2>&1; then
        RPS[$t]=$(awk '/^Requests\/sec:/ {print $2}' "$out")
        REQS[$t]=$(awk '/requests in/ {print $1}' "$out")
        P50[$t]=$(to_us "$(awk '$1 == "50%" {print $2}' "$out")")
        P99[$t]=$(to_us "$(awk '$1 == "99%" {print $2}' "$out")")
        NON2XX[$t]=$(awk '/Non-2xx or 3xx responses:/ {print $NF} END {}' "$out")
        NON2XX[$t]=${NON2XX[$t]:-0}
        SOCKERR[$t]=$(awk '/Socket errors:/ {gsub(",", ""); print $4 + $6 + $8 + $10}' "$out")
        SOCKERR[$t]=${SOCKERR[$t]:-0}
        : "${RPS[$t]:=n/a}"
    else
        log "warning: wrk against ${LABEL[$t]} failed:"
        cat "$out" >&2
    fi
    RSS[$t]=$(rss_kb "${PID[$t]}")
    if [[ $VERBOSE == 1 ]]; then cat "$out" >&2; fi
    log "  ${RPS[$t]} req/s, ${REQS[$t]} requests, non-2xx/3xx ${NON2XX[$t]}, socket errors ${SOCKERR[$t]}"
done

H2_LINE=""
if [[ $H2 == 1 ]]; then
    out="$WORK/h2load-weft.txt"
    url="http://127.0.0.1:$WEFT_PORT/"
    log "weft, no plugins: h2load -n $H2_REQUESTS -c $CONNS -m 10 (h2c prior knowledge) $url"
    if timeout 300 h2load -n "$H2_REQUESTS" -c $CONNS -m 10 -p h2c "$url" >"$out" 2>&1; then
        h2_rps=$(awk '/^finished in/ {for (i = 1; i <= NF; i++) if ($(i + 1) ~ /^req\/s/) print $i}' "$out")
        h2_req=$(awk '/^requests:/ {sub(/^requests: */, ""); print}' "$out")
        h2_codes=$(awk '/^status codes:/ {sub(/^status codes: */, ""); print}' "$out")
        H2_LINE="h2load -n $H2_REQUESTS -c $CONNS -m 10 (h2c) -> weft, no plugins: ${h2_rps:-n/a} req/s; requests: $h2_req; status codes: $h2_codes; RSS after: $(awk -v k="$(rss_kb "$WEFT_PID")" 'BEGIN {printf "%.1f MiB", k / 1024}')"
    else
        H2_LINE="h2load against weft failed or timed out (see below)"
        cat "$out" >&2
    fi
    if [[ $VERBOSE == 1 ]]; then cat "$out" >&2; fi
fi
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# --- 6. report ----------------------------------------------------------------------

fmt_ms() { [[ $1 == n/a ]] && echo n/a || awk -v u="$1" 'BEGIN {printf "%.3f", u / 1000}'; }
fmt_mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
ratio() { # a / b, or n/a
    if [[ $1 == n/a || $2 == n/a ]]; then echo n/a; else awk -v a="$1" -v b="$2" 'BEGIN {if (b == 0) print "n/a"; else printf "%.2f", a / b}'; fi
}
ge() { awk -v a="$1" -v b="$2" 'BEGIN {exit !(a >= b)}'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN {exit !(a <= b)}'; }

mem_total=$(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
mem_avail=$(awk '/^MemAvailable:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
git_rev="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
[[ -z "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]] || git_rev+=" (uncommitted changes)"

echo
echo "== weft vs nginx: HTTP/1.1 keep-alive, wrk -t1 -c$CONNS -d${DURATION}s --latency (warm-up ${WARMUP}s) =="
echo "date:     $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "machine:  nproc $(nproc), memory $mem_total total / $mem_avail available, $(uname -sr)"
echo "cpu:      $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
echo "loadavg:  $LOAD_START before the load runs, $LOAD_END after"
echo "versions: weft $git_rev; $("$NGINX" -v 2>&1); $(wrk -v 2>&1 | head -n1 | awk '{print $1, $2}' || true)"
echo
printf '%-22s %12s %10s %10s %10s %9s %9s\n' target "req/s" "p50 ms" "p99 ms" "RSS MiB" "non-2xx" "sock err"
for t in "${TARGETS[@]}"; do
    printf '%-22s %12s %10s %10s %10s %9s %9s\n' "${LABEL[$t]}" "${RPS[$t]}" "$(fmt_ms "${P50[$t]}")" \
        "$(fmt_ms "${P99[$t]}")" "$(fmt_mib "${RSS[$t]}")" "${NON2XX[$t]}" "${SOCKERR[$t]}"
done
echo "(RSS: VmRSS after the target's run; nginx = master + worker; direct = the upstream nginx)"
[[ -z $H2_LINE ]] || {
    echo
    echo "$H2_LINE"
}

r_wn=$(ratio "${RPS[weft]}" "${RPS[nginx]}")
r_wd=$(ratio "${RPS[weft]}" "${RPS[direct]}")
r_nd=$(ratio "${RPS[nginx]}" "${RPS[direct]}")
r_fw=$(ratio "${RPS[weft_filter]}" "${RPS[weft]}")
r_dw=$(ratio "${RPS[weft_demo]}" "${RPS[weft]}")
r_p99=$(ratio "${P99[weft]}" "${P99[nginx]}")
echo
echo "ratios (req/s):"
echo "  weft / nginx proxy         ${r_wn}x"
echo "  weft / direct              ${r_wd}x   (nginx proxy / direct ${r_nd}x)"
echo "  weft + filter / weft       ${r_fw}x"
echo "  weft + 5 filters / weft    ${r_dw}x"
echo "  p99 weft / nginx proxy     ${r_p99}x   (lower is better)"

verdict1="n/a (a run failed)"
if [[ $r_wn != n/a && $r_p99 != n/a ]]; then
    if ge "$r_wn" 1.0 && le "${P99[weft]}" "${P99[nginx]}"; then verdict1="MET"; else verdict1="NOT MET"; fi
    verdict1+=" (req/s ${r_wn}x, p99 $(fmt_ms "${P99[weft]}") vs $(fmt_ms "${P99[nginx]}") ms)"
fi
verdict2="n/a (a run failed)"
if [[ $r_fw != n/a ]]; then
    if ge "$r_fw" 0.8; then verdict2="MET"; else verdict2="NOT MET"; fi
    verdict2+=" (${r_fw}x)"
fi
verdict3="n/a (a run failed)"
if [[ $r_dw != n/a ]]; then
    if ge "$r_dw" 0.8; then verdict3="MET"; else verdict3="NOT MET"; fi
    verdict3+=" (${r_dw}x)"
fi
echo
echo "targets (measured on this run; not a pass/fail of the script):"
echo "  weft, no plugins >= 1.0x nginx req/s, p99 no worse:  $verdict1"
echo "  weft + 1 header filter >= 0.8x weft, no plugins:     $verdict2"
echo "  weft + the 5 demo filters >= 0.8x weft, no plugins:  $verdict3"

# Anything odd in the servers' logs.
echo
for f in weft weft-filter weft-demo; do
    sed 's/\x1b\[[0-9;]*m//g' "$WORK/$f.log" >"$WORK/$f.plain.log"
    n=$(grep -cE '(^|[[:space:]])(WARN|ERROR)[[:space:]]' "$WORK/$f.plain.log" || true)
    echo "$f log: ${n:-0} WARN/ERROR lines"
    ((${n:-0} == 0)) || grep -E '(^|[[:space:]])(WARN|ERROR)[[:space:]]' "$WORK/$f.plain.log" | head -n 5 | sed 's/^/    /'
done
for f in upstream proxy; do
    n=$(grep -cE '\[(error|crit|alert|emerg)\]' "$WORK/$f/error.log" 2>/dev/null || true)
    echo "nginx $f error.log: ${n:-0} error lines"
    ((${n:-0} == 0)) || grep -E '\[(error|crit|alert|emerg)\]' "$WORK/$f/error.log" | head -n 5 | sed 's/^/    /'
done
exit 0
