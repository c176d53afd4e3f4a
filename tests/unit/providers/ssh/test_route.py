"""How an SSH host is reached once ~/.ssh/config had its say (providers.ssh.connection.route)."""

from __future__ import annotations

from providers.ssh.connection import SshTarget, jump_target, route, ssh_config_for


def target(**kw) -> SshTarget:
    return SshTarget(**{"name": "gpu", "user": "me", "address": "gpu-box", "port": 22} | kw)


def test_the_config_fills_what_the_file_left_out_and_the_file_wins_where_it_spoke(tmp_path):
    config = tmp_path / "config"
    config.write_text("Host gpu-box\n  HostName 10.0.0.9\n  User ubuntu\n  Port 2222\n  IdentityFile ~/.ssh/gpu\n"
                      "  ProxyJump bastion\n")
    found = ssh_config_for("gpu-box", str(config))
    r = route(target(user_given=False, port_given=False), found)
    assert (r.address, r.user, r.port, r.proxy_jump) == ("10.0.0.9", "ubuntu", 2222, "bastion")
    assert r.identity_files[0].endswith("/.ssh/gpu") and r.known_hosts_name == "[10.0.0.9]:2222"
    written = route(target(user="root", port=22, user_given=True, port_given=True, proxy_jump="a@b:1"), found)
    assert (written.user, written.port, written.proxy_jump) == ("root", 22, "a@b:1")


def test_proxy_command_only_without_a_jump_and_none_turns_either_off():
    assert route(target(), {"proxycommand": "nc %h %p"}).proxy_command == "nc %h %p"
    assert route(target(), {"proxycommand": "nc x", "proxyjump": "b"}).proxy_command is None
    assert route(target(proxy_jump="none"), {"proxyjump": "b", "proxycommand": "nc"}) .proxy_jump is None
    assert route(target(), {}).address == "gpu-box", "no config: the address as written"


def test_a_jump_spec_is_a_target_trusted_as_the_host_behind_it():
    base = target(identity_file="/k", known_hosts="/kh", accept_new_host_key=True)
    jump = jump_target(base, "ops@bastion:2200", 0)
    assert (jump.user, jump.address, jump.port, jump.identity_file, jump.known_hosts) == \
        ("ops", "bastion", 2200, "/k", "/kh")
    assert jump.accept_new_host_key and jump.user_given and jump.port_given
    bare = jump_target(base, "bastion", 1)
    assert (bare.user, bare.port, bare.user_given, bare.port_given) == ("me", 22, False, False)
    v6 = jump_target(base, "root@[fd00::1]:22", 0)
    assert (v6.address, v6.port) == ("fd00::1", 22)
