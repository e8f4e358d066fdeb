#!/usr/bin/env bash
# A single-node Apache Kafka broker (KRaft, combined broker and controller) from the
# official jars on Maven Central, for ESR's tests, CI and local development.
#
#   deploy/kafka/kafka.sh fetch             download the jars into deploy/kafka/lib (cached by Maven)
#   deploy/kafka/kafka.sh start DIR [PORT]  format a new cluster in DIR, start it, wait until it answers
#   deploy/kafka/kafka.sh stop DIR          stop the broker started in DIR
#   deploy/kafka/kafka.sh status DIR        exit 0 when the broker in DIR is running
#
# PORT (default 9092, or $ESR_KAFKA_PORT) is the client listener on 127.0.0.1; the
# controller listens on PORT+1. DIR holds the data, server.log and kafka.pid: throw it away
# after stop. Needs Java 17+ and Maven.
#
# With ESR_KAFKA_SASL_USERS="alice:secret[,bob:other]" set, `start` also opens a
# SASL_PLAINTEXT listener on PORT+2 that takes SASL/PLAIN logins from those users (for
# trying ESR_KAFKA_CONFIG; PLAIN sends the password in clear, so loopback only). The
# PLAINTEXT listener on PORT stays, and carries the broker's own traffic. Give the variable
# again on a restart of the same DIR, or the listener is gone. Passwords are written to
# DIR/server.properties (mode 600), never printed.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LIB="$HERE/lib"
START_TIMEOUT="${ESR_KAFKA_START_TIMEOUT:-90}"

die() { echo "kafka.sh: $*" >&2; exit 1; }

fetch() {
    command -v java >/dev/null || die "java not found: install a JDK 17 or newer"
    if [[ -f "$LIB/.stamp" && "$LIB/.stamp" -nt "$HERE/pom.xml" ]]; then
        return 0
    fi
    command -v mvn >/dev/null || die "mvn not found: install Maven to fetch the Kafka jars"
    rm -rf "$LIB"
    (cd "$HERE" && mvn -q -B dependency:copy-dependencies) || die "Maven could not fetch the Kafka jars (see above)"
    touch "$LIB/.stamp"
}

java_cmd() {
    # shellcheck disable=SC2086
    exec java ${ESR_KAFKA_HEAP:--Xms256m -Xmx768m} -XX:+UseG1GC -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$HERE/log4j2.yaml" -cp "$LIB/*" "$@"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start() {
    local dir="${1:?usage: kafka.sh start DIR [PORT]}" port="${2:-${ESR_KAFKA_PORT:-9092}}"
    local cport=$((port + 1))
    fetch
    if port_open "$port"; then die "port $port on 127.0.0.1 is already in use"; fi
    if port_open "$cport"; then die "controller port $cport on 127.0.0.1 is already in use"; fi
    local jaas=""
    if [[ -n "${ESR_KAFKA_SASL_USERS:-}" ]]; then
        jaas="$(sasl_users "$ESR_KAFKA_SASL_USERS")" || exit 1
        if port_open $((port + 2)); then die "SASL port $((port + 2)) on 127.0.0.1 is already in use"; fi
    fi
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    [[ -f "$dir/kafka.pid" ]] && kill -0 "$(cat "$dir/kafka.pid")" 2>/dev/null && die "a broker is already running in $dir"
    (umask 077 && sed -e "s#127.0.0.1:9092#127.0.0.1:$port#g" -e "s#127.0.0.1:9093#127.0.0.1:$cport#g" \
        -e "s#^log.dirs=.*#log.dirs=$dir/data#" "$HERE/server.properties" >"$dir/server.properties" && chmod 600 "$dir/server.properties")
    [[ -n "$jaas" ]] && sasl_listener "$dir/server.properties" "$port" "$jaas"
    if [[ ! -f "$dir/data/meta.properties" ]]; then
        local cluster_id
        cluster_id="$( java_cmd kafka.tools.StorageTool random-uuid)"
        (java_cmd kafka.tools.StorageTool format --standalone -t "$cluster_id" \
            -c "$dir/server.properties") >"$dir/format.log" 2>&1 || { cat "$dir/format.log" >&2; die "formatting the storage in $dir failed"; }
    fi
    local log_from=1
    [[ -f "$dir/server.log" ]] && log_from=$(($(wc -c <"$dir/server.log") + 1))  # a restart: only new lines count
    (trap '' HUP; java_cmd kafka.Kafka "$dir/server.properties") >>"$dir/server.log" 2>&1 </dev/null &
    echo $! >"$dir/kafka.pid"
    local waited=0
    until tail -c +"$log_from" "$dir/server.log" 2>/dev/null | grep -q "Kafka Server started" && port_open "$port"; do
        if ! kill -0 "$(cat "$dir/kafka.pid")" 2>/dev/null; then
            tail -n 30 "$dir/server.log" >&2
            die "the broker exited while starting (log: $dir/server.log)"
        fi
        if ((waited >= START_TIMEOUT * 4)); then
            tail -n 30 "$dir/server.log" >&2
            stop "$dir"
            die "the broker did not answer on 127.0.0.1:$port within ${START_TIMEOUT}s"
        fi
        sleep 0.25
        waited=$((waited + 1))
    done
    if [[ -n "$jaas" ]]; then
        echo "kafka: broker up on 127.0.0.1:$port, SASL_PLAINTEXT (PLAIN) on 127.0.0.1:$((port + 2)) (data in $dir)"
    else
        echo "kafka: broker up on 127.0.0.1:$port (data in $dir)"
    fi
}

# "alice:secret,bob:other" -> the PLAIN login module's JAAS line (users and passwords checked, never echoed)
sasl_users() {
    local spec="$1" entry user="" pass out="org.apache.kafka.common.security.plain.PlainLoginModule required"
    local IFS=,
    for entry in $spec; do
        [[ "$entry" == *:* ]] || die "ESR_KAFKA_SASL_USERS: an entry has no ':': write USER:PASSWORD[,USER:PASSWORD]"
        user="${entry%%:*}" pass="${entry#*:}"
        [[ "$user" =~ ^[A-Za-z0-9_.-]+$ ]] || die "ESR_KAFKA_SASL_USERS: user names are letters, digits, '_', '.' and '-'"
        [[ -n "$pass" && "$pass" != *[\"\\\;\ ]* ]] || die "ESR_KAFKA_SASL_USERS: the password of $user is empty or holds a quote, backslash, ';' or space"
        out+=" user_$user=\"$pass\""
    done
    [[ -n "$user" ]] || die "ESR_KAFKA_SASL_USERS is empty"
    printf '%s;' "$out"
}

# adds the SASL_PLAINTEXT listener on PORT+2 to a broker's properties
sasl_listener() {
    local props="$1" port="$2" jaas="$3" sport=$(($2 + 2))
    sed -i -e "s#^listeners=.*#&,SASL_PLAINTEXT://127.0.0.1:$sport#" \
        -e "s#^advertised.listeners=.*#&,SASL_PLAINTEXT://127.0.0.1:$sport#" \
        -e "s#^listener.security.protocol.map=.*#&,SASL_PLAINTEXT:SASL_PLAINTEXT#" "$props"
    printf '%s\n' "" "# ESR_KAFKA_SASL_USERS: SASL/PLAIN logins on 127.0.0.1:$sport" \
        "sasl.enabled.mechanisms=PLAIN" "listener.name.sasl_plaintext.plain.sasl.jaas.config=$jaas" >>"$props"
}

stop() {
    local dir="${1:?usage: kafka.sh stop DIR}" pid
    [[ -f "$dir/kafka.pid" ]] || return 0
    pid="$(cat "$dir/kafka.pid")"
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    fi
    rm -f "$dir/kafka.pid"
}

status() {
    local dir="${1:?usage: kafka.sh status DIR}"
    [[ -f "$dir/kafka.pid" ]] && kill -0 "$(cat "$dir/kafka.pid")" 2>/dev/null
}

case "${1:-}" in
    fetch) fetch ;;
    start) shift; start "$@" ;;
    stop) shift; stop "$@" ;;
    status) shift; status "$@" ;;
    *) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
