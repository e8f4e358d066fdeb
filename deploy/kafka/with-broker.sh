#!/usr/bin/env bash
# Runs a command with a throw-away Kafka broker: starts one in a new temporary folder on a
# free loopback port, exports ESR_TEST_KAFKA=127.0.0.1:PORT, runs the command, then stops the
# broker and removes the folder (also on Ctrl-C). `make test` runs the suite this way.
#
#   deploy/kafka/with-broker.sh python -m pytest
#
# If the broker cannot start, the command runs without it (Kafka tests then skip and say
# why), except with CI=true, where that fails the run: in CI the Kafka tests must run.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

port="${ESR_TEST_KAFKA_PORT:-19092}"
for _ in $(seq 1 50); do
    if port_free "$port" && port_free $((port + 1)); then break; fi
    port=$((port + 2))
done
dir="$(mktemp -d -t esr-kafka-XXXXXX)"
cleanup() { "$HERE/kafka.sh" stop "$dir/broker" >/dev/null 2>&1; rm -rf "$dir"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

if "$HERE/kafka.sh" start "$dir/broker" "$port"; then
    export ESR_TEST_KAFKA="127.0.0.1:$port"
    export ESR_TEST_KAFKA_DIR="$dir"
elif [[ "${CI:-}" == "true" ]]; then
    echo "with-broker: the Kafka broker did not start; failing because CI=true" >&2
    exit 1
else
    echo "with-broker: the Kafka broker did not start; Kafka tests will skip" >&2
fi
"$@"
