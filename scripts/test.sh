#!/usr/bin/env bash
# The README's test command (`npm test`) and CI's (.ci/run): installs the Debian packages of every
# external program the tests run (scripts/test-tools.txt) when missing, makes sure a Redis answers on
# 127.0.0.1:6379, type-checks (beside the parallel lane of the tests), and runs every test (or only the
# test files given as arguments, after the type-check).
set -euo pipefail
cd "$(dirname "$0")/.."

# 1. tools: scripts/test-tools.txt maps each program to its Debian package (today: chromium sipp dnsmasq baresip linphonec ip tc ss iptables conntrack sysctl redis-server
#    redis-cli setpriv taskset pgrep ps getconf tcpdump openssl sox git)
need=()
missing=()
while read -r program package _; do
  case "$program" in '' | '#'*) continue ;; esac
  if ! command -v "$program" >/dev/null 2>&1; then
    missing+=("$program")
    case " ${need[*]-} " in *" $package "*) ;; *) need+=("$package") ;; esac
  fi
done < scripts/test-tools.txt
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test: installing Debian packages for missing programs (${missing[*]}): ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # wait for another apt/dpkg run (up to 5 min) instead of failing on its lock
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq "${need[@]}" >/dev/null
  else
    echo "test: missing programs: ${missing[*]}; install their Debian packages: apt-get install ${need[*]}" >&2
    exit 1
  fi
  still=()
  for program in "${missing[@]}"; do command -v "$program" >/dev/null 2>&1 || still+=("$program"); done
  if [ ${#still[@]} -gt 0 ]; then
    echo "test: still missing after the install: ${still[*]} (see scripts/test-tools.txt)" >&2
    exit 1
  fi
fi

# 2. the shared Redis the Redis-backed tests use: start one when nothing answers on 6379
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "test: no Redis answers on 127.0.0.1:6379; starting redis-server there (no persistence) for the Redis-backed tests"
  redis_dir=$(mktemp -d "${TMPDIR:-/tmp}/ferry-test-redis.XXXXXX")
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no \
    --dir "$redis_dir" --logfile "$redis_dir/redis.log" >/dev/null
  for _ in $(seq 1 50); do
    redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    echo "test: redis-server did not answer on 127.0.0.1:6379 within 5 s (log: $redis_dir/redis.log)" >&2
    exit 1
  fi
fi

# 3. dependencies, type-check, tests
[ -d node_modules ] || npm ci
typecheck() { npx tsc --noEmit -p tsconfig.json; }

export NODE_ENV=test
# --test-force-exit: a file's process ends once its tests and hooks are done, instead of idling while a
# library's own background timers run out (kurento-client keeps retrying a stopped media server for ~20 s);
# what ferry itself leaves behind is counted by the tests (pipelines, ports, dialogs, fds, processes)
run_files() { # <concurrency> <files...>
  local concurrency=$1
  shift
  node --import tsx --test --test-force-exit --test-concurrency="$concurrency" --test-reporter=spec "$@"
}

# Files given as arguments run as they always did: one at a time, in the order given.
if [ $# -gt 0 ]; then
  typecheck
  # shellcheck disable=SC2086 # word splitting wanted: `npm test -- "a.ts b.ts"` works too
  exec node --import tsx --test --test-force-exit --test-concurrency=1 --test-reporter=spec $*
fi

# Lanes (docs/testing.md, "Lanes"; the list is test/lanes.json): the parallel lane runs 3 files at a
# time (its files touch nothing another process sees, and many of them spend their time waiting on their
# own processes and timers), then the paired lane (the Chromium files that touch nothing else
# machine-wide) 2 at a time with each other only (Chromium's CPU), then the quiet lane (serial files light on
# CPU whose only machine-wide uses are their own: test/lanes.json "quiet") 2 at a time with each other only,
# then the rest of the serial lane one at a time.
# FERRY_TEST_CONCURRENCY=N runs the parallel, the paired and the quiet lane N at a time;
# FERRY_TEST_CONCURRENCY=1 runs every file one at a time in a single run, as before the lanes.
concurrency=${FERRY_TEST_CONCURRENCY:-}
if [ -n "$concurrency" ]; then
  case "$concurrency" in *[!0-9]* | 0) echo "test: FERRY_TEST_CONCURRENCY must be a whole number >= 1, not '$concurrency'" >&2; exit 2 ;; esac
fi
parallel_concurrency=${concurrency:-3}
paired_concurrency=${concurrency:-2}
quiet_concurrency=${concurrency:-2}
if [ "$concurrency" = 1 ]; then
  typecheck
  mapfile -t files < <(find test -name '*.test.ts' | sort)
  exec node --import tsx --test --test-force-exit --test-concurrency=1 --test-reporter=spec "${files[@]}"
fi

beside_list=$(node --import tsx test/lanes.ts beside)
parallel_list=$(node --import tsx test/lanes.ts parallel)
paired_list=$(node --import tsx test/lanes.ts paired)
quiet_list=$(node --import tsx test/lanes.ts quiet)
serial_list=$(node --import tsx test/lanes.ts serial)
# shellcheck disable=SC2206 # one path a line, no spaces in test file names
beside_files=($beside_list)
# shellcheck disable=SC2206
parallel_files=($parallel_list)
# shellcheck disable=SC2206
paired_files=($paired_list)
# shellcheck disable=SC2206
quiet_files=($quiet_list)
# shellcheck disable=SC2206
serial_files=($serial_list)
if [ $(( ${#beside_files[@]} + ${#parallel_files[@]} + ${#paired_files[@]} + ${#quiet_files[@]} + ${#serial_files[@]} )) -eq 0 ]; then
  echo "test: test/lanes.ts listed no test file (see test/lanes.json)" >&2
  exit 1
fi
started=$SECONDS
parallel_rc=0
serial_rc=0
# The type-check runs beside the parallel lane (whose files are untouched by another process's load)
# instead of before it; its output is printed once it is done, and a type error stops npm test there,
# before the paired and serial lanes.
typecheck_log=$(mktemp "${TMPDIR:-/tmp}/ferry-typecheck.XXXXXX")
typecheck >"$typecheck_log" 2>&1 &
typecheck_pid=$!
if [ ${#parallel_files[@]} -gt 0 ]; then
  echo "test: parallel lane: ${#parallel_files[@]} files, $parallel_concurrency at a time (test/lanes.json), the type-check beside them"
  run_files "$parallel_concurrency" "${parallel_files[@]}" || parallel_rc=$?
  echo "test: parallel lane: exit code $parallel_rc after $(( SECONDS - started )) s"
fi
typecheck_rc=0
wait "$typecheck_pid" || typecheck_rc=$?
cat "$typecheck_log"
rm -f "$typecheck_log"
if [ "$typecheck_rc" -ne 0 ]; then
  echo "test: the type-check (tsc --noEmit) failed with exit code $typecheck_rc; the paired and serial lanes did not run" >&2
  exit 1
fi
echo "test: type-check passed (done beside the parallel lane, $(( SECONDS - started )) s in)"
# The beside lane (long waits, little CPU, nothing machine-wide: test/lanes.json "beside") runs in the
# background from now on, all its files at once, beside the paired lane (beside the parallel lane as well, its
# start-up load made parallel files miss their waits); its report is printed when it is done, and the serial
# lane starts only after it.
beside_rc=0
beside_pid=
if [ ${#beside_files[@]} -gt 0 ]; then
  beside_log=$(mktemp "${TMPDIR:-/tmp}/ferry-beside.XXXXXX")
  echo "test: beside lane: ${#beside_files[@]} files at once in the background, beside the paired lane (test/lanes.json, beside)"
  run_files "${#beside_files[@]}" "${beside_files[@]}" >"$beside_log" 2>&1 &
  beside_pid=$!
fi
paired_started=$SECONDS
paired_rc=0
if [ ${#paired_files[@]} -gt 0 ]; then
  echo "test: paired lane: ${#paired_files[@]} files, $paired_concurrency at a time, only with each other (test/lanes.json, twoAtATime)"
  run_files "$paired_concurrency" "${paired_files[@]}" || paired_rc=$?
  echo "test: paired lane: exit code $paired_rc after $(( SECONDS - paired_started )) s"
fi
if [ -n "$beside_pid" ]; then
  wait "$beside_pid" || beside_rc=$?
  cat "$beside_log"
  rm -f "$beside_log"
  echo "test: beside lane: exit code $beside_rc, done $(( SECONDS - started )) s in"
fi
# The quiet lane (test/lanes.json "quiet"): serial files that spend their time waiting on their own timers with
# little CPU, and use nothing machine-wide but their own namespaces; two at a time with each other only, alone on
# the machine otherwise, before the rest of the serial lane.
quiet_rc=0
quiet_started=$SECONDS
if [ ${#quiet_files[@]} -gt 0 ]; then
  echo "test: quiet lane: ${#quiet_files[@]} files, $quiet_concurrency at a time, only with each other (test/lanes.json, quiet)"
  run_files "$quiet_concurrency" "${quiet_files[@]}" || quiet_rc=$?
  echo "test: quiet lane: exit code $quiet_rc after $(( SECONDS - quiet_started )) s"
fi
serial_started=$SECONDS
if [ ${#serial_files[@]} -gt 0 ]; then
  echo "test: serial lane: ${#serial_files[@]} files, one at a time (test/lanes.json gives each one's reason)"
  run_files 1 "${serial_files[@]}" || serial_rc=$?
  echo "test: serial lane: exit code $serial_rc after $(( SECONDS - serial_started )) s"
fi
echo "test: parallel lane exit code $parallel_rc, beside lane exit code $beside_rc, paired lane exit code $paired_rc, quiet lane exit code $quiet_rc, serial lane exit code $serial_rc, $(( SECONDS - started )) s in all"
if [ "$parallel_rc" -ne 0 ] || [ "$beside_rc" -ne 0 ] || [ "$paired_rc" -ne 0 ] || [ "$quiet_rc" -ne 0 ] || [ "$serial_rc" -ne 0 ]; then exit 1; fi
