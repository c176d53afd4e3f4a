"""`berth validate`: the stack file alone; no host, no secret value, no state."""

from __future__ import annotations

import json

from berth.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["validate", "--no-color", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_valid_file_needs_no_secret_value_and_makes_no_state(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("BERTH_TEST_UNSET_SECRET", raising=False)
    (tmp_path / "berth.toml").write_text(
        '[stack]\nname = "v"\n[apps.web]\nimage = "busybox"\nport = 80\nsecrets = ["tok"]\n'
        '[secrets.tok]\nenv = "BERTH_TEST_UNSET_SECRET"\n[hosts.gpu]\nssh = "u@10.255.255.1"\n')
    code, out, _ = run(capsys, "-f", str(tmp_path), "--json")
    doc = json.loads(out)
    assert code == 0 and doc["valid"] is True and doc["format_version"] == 1
    assert doc["apps"] == ["web"] and doc["secrets"] == ["tok"] and doc["errors"] == []
    assert not (tmp_path / ".berth").exists()


def test_an_invalid_file_exits_1_with_file_key_and_line(tmp_path, capsys):
    (tmp_path / "berth.toml").write_text('[apps.web]\nimage = "busybox"\nport = 0\n')
    code, out, _ = run(capsys, "-f", str(tmp_path), "--json")
    doc = json.loads(out)
    assert code == 1 and doc["valid"] is False
    (error,) = doc["errors"]
    assert (error["file"].endswith("berth.toml"), error["key"], error["line"]) == (True, "apps.web.port", 3)
    code, _, err = run(capsys, "-f", str(tmp_path))
    assert code == 1 and "berth.toml:3: apps.web.port" in err
