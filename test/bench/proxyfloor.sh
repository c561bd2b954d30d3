# Adapter: the net/http proxy floor (test/bench/proxyfloor), for the
# side-by-side benchmark in ../shared/bench:
#   BENCH_ADAPTERS=test/bench ../shared/bench/run --only nginx,gatehouse,proxyfloor
# Go's net/http server (HTTP/2 on the TLS listener, as Gatehouse's) in front
# of the two backends with the least a reverse proxy must do: what its
# figures are against nginx's is what no proxy built on net/http's server
# reaches below (docs/performance.md, "The net/http floor of the proxied
# columns"). Same fairness rules as the other adapters: 127.0.0.1 only, no
# access log, one core (launch sets GOMAXPROCS=1), HTTP/1.1 keep-alive to both
# backends (64 idle connections each), round robin, WebSocket upgrades
# spliced, no TLS session tickets, X-Forwarded-For/-Proto added. Built from
# this checkout into GATEHOUSE_BIN_DIR (or a temporary directory) on first use.
proxyfloor_bin() {
	local src out
	src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
	out="${GATEHOUSE_BIN_DIR:-${TMPDIR:-/tmp}/gatehouse-bench-bin}/proxyfloor"
	if [ -n "${GATEHOUSE_BIN_DIR:-}" ] && [ -x "$out" ]; then
		echo "$out"
		return
	fi
	mkdir -p "$(dirname "$out")"
	(cd "$src" && ${GO:-go} build -trimpath -o "$out" ./test/bench/proxyfloor) >&2 || return 1
	echo "$out"
}

adapter_version() { ${GO:-go} env GOVERSION 2>/dev/null || echo unknown; }

adapter_start() {
	local bin
	bin=$(proxyfloor_bin) || return 1
	launch "$bin" -backends "$BACKEND1,$BACKEND2" -http "127.0.0.1:$HTTP_PORT" \
		-https "127.0.0.1:$HTTPS_PORT" -cert "$TLS_CERT" -key "$TLS_KEY"
}
