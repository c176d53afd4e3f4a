"""The weights cache's rules on plain data: sources parse once, keys name content, an
entry appears only whole (planner/weights/fetch_script.py, without network)."""

from __future__ import annotations

import hashlib
import json

import pytest

from planner.weights import fetch_script as fs

SHA = "a" * 40


@pytest.mark.parametrize("text, kind, repo, rev, url, sha256", [
    ("hf://org/name", "hf", "org/name", "main", "", None),
    ("hf://org/name@v1.0", "hf", "org/name", "v1.0", "", None),
    (f"hf://name@{SHA}", "hf", "name", SHA, "", None),
    ("hf://org/name@refs/pr/1", "hf", "org/name", "refs/pr/1", "", None),
    ("https://h.example/m/w.gguf", "url", "", "main", "https://h.example/m/w.gguf", None),
    ("https://h.example/w.gguf#sha256=" + "B" * 64, "url", "", "main",
     "https://h.example/w.gguf", "b" * 64),
])
def test_sources_parse(text, kind, repo, rev, url, sha256):
    s = fs.parse_source(text)
    assert (s.kind, s.repo, s.revision, s.url, s.sha256) == (kind, repo, rev, url, sha256)


@pytest.mark.parametrize("text", [
    "hf://", "hf://a/b/c", "hf://org/name@", "s3://bucket/x", "/srv/models",
    "https://h/w.gguf#md5=00", "https://h/w#sha256=abc", "https:///nohost",
])
def test_bad_sources_are_refused(text):
    with pytest.raises(fs.FetchError):
        fs.parse_source(text)


def test_the_key_names_the_resolved_content_not_the_spelling():
    main, pinned = fs.parse_source("hf://o/n@main"), fs.parse_source(f"hf://o/n@{SHA}")
    assert fs.cache_key(main, SHA) == fs.cache_key(pinned, SHA)
    assert fs.cache_key(main, SHA, ["*.json", "*.gguf"]) == fs.cache_key(main, SHA, ["*.gguf", "*.json", "*.gguf"])
    keys = {fs.cache_key(main, SHA), fs.cache_key(main, "b" * 40),
            fs.cache_key(main, SHA, ["*.json"]), fs.cache_key(main, SHA, None, ["*.json"]),
            fs.cache_key(fs.parse_source("hf://o/other"), SHA)}
    assert len(keys) == 5
    assert all(len(k) == 64 for k in keys)


def test_url_keys_differ_from_repo_keys():
    a = fs.cache_key(fs.parse_source("https://h/o/n"), "etag:x")
    b = fs.cache_key(fs.parse_source("hf://o/n"), "etag:x")
    assert a != b


def test_filenames_from_urls():
    assert fs.parse_source("https://h/a/b%20c.gguf?x=1").filename == "b c.gguf"
    assert fs.parse_source("https://h/").filename == "download"


@pytest.mark.parametrize("path", ["/etc/passwd", "../x", "a/../../x", ".cache/huggingface/x", ""])
def test_paths_from_a_source_cannot_escape_the_entry(path):
    with pytest.raises(fs.FetchError):
        fs.safe_relpath(path)


def _blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def test_verify_names_every_file_that_differs(tmp_path):
    (tmp_path / "sub").mkdir()
    good, short, bad, small = b"x" * 100, b"y" * 10, b"z" * 50, b'{"a": 1}'
    (tmp_path / "good.bin").write_bytes(good)
    (tmp_path / "short.bin").write_bytes(short)
    (tmp_path / "bad.bin").write_bytes(bad)
    (tmp_path / "sub" / "c.json").write_bytes(small)
    expected = [
        fs.Expected("good.bin", 100, sha256=hashlib.sha256(good).hexdigest()),
        fs.Expected("short.bin", 11),
        fs.Expected("bad.bin", 50, sha256="0" * 64),
        fs.Expected("sub/c.json", len(small), git_sha1=_blob_sha1(small)),
        fs.Expected("gone.bin", 1),
    ]
    problems = dict(fs.verify(tmp_path, expected))
    assert set(problems) == {"short.bin", "bad.bin", "gone.bin"}
    assert "size 10" in problems["short.bin"] and "sha256" in problems["bad.bin"]
    (tmp_path / "sub" / "c.json").write_bytes(b'{"a": 2}')
    assert [p for p, _ in fs.verify(tmp_path, expected[3:4])] == ["sub/c.json"]


def test_an_entry_appears_whole_by_one_rename(tmp_path):
    key = "k" * 64
    staging = tmp_path / fs.PARTIAL / key
    (staging / fs.FILES / ".cache" / "huggingface").mkdir(parents=True)
    (staging / fs.FILES / "w.gguf").write_bytes(b"w")
    assert not fs.is_complete(tmp_path, key)
    fs.publish(tmp_path, key, staging, {"key": key})
    assert fs.is_complete(tmp_path, key)
    assert not staging.exists()
    entry = tmp_path / fs.ENTRIES / key
    assert json.loads((entry / fs.MANIFEST).read_text()) == {"key": key}
    assert sorted(p.name for p in (entry / fs.FILES).iterdir()) == ["w.gguf"]
    assert fs.entry_rel(key) == f"entries/{key}/files"


def test_bad_arguments_exit_2_and_a_bad_source_says_why(tmp_path, capsys):
    assert fs.run(["--cache", str(tmp_path)]) == fs.EXIT_USAGE
    capsys.readouterr()
    assert fs.run(["--cache", str(tmp_path), "ftp://x/y"]) == fs.EXIT_FAILED
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["event"] == "error" and "ftp://x/y" in line["message"]
