# Adapter: Gatehouse built with -tags gatehouse_rawsockio: the sockets of
# the hot paths read and written with raw system calls (internal/sockio),
# the opt-in of docs/performance.md, "Cleverness budget".
GATEHOUSE_VARIANT=1 GATEHOUSE_UPSTREAM_CLIENT= GATEHOUSE_BUILD_TAGS=
GATEHOUSE_BUILD_TAGS=gatehouse_rawsockio
source "$(dirname "${BASH_SOURCE[0]}")/gatehouse.sh"
