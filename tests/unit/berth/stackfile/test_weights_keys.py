"""[[apps.NAME.weights]] in berth.toml: what load refuses, each at its table's own line."""

from __future__ import annotations

from pathlib import Path

import pytest

from berth.stackfile.load import load_stack
from planner.diagnostics import DiagnosticsError

TEXT = """\
[stack]
name = "w"
[secrets.hf_access_token]
env = "HF_TOKEN"
[apps.llm]
image = "busybox"
port = 80
[[apps.llm.weights]]
source = "./w"
mount = "/models/local/"
[[apps.llm.weights]]
source = "https://x/y"
mount = "/models/local"
allow = ["x"]
[[apps.llm.weights]]
source = "./nope"
mount = "/m"
[[apps.llm.weights]]
source = "hf://bad@"
mount = "/secrets/x"
"""


def test_bad_weights_are_refused_at_their_own_table(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    (tmp_path / "berth.toml").write_text(TEXT)
    with pytest.raises(DiagnosticsError) as caught:
        load_stack(str(tmp_path / "berth.toml"))
    found = {(d.key, d.line): d.summary for d in caught.value.diagnostics}
    assert set(found) == {
        ("apps.llm.weights[1].mount", 13), ("apps.llm.weights[1].allow", 14), ("apps.llm.weights[2].source", 16),
        ("apps.llm.weights[3].source", 19), ("apps.llm.weights[3].mount", 20)}, found
    assert "mounted at /models/local already" in found[("apps.llm.weights[1].mount", 13)]
    assert "not found" in found[("apps.llm.weights[2].source", 16)]
    assert "empty revision" in found[("apps.llm.weights[3].source", 19)]


def test_a_weights_secret_must_be_defined(tmp_path: Path) -> None:
    (tmp_path / "berth.toml").write_text(
        TEXT.split("[[apps.llm.weights]]")[0] + '[[apps.llm.weights]]\nsource = "hf://o/m"\nmount = "/m"\n'
        'secret = "hf_acces_token"\n')
    with pytest.raises(DiagnosticsError) as caught:
        load_stack(str(tmp_path / "berth.toml"))
    [problem] = caught.value.diagnostics
    assert (problem.key, problem.line) == ("apps.llm.weights[0].secret", 11)
    assert 'did you mean "hf_access_token"' in problem.summary
