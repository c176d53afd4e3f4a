"""build.secrets, build.target and build.cache_from: read from berth.toml, counted in the
content hash (names, never values), and handed to the build step; a stack without them
hashes and plans as before."""

from __future__ import annotations

import secrets
from pathlib import Path

from planner.contexthash import context_hash
from planner.desired import BuildSource
from unit.deployment import Deployment

STACK = """
[stack]
name = "demo"
[secrets.hf_access_token]
file = "token.txt"
[apps.web]
build = {{ context = "./web"{extra} }}
port = 8000
"""
EXTRA = ', secrets = ["hf_access_token"], target = "runtime", cache_from = ["demo/web:cache"]'


def _files(token: str) -> dict[str, str]:
    return {"web/Dockerfile": "FROM busybox\n", "token.txt": token}


def test_the_build_step_gets_the_secret_values_target_and_cache_from(tmp_path: Path) -> None:
    token = "t-" + secrets.token_hex(12)
    d = Deployment(tmp_path, STACK.format(extra=EXTRA), files=_files(token))
    result = d.apply()
    assert result.ok
    [(tag, options)] = d.local.build_options.items()
    assert options.secrets == {"hf_access_token": token.encode()}
    assert options.target == "runtime" and options.cache_from == ("demo/web:cache",)
    assert options.name == "web"
    image = next(r for r in result.state.resources.values() if r.address.kind == "image")
    assert image.attributes["build_secrets"] == ["hf_access_token"]
    assert token not in result.state.model_dump_json()
    assert not d.plan().has_changes


def test_a_rotated_build_secret_value_does_not_rebuild(tmp_path: Path) -> None:
    d = Deployment(tmp_path, STACK.format(extra=EXTRA), files=_files("one-" + secrets.token_hex(8)))
    assert d.apply().ok
    d.write(files={"token.txt": "two-" + secrets.token_hex(8)})
    assert not d.plan().has_changes


def test_the_options_count_in_the_content_hash_only_when_set(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM busybox\n")
    plain = BuildSource(context=str(tmp_path))
    # Empty options are no options: a stack written before they existed keeps its hash.
    assert context_hash(plain) == context_hash(BuildSource(context=str(tmp_path), secrets=(), cache_from=()))
    hashes = {context_hash(BuildSource(context=str(tmp_path), **option))
              for option in ({"target": "a"}, {"target": "b"}, {"secrets": ("x",)}, {"cache_from": ("r:1",)})}
    assert len(hashes) == 4 and context_hash(plain) not in hashes


def test_a_stack_without_the_options_records_no_new_attributes(tmp_path: Path) -> None:
    d = Deployment(tmp_path, STACK.format(extra=""), files=_files("x"))
    result = d.apply()
    image = next(r for r in result.state.resources.values() if r.address.kind == "image")
    assert not {"build_secrets", "target", "cache_from"} & set(image.attributes)
