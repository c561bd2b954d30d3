# Adapter: Gatehouse built with -tags gatehouse_nosockio: sockets read and
# written through Go's runtime like any net.Conn, not with raw system calls.
# The A/B of internal/sockio (docs/performance.md).
GATEHOUSE_VARIANT=1 GATEHOUSE_UPSTREAM_CLIENT= GATEHOUSE_BUILD_TAGS=
GATEHOUSE_BUILD_TAGS=gatehouse_nosockio
source "$(dirname "${BASH_SOURCE[0]}")/gatehouse.sh"
