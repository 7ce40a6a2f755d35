#!/usr/bin/env bash
# Measures the release latencies docs/lifecycle.md reports (S1, S2, S4, S5, S6, S7, plus S3's largest
# RTP gap and S13/S14), by running the lifecycle scenario tests N times (default 3) and printing
# their "[measure]" lines. Usage: bash test/lifecycle/measure-release-latency.sh [N]
set -euo pipefail
cd "$(dirname "$0")/../.."
n="${1:-3}"
export NODE_ENV=test
for i in $(seq 1 "$n"); do
  for f in s01-s02-hangup-proxy-alive-gateway s03-s04-s05-proxy-killed s06-webphone-closes-chromium s07-s10-cable-pull-and-blip-netns s04-s13-gateway-killed-and-restarted s14-two-gateways-one-dies; do
    out=$(node --import tsx --test "test/lifecycle/$f.test.ts" 2>&1 || true)
    echo "run $i $f: $(grep -E '^# (pass|fail) ' <<<"$out" | tr '\n' ' ')"
    grep -o '\[measure\].*' <<<"$out" || true
  done
done
