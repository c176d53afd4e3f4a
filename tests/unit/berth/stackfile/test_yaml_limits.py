"""Issue 17, item 10: a YAML alias bomb or an oversized document in a Truss config.yaml
is refused at once, with its line, instead of hanging `plan` and eating memory."""

from __future__ import annotations

import time

import pytest

from berth.stackfile.yamlfile import YamlError, load_yaml

BOMB = "\n".join(
    ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    + ["model_name: *a9", ""])


def test_an_alias_bomb_is_refused_fast_with_a_line() -> None:
    started = time.monotonic()
    with pytest.raises(YamlError) as caught:
        load_yaml(BOMB)
    assert time.monotonic() - started < 0.5
    assert "alias" in caught.value.message and caught.value.line is not None


def test_ordinary_aliases_still_work() -> None:
    document = load_yaml("base: &b {x: 1}\none: *b\ntwo: *b\n")
    assert document.value == {"base": {"x": 1}, "one": {"x": 1}, "two": {"x": 1}}


def test_an_oversized_document_is_refused_before_it_is_parsed() -> None:
    started = time.monotonic()
    with pytest.raises(YamlError) as caught:
        load_yaml("model_name: m\nnotes: |\n" + "  padding line of text\n" * 500_000)
    assert time.monotonic() - started < 0.5
    assert "MB" in caught.value.message


def test_nesting_too_deep_is_an_error_not_a_crash() -> None:
    with pytest.raises(YamlError) as caught:
        load_yaml("x: " + "[" * 5000 + "]" * 5000 + "\n")
    assert "deep" in caught.value.message and caught.value.line == 1


def test_an_alias_bomb_in_a_truss_config_is_a_located_plan_error(tmp_path, monkeypatch) -> None:
    from berth.stackfile.load import load_stack
    from planner.diagnostics import DiagnosticsError

    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").write_text(BOMB)
    started = time.monotonic()
    with pytest.raises(DiagnosticsError) as caught:
        load_stack(None)
    assert time.monotonic() - started < 1
    found = caught.value.diagnostics[0]
    assert found.file == "config.yaml" and found.line is not None and "alias" in found.summary
