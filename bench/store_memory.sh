#!/usr/bin/env bash
# Bytes per binding and per dialog in the router's memory store, 100,000 of each (targets:
# < 1 KiB per binding, < 4 KiB per dialog). Realistic field sizes: see bench/tools/store_memory.cpp.
# For Kamailio's side, bench/router_vs_kamailio.sh prints the growth of each proxy's memory over
# its first 10,000 registrations (allocator and transaction churn included).
#
#   bench/store_memory.sh                      # BINDINGS=100000 DIALOGS=100000
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tool="${STORE_MEMORY:-$root/build/bench/store_memory}"
if [[ ! -x "$tool" ]]; then
  echo "store_memory not built: make build (or set STORE_MEMORY)" >&2
  exit 1
fi
echo "# bench/store_memory.sh $(date -u +%FT%TZ) commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')"
exec "$tool" --bindings "${BINDINGS:-100000}" --dialogs "${DIALOGS:-100000}"
