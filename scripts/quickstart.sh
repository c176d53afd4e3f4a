#!/usr/bin/env bash
# Deploy examples/quickstart with berth and show it serving.
# Safe to run again: a second apply finds nothing to change.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
stack=examples/quickstart

BERTH_NO_TESTHOSTS=1 bash scripts/setup.sh  # the SSH test hosts are for the tests only

echo
echo "quickstart: .venv/bin/berth apply -f ${stack} --auto-approve"
.venv/bin/berth apply -f "$stack" --auto-approve

# The endpoints come from berth.toml itself (replica I listens on host_port + I), so this
# script cannot drift from the stack file. One "URL<TAB>what" line per endpoint.
endpoints=$(.venv/bin/python - "$stack/berth.toml" <<'EOF'
import sys, tomllib

with open(sys.argv[1], "rb") as f:
    apps = tomllib.load(f)["apps"]
for name, app in apps.items():
    for i in range(app.get("replicas", 1)):
        base = f"http://localhost:{app['host_port'] + i}"
        where = f"{name}[{i}]"
        if name == "model":
            print(f"{base}/cgi-bin/predict?text=hello+from+berth\t{where}: a prediction")
            print(f"{base}/ready\t{where}: readiness")
        else:
            print(f"{base}/\t{where}: the page")
EOF
)

# Prints the HTTP status on its first line, then the start of the body.
# curl where there is one; the venv's Python everywhere else.
fetch() {
    local out
    if command -v curl >/dev/null 2>&1; then
        out=$(curl -sS --max-time 5 -w '\n%{http_code}' "$1" 2>&1) || { echo "[no answer] ${out}"; return; }
    else
        out=$(.venv/bin/python - "$1" <<'EOF'
import sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
        print(r.read().decode(), r.status, sep="\n")
except urllib.error.HTTPError as e:
    print(e.read().decode(), e.code, sep="\n")
except OSError as e:
    print(e, "no answer", sep="\n")
EOF
)
    fi
    local status=${out##*$'\n'} body=${out%$'\n'*}
    echo "[HTTP ${status}]"
    # Only the first lines: the page is HTML, and the point is that it answers.
    sed -n 1,5p <<<"${body%$'\n'}"
}

echo
echo "quickstart: the stack is serving"
while IFS=$'\t' read -r url what; do
    echo
    echo "== ${what}: GET ${url}"
    fetch "$url"
done <<<"$endpoints"

echo
echo "quickstart: open the page's URL above in a browser and ask the model from there."
echo "quickstart: see what berth manages:  .venv/bin/berth state list -f ${stack}"
echo "quickstart: tear it all down:        .venv/bin/berth destroy -f ${stack}"
