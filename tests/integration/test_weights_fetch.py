"""The weights fetcher (planner/weights/fetch_script.py) as a program, against a local
stand-in of the Hugging Face Hub's file API (tests/integration/hub_standin.py: a stand-in,
not the Hub). No Docker: the program runs here as it would in its helper container, with
HF_ENDPOINT pointed at the stand-in, and the stand-in counts what it sent.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hub_standin import HubStandIn

ROOT = Path(__file__).resolve().parents[2]
FETCH = ROOT / "planner" / "weights" / "fetch_script.py"

needs_hub = pytest.mark.skipif(
    subprocess.run([sys.executable, "-c", "import huggingface_hub"], capture_output=True).returncode != 0,
    reason="huggingface_hub is not installed (pip install 'huggingface_hub==1.17.0')")

MODEL_SIZE = 3 * (1 << 20) + 12345  # an LFS file (over the stand-in's 1 MiB threshold)


def make_repo(d: Path, seed: int = 0) -> Path:
    rng = random.Random(seed)
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"seed": seed, "hidden": 64}))
    (d / "README.md").write_text("# a tiny repo\n")
    (d / "tokenizer").mkdir()
    (d / "tokenizer" / "vocab.txt").write_text("a\nb\nc\n")
    (d / "model.gguf").write_bytes(rng.randbytes(MODEL_SIZE))
    return d


class Fetcher:
    def __init__(self, tmp: Path, hub: HubStandIn) -> None:
        self.cache = tmp / "cache"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        self.env.update(HF_ENDPOINT=hub.url, HF_HOME=str(tmp / "hf-home"),
                        HF_HUB_DISABLE_XET="1")

    def argv(self, source: str, *args: str) -> list[str]:
        return [sys.executable, str(FETCH), "--cache", str(self.cache), source, *args]

    def __call__(self, source: str, *args: str) -> tuple[int, list[dict]]:
        r = subprocess.run(self.argv(source, *args), env=self.env, capture_output=True,
                           text=True, timeout=120)
        events = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
        assert all("event" in e for e in events), r.stdout
        return r.returncode, events

    def entries(self) -> list[Path]:
        d = self.cache / "entries"
        return sorted(d.iterdir()) if d.is_dir() else []


def last(events: list[dict], name: str) -> dict:
    found = [e for e in events if e["event"] == name]
    assert found, f"no {name!r} event in {events}"
    return found[-1]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


@pytest.fixture
def hub():
    with HubStandIn() as h:
        yield h


@needs_hub
def test_fetch_fills_the_cache_and_a_second_fetch_downloads_nothing(tmp_path, repo, hub):
    sha = hub.add_repo("tiny/model", repo)
    fetch = Fetcher(tmp_path, hub)

    rc, ev = fetch("hf://tiny/model")
    assert rc == 0, ev
    done = last(ev, "done")
    assert last(ev, "resolved")["revision"] == sha
    files = fetch.cache / done["entry"]
    got = sorted(p.relative_to(files).as_posix() for p in files.rglob("*") if p.is_file())
    assert got == ["README.md", "config.json", "model.gguf", "tokenizer/vocab.txt"]
    assert (files / "model.gguf").read_bytes() == (repo / "model.gguf").read_bytes()
    assert not (files / ".cache").exists(), "the hub library's bookkeeping stays out of the entry"
    manifest = json.loads((files.parent / "manifest.json").read_text())
    assert manifest["revision"] == sha and manifest["bytes"] == done["bytes"]
    assert hub.file_bytes_sent == done["bytes"] == done["downloaded"]
    progress = [e for e in ev if e["event"] == "progress"]
    assert progress and progress[-1]["done"] == progress[-1]["total"] == done["bytes"]
    assert not list((fetch.cache / "partial").iterdir()), "nothing left half-done"

    hub.reset_counts()
    rc, ev = fetch("hf://tiny/model")
    assert rc == 0 and last(ev, "cached")["entry"] == done["entry"]
    assert hub.file_bytes_sent == 0
    assert [r.path for r in hub.requests] == ["/api/models/tiny/model/revision/main"]

    # A commit sha needs no lookup at all, and names the same entry as the branch did.
    hub.reset_counts()
    rc, ev = fetch(f"hf://tiny/model@{sha}")
    assert rc == 0 and last(ev, "cached")["entry"] == done["entry"]
    assert hub.requests == []


@needs_hub
def test_allow_and_ignore_patterns_really_skip_files(tmp_path, repo, hub):
    hub.add_repo("tiny/model", repo)
    fetch = Fetcher(tmp_path, hub)

    rc, ev = fetch("hf://tiny/model", "--allow", "*.json", "--allow", "tokenizer/")
    assert rc == 0, ev
    files = fetch.cache / last(ev, "done")["entry"]
    assert sorted(p.relative_to(files).as_posix() for p in files.rglob("*") if p.is_file()) \
        == ["config.json", "tokenizer/vocab.txt"]
    downloaded = {r.path.rsplit("/", 1)[-1] for r in hub.downloads()}
    assert downloaded == {"config.json", "vocab.txt"}, "the other files never left the hub"

    hub.reset_counts()
    rc, ev = fetch("hf://tiny/model", "--ignore", "*.gguf", "--ignore", "*.md")
    assert rc == 0, ev
    assert "model.gguf" not in {r.path.rsplit("/", 1)[-1] for r in hub.downloads()}
    assert len(fetch.entries()) == 2, "other patterns, another entry"

    rc, ev = fetch("hf://tiny/model", "--allow", "*.bin")
    assert rc == 1 and "matches the patterns" in last(ev, "error")["message"]


@needs_hub
@pytest.mark.parametrize("path, data, why", [
    ("model.gguf", None, "sha256"),            # same size, other bytes: the LFS sha256 catches it
    ("config.json", b'{"seed": 0, "hidden": 64, "extra": 1}', "size"),  # other size
    ("config.json", b'{"seed": 9, "hidden": 64}', "git blob sha1"),     # same size, small file
])
def test_a_corrupt_file_is_never_moved_into_place(tmp_path, repo, hub, path, data, why):
    hub.add_repo("tiny/model", repo)
    if data is None:
        good = (repo / path).read_bytes()
        data = bytes([good[0] ^ 0xFF]) + good[1:]
    hub.tamper("tiny/model", path, data)
    fetch = Fetcher(tmp_path, hub)

    rc, ev = fetch("hf://tiny/model")
    assert rc == 1, ev
    message = last(ev, "error")["message"]
    assert path in message and why in message, message
    assert fetch.entries() == [], "no entry appears for a corrupt fetch"
    assert not any(e["event"] == "done" for e in ev)

    # The hub mends; the next fetch fetches the bad file again (it was discarded) and succeeds.
    hub._tampered.clear()
    rc, ev = fetch("hf://tiny/model")
    assert rc == 0, ev
    files = fetch.cache / last(ev, "done")["entry"]
    assert (files / path).read_bytes() == (repo / path).read_bytes()


@needs_hub
def test_the_token_reaches_the_hub_and_none_goes_without_one(tmp_path, repo):
    with HubStandIn(token="hf_s3cret") as hub:
        hub.add_repo("gated/model", repo)
        fetch = Fetcher(tmp_path, hub)

        rc, ev = fetch("hf://gated/model")
        assert rc == 1 and fetch.entries() == []
        assert "401" in last(ev, "error")["message"] or "gated" in last(ev, "error")["message"].lower()
        assert all(r.authorization is None for r in hub.requests)

        token = tmp_path / "token"
        token.write_text("hf_s3cret\n")
        hub.reset_counts()
        rc, ev = fetch("hf://gated/model", "--token-file", str(token))
        assert rc == 0, ev
        assert hub.requests and all(r.authorization == "Bearer hf_s3cret" for r in hub.requests)
        assert "hf_s3cret" not in json.dumps(ev), "the token is never printed"

        rc, ev = fetch("hf://gated/model", "--token-file", str(tmp_path / "nope"))
        assert rc == 1 and "token file" in last(ev, "error")["message"]


@needs_hub
def test_an_interrupted_fetch_resumes_where_it_stopped(tmp_path, repo, hub):
    sha = hub.add_repo("tiny/model", repo)
    fetch = Fetcher(tmp_path, hub)
    hub.throttle = 1_000_000  # bytes/s: the 3 MiB file takes about 3 s

    p = subprocess.Popen(fetch.argv(f"hf://tiny/model@{sha}", "--allow", "*.gguf"),
                         env=fetch.env, stdout=subprocess.PIPE, text=True)
    try:
        for line in p.stdout:
            e = json.loads(line)
            if e["event"] == "progress" and e["done"] >= 1 << 20:
                break
    finally:
        p.kill()
        p.wait()
    assert fetch.entries() == [], "a killed fetch leaves no entry"
    time.sleep(0.2)
    first = hub.file_bytes_sent
    assert first < MODEL_SIZE

    hub.throttle = None
    hub.reset_counts()
    rc, ev = fetch(f"hf://tiny/model@{sha}", "--allow", "*.gguf")
    assert rc == 0, ev
    ranges = [r.range for r in hub.downloads()]
    assert ranges and ranges[-1] and ranges[-1].startswith("bytes=") and ranges[-1] != "bytes=0-", ranges
    assert hub.file_bytes_sent < MODEL_SIZE, "the second call did not download the whole file"
    assert last(ev, "progress")["resumed"] >= 1 << 20
    files = fetch.cache / last(ev, "done")["entry"]
    assert (files / "model.gguf").read_bytes() == (repo / "model.gguf").read_bytes()


@needs_hub
def test_a_new_revision_lands_beside_the_old_one(tmp_path, repo, hub):
    old = hub.add_repo("tiny/model", repo)
    fetch = Fetcher(tmp_path, hub)
    rc, ev = fetch("hf://tiny/model", "--allow", "*.json")
    old_entry = last(ev, "done")["entry"]

    new = hub.add_repo("tiny/model", make_repo(tmp_path / "repo2", seed=1))
    assert new != old
    rc, ev = fetch("hf://tiny/model", "--allow", "*.json")
    assert rc == 0 and last(ev, "resolved")["revision"] == new
    new_entry = last(ev, "done")["entry"]
    assert new_entry != old_entry
    assert (fetch.cache / old_entry / "config.json").exists(), "the old revision stays"
    assert json.loads((fetch.cache / new_entry / "config.json").read_text())["seed"] == 1


@needs_hub
def test_check_says_missing_then_cached_and_downloads_nothing(tmp_path, repo, hub):
    hub.add_repo("tiny/model", repo)
    fetch = Fetcher(tmp_path, hub)
    rc, ev = fetch("hf://tiny/model", "--check")
    assert rc == 3 and last(ev, "missing")
    assert hub.file_bytes_sent == 0 and fetch.entries() == []
    assert fetch("hf://tiny/model")[0] == 0
    rc, ev = fetch("hf://tiny/model", "--check")
    assert rc == 0 and last(ev, "cached")


@needs_hub
def test_two_fetchers_of_one_source_download_it_once(tmp_path, repo, hub):
    sha = hub.add_repo("tiny/model", repo)
    fetch = Fetcher(tmp_path, hub)
    hub.throttle = 4_000_000
    procs = [subprocess.Popen(fetch.argv(f"hf://tiny/model@{sha}"), env=fetch.env,
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    kinds = sorted(json.loads(line)["event"] for out in outs for line in out.splitlines()
                   if json.loads(line)["event"] in ("done", "cached"))
    assert kinds == ["cached", "done"]
    assert hub.file_bytes_sent == sum(p.stat().st_size for p in repo.rglob("*") if p.is_file())


# https:// (any URL: here the stand-in's resolve URL, which has ETag and Range) ----------
def test_a_url_with_its_sha256_is_fetched_once_and_then_costs_no_request(tmp_path, repo, hub):
    import hashlib

    sha = hub.add_repo("tiny/model", repo)
    data = (repo / "model.gguf").read_bytes()
    url = f"{hub.url}/tiny/model/resolve/{sha}/model.gguf"
    fetch = Fetcher(tmp_path, hub)

    rc, ev = fetch(f"{url}#sha256={hashlib.sha256(data).hexdigest()}")
    assert rc == 0, ev
    assert (fetch.cache / last(ev, "done")["entry"] / "model.gguf").read_bytes() == data
    hub.reset_counts()
    rc, ev = fetch(f"{url}#sha256={hashlib.sha256(data).hexdigest()}")
    assert rc == 0 and last(ev, "cached") and hub.requests == []

    rc, ev = fetch(f"{url}#sha256={'0' * 64}")
    assert rc == 1 and "sha256" in last(ev, "error")["message"]
    assert len(fetch.entries()) == 1, "the wrong one never appeared"


def test_a_url_without_a_hash_is_versioned_by_its_etag(tmp_path, repo, hub):
    sha = hub.add_repo("tiny/model", repo)
    url = f"{hub.url}/tiny/model/resolve/{sha}/config.json"
    fetch = Fetcher(tmp_path, hub)
    rc, ev = fetch(url)
    assert rc == 0 and last(ev, "resolved")["revision"].startswith("etag:")
    hub.reset_counts()
    rc, ev = fetch(url)
    assert rc == 0 and last(ev, "cached")
    assert [r.method for r in hub.requests] == ["HEAD"] and hub.file_bytes_sent == 0

    rc, ev = fetch(url, "--allow", "*.json")
    assert rc == 1 and "patterns" in last(ev, "error")["message"]


# In the helper container, as berth runs it on a host -------------------------------------
def test_the_program_runs_in_its_helper_container_with_the_cache_mounted(tmp_path, repo):
    import hashlib
    import shutil

    ctx = ROOT / "planner" / "weights" / "fetcher"
    tag = "berth-test/weights-fetcher:" + hashlib.sha256((ctx / "Dockerfile").read_bytes()).hexdigest()[:12]
    docker = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else shutil.which("docker")
    if subprocess.run([docker, "image", "inspect", tag], capture_output=True).returncode != 0:
        r = subprocess.run([docker, "build", "-q", "-t", tag, str(ctx)], capture_output=True,
                           text=True, timeout=600, env={**os.environ, "DOCKER_BUILDKIT": "1"})
        assert r.returncode == 0, r.stderr[-3000:]
    cache = tmp_path / "cache"
    cache.mkdir()
    token = tmp_path / "token"
    token.write_text("hf_s3cret\n")
    with HubStandIn(token="hf_s3cret") as hub:  # the container shares the host's network
        hub.add_repo("tiny/model", repo)

        def fetch() -> tuple[int, list[dict]]:
            r = subprocess.run(
                [docker, "run", "--rm", "--network", "host",
                 "-e", f"HF_ENDPOINT={hub.url}", "-e", "HF_HUB_DISABLE_XET=1",
                 "-v", f"{cache}:/cache", "-v", f"{token}:/run/secrets/hf_token:ro", tag,
                 "python3", "-c", FETCH.read_text(), "--cache", "/cache",
                 "hf://tiny/model", "--token-file", "/run/secrets/hf_token", "--ignore", "*.md"],
                capture_output=True, text=True, timeout=300)
            return r.returncode, [json.loads(x) for x in r.stdout.splitlines() if x.strip()]

        rc, ev = fetch()
        assert rc == 0, ev
        files = cache / last(ev, "done")["entry"]
        assert (files / "model.gguf").read_bytes() == (repo / "model.gguf").read_bytes()
        assert not (files / "README.md").exists()
        hub.reset_counts()
        rc, ev = fetch()
        assert rc == 0 and last(ev, "cached") and hub.file_bytes_sent == 0
