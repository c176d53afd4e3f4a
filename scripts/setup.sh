#!/usr/bin/env bash
# Make this machine ready to run berth and its tests:
#   system packages -> a running Docker engine -> .venv with berth -> a local busybox:latest.
# Idempotent: every step first checks whether it is already done, so a second run takes
# a second or two. Every line it prints starts with "setup:".
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# Run as root, or through sudo where we are not (a developer's laptop).
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else die "need root for: $*"
    fi
}

# --- 1. system packages -------------------------------------------------------------
# Only touch apt when something is missing: apt-get update alone costs tens of seconds.
missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v docker  >/dev/null 2>&1 || missing+=(docker.io)
[ -x /bin/busybox ] || command -v busybox >/dev/null 2>&1 || missing+=(busybox-static)
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)      # SSH-host integration tests
command -v ip >/dev/null 2>&1 || missing+=(iproute2)    # network namespaces for those hosts
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)  # the local Python base image
command -v python3 >/dev/null 2>&1 || missing+=(python3)
# Debian splits venv/ensurepip out of python3; without it `python3 -m venv` fails.
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then missing+=(python3-venv); fi

if [ ${#missing[@]} -gt 0 ]; then
    # sort -u: docker.io can be listed twice above.
    pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
    say "installing ${pkgs}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # shellcheck disable=SC2086
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
else
    say "system packages present"
fi

busybox_bin=/bin/busybox
[ -x "$busybox_bin" ] || busybox_bin=$(command -v busybox)

# --- 2. the Docker engine -----------------------------------------------------------
# DOCKER_HOST is respected: if it names some other engine, we only check that it answers;
# we start a dockerd ourselves only for the default local socket.
engine_up() { timeout 10 docker info >/dev/null 2>&1; }

if engine_up; then
    say "docker engine answers (${DOCKER_HOST:-unix:///var/run/docker.sock})"
else
    case "${DOCKER_HOST:-}" in
        ""|unix:///var/run/docker.sock|unix:///run/docker.sock) ;;
        *) die "DOCKER_HOST=${DOCKER_HOST} does not answer; start that engine or unset DOCKER_HOST" ;;
    esac
    log=/var/log/berth-dockerd.log
    say "starting dockerd (log: ${log})"
    # No systemd here: start it by hand. setsid detaches it from this script's process
    # group, so Ctrl-C on the tests does not take the engine down with them; stdin/stdout
    # are not inherited, so nothing waits on dockerd's pipes after we exit.
    as_root sh -c "setsid nohup dockerd >'${log}' 2>&1 </dev/null &"
    for _ in $(seq 60); do
        engine_up && break
        sleep 1
    done
    if ! engine_up; then
        tail -n 30 "$log" >&2 || true
        die "dockerd did not answer within 60 s (log above: ${log})"
    fi
    say "docker engine is up"
fi

# --- 3. the virtual environment -----------------------------------------------------
# pip install -e takes ~10 s even when nothing changed, so it runs only when
# pyproject.toml (or the interpreter) changed since the last successful install.
# The stamp lives inside .venv: deleting the venv also forgets the stamp.
venv="$repo/.venv"
stamp="$venv/.berth-setup-stamp"
if [ ! -x "$venv/bin/python" ]; then
    say "creating .venv"
    python3 -m venv "$venv"
fi
want=$( { sha256sum pyproject.toml; "$venv/bin/python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)
have=$(cat "$stamp" 2>/dev/null || true)
if [ "$want" != "$have" ] || [ ! -x "$venv/bin/berth" ] || [ ! -x "$venv/bin/pytest" ]; then
    say "installing berth into .venv (pip install -e '.[test]')"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -e '.[test]'
    printf '%s\n' "$want" >"$stamp"
else
    say ".venv up to date"
fi
# berth is installed editable, so its own modules get no bytecode from pip, and where
# PYTHONDONTWRITEBYTECODE is set (as on these CI machines) Python never caches any:
# every command would compile ~60 modules again, about 0.15 s of each no-op apply.
# compileall writes the .pyc files whatever that variable says; a later edit only makes
# the edited module's file stale (Python then compiles that one in memory).
"$venv/bin/python" -m compileall -q berth planner providers state >/dev/null || true

# --- 4. a busybox:latest base image without a registry ------------------------------
# Example and test images say `FROM busybox:latest`. Where a registry is reachable the
# user simply has the real image; here none is, so we make an equivalent from Debian's
# busybox-static: one static binary plus a symlink per applet, a /tmp, an /etc/passwd.
# The import message marks images made by this script.
marker="berth setup: busybox-static base"

make_busybox_base() {
    local dir
    dir=$(mktemp -d)
    mkdir -p "$dir"/{bin,dev,etc,home,proc,root,sys,tmp,var/www}
    chmod 1777 "$dir/tmp"
    cp "$busybox_bin" "$dir/bin/busybox"
    # Same as `busybox --install -s`, but into our directory, not the host's /bin.
    for applet in $("$busybox_bin" --list); do
        [ -e "$dir/bin/$applet" ] || ln -s busybox "$dir/bin/$applet"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n' >"$dir/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$dir/etc/group"
    tar --numeric-owner -C "$dir" -c . \
        | docker import -m "$marker" -c 'CMD ["sh"]' - busybox:latest >/dev/null
    rm -rf "$dir"
}

if ! docker image inspect busybox:latest >/dev/null 2>&1; then
    say "no busybox:latest and no registry to pull it from: building it from busybox-static"
    make_busybox_base
elif [ "$(docker image inspect -f '{{.Comment}}' busybox:latest)" = "$marker" ] \
     || [ -n "$(docker image inspect -f '{{join .RepoDigests ""}}' busybox:latest)" ]; then
    # Ours, or pulled from a registry (it has a digest): complete either way.
    say "busybox:latest present"
else
    # Someone else imported a busybox:latest by hand. Check it has what images built on
    # it expect of busybox (applets callable directly as /bin/NAME, a writable /tmp);
    # a bare one with only a few symlinks breaks `command = ["sleep", "60"]`.
    if docker run --rm --network none --entrypoint /bin/sh busybox:latest \
         -c 'test -x /bin/sleep && test -x /bin/wget && test -x /bin/httpd && test -d /tmp' >/dev/null 2>&1; then
        say "busybox:latest present (locally made)"
    else
        say "busybox:latest lacks applet links or /tmp: replacing it with a complete busybox-static base"
        make_busybox_base
    fi
fi

# --- 5. a debian:bookworm-slim base with Python, without a registry -----------------
# Cerebrium's python runtime names `debian:bookworm-slim` as its base (its default), and
# tests build Cerebrium and Truss apps on it. Where a registry answers, the real image is
# pulled. Where none does, a base is made from Debian's own packages with debootstrap:
# python3, pip and ca-certificates, plus this machine's CA bundle, since containers reach
# the package registries through TLS signed by it. The import message marks images made
# here, so a real (pulled) image is never replaced.
py_marker="berth setup: debootstrap bookworm python3 base"
py_base=debian:bookworm-slim

make_python_base() {
    local dir
    dir=$(mktemp -d)
    as_root debootstrap --variant=minbase --include=python3,python3-pip,ca-certificates \
        bookworm "$dir" http://deb.debian.org/debian >/dev/null
    if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
        as_root cp /etc/ssl/certs/ca-certificates.crt "$dir/etc/ssl/certs/ca-certificates.crt"
    fi
    as_root rm -rf "$dir/var/cache/apt/archives"/*.deb "$dir/var/lib/apt/lists"/*
    as_root tar --numeric-owner -C "$dir" -c . \
        | docker import -m "$py_marker" -c 'CMD ["bash"]' - "$py_base" >/dev/null
    as_root rm -rf "$dir"
}

if docker image inspect "$py_base" >/dev/null 2>&1; then
    say "$py_base present"
elif timeout 120 docker pull -q "$py_base" >/dev/null 2>&1; then
    say "$py_base pulled"
else
    say "no $py_base and no registry to pull it from: making it with debootstrap (about a minute)"
    make_python_base
fi

# --- 6. simulated SSH GPU hosts for the integration tests ----------------------------
# Three network namespaces, each with its own sshd and an empty dockerd (see the script).
# Skipped with BERTH_NO_TESTHOSTS=1 (a user who only wants berth, not its tests).
if [ -z "${BERTH_NO_TESTHOSTS:-}" ]; then
    as_root bash "$repo/scripts/testhosts.sh" up | sed 's/^testhosts:/setup: test hosts:/'
fi

say "ready"
