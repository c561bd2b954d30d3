# Adapter: Gatehouse with [runtime] min_heap = 0 (Go's own GC pacing).
# The A/B of the heap floor (docs/performance.md).
GATEHOUSE_VARIANT=1 GATEHOUSE_UPSTREAM_CLIENT= GATEHOUSE_MIN_HEAP= GATEHOUSE_BUILD_TAGS=
GATEHOUSE_MIN_HEAP=0
source "$(dirname "${BASH_SOURCE[0]}")/gatehouse.sh"
