#!/usr/bin/env bash
# Static file throughput: Gatehouse against nginx serving the same directory
# (issue 14). For each server, scheme (plaintext, TLS) and file (a 2 KiB
# hashed CSS, a 1 MiB hashed JS), wrk fetches the file over keep-alive
# connections, and the server's CPU time (utime+stime of its whole process
# tree, from /proc) is divided by the requests completed: CPU µs per request
# and per MiB, with Gatehouse's ratio to nginx. Lower is better; the bar of
# issue 14 is ≤ 1.5× nginx for the small file.
#
#   test/bench/static.sh                 # full run, about 2 minutes
#   test/bench/static.sh --quick         # smoke run: proves the script works, measures little
#   test/bench/static.sh --duration 20 --repeat 3
#
# Fairness, as in ../shared/bench: both servers on one core (PROXY_CPU,
# default 0; nginx 1 worker, Gatehouse GOMAXPROCS=1), wrk on another
# (CLIENT_CPU, default 1), 127.0.0.1 only, access logs off, sendfile on
# (nginx: sendfile + tcp_nopush; Gatehouse: sendfile for files > 32 KiB,
# memory for smaller ones), open-file caches of the same size, the same
# Cache-Control, TLS 1.3 with X25519 and AES-128-GCM, no session resumption
# (wrk keeps its connections: the handshakes are a few per run).
#
# Needs: wrk, nginx, openssl, taskset, curl, getconf, awk; Go unless
# GATEHOUSE_BIN names a built binary. Runs as any user; ports PORT_BASE+0..3
# (default 28180-28183) must be free.
set -euo pipefail

DURATION=10
WARMUP=2
REPEAT=1
CONNS_SMALL=50
CONNS_LARGE=16
PORT_BASE=${PORT_BASE:-28180}
PROXY_CPU=${PROXY_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
ONLY="nginx,gatehouse"
KEEP=0

usage() {
	sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'
	cat <<USAGE

Options:
  --quick            1 s runs after a 1 s warm-up (a smoke test)
  --duration S       seconds per measured run (default $DURATION)
  --repeat N         runs per cell; the table shows the median (default $REPEAT)
  --only LIST        servers, comma-separated (default $ONLY)
  --keep-tmp         keep the work directory (configs, logs, wrk output)
USAGE
}

while [ $# -gt 0 ]; do
	case $1 in
	--quick) DURATION=1 WARMUP=1 ;;
	--duration) DURATION=$2; shift ;;
	--repeat) REPEAT=$2; shift ;;
	--only) ONLY=$2; shift ;;
	--keep-tmp) KEEP=1 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "unknown option $1" >&2; usage >&2; exit 2 ;;
	esac
	shift
done

for t in wrk openssl taskset curl getconf awk; do
	command -v "$t" >/dev/null || { echo "static.sh: $t is not installed" >&2; exit 1; }
done
case ",$ONLY," in *,nginx,*) command -v nginx >/dev/null || { echo "static.sh: nginx is not installed (Debian: nginx-light)" >&2; exit 1; } ;; esac

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CLK_TCK=$(getconf CLK_TCK)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-static-bench.XXXXXX")
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	if [ "$KEEP" = 1 ]; then echo "work directory kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

HTTP_PORT=$PORT_BASE
HTTPS_PORT=$((PORT_BASE + 1))

# The files: what ManifestStaticFilesStorage would name them.
CSS=app.3f2a1b9c4d5e.css
JS=app.4a5b6c7d8e9f.js
mkdir -p "$WORK/static"
# base64 of n random bytes is 4n/3 characters plus line breaks: cut to size
# with truncate, not a second head (base64 would die of SIGPIPE, and
# pipefail would end the script with it).
head -c 1536 /dev/urandom | base64 -w 76 >"$WORK/static/$CSS"
truncate -s 2048 "$WORK/static/$CSS"
head -c 786432 /dev/urandom | base64 -w 76 >"$WORK/static/$JS"
truncate -s 1048576 "$WORK/static/$JS"
SIZE_CSS=$(stat -c %s "$WORK/static/$CSS")
SIZE_JS=$(stat -c %s "$WORK/static/$JS")

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
	-addext subjectAltName=DNS:localhost -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null

gatehouse_bin() {
	if [ -n "${GATEHOUSE_BIN:-}" ]; then echo "$GATEHOUSE_BIN"; return; fi
	(cd "$SRC" && ${GO:-go} build -trimpath -o "$WORK/gatehouse" ./cmd/gatehouse) >&2
	echo "$WORK/gatehouse"
}

start_gatehouse() {
	local bin
	bin=$(gatehouse_bin)
	cat >"$WORK/gatehouse.toml" <<CONF
state_dir = "$WORK/state"
[log]
level = "warn"
[listeners.http]
address = "127.0.0.1:$HTTP_PORT"
[listeners.https]
address = "127.0.0.1:$HTTPS_PORT"
http2 = false
session_tickets = false
curves = ["X25519"]
[listeners.admin]
address = ""
[limits]
conn_per_ip = 0
[timeouts]
keepalive = "75s"
[open_file_cache]
entries = 1000
valid = "1s"
[sites.bench]
hosts = ["localhost"]
default = true
tls = "files"
cert_file = "$WORK/cert.pem"
key_file = "$WORK/key.pem"
hsts = "off"
redirect_https = false
access_log = "off"
[[sites.bench.routes]]
path = "/static/"
alias = "$WORK/static"
CONF
	GOMAXPROCS=1 taskset -c "$PROXY_CPU" "$bin" run -config "$WORK/gatehouse.toml" >"$WORK/gatehouse.log" 2>&1 &
	SERVER_PID=$!
	PIDS+=("$SERVER_PID")
}

start_nginx() {
	local user_line=""
	[ "$(id -u)" = 0 ] && user_line="user root;" # the worker must read $WORK (mode 0700)
	mkdir -p "$WORK/nginx-tmp"
	cat >"$WORK/nginx.conf" <<CONF
$user_line
worker_processes 1;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 1024; use epoll; }
http {
    include /etc/nginx/mime.types;
    access_log off;
    client_body_temp_path $WORK/nginx-tmp/body;
    proxy_temp_path $WORK/nginx-tmp/proxy;
    fastcgi_temp_path $WORK/nginx-tmp/fastcgi;
    uwsgi_temp_path $WORK/nginx-tmp/uwsgi;
    scgi_temp_path $WORK/nginx-tmp/scgi;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    sendfile on;
    tcp_nopush on;
    open_file_cache max=1000 inactive=60s;
    open_file_cache_valid 1s;
    server {
        listen 127.0.0.1:$HTTP_PORT;
        listen 127.0.0.1:$HTTPS_PORT ssl;
        server_name localhost;
        ssl_certificate $WORK/cert.pem;
        ssl_certificate_key $WORK/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache off;
        ssl_session_tickets off;
        ssl_conf_command NumTickets 0;
        ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256;
        ssl_ecdh_curve X25519;
        location /static/ {
            alias $WORK/static/;
            add_header Cache-Control "public, max-age=31536000, immutable";
            add_header X-Content-Type-Options nosniff;
        }
    }
}
CONF
	taskset -c "$PROXY_CPU" nginx -c "$WORK/nginx.conf" -p "$WORK" >"$WORK/nginx.log" 2>&1 &
	SERVER_PID=$!
	PIDS+=("$SERVER_PID")
}

stop_server() {
	kill "$SERVER_PID" 2>/dev/null || true
	wait "$SERVER_PID" 2>/dev/null || true
}

# tree_ticks PID: utime+stime (clock ticks) of PID and its descendants.
tree_ticks() {
	local sum=0 p v
	for p in $1 $(pgrep -P "$1" 2>/dev/null || true); do
		v=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}') || v=0
		sum=$((sum + ${v:-0}))
	done
	echo "$sum"
}

wait_ready() {
	local i
	for i in $(seq 1 200); do
		curl -sf -o /dev/null "http://127.0.0.1:$HTTP_PORT/static/$CSS" && return 0
		kill -0 "$SERVER_PID" 2>/dev/null || { echo "static.sh: $1 exited:" >&2; cat "$WORK/$1.log" >&2; return 1; }
		sleep 0.05
	done
	echo "static.sh: $1 did not answer on :$HTTP_PORT" >&2
	return 1
}

# check NAME: both files, both schemes, right sizes and headers.
check() {
	local scheme port f size got cc
	for scheme in http https; do
		port=$HTTP_PORT
		[ $scheme = https ] && port=$HTTPS_PORT
		for f in $CSS $JS; do
			size=$SIZE_CSS
			[ $f = "$JS" ] && size=$SIZE_JS
			got=$(curl -sk -o /dev/null -w '%{http_code} %{size_download}' "$scheme://localhost:$port/static/$f" --resolve "localhost:$port:127.0.0.1")
			[ "$got" = "200 $size" ] || { echo "static.sh: $1 $scheme $f: got '$got', want '200 $size'" >&2; return 1; }
		done
		cc=$(curl -sk -D - -o /dev/null "$scheme://localhost:$port/static/$CSS" --resolve "localhost:$port:127.0.0.1" | tr -d '\r' | awk -F': ' 'tolower($1)=="cache-control"{print $2}')
		[ "$cc" = "public, max-age=31536000, immutable" ] || { echo "static.sh: $1 $scheme: Cache-Control '$cc'" >&2; return 1; }
	done
}

# measure NAME SCHEME FILE CONNS: prints "us_per_req req_per_s"
measure() {
	local name=$1 scheme=$2 file=$3 conns=$4 port url before after out n secs non2xx errs
	port=$HTTP_PORT
	[ "$scheme" = https ] && port=$HTTPS_PORT
	url="$scheme://localhost:$port/static/$file"
	taskset -c "$CLIENT_CPU" wrk -t1 -c"$conns" -d"${WARMUP}s" "$url" >/dev/null 2>&1 || true
	before=$(tree_ticks "$SERVER_PID")
	out=$(taskset -c "$CLIENT_CPU" wrk -t1 -c"$conns" -d"${DURATION}s" "$url" 2>&1)
	after=$(tree_ticks "$SERVER_PID")
	echo "$out" >>"$WORK/wrk-$name.txt"
	n=$(echo "$out" | awk '/requests in/ {print $1}')
	non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
	errs=$(echo "$out" | awk '/Socket errors/ {print $0}')
	if [ -z "$n" ] || [ "$n" = 0 ] || [ -n "$non2xx" ]; then
		echo "static.sh: $name $scheme $file: wrk failed (requests '$n', non-2xx '$non2xx', $errs)" >&2
		echo "- -"
		return
	fi
	if [ -n "$errs" ]; then echo "static.sh: $name $scheme $file: $errs" >&2; fi
	secs=$(echo "$out" | awk '/requests in/ {sub(/s,$/, "", $4); print $4}')
	awk -v t=$((after - before)) -v hz="$CLK_TCK" -v n="$n" -v s="$secs" 'BEGIN {printf "%.2f %.0f\n", t * 1e6 / hz / n, n / s}'
}

median() { sort -g | awk '{a[NR] = $1} END {if (NR == 0) print "-"; else print a[int((NR + 1) / 2)]}'; }

declare -A RES
IFS=, read -r -a SERVERS <<<"$ONLY"
for name in "${SERVERS[@]}"; do
	"start_$name"
	wait_ready "$name"
	check "$name"
	for scheme in http https; do
		for f in css js; do
			file=$CSS conns=$CONNS_SMALL
			[ $f = js ] && file=$JS conns=$CONNS_LARGE
			us=() rps=()
			for _ in $(seq 1 "$REPEAT"); do
				read -r u r < <(measure "$name" "$scheme" "$file" "$conns")
				us+=("$u") rps+=("$r")
			done
			RES[$name,$scheme,$f,us]=$(printf '%s\n' "${us[@]}" | median)
			RES[$name,$scheme,$f,rps]=$(printf '%s\n' "${rps[@]}" | median)
		done
	done
	stop_server
done

echo
echo "Static files, CPU µs per request (µs per MiB) and req/s; ${DURATION}s runs × $REPEAT, wrk -t1, $CONNS_SMALL conns (2 KiB), $CONNS_LARGE conns (1 MiB), keep-alive"
printf '%-10s %-6s %22s %22s\n' server scheme "2 KiB CSS" "1 MiB JS"
for name in "${SERVERS[@]}"; do
	for scheme in http https; do
		line=$(printf '%-10s %-6s' "$name" "$scheme")
		for f in css js; do
			size=$SIZE_CSS
			[ $f = js ] && size=$SIZE_JS
			us=${RES[$name,$scheme,$f,us]} rps=${RES[$name,$scheme,$f,rps]}
			cell=$(awk -v u="$us" -v s="$size" -v r="$rps" 'BEGIN {if (u == "-") print "-"; else printf "%.1f (%.0f/MiB) %s/s", u, u * 1048576 / s, r}')
			line+=$(printf ' %22s' "$cell")
		done
		echo "$line"
	done
done
if [[ ",$ONLY," == *,nginx,* && ",$ONLY," == *,gatehouse,* ]]; then
	echo
	echo "Gatehouse / nginx (CPU per request; ≤ 1.5 is issue 14's bar for the small file)"
	for scheme in http https; do
		for f in css js; do
			awk -v g="${RES[gatehouse,$scheme,$f,us]}" -v n="${RES[nginx,$scheme,$f,us]}" -v s="$scheme" -v f="$f" \
				'BEGIN {if (g == "-" || n == "-" || n == 0) r = "-"; else r = sprintf("%.2f", g / n); printf "  %-6s %-4s %s\n", s, f, r}'
		done
	done
fi
