"""The pure parts of the SSH provider, on plain data: Docker chain IDs, the layer-aware
`docker save` filter, host-key fingerprints and the known_hosts decision. The transport
itself is covered end to end in tests/integration/test_ssh_hosts.py."""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

from providers.ssh.connection import HostKeyError, SshConnection, SshTarget, fingerprint
from providers.ssh.images import chain_ids, filtered_image_tar


def _sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def test_chain_ids_follow_dockers_definition() -> None:
    a, b, c = _sha("a"), _sha("b"), _sha("c")
    ab = "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()
    abc = "sha256:" + hashlib.sha256(f"{ab} {c}".encode()).hexdigest()
    assert chain_ids([a, b, c]) == [a, ab, abc]
    assert chain_ids([]) == []


def _saved_image(layers: dict[str, bytes], link: tuple[str, str] | None = None) -> tuple[io.BytesIO, list[str]]:
    """A `docker save`-shaped archive: manifest.json, a config naming the layers' diff
    IDs, and one file per layer (`link`: a symlink member pointing at another layer)."""
    diff_ids = [_sha(name) for name in layers]
    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    names = [f"{name}/layer.tar" for name in layers]
    manifest = json.dumps([{"Config": "config.json", "RepoTags": ["x:1"], "Layers": names}]).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:") as tar:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        for name, data in layers.items():
            add(f"{name}/layer.tar", data)
        if link:
            info = tarfile.TarInfo(link[0])
            info.type, info.linkname = tarfile.SYMTYPE, link[1]
            tar.addfile(info)
        add("config.json", config)
        add("manifest.json", manifest)
    return out, diff_ids


def _members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        return {m.name: (tar.extractfile(m).read() if m.isreg() else b"->" + m.linkname.encode())
                for m in tar.getmembers()}


def test_the_filter_leaves_out_exactly_the_layers_whose_chain_the_host_has() -> None:
    layers = {"base": b"B" * 5000, "deps": b"D" * 700, "app": b"A" * 10}
    spool, diff_ids = _saved_image(layers)
    chains = chain_ids(diff_ids)
    whole = b"".join(filtered_image_tar(spool, set()))
    assert _members(whole) == _members(spool.getvalue())  # nothing present: everything travels

    # The host has base and deps (their chains): only app's layer and the metadata travel.
    sent = _members(b"".join(filtered_image_tar(spool, set(chains[:2]))))
    assert set(sent) == {"app/layer.tar", "config.json", "manifest.json"}
    assert sent["app/layer.tar"] == layers["app"]
    # A diff ID alone is not enough: deps on top of another base is a different chain.
    sent = _members(b"".join(filtered_image_tar(spool, {chains[0], diff_ids[1]})))
    assert set(sent) == {"deps/layer.tar", "app/layer.tar", "config.json", "manifest.json"}


def test_a_layer_another_member_links_to_is_kept() -> None:
    spool, diff_ids = _saved_image({"base": b"B" * 100, "app": b"A" * 10}, link=("again/layer.tar", "../base/layer.tar"))
    sent = _members(b"".join(filtered_image_tar(spool, {chain_ids(diff_ids)[0]})))
    assert sent["base/layer.tar"] == b"B" * 100
    assert sent["again/layer.tar"] == b"->../base/layer.tar"


def _host_key(tmp: Path, name: str):
    import paramiko

    path = tmp / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return paramiko.Ed25519Key.from_private_key_file(str(path)), path


def test_fingerprint_is_what_ssh_keygen_shows(tmp_path: Path) -> None:
    key, path = _host_key(tmp_path, "k")
    shown = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", f"{path}.pub"],
                           capture_output=True, text=True, check=True).stdout.split()[1]
    assert fingerprint(key) == shown


def test_host_keys_unknown_changed_and_accepted(tmp_path: Path) -> None:
    key, _ = _host_key(tmp_path, "k")
    other, _ = _host_key(tmp_path, "other")
    known_hosts = tmp_path / "known_hosts"
    target = SshTarget(name="gpu-a", user="u", address="10.0.0.5", port=2222, known_hosts=str(known_hosts))

    SshConnection(target)._check_host_key(key, {"ssh-ed25519": key})  # known and equal: fine
    with pytest.raises(HostKeyError, match=re.escape(f"HOST KEY CHANGED: it offered ssh-ed25519 {fingerprint(other)}")):
        SshConnection(target)._check_host_key(other, {"ssh-ed25519": key})
    with pytest.raises(HostKeyError, match=re.escape(f"unknown host key ssh-ed25519 {fingerprint(key)}")):
        SshConnection(target)._check_host_key(key, {})
    assert not known_hosts.exists()  # refusing writes nothing

    accepting = SshTarget(**{**target.__dict__, "accept_new_host_key": True})
    SshConnection(accepting)._check_host_key(key, {})
    assert known_hosts.read_text() == f"[10.0.0.5]:2222 ssh-ed25519 {key.get_base64()}\n"
    # accept_new_host_key never covers a changed key.
    with pytest.raises(HostKeyError, match="HOST KEY CHANGED"):
        SshConnection(accepting)._check_host_key(other, {"ssh-ed25519": key})


def test_keys_come_from_ssh_config_for_the_host_then_the_defaults(tmp_path: Path, monkeypatch) -> None:
    """No identity_file and no agent: the IdentityFile ~/.ssh/config names for the host's
    address first, then ~/.ssh/id_*; a key file that is not there is skipped."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    ssh = tmp_path / ".ssh"
    ssh.mkdir()
    _host_key(tmp_path, "gpu_key")
    _host_key(ssh, "id_ed25519")
    (ssh / "config").write_text("Host 10.0.0.*\n  IdentityFile ~/gpu_key\n  IdentityFile ~/missing\n"
                                "Host other\n  IdentityFile ~/not_this\n")
    target = SshTarget(name="gpu-a", user="u", address="10.0.0.5")
    labels = [label for label, _ in SshConnection(target)._keys()]
    assert labels == [str(tmp_path / "gpu_key"), str(ssh / "id_ed25519")]
    other = SshTarget(name="gpu-b", user="u", address="192.168.1.9")
    assert [label for label, _ in SshConnection(other)._keys()] == [str(ssh / "id_ed25519")]


def test_secret_root_on_a_server() -> None:
    from providers.ssh.secret_files import server_root

    assert server_root("root", None) == "/var/lib/berth/secrets"
    assert server_root("ubuntu", None) is None  # the login's home must be asked first
    assert server_root("ubuntu", None, home="/home/ubuntu") == "/home/ubuntu/.local/state/berth/secrets"
    assert server_root("root", "/run/berth") == server_root("ubuntu", "/run/berth", home="/home/u") == "/run/berth"


def test_secret_files_refuse_parts_that_would_leave_the_root() -> None:
    from providers.ssh.secret_files import SftpSecretFiles
    from providers.types import ProviderError

    files = SftpSecretFiles("gpu-a", session=lambda: pytest.fail("no session for a refused path"), user="root")
    assert files.path(("demo", "web", "hf")) == "/var/lib/berth/secrets/demo/web/hf"
    for bad in (("..", "web", "hf"), ("demo", "a/b", "hf"), ("demo", "web", ".hf")):
        with pytest.raises(ProviderError, match="cannot name a secret file"):
            files.path(bad)


def test_aes_gcm_is_offered_first_and_every_other_cipher_after_it_in_paramikos_order() -> None:
    from providers.ssh.connection import gcm_first

    offered = ("aes128-ctr", "aes192-ctr", "aes256-ctr", "aes128-cbc", "aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
    assert gcm_first(offered) == ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "aes128-ctr", "aes192-ctr",
                                  "aes256-ctr", "aes128-cbc")
    assert gcm_first(("aes128-ctr", "aes256-ctr")) == ("aes128-ctr", "aes256-ctr")  # a paramiko without GCM
