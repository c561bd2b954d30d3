# Adapter: Gatehouse, for the side-by-side benchmark in ../shared/bench.
#   BENCH_ADAPTERS=test/bench ../shared/bench/run --only nginx,haproxy,gatehouse
# Sourced by the harness (see its README, "Adding an adapter"). Builds the
# binary from this checkout unless GATEHOUSE_BIN names one. Fairness rules
# followed: 127.0.0.1 only, access log off, one core (launch sets
# GOMAXPROCS=1), HTTP/1.1 keep-alive to both backends, round robin,
# WebSocket upgrades passed through, TLS session resumption off (tickets off
# is Gatehouse's default), X-Forwarded-For/-Proto added (always).
#
# Variants for A/B measurements (docs/performance.md, "Cleverness budget"):
# the other gatehouse_*.sh adapters set GATEHOUSE_VARIANT=1 and some of these,
# then source this one (the harness sources every adapter into one shell, so
# the plain adapter resets them):
#   GATEHOUSE_UPSTREAM_CLIENT  [upstreams] client ("gatehouse" or "net/http")
#   GATEHOUSE_BUILD_TAGS       go build -tags (e.g. gatehouse_nosockio)
# GATEHOUSE_BIN_DIR, when set, holds prebuilt binaries (gatehouse,
# gatehouse-TAGS); they are built there on first use and reused.
if [ -z "${GATEHOUSE_VARIANT:-}" ]; then
	unset GATEHOUSE_UPSTREAM_CLIENT GATEHOUSE_BUILD_TAGS
fi
unset GATEHOUSE_VARIANT

GATEHOUSE_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

gatehouse_bin() {
	if [ -n "${GATEHOUSE_BIN:-}" ]; then
		echo "$GATEHOUSE_BIN"
		return
	fi
	local tags=${GATEHOUSE_BUILD_TAGS:-}
	local out="${GATEHOUSE_BIN_DIR:-${TMPDIR:-/tmp}/gatehouse-bench-bin}/gatehouse${tags:+-$tags}"
	if [ -n "${GATEHOUSE_BIN_DIR:-}" ] && [ -x "$out" ]; then
		# Prebuilt (GATEHOUSE_BIN_DIR): every round of a long run measures
		# the same binary, whatever happens to the checkout meanwhile.
		echo "$out"
		return
	fi
	mkdir -p "$(dirname "$out")"
	(cd "$GATEHOUSE_SRC" && ${GO:-go} build -trimpath ${tags:+-tags "$tags"} -o "$out" ./cmd/gatehouse) >&2 || return 1
	echo "$out"
}

adapter_version() { "$(gatehouse_bin)" version 2>/dev/null | sed 's/^gatehouse //' || echo unknown; }

# gatehouse_config FILE writes the benchmark configuration to FILE, from
# the harness's variables (WORKDIR, HTTP_PORT, HTTPS_PORT, TLS_CERT,
# TLS_KEY, BACKEND1, BACKEND2). GATEHOUSE_ADMIN, when set, is the body of
# the admin listener's table (default: none, so nothing else runs on the
# proxy CPU). test/bench/wsidle.sh measures with this configuration too.
gatehouse_config() {
	local admin=${GATEHOUSE_ADMIN:-'address = ""'}
	cat >"$1" <<CONF
state_dir = "$WORKDIR/state"

[log]
level = "warn"

[listeners.http]
address = "127.0.0.1:$HTTP_PORT"

[listeners.https]
address = "127.0.0.1:$HTTPS_PORT"
http2 = true               # h2load's H2 column; wrk and the new-TLS client negotiate no ALPN
session_tickets = false    # every new connection is a full handshake
curves = ["X25519"]        # the harness compares X25519 handshakes (nginx/HAProxy's OpenSSL 3.0
                           # has no ML-KEM); Gatehouse's default offers X25519MLKEM768 first

[listeners.admin]
$admin

[limits]
conn_per_ip = 0            # every benchmark connection comes from 127.0.0.1

[timeouts]
keepalive = "75s"          # as the nginx adapter's keepalive_timeout

[sites.bench]
hosts = ["localhost"]
default = true
tls = "files"
cert_file = "$TLS_CERT"
key_file = "$TLS_KEY"
hsts = "off"
redirect_https = false
access_log = "off"

[[sites.bench.routes]]
path = "/"
upstream = "backends"
websocket = { enabled = true, origins = ["*"], idle_timeout = "1h" }

[upstreams.backends]
client = "${GATEHOUSE_UPSTREAM_CLIENT:-gatehouse}"
policy = "round_robin"
keepalive = 64             # idle connections per backend, as the others
servers = [
  { name = "b1", address = "$BACKEND1" },
  { name = "b2", address = "$BACKEND2" },
]
CONF
}

adapter_start() {
	local bin
	bin=$(gatehouse_bin) || return 1
	gatehouse_config "$WORKDIR/gatehouse.toml"
	launch "$bin" run -config "$WORKDIR/gatehouse.toml"
}
