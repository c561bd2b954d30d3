#!/usr/bin/env bash
# wsidle.sh — Gatehouse's memory per idle WebSocket, over plaintext and TLS.
#
#   test/bench/wsidle.sh [--quick] [-n N] [--runs R] [--mode plain|tls|both]
#                        [--port-base P] [--settle S] [--bin PATH] [--keep-tmp]
#                        [--profile DIR]
#
# For each run and each mode (interleaved: plain, tls, plain, tls, ...) it
# starts a fresh gatehouse (GOMAXPROCS=1, pinned to PROXY_CPU, Go's default
# GC pacing, the config of test/bench/gatehouse.sh), warms it with a few
# requests and WebSockets, reads its VmRSS (/proc/PID/status), opens N idle
# WebSockets through it (ws:// to the plaintext listener or wss:// to the TLS
# listener, HTTP/1.1, no ALPN) to two backends that accept and hold them,
# waits --settle seconds and reads VmRSS again:
#
#   KiB per connection = (RSS with N idle - RSS with none) / N
#
# It prints one line per run and the median per mode. The figure includes
# everything Gatehouse holds for a connection (both sockets' user-space
# state, the TLS conn, the tunnel, goroutine stacks, heap not yet returned to
# the OS), not the kernel's socket buffers.
#
#   --quick        N = 500, settle 2 s (a smoke run: about 15 s per mode)
#   -n N           idle WebSockets per measurement (default 5000)
#   --runs R       repeat R times (default 1); the medians are printed
#   --mode M       plain, tls or both (default both)
#   --port-base P  ports P+80 (http), P+443 (https), P+81/P+82 (backends);
#                  default 29000 (the shared harness uses 27000)
#   --settle S     seconds between the last dial and the second RSS read
#                  (default 3, as the shared harness)
#   --bin PATH     the gatehouse binary to measure (default: built from this
#                  checkout into ${TMPDIR:-/tmp}/gatehouse-wsidle-bin); also
#                  GATEHOUSE_BIN
#   --keep-tmp     keep the temp dir (configs, logs, raw wsload output)
#   --profile DIR  also serve pprof on an admin listener (P+90) and save a heap
#                  and a goroutine profile of each run with N idle into DIR
#                  (for finding what the memory is; not for the figures)
#
# env: BENCH_DIR (the shared harness, for its backend and wsload sources;
# default ../shared/bench from the repository root), PROXY_CPU (default 0),
# CLIENT_CPU (default 1), GO (default go). Fairness as ../shared/bench:
# 127.0.0.1 only, access log off, one core, HTTP/1.1 keep-alive upstreams,
# round robin, TLS tickets off, same client (wsload idle) and backend.
# Everything it starts is recorded by PID and stopped on exit; every wait is
# bounded (dials 90 s, holds 120 s, startup 10 s).
set -u -o pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
N=5000 RUNS=1 MODES="plain tls" PORT_BASE=29000 SETTLE=3 KEEP_TMP=0 PROFILE=""
BIN=${GATEHOUSE_BIN:-}
usage() { sed -n '2,/^set -u/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) N=500 SETTLE=2 ;;
	-n) N=${2:?-n needs a count}; shift ;;
	--runs) RUNS=${2:?--runs needs a count}; shift ;;
	--mode)
		case "${2:-}" in plain | tls) MODES=$2 ;; both) MODES="plain tls" ;; *) echo "wsidle: --mode plain|tls|both" >&2; exit 2 ;; esac
		shift ;;
	--port-base) PORT_BASE=${2:?}; shift ;;
	--settle) SETTLE=${2:?}; shift ;;
	--bin) BIN=${2:?}; shift ;;
	--keep-tmp) KEEP_TMP=1 ;;
	--profile) PROFILE=${2:?--profile needs a directory}; mkdir -p "$PROFILE" || exit 2; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "wsidle: unknown option: $1" >&2; usage >&2; exit 2 ;;
	esac
	shift
done
for v in "$N" "$RUNS" "$PORT_BASE" "$SETTLE"; do
	case "$v" in '' | *[!0-9]*) echo "wsidle: not a number: '$v'" >&2; exit 2 ;; esac
done
[ "$N" -ge 1 ] && [ "$N" -le 20000 ] || { echo "wsidle: -n must be 1..20000" >&2; exit 2; }
[ "$RUNS" -ge 1 ] && [ "$RUNS" -le 9 ] || { echo "wsidle: --runs must be 1..9" >&2; exit 2; }

PROXY_CPU=${PROXY_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
GO=${GO:-go}
BENCH_DIR=${BENCH_DIR:-$SRC/../shared/bench}
HTTP_PORT=$((PORT_BASE + 80)) HTTPS_PORT=$((PORT_BASE + 443))
BACKEND1=127.0.0.1:$((PORT_BASE + 81)) BACKEND2=127.0.0.1:$((PORT_BASE + 82))

log() { printf '%s\n' "$*" >&2; }
die() { log "wsidle: $*"; exit 1; }
for t in openssl taskset curl timeout awk sort; do
	command -v "$t" >/dev/null || die "missing tool: $t"
done
[ -d "$BENCH_DIR/backend" ] && [ -d "$BENCH_DIR/wsload" ] ||
	die "no backend/ and wsload/ under $BENCH_DIR (set BENCH_DIR to the shared harness)"

# Each proxied idle WebSocket costs the proxy two descriptors, the client
# and the backends one each.
ulimit -n "$(ulimit -Hn)" 2>/dev/null
nofile=$(ulimit -n)
[ "$nofile" = unlimited ] || [ $((N * 2 + 1000)) -le "$nofile" ] || die "ulimit -n is $nofile: too low for -n $N"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/wsidle.XXXXXX") || die "mktemp failed"
PIDS=""
stop_pid() { # stop one process we started: TERM, then KILL after 5 s
	local p=$1 i
	kill -0 "$p" 2>/dev/null || return 0
	kill -TERM "$p" 2>/dev/null
	for i in $(seq 50); do
		kill -0 "$p" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$p" 2>/dev/null
	wait "$p" 2>/dev/null
	return 0
}
cleanup() {
	local p
	for p in $PIDS; do stop_pid "$p"; done
	if [ "$KEEP_TMP" = 1 ]; then log "wsidle: kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'log "wsidle: interrupted"; exit 130' INT TERM

# ------------------------------------------------------------------ binaries
BIN_DIR=${TMPDIR:-/tmp}/gatehouse-wsidle-bin
mkdir -p "$BIN_DIR"
build_tool() { # build_tool NAME: the harness's backend or wsload
	local out="$BIN_DIR/$1"
	if [ -x "$out" ] && [ -z "$(find "$BENCH_DIR/$1" -newer "$out" -type f 2>/dev/null)" ]; then
		echo "$out"
		return
	fi
	(cd "$BENCH_DIR/$1" && GOFLAGS="${GOFLAGS:-} -modcacherw" nice -n 19 "$GO" build -o "$out" ./) >&2 || die "building $1 failed"
	echo "$out"
}
BACKEND_BIN=$(build_tool backend) || exit 1
WSLOAD_BIN=$(build_tool wsload) || exit 1
if [ -z "$BIN" ]; then
	BIN=$BIN_DIR/gatehouse
	(cd "$SRC" && nice -n 19 "$GO" build -trimpath -o "$BIN" ./cmd/gatehouse) >&2 || die "building gatehouse failed"
fi
[ -x "$BIN" ] || die "no gatehouse binary at $BIN"

# ------------------------------------------------------------------ fixtures
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
	-keyout "$TMP/key.pem" -out "$TMP/cert.pem" >/dev/null 2>&1 || die "openssl failed"

rss_kib() { awk '/^VmRSS:/{print $2}' "/proc/$1/status" 2>/dev/null; }
json_field() { sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p" "$1" | tail -1; }
wait_http() { # wait_http URL: up to 10 s for any HTTP answer
	local i
	for i in $(seq 100); do
		curl -sk -o /dev/null --max-time 1 "$1" && return 0
		sleep 0.1
	done
	return 1
}
backend_ws_open() { # open WebSockets held by both backends
	local p t=0 v
	for p in "$BACKEND1" "$BACKEND2"; do
		v=$(curl -s --max-time 2 "http://$p/__stats" | sed -n 's/.*"ws_open":\([0-9]*\).*/\1/p')
		t=$((t + ${v:-0}))
	done
	echo "$t"
}

for b in "$BACKEND1" "$BACKEND2"; do
	taskset -c "$CLIENT_CPU" env GOMAXPROCS=1 "$BACKEND_BIN" -name "b${b##*:}" -addr "$b" \
		>"$TMP/backend-${b##*:}.log" 2>&1 </dev/null &
	PIDS="$PIDS $!"
	wait_http "http://$b/health/" || die "backend $b did not start: $(tail -2 "$TMP/backend-${b##*:}.log")"
done

# The configuration of the shared harness's adapter (test/bench/gatehouse.sh),
# with an admin listener for --profile.
# shellcheck source=gatehouse.sh
. "$SRC/test/bench/gatehouse.sh"
ADMIN='address = ""'
[ -z "$PROFILE" ] || ADMIN="address = \"127.0.0.1:$((PORT_BASE + 90))\"
pprof = true"
WORKDIR=$TMP TLS_CERT=$TMP/cert.pem TLS_KEY=$TMP/key.pem GATEHOUSE_ADMIN=$ADMIN gatehouse_config "$TMP/gatehouse.toml"

# measure MODE RUN: one measurement; prints "KIB OK RSS0 RSS1"
measure() {
	local mode=$1 run=$2 url base out gh wl i ok rss0 rss1 bo dropped
	case "$mode" in
	plain) url="ws://127.0.0.1:$HTTP_PORT/ws/echo" base="http://127.0.0.1:$HTTP_PORT" ;;
	tls) url="wss://localhost:$HTTPS_PORT/ws/echo" base="https://localhost:$HTTPS_PORT" ;;
	esac
	taskset -c "$PROXY_CPU" env GOMAXPROCS=1 "$BIN" run -config "$TMP/gatehouse.toml" \
		>"$TMP/gatehouse-$mode-$run.log" 2>&1 </dev/null &
	gh=$!
	PIDS="$PIDS $gh"
	wait_http "http://127.0.0.1:$HTTP_PORT/api/ping" && wait_http "https://localhost:$HTTPS_PORT/api/ping" ||
		die "gatehouse did not start: $(tail -3 "$TMP/gatehouse-$mode-$run.log")"
	# Warm up: code paths, pools and the first stacks, as the shared
	# harness's earlier load tests do.
	for i in $(seq 20); do curl -sk -o /dev/null --max-time 2 "$base/api/ping" 2>/dev/null; done
	timeout -k 5 30 taskset -c "$CLIENT_CPU" env GOMAXPROCS=1 "$WSLOAD_BIN" idle -url "$url" -n 50 \
		-dial-concurrency 10 -hold 1s >/dev/null 2>&1 </dev/null
	sleep "$SETTLE"
	rss0=$(rss_kib "$gh")
	out=$TMP/wsload-$mode-$run.json
	taskset -c "$CLIENT_CPU" env GOMAXPROCS=1 "$WSLOAD_BIN" idle -url "$url" -n "$N" \
		-dial-concurrency 50 -hold 120s >"$out" 2>"$TMP/wsload-$mode-$run.err" </dev/null &
	wl=$!
	PIDS="$PIDS $wl"
	for i in $(seq 900); do # up to 90 s for the dials
		grep -q '"event":"open"' "$out" 2>/dev/null && break
		kill -0 "$wl" 2>/dev/null || break
		sleep 0.1
	done
	sleep "$SETTLE"
	rss1=$(rss_kib "$gh")
	if [ -n "$PROFILE" ]; then
		curl -s --max-time 30 -o "$PROFILE/heap-$mode-$run.pb.gz" "http://127.0.0.1:$((PORT_BASE + 90))/debug/pprof/heap"
		curl -s --max-time 30 -o "$PROFILE/goroutine-$mode-$run.txt" "http://127.0.0.1:$((PORT_BASE + 90))/debug/pprof/goroutine?debug=1"
		curl -s --max-time 30 -o "$PROFILE/memstats-$mode-$run.txt" "http://127.0.0.1:$((PORT_BASE + 90))/debug/pprof/heap?debug=1"
	fi
	bo=$(backend_ws_open)
	stop_pid "$wl"
	stop_pid "$gh"
	ok=$(json_field "$out" ok)
	dropped=$(json_field "$out" dropped_while_idle)
	[ -n "$ok" ] && [ "$ok" -gt 0 ] && [ -n "$rss0" ] && [ -n "$rss1" ] ||
		die "$mode run $run: no WebSocket opened ($(tail -1 "$TMP/wsload-$mode-$run.err"); $(tail -2 "$TMP/gatehouse-$mode-$run.log"))"
	[ "$ok" = "$N" ] || log "wsidle: warning: $mode run $run: only $ok of $N WebSockets opened"
	[ "$bo" -ge $((ok * 99 / 100)) ] || log "wsidle: warning: $mode run $run: backends held $bo, client $ok"
	[ "${dropped:-0}" = 0 ] || log "wsidle: warning: $mode run $run: $dropped dropped while idle"
	for i in $(seq 100); do # let the backends drop the closed ones
		[ "$(backend_ws_open)" = 0 ] && break
		sleep 0.1
	done
	echo "$(awk -v a="$rss0" -v b="$rss1" -v n="$ok" 'BEGIN{printf "%.2f", (b - a) / n}') $ok $rss0 $rss1"
}

median() { sort -n | awk '{v[NR]=$1} END{if (NR % 2) print v[(NR+1)/2]; else printf "%.2f\n", (v[NR/2] + v[NR/2+1]) / 2}'; }

log "wsidle: $($BIN version 2>/dev/null), N=$N, runs=$RUNS, modes: $MODES, proxy CPU $PROXY_CPU, client CPU $CLIENT_CPU"
for run in $(seq "$RUNS"); do
	for mode in $MODES; do
		r=$(measure "$mode" "$run") || exit 1
		set -- $r
		printf '%-5s run %d: %s KiB/conn  (%d conns, RSS %d -> %d KiB)\n' "$mode" "$run" "$1" "$2" "$3" "$4"
		echo "$1" >>"$TMP/kib-$mode"
	done
done
for mode in $MODES; do
	printf '%-5s median of %d: %s KiB/conn idle WebSocket (N=%d)\n' "$mode" "$RUNS" "$(median <"$TMP/kib-$mode")" "$N"
done
