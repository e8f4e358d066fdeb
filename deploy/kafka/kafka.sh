#!/usr/bin/env bash
# Apache Kafka in KRaft mode from the official jars on Maven Central, for ESR's tests, CI and
# local development: a single node (combined broker and controller), or a cluster of N such
# nodes on loopback whose controller quorum is all N.
#
#   deploy/kafka/kafka.sh fetch                        download the jars into deploy/kafka/lib (cached by Maven)
#   deploy/kafka/kafka.sh start DIR [PORT]             format a new single node in DIR, start it, wait until it answers
#   deploy/kafka/kafka.sh stop DIR                     stop the broker started in DIR (SIGTERM: a controlled shutdown)
#   deploy/kafka/kafka.sh status DIR                   exit 0 when the broker in DIR is running
#   deploy/kafka/kafka.sh cluster-start DIR N BASEPORT format (first time) and start N nodes in DIR/node1..N, wait
#                                                      until all answer, print the bootstrap list on stdout
#   deploy/kafka/kafka.sh cluster-stop DIR             stop every node of the cluster in DIR (SIGTERM to all, SIGKILL
#                                                      to those still up after 10 s: the last have no quorum left)
#   deploy/kafka/kafka.sh start DIR/nodeK              start one cluster node again on its data and ports
#
# PORT (default 9092, or $ESR_KAFKA_PORT) is the client listener on 127.0.0.1; the
# controller listens on PORT+1. DIR holds the data, server.log and kafka.pid: throw it away
# after stop. In a cluster, node K (1..N) listens on BASEPORT+2(K-1) (clients) and the port
# after it (controller); `stop DIR/nodeK` and `start DIR/nodeK` stop and restart that node
# alone (`kill -9 $(cat DIR/nodeK/kafka.pid)` kills it). With N >= 3 every internal topic and
# every topic created without a replication factor gets 3 replicas and min.insync.replicas=2;
# with N = 2, 2 replicas and 1. ESR_KAFKA_HEAP sets the JVM heap (default -Xms256m -Xmx768m,
# -Xms128m -Xmx384m per cluster node). Needs Java 17+ and Maven.
#
# With ESR_KAFKA_SASL_USERS="alice:secret[,bob:other]" set, `start` of a single node also opens a
# SASL_PLAINTEXT listener on PORT+2 that takes SASL/PLAIN logins from those users (for
# trying ESR_KAFKA_CONFIG; PLAIN sends the password in clear, so loopback only). The
# PLAINTEXT listener on PORT stays, and carries the broker's own traffic. Give the variable
# again on a restart of the same DIR, or the listener is gone. Passwords are written to
# DIR/server.properties (mode 600), never printed. Cluster nodes have no SASL listener.
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
    if [[ -f "$dir/cluster.node" ]]; then  # a node of a cluster: its own ports and settings
        port="$(cat "$dir/cluster.node")"
        fetch
        check_ports "$port"
        spawn "$dir"
        await_up "$dir" "$port"
        return
    fi
    local cport=$((port + 1))
    fetch
    check_ports "$port"
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
        format "$dir" "$cluster_id" --standalone
    fi
    spawn "$dir"
    await_up "$dir" "$port" "${jaas:+, SASL_PLAINTEXT (PLAIN) on 127.0.0.1:$((port + 2))}"
}

check_ports() {
    if port_open "$1"; then die "port $1 on 127.0.0.1 is already in use"; fi
    if port_open $(($1 + 1)); then die "controller port $(($1 + 1)) on 127.0.0.1 is already in use"; fi
}

format() {
    local dir="$1" cluster_id="$2"
    shift 2
    (java_cmd kafka.tools.StorageTool format "$@" -t "$cluster_id" -c "$dir/server.properties") \
        >"$dir/format.log" 2>&1 || { cat "$dir/format.log" >&2; die "formatting the storage in $dir failed"; }
}

spawn() {  # start the JVM of the node in DIR (formatted, with its server.properties), do not wait
    local dir="$1"
    [[ -f "$dir/kafka.pid" ]] && kill -0 "$(cat "$dir/kafka.pid")" 2>/dev/null && die "a broker is already running in $dir"
    local log_from=1
    [[ -f "$dir/server.log" ]] && log_from=$(($(wc -c <"$dir/server.log") + 1))  # a restart: only new lines count
    echo "$log_from" >"$dir/log.from"
    (trap '' HUP; java_cmd kafka.Kafka "$dir/server.properties") >>"$dir/server.log" 2>&1 </dev/null &
    echo $! >"$dir/kafka.pid"
}

await_up() {  # DIR PORT [MORE]: until the node in DIR has started and answers on PORT; MORE adds to the line
    local dir="$1" port="$2" log_from waited=0
    log_from="$(cat "$dir/log.from")"
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
    echo "kafka: broker up on 127.0.0.1:$port${3:-} (data in $dir)"
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

cluster_properties() {  # node K of N: server.properties from the single node's, with the cluster's ids, ports and replication
    local dir="$1" k="$2" n="$3" base="$4" voters="" i rf=1 isr=1
    for ((i = 1; i <= n; i++)); do voters+="${voters:+,}$i@127.0.0.1:$((base + 2 * (i - 1) + 1))"; done
    ((n >= 2)) && rf=2
    ((n >= 3)) && rf=3 && isr=2
    local port=$((base + 2 * (k - 1)))
    sed -e "s#127.0.0.1:9092#127.0.0.1:$port#g" -e "s#127.0.0.1:9093#127.0.0.1:$((port + 1))#g" \
        -e "s#^log.dirs=.*#log.dirs=$dir/data#" -e "s#^node.id=.*#node.id=$k#" \
        -e "s#^controller.quorum.bootstrap.servers=.*#controller.quorum.voters=$voters#" \
        -e "s#^\(.*replication.factor\)=1#\1=$rf#" -e "s#^\(.*min.isr\)=1#\1=$isr#" \
        -e "s#^min.insync.replicas=1#min.insync.replicas=$isr#" "$HERE/server.properties" >"$dir/server.properties"
    cat >>"$dir/server.properties" <<EOF_PROPS

# node $k of a $n-node cluster (kafka.sh cluster-start): a killed node is fenced, and its
# partitions led by others, within a few seconds
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=6000
EOF_PROPS
    echo "$port" >"$dir/cluster.node"
}

cluster_start() {
    local dir="${1:?usage: kafka.sh cluster-start DIR N BASEPORT}" n="${2:?usage: kafka.sh cluster-start DIR N BASEPORT}"
    local base="${3:?usage: kafka.sh cluster-start DIR N BASEPORT}" k cluster_id bootstrap=""
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "N must be a number of nodes (1 or more), not '$n'"
    [[ "$base" =~ ^[0-9]+$ ]] && ((base > 0 && base + 2 * n <= 65536)) || die "BASEPORT must be a port number, not '$base'"
    export ESR_KAFKA_HEAP="${ESR_KAFKA_HEAP:--Xms128m -Xmx384m}"
    fetch
    for ((k = 1; k <= n; k++)); do check_ports $((base + 2 * (k - 1))); done
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    if [[ -f "$dir/cluster.size" && "$(cat "$dir/cluster.size")" != "$n" ]]; then
        die "$dir holds a cluster of $(cat "$dir/cluster.size") nodes, not $n: start it with that many, or use a new DIR"
    fi
    [[ -f "$dir/cluster.id" ]] || (java_cmd kafka.tools.StorageTool random-uuid) >"$dir/cluster.id"
    cluster_id="$(cat "$dir/cluster.id")"
    for ((k = 1; k <= n; k++)); do
        mkdir -p "$dir/node$k"
        cluster_properties "$dir/node$k" "$k" "$n" "$base"
        if [[ ! -f "$dir/node$k/data/meta.properties" ]]; then format "$dir/node$k" "$cluster_id" & fi
    done
    wait
    for ((k = 1; k <= n; k++)); do
        [[ -f "$dir/node$k/data/meta.properties" ]] || die "formatting the storage in $dir/node$k failed"
    done
    echo "$n" >"$dir/cluster.size"
    for ((k = 1; k <= n; k++)); do spawn "$dir/node$k"; done  # together: a quorum needs a majority up
    for ((k = 1; k <= n; k++)); do
        (await_up "$dir/node$k" $((base + 2 * (k - 1))) >&2) || { cluster_stop "$dir"; die "the cluster in $dir did not start"; }
        bootstrap+="${bootstrap:+,}127.0.0.1:$((base + 2 * (k - 1)))"
    done
    echo "$bootstrap" >"$dir/bootstrap"
    echo "$bootstrap"
}

cluster_stop() {  # every node at once; the last ones left without a quorum may wait for one forever: 10 s each
    local dir="${1:?usage: kafka.sh cluster-stop DIR}" node
    for node in "$dir"/node*/; do
        [[ -f "$node/cluster.node" ]] && stop "${node%/}" 10 &
    done
    wait
}

stop() {  # DIR [GRACE]: SIGTERM, then SIGKILL after GRACE seconds (30)
    local dir="${1:?usage: kafka.sh stop DIR}" grace="${2:-30}" pid
    [[ -f "$dir/kafka.pid" ]] || return 0
    pid="$(cat "$dir/kafka.pid")"
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 1 $((grace * 4))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
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
    cluster-start) shift; cluster_start "$@" ;;
    cluster-stop) shift; cluster_stop "$@" ;;
    *) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
