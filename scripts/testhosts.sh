#!/usr/bin/env bash
# Simulated GPU hosts for berth's SSH tests and the fan-out benchmark.
#
#   bash scripts/testhosts.sh up      # create or reuse th1..th3 (idempotent, ~5 s cold)
#   bash scripts/testhosts.sh down    # stop their sshd and dockerd, remove the namespaces
#   BERTH_TESTHOSTS_COUNT=20 bash scripts/testhosts.sh up      # th1..th20 (the fan-out bench)
#   BERTH_TESTHOSTS_COUNT=20 BERTH_TESTHOSTS_FIRST=4 bash scripts/testhosts.sh down
#                                     # th4..th20 only: th1..th3 (the tests' hosts) go on
#   bash scripts/testhosts.sh stop-sshd NAME | start-sshd NAME   # a host going away and back
#
# Each host is a network namespace `berth-thN` joined to this machine by a veth pair
# (this side 10.203.N.1, the host 10.203.N.2), running its own sshd on port 22 and its
# own dockerd (own data-root, exec-root, pidfile and socket). Its engine starts empty:
# no busybox base, so images berth sends must really travel. Everything lives under
# $BERTH_TESTHOSTS (default /run/berth-testhosts): a throwaway SSH key (id_ed25519), a
# known_hosts with every host's key, and per host its sshd config, host keys and socket.
# th1 and th2 carry an `nvidia-smi` STAND-IN on the PATH sshd gives sessions: a script
# printing canned CSV (th1: two H100, th2: one L4); th3 has none (no GPUs). Nothing here
# has a GPU or the NVIDIA runtime.
#
# Only root can make namespaces; every line printed starts with "testhosts:".
set -euo pipefail

root=${BERTH_TESTHOSTS:-/run/berth-testhosts}
hosts=${BERTH_TESTHOSTS_COUNT:-3}
first=${BERTH_TESTHOSTS_FIRST:-1}  # down: the first host it takes down
say() { printf 'testhosts: %s\n' "$*"; }
die() { printf 'testhosts: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces, a dockerd per host)"

ns_of() { printf 'berth-th%s' "$1"; }
addr_of() { printf '10.203.%s.2' "$1"; }
dir_of() { printf '%s/th%s' "$root" "$1"; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
in_ns() { local n=$1; shift; nsenter --net="/run/netns/$(ns_of "$n")" "$@"; }

make_key() {
    mkdir -p "$root"
    chmod 700 "$root"
    [ -f "$root/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C berth-testhosts -f "$root/id_ed25519"
}

make_netns() {
    local n=$1 ns veth
    ns=$(ns_of "$n"); veth="bthv$n"
    [ -e "/run/netns/$ns" ] || ip netns add "$ns"
    if ! ip link show "$veth" >/dev/null 2>&1; then
        ip link add "$veth" type veth peer name eth0 netns "$ns"
        ip addr add "10.203.$n.1/24" dev "$veth"
        ip -n "$ns" addr add "$(addr_of "$n")/24" dev eth0
    fi
    ip link set "$veth" up
    ip -n "$ns" link set lo up
    ip -n "$ns" link set eth0 up
}

write_standin() {
    local n=$1 dir=$2
    mkdir -p "$dir/bin"
    case "$n" in
        1) csv='0, NVIDIA H100 80GB HBM3, 81559, GPU-4f1d6c1e-0000-4000-8000-000000000001
1, NVIDIA H100 80GB HBM3, 81559, GPU-4f1d6c1e-0000-4000-8000-000000000002' ;;
        2) csv='0, NVIDIA L4, 23034, GPU-9a2b7f3c-0000-4000-8000-000000000001' ;;
        *) rm -f "$dir/bin/nvidia-smi"; return ;;
    esac
    cat >"$dir/bin/nvidia-smi" <<EOF
#!/bin/sh
# STAND-IN for nvidia-smi (berth's test hosts have no GPU): prints canned CSV for
# --query-gpu=index,name,memory.total,uuid --format=csv,noheader,nounits, whatever it is asked.
cat <<'CSV'
$csv
CSV
EOF
    chmod 755 "$dir/bin/nvidia-smi"
}

start_sshd() {
    local n=$1 dir
    dir=$(dir_of "$n")
    alive "$dir/sshd.pid" && return 0
    mkdir -p /run/sshd  # sshd's privilege-separation directory, as Debian's service makes it
    in_ns "$n" /usr/sbin/sshd -f "$dir/sshd_config" -E "$dir/sshd.log" 9>&- \
        || die "sshd of th$n did not start: $(tail -n 3 "$dir/sshd.log")"
    for _ in $(seq 50); do alive "$dir/sshd.pid" && return 0; sleep 0.1; done
    die "sshd of th$n did not start (log: $dir/sshd.log)"
}

stop_sshd() {
    # The listener and every session it forked (their parent is the listener).
    local n=$1 dir pid
    dir=$(dir_of "$n")
    alive "$dir/sshd.pid" || return 0
    pid=$(cat "$dir/sshd.pid")
    for child in $(ps -o pid= --ppid "$pid"); do kill "$child" 2>/dev/null || true; done
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do alive "$dir/sshd.pid" || break; sleep 0.1; done
    rm -f "$dir/sshd.pid"
}

make_host() {
    local n=$1 dir addr
    dir=$(dir_of "$n"); addr=$(addr_of "$n")
    mkdir -p "$dir"
    chmod 700 "$dir"
    make_netns "$n"
    write_standin "$n" "$dir"
    [ -f "$dir/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$dir/ssh_host_ed25519_key"
    cp "$root/id_ed25519.pub" "$dir/authorized_keys"
    cat >"$dir/sshd_config.new" <<EOF
ListenAddress $addr
Port 22
HostKey $dir/ssh_host_ed25519_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowTcpForwarding yes
AllowStreamLocalForwarding yes
MaxSessions 64
MaxStartups 64:30:100
SetEnv DOCKER_HOST=unix://$dir/docker.sock PATH=$dir/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
Subsystem sftp internal-sftp
EOF
    # internal-sftp: berth's secret files travel over SFTP, served inside the session's
    # own sshd process (no sftp-server started on the host).
    if cmp -s "$dir/sshd_config.new" "$dir/sshd_config"; then
        rm "$dir/sshd_config.new"
    else
        mv "$dir/sshd_config.new" "$dir/sshd_config"
        # A running listener re-reads its config on SIGHUP (it re-executes itself); the
        # sessions it serves go on.
        if alive "$dir/sshd.pid"; then
            kill -HUP "$(cat "$dir/sshd.pid")"
            sleep 0.5
        fi
    fi
    start_sshd "$n"
    # th3's engine runs without Docker's userland proxy ("userland-proxy": false, a common
    # daemon.json setting), under which a container reaches another bridge network's
    # published ports only through NAT rules Docker's network isolation drops: the
    # gateway must work there too. An engine started with other options is restarted.
    local options=()
    [ "$n" = 3 ] && options=(--userland-proxy=false)
    echo "${options[*]}" >"$dir/dockerd.options.new"
    if alive "$dir/docker.pid" && ! cmp -s "$dir/dockerd.options.new" "$dir/dockerd.options"; then
        kill "$(cat "$dir/docker.pid")"
        for _ in $(seq 100); do alive "$dir/docker.pid" || break; sleep 0.2; done
    fi
    mv "$dir/dockerd.options.new" "$dir/dockerd.options"
    if ! alive "$dir/docker.pid" || ! DOCKER_HOST="unix://$dir/docker.sock" timeout 5 docker version >/dev/null 2>&1; then
        # Own data-root, exec-root, pidfile and socket; its own default bridge inside the
        # namespace, on an address range of its own.
        in_ns "$n" setsid nohup dockerd \
            --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/docker.pid" \
            -H "unix://$dir/docker.sock" --bip "172.29.$n.1/24" --cgroup-parent "berth-th$n" "${options[@]}" \
            >"$dir/dockerd.log" 2>&1 </dev/null 9>&- &
    fi
}

wait_engine() {
    local n=$1 dir
    dir=$(dir_of "$n")
    for _ in $(seq 120); do
        DOCKER_HOST="unix://$dir/docker.sock" timeout 5 docker version >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    tail -n 20 "$dir/dockerd.log" >&2 || true
    die "dockerd of th$n did not answer within 60 s (log: $dir/dockerd.log)"
}

write_known_hosts() {
    # Every host that is up, not only this call's: a `down` of th4.. or an `up` of
    # th1..th3 (a test session starting) while the fan-out bench has 20 up keeps theirs.
    local dir n
    : >"$root/known_hosts.new"
    for dir in "$root"/th*; do
        n=${dir##*/th}
        [ -e "/run/netns/$(ns_of "$n")" ] && [ -f "$dir/ssh_host_ed25519_key.pub" ] || continue
        printf '%s %s\n' "$(addr_of "$n")" "$(cut -d' ' -f1,2 "$dir/ssh_host_ed25519_key.pub")" >>"$root/known_hosts.new"
    done
    mv "$root/known_hosts.new" "$root/known_hosts"
}

up() {
    make_key
    local n
    for n in $(seq "$hosts"); do make_host "$n"; done
    for n in $(seq "$hosts"); do wait_engine "$n"; done
    write_known_hosts
    say "up: $(for n in $(seq "$hosts"); do printf 'th%s=root@%s ' "$n" "$(addr_of "$n")"; done)(key and known_hosts in $root)"
}

down() {
    local n dir
    for n in $(seq "$first" "$hosts"); do
        dir=$(dir_of "$n")
        stop_sshd "$n"
        if alive "$dir/docker.pid"; then
            kill "$(cat "$dir/docker.pid")"
            for _ in $(seq 100); do alive "$dir/docker.pid" || break; sleep 0.1; done
        fi
        ip link del "bthv$n" 2>/dev/null || true
        ip netns del "$(ns_of "$n")" 2>/dev/null || true
        # An extra host's engine data (th4..): the next bench starts it empty, as cold
        # means. Only once its dockerd unmounted everything there.
        if [ "$n" -gt 3 ] && ! grep -q " $dir/" /proc/mounts; then rm -rf "$dir"; fi
    done
    write_known_hosts
    say "down: th$first..th$hosts"
}

# One set-up at a time: pytest workers and a bench may call `up` together.
mkdir -p "$root"
exec 9>"$root/.lock"
flock 9
case "${1:-up}" in
    up) up ;;
    down) down ;;
    stop-sshd) stop_sshd "${2#th}" ;;
    start-sshd) start_sshd "${2#th}" ;;
    *) die "usage: $0 up|down|stop-sshd thN|start-sshd thN" ;;
esac
