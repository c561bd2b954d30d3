# Adapter: Gatehouse forwarding through net/http's http.Transport
# ([upstreams] client = "net/http") instead of its own HTTP/1.1 client.
# The A/B of the upstream client (docs/performance.md).
GATEHOUSE_VARIANT=1 GATEHOUSE_UPSTREAM_CLIENT= GATEHOUSE_BUILD_TAGS=
GATEHOUSE_UPSTREAM_CLIENT=net/http
source "$(dirname "${BASH_SOURCE[0]}")/gatehouse.sh"
