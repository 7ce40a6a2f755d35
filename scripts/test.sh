#!/usr/bin/env bash
# The README's test command (`npm test`) and CI's (.ci/run): installs the Debian tools the tests
# drive (real Chromium, SIPp, baresip, iproute2) when missing, type-checks, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v chromium >/dev/null || need+=(chromium)
command -v sipp >/dev/null || need+=(sip-tester)
command -v baresip >/dev/null || need+=(baresip)
command -v ip >/dev/null || need+=(iproute2)
command -v tc >/dev/null || need+=(iproute2)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "test: installing missing Debian packages: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "test: missing Debian packages: ${need[*]} (install them: apt-get install ${need[*]})" >&2
    exit 1
  fi
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "test: note: no Redis on 127.0.0.1:6379; Redis-backed tests will fail (start redis-server)" >&2
fi

[ -d node_modules ] || npm ci
npx tsc --noEmit -p tsconfig.json

files=$(find test -name '*.test.ts' | sort)
if [ $# -gt 0 ]; then files="$*"; fi
export NODE_ENV=test
exec node --import tsx --test --test-concurrency=1 --test-reporter=spec $files
