"""[gateway] as users write it: the table form of [stack] gateway_port, api_keys naming
secrets, drain_timeout; apps' public and domains; cerebrium's disable_auth."""

from __future__ import annotations

from pathlib import Path

import pytest

from unit.berth.stackfile.test_spec import errors, write

from berth.stackfile.load import load_stack


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


TABLE = """
[gateway]
port = 8443
admin_port = 2100
api_keys = ["gateway_key", "second"]
drain_timeout = 12.5

[secrets.gateway_key]
env = "GW_KEY"

[secrets.second]
env = "GW_SECOND"

[apps.llm]
build = "./web"
port = 8000
domains = ["llm.example.com", "llm.internal"]

[apps.open]
build = "./web"
port = 8001
public = true
"""


def test_the_gateway_table_sets_what_gateway_port_did_and_more(in_tmp: Path) -> None:
    write(in_tmp, TABLE)
    stack = load_stack(None)
    assert (stack.gateway_port, stack.gateway_admin_port) == (8443, 2100)
    assert (stack.gateway_api_keys, stack.gateway_drain_timeout) == (("gateway_key", "second"), 12.5)
    assert set(stack.secrets) == {"gateway_key", "second"}
    llm, open_ = stack.apps["llm"], stack.apps["open"]
    assert (llm.domains, llm.public, open_.public, open_.domains) == (("llm.example.com", "llm.internal"), False, True, ())
    assert llm.host_port is None  # served by the gateway: a port berth picks, as with gateway_port


def test_gateway_port_alone_keeps_working_and_has_no_keys(in_tmp: Path) -> None:
    write(in_tmp, '[stack]\ngateway_port = 8080\n[apps.web]\nbuild = "./web"\nport = 80\n')
    stack = load_stack(None)
    assert (stack.gateway_port, stack.gateway_api_keys, stack.gateway_drain_timeout) == (8080, (), 30.0)


def test_the_secrets_file_can_hold_the_keys(in_tmp: Path) -> None:
    write(in_tmp, '[stack]\nsecrets_file = ".env"\n[gateway]\nport = 8080\napi_keys = ["k"]\n'
                  '[apps.web]\nbuild = "./web"\nport = 80\n')
    assert load_stack(None).secrets["k"].secrets_file


@pytest.mark.parametrize(("text", "where", "words"), [
    ('[stack]\ngateway_port = 8080\n[gateway]\nport = 8081\n', "gateway.port", "set twice"),
    ('[gateway]\napi_keys = []\n', "gateway", "needs port"),
    ('[gateway]\nport = 8080\napi_keys = ["nope"]\n', "gateway.api_keys", 'unknown secret "nope"'),
    ('[gateway]\nport = 8080\napi_keys = "k"\n', "gateway.api_keys", "expected a list of secret names"),
    ('[gateway]\nport = 8080\ntimeout = 3\n', "gateway.timeout", "timeout"),
    ('[gateway]\nport = 8080\ndrain_timeout = 0\n', "gateway.drain_timeout", "greater than 0"),
    ('[gateway]\nport = 8080\ntls = "acmee"\n', "gateway.tls", '"acme" (certificates for the apps'),
    ('[gateway]\nport = 443\ntls = "acme"\n', "gateway.tls", "no app has any"),
    ('[gateway]\nport = 8080\ntls = { cert = "c" }\n', "gateway.tls", "a table like { cert ="),
    ('[gateway]\nport = 8080\ntls = { cert = "c", key = "nope" }\n[secrets.c]\nenv = "C"\n', "gateway.tls.key",
     'unknown secret "nope"'),
    ('[gateway]\nport = 8080\n[apps.x]\nbuild = "./web"\nport = 80\ndomains = ["Bad Host"]\n', "apps.x.domains",
     "host names"),
    ('[gateway]\nport = 8080\n[apps.x]\nbuild = "./web"\nport = 80\npublic = "yes"\n', "apps.x.public", "true or false"),
])
def test_gateway_table_problems_name_the_key(in_tmp: Path, text: str, where: str, words: str) -> None:
    if "[apps." not in text:
        text += '[apps.web]\nbuild = "./web"\nport = 80\n'
    found = errors(in_tmp, text)
    assert any(where in str(d) and words in str(d) for d in found), [str(d) for d in found]


def test_cerebrium_disable_auth_makes_the_app_public(in_tmp: Path) -> None:
    (in_tmp / "app").mkdir()
    (in_tmp / "app" / "main.py").write_text("def run():\n    return 1\n")
    for flag, public in (("true", True), ("false", False)):
        (in_tmp / "app" / "cerebrium.toml").write_text(
            f'[cerebrium.deployment]\nname = "app"\ndisable_auth = {flag}\n'
            '[cerebrium.runtime.custom]\nentrypoint = ["python3", "main.py"]\nport = 8192\n')
        write(in_tmp, '[gateway]\nport = 8080\n[apps.app]\nfrom = "./app/cerebrium.toml"\n')
        app = load_stack(None).apps["app"]
        assert app.public is public and "disable_auth" not in " ".join(app.ignored)


def test_port_range_is_where_served_replicas_get_their_ports(in_tmp: Path) -> None:
    write(in_tmp, '[gateway]\nport = 8080\nport_range = "40000-40009"\n[apps.web]\nbuild = "./web"\nport = 80\n'
                  '[apps.fixed]\nbuild = "./web"\nport = 81\ndeploy = "recreate"\n')
    stack = load_stack(None)
    assert stack.apps["web"].port_range == (40000, 40009)
    assert stack.apps["fixed"].port_range is None  # it keeps its host_port


@pytest.mark.parametrize("value", ['"40000"', '"40010-40000"', '"0-10"', '"1-70000"', "40000"])
def test_a_bad_port_range_is_named(in_tmp: Path, value: str) -> None:
    found = errors(in_tmp, f'[gateway]\nport = 8080\nport_range = {value}\n[apps.web]\nbuild = "./web"\nport = 80\n')
    assert any("gateway.port_range" in str(d) and "a port range like" in str(d) for d in found), [str(d) for d in found]


def test_tls_from_secrets_names_them(in_tmp: Path) -> None:
    write(in_tmp, '[gateway]\nport = 8443\ntls = { cert = "c", key = "k" }\n[secrets.c]\nfile = "c.pem"\n'
                  '[secrets.k]\nfile = "k.pem"\n[apps.web]\nbuild = "./web"\nport = 80\n')
    stack = load_stack(None)
    assert (stack.gateway_tls, stack.gateway_tls_secrets) == ("secrets", ("c", "k"))
    assert {"c", "k"} <= set(stack.secrets)
