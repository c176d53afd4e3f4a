#!/usr/bin/env bash
# Build the real model server image for tests and examples: llama.cpp's llama-server, from
# the build context tests/integration/contexts/llamacpp/ and the PyPI sdist it names.
#
#   scripts/realserver.sh            build it unless an image of the same content exists
#   scripts/realserver.sh --tag      only print the tag it would have (no build, no Docker)
#
# The image is tagged berth-test/llama-server:<hash12> (hash12: the first 12 hex digits of
# the sha256 over the context's files, names and bytes) and berth-test/llama-server:latest.
# A context whose hash already has an image costs one `docker image inspect`: about a second.
# The build itself takes about 5 minutes on 2 cores. The sdist (76 MB) is downloaded once
# into ${BERTH_TEST_CACHE:-~/.cache/berth-test} with pip and checked against the sha256 the
# context's SDIST file names. Every line printed starts with "realserver:"; the last line
# on stdout is the image reference.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ctx=tests/integration/contexts/llamacpp
repo_name=berth-test/llama-server

say() { printf 'realserver: %s\n' "$*" >&2; }
die() { printf 'realserver: error: %s\n' "$*" >&2; exit 1; }

# The content hash: every file of the context, by relative name and bytes, in sorted order.
# The sdist is named with its sha256 inside SDIST, so it is covered without being hashed.
content_hash() {
    (cd "$ctx" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) \
        | sha256sum | cut -c1-12
}

hash12=$(content_hash)
image="$repo_name:$hash12"
if [ "${1:-}" = "--tag" ]; then
    printf '%s\n' "$image"
    exit 0
fi

# Debian's docker.io CLI (20.10) has BuildKit built in; a newer CLI on the PATH needs buildx,
# which is not packaged here. The classic builder of either works for this Dockerfile too.
docker_cli=docker
[ -x /usr/bin/docker ] && docker_cli=/usr/bin/docker

if "$docker_cli" image inspect "$image" >/dev/null 2>&1; then
    "$docker_cli" tag "$image" "$repo_name:latest"
    say "image $image present (content hash unchanged): no build"
    printf 'realserver: %s\n' "$image"
    exit 0
fi

read -r sdist_name sdist_sha < <(grep -v '^#' "$ctx/SDIST" | grep -v '^[[:space:]]*$' | head -n1)
[ -n "${sdist_sha:-}" ] || die "$ctx/SDIST names no archive"
cache=${BERTH_TEST_CACHE:-$HOME/.cache/berth-test}
mkdir -p "$cache"
sdist="$cache/$sdist_name"

sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$sdist_sha" ]; }

if ! sha_ok "$sdist"; then
    # name-version from the archive name: llama_cpp_python-0.3.36.tar.gz -> llama-cpp-python==0.3.36
    base=${sdist_name%.tar.gz}
    req="${base%-*}==${base##*-}"
    req=${req//_/-}
    say "downloading the sdist ${req} into ${cache} (once; about a minute)"
    tmpd=$(mktemp -d "$cache/.dl.XXXXXX")
    trap 'rm -rf "$tmpd"' EXIT
    python3 -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: \
        "$req" -d "$tmpd" >&2 || die "pip download ${req} failed"
    sha_ok "$tmpd/$sdist_name" || die "downloaded ${sdist_name} does not have sha256 ${sdist_sha}"
    mv "$tmpd/$sdist_name" "$sdist"
fi

# A private build context: the tracked files plus the sdist (a hard link where possible).
build=$(mktemp -d)
trap 'rm -rf "$build" "${tmpd:-}"' EXIT
cp -a "$ctx/." "$build/"
ln "$sdist" "$build/$sdist_name" 2>/dev/null || cp "$sdist" "$build/$sdist_name"

say "building $image from $ctx (about 5 minutes on 2 cores)"
start=$(date +%s)
DOCKER_BUILDKIT=1 "$docker_cli" build --progress=plain \
    --build-arg "SDIST=$sdist_name" \
    --label "berth-test.content-hash=$hash12" \
    -t "$image" -t "$repo_name:latest" "$build" >&2 \
    || die "docker build failed (output above)"
say "built $image in $(( $(date +%s) - start )) s"
printf 'realserver: %s\n' "$image"
