#!/usr/bin/env bash
# Static file throughput: Gatehouse against nginx serving the same directory
# (issue 14). For each server, scheme (plaintext, TLS) and file (a 2 KiB
# hashed CSS, a 1 MiB hashed JS), wrk fetches the file over keep-alive
# connections, and the server's CPU time (utime+stime of its whole process
# tree, from /proc) is divided by the requests completed: CPU µs per request
# and per MiB, with Gatehouse's ratio to nginx. Lower is better; the bar of
# issue 14 is ≤ 1.5× nginx for the small file.
#
# The servers run side by side, each on its own ports. After one warm-up
# run per server and cell, every cell is measured on each server in turn,
# round after round (--repeat), short runs back to back, the server that
# starts a round moving from one round to the next. A shared VM's speed
# moves by 1.5-2x from one minute to the next, and not alike for every
# server (Go's runtime suffers more in a slow phase than nginx), so the
# ratios are paired: each round's ratio of two servers measured seconds
# apart, and the median of those over the rounds, with the lowest and
# highest round and the ratio of the two servers' medians beside it. The
# table of CPU figures gives each server's median. A third server,
# nethttp (test/bench/nethttpfloor: Go's net/http serving the files from
# memory with nothing else), is the floor of any net/http server:
# "floor / nginx" is what is not Gatehouse's, "Gatehouse / floor" what is.
#
#   test/bench/static.sh                 # full run, about 4 minutes
#   test/bench/static.sh --quick         # smoke run: proves the script works, measures little
#   test/bench/static.sh --duration 5 --repeat 15
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
# GATEHOUSE_BIN names a built binary (and for nethttp). Runs as any user;
# ports PORT_BASE+0..5 (default 28180-28185) must be free.
set -euo pipefail

DURATION=2
WARMUP=2
REPEAT=9
CONNS_SMALL=50
CONNS_LARGE=16
PORT_BASE=${PORT_BASE:-28180}
PROXY_CPU=${PROXY_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
ONLY="nginx,gatehouse,nethttp"
KEEP=0

usage() {
	sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'
	cat <<USAGE

Options:
  --quick            one round of 1 s runs after a 1 s warm-up (a smoke test)
  --duration S       seconds per measured run (default $DURATION)
  --repeat N         rounds; the tables show medians (default $REPEAT)
  --only LIST        servers, comma-separated (default $ONLY)
  --keep-tmp         keep the work directory (configs, logs, wrk output)
USAGE
}

while [ $# -gt 0 ]; do
	case $1 in
	--quick) DURATION=1 WARMUP=1 REPEAT=1 ;;
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
declare -A SERVER_PID
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	if [ "$KEEP" = 1 ]; then echo "work directory kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ports NAME: sets HTTP_PORT and HTTPS_PORT to NAME's.
ports() {
	case $1 in
	nginx) HTTP_PORT=$PORT_BASE ;;
	gatehouse) HTTP_PORT=$((PORT_BASE + 2)) ;;
	nethttp) HTTP_PORT=$((PORT_BASE + 4)) ;;
	*) echo "static.sh: unknown server $1 (nginx, gatehouse, nethttp)" >&2; exit 2 ;;
	esac
	HTTPS_PORT=$((HTTP_PORT + 1))
}

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
	SERVER_PID[gatehouse]=$!
	PIDS+=("$!")
}

start_nethttp() {
	(cd "$SRC" && ${GO:-go} build -trimpath -o "$WORK/nethttpfloor" ./test/bench/nethttpfloor) >&2
	GOMAXPROCS=1 taskset -c "$PROXY_CPU" "$WORK/nethttpfloor" -root "$WORK/static" \
		-http "127.0.0.1:$HTTP_PORT" -https "127.0.0.1:$HTTPS_PORT" -cert "$WORK/cert.pem" -key "$WORK/key.pem" \
		>"$WORK/nethttp.log" 2>&1 &
	SERVER_PID[nethttp]=$!
	PIDS+=("$!")
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
	SERVER_PID[nginx]=$!
	PIDS+=("$!")
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
		kill -0 "${SERVER_PID[$1]}" 2>/dev/null || { echo "static.sh: $1 exited:" >&2; cat "$WORK/$1.log" >&2; return 1; }
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

# url NAME SCHEME FILE: the file's URL on NAME.
url() {
	ports "$1"
	local port=$HTTP_PORT
	[ "$2" = https ] && port=$HTTPS_PORT
	echo "$2://localhost:$port/static/$3"
}

# warm NAME SCHEME FILE CONNS: one unmeasured run (connections, caches,
# the Go heap's size).
warm() {
	taskset -c "$CLIENT_CPU" wrk -t1 -c"$4" -d"${WARMUP}s" "$(url "$1" "$2" "$3")" >/dev/null 2>&1 || true
}

# measure NAME SCHEME FILE CONNS: prints "us_per_req req_per_s"
measure() {
	local name=$1 scheme=$2 file=$3 conns=$4 url before after out n secs non2xx errs
	url=$(url "$name" "$scheme" "$file")
	before=$(tree_ticks "${SERVER_PID[$name]}")
	out=$(taskset -c "$CLIENT_CPU" wrk -t1 -c"$conns" -d"${DURATION}s" "$url" 2>&1)
	after=$(tree_ticks "${SERVER_PID[$name]}")
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

median() { sort -g | awk '{a[NR] = $1} END {if (NR == 0) print "-"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

declare -A RES US RPS
IFS=, read -r -a SERVERS <<<"$ONLY"
for name in "${SERVERS[@]}"; do
	ports "$name"
	# A server left on these ports would answer for the one started here
	# (which then fails to bind), and the figures would be its.
	for p in "$HTTP_PORT" "$HTTPS_PORT"; do
		if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "static.sh: port $p is in use (PORT_BASE=$PORT_BASE)" >&2
			exit 1
		fi
	done
done
for name in "${SERVERS[@]}"; do
	ports "$name"
	"start_$name"
done
for name in "${SERVERS[@]}"; do
	ports "$name"
	wait_ready "$name"
	check "$name"
done
# cells: "scheme file conns" for each cell of the tables.
CELLS=()
for scheme in http https; do
	CELLS+=("$scheme css $CONNS_SMALL" "$scheme js $CONNS_LARGE")
done
file_of() { if [ "$1" = css ]; then echo "$CSS"; else echo "$JS"; fi; }
for cell in "${CELLS[@]}"; do
	read -r scheme f conns <<<"$cell"
	for name in "${SERVERS[@]}"; do
		warm "$name" "$scheme" "$(file_of "$f")" "$conns"
	done
done
# Round after round, each cell on each server in turn, the first server
# of a round moving by one each round (see the top).
for ((round = 0; round < REPEAT; round++)); do
	for cell in "${CELLS[@]}"; do
		read -r scheme f conns <<<"$cell"
		for ((i = 0; i < ${#SERVERS[@]}; i++)); do
			name=${SERVERS[$(((i + round) % ${#SERVERS[@]}))]}
			read -r u r < <(measure "$name" "$scheme" "$(file_of "$f")" "$conns")
			US[$name,$scheme,$f]+="$u "
			RPS[$name,$scheme,$f]+="$r "
			echo "$((round + 1)) $name $scheme $f $u $r" >>"$WORK/rounds.txt"
		done
	done
done
for k in "${!US[@]}"; do
	RES[$k,us]=$(printf '%s\n' ${US[$k]} | median)
	RES[$k,rps]=$(printf '%s\n' ${RPS[$k]} | median)
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
# ratios A B TITLE: A's CPU per request over B's, per cell: the median of
# the rounds' ratios (lowest-highest round), and the ratio of the two
# servers' medians.
ratios() {
	[[ ",$ONLY," == *,$1,* && ",$ONLY," == *,$2,* ]] || return 0
	echo
	echo "$3"
	for scheme in http https; do
		for f in css js; do
			echo "${US[$1,$scheme,$f]}|${US[$2,$scheme,$f]}|${RES[$1,$scheme,$f,us]}|${RES[$2,$scheme,$f,us]}" | awk -F'|' -v s="$scheme" -v f="$f" '
			{
				na = split($1, a, " "); split($2, b, " "); k = 0
				for (i = 1; i <= na; i++) if (a[i] != "-" && b[i] != "-" && b[i] > 0) r[++k] = a[i] / b[i]
				for (i = 2; i <= k; i++) for (j = i; j > 1 && r[j-1] > r[j]; j--) { t = r[j]; r[j] = r[j-1]; r[j-1] = t }
				if (k == 0) { printf "  %-6s %-4s -\n", s, f; next }
				med = (k % 2) ? r[(k+1)/2] : (r[k/2] + r[k/2+1]) / 2
				rom = ($3 == "-" || $4 == "-" || $4 == 0) ? "-" : sprintf("%.2f", $3 / $4)
				printf "  %-6s %-4s %.2f  (rounds %.2f-%.2f, n=%d; ratio of medians %s)\n", s, f, med, r[1], r[k], k, rom
			}'
		done
	done
}
ratios gatehouse nginx "Gatehouse / nginx (CPU per request, median of the rounds' ratios; ≤ 1.5 is issue 14's bar for the small file)"
ratios nethttp nginx "net/http floor / nginx (what is not Gatehouse's)"
ratios gatehouse nethttp "Gatehouse / net/http floor (what is)"
