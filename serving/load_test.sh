#!/usr/bin/env bash
# Bounded load test of a running `sitn-tf serve` (or TF Serving) with wrk:
# a fixed duration at concurrency 1, 8 and 32, one POST body.
#
#   serving/load_test.sh BODY.json [URL] [SECONDS]
#
# URL defaults to http://127.0.0.1:8501/v1/models/sitn:predict, SECONDS to 20.
# wrk comes from Debian (apt-get install wrk). Prints wrk's report per level.
set -euo pipefail
body="${1:?usage: serving/load_test.sh BODY.json [URL] [SECONDS]}"
url="${2:-http://127.0.0.1:8501/v1/models/sitn:predict}"
seconds="${3:-20}"
script="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/wrk_predict.lua"
command -v wrk >/dev/null || { echo "load_test: wrk not found (apt-get install wrk)" >&2; exit 1; }
# One request first: a wrong body or URL should fail here, not as a run of errors.
curl -sf -o /dev/null -H 'Content-Type: application/json' --data-binary "@$body" "$url" \
  || { echo "load_test: a first request to $url failed" >&2; exit 1; }
for connections in 1 8 32; do
  threads=$(( connections < 2 ? 1 : 2 ))
  echo "== concurrency $connections ($threads wrk threads, ${seconds} s)"
  BODY="$body" wrk -t"$threads" -c"$connections" -d"${seconds}s" --timeout 10s --latency \
    -s "$script" "$url"
done
