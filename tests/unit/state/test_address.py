"""state.address: parsed once, printed back exactly, ordered for display, matched by --target."""

from __future__ import annotations

import pytest

from state.address import Address, AddressError

VALID = [
    ("app.web.image@local", Address.image("web", "local")),
    ("app.web.container[0]@local", Address.container("web", 0, "local")),
    ("app.web.container[12]@gpu-1.lab.example", Address.container("web", 12, "gpu-1.lab.example")),
    ("app.hf_tgi-2.image@10.0.0.7", Address.image("hf_tgi-2", "10.0.0.7")),
    ("app.web.secret.HF_TOKEN@local", Address(app="web", kind="secret", host="local", secret="HF_TOKEN")),
    ("app.Web9.secret.a-b_c@h", Address(app="Web9", kind="secret", host="h", secret="a-b_c")),
    ("gateway@local", Address.gateway("local")),
    ("gateway@gpu-a", Address(app="", kind="gateway", host="gpu-a")),
    ("volume.hf-cache@local", Address.named_volume("hf-cache", "local")),
    ("volume.db_data@gpu-a", Address(app="", kind="volume", host="gpu-a", volume="db_data")),
]


@pytest.mark.parametrize("text,address", VALID, ids=[t for t, _ in VALID])
def test_parse_and_str_round_trip(text: str, address: Address) -> None:
    assert Address.parse(text) == address
    assert str(address) == text
    assert str(Address.parse(text)) == text


def test_addresses_are_values() -> None:
    a, b = Address.parse("app.web.container[1]@local"), Address.container("web", 1, "local")
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    with pytest.raises(AttributeError):
        a.index = 2  # type: ignore[misc]


def test_surrounding_whitespace_is_ignored() -> None:
    assert Address.parse("  app.web.image@local\n") == Address.image("web", "local")


INVALID = [
    "",
    "web",
    "app.web",
    "app.web.image",  # no host
    "app.web.image@",
    "app..image@local",
    "app.web.container@local",  # no index
    "app.web.container[]@local",
    "app.web.container[-1]@local",
    "app.web.container[x]@local",
    "app.web.container[0]",
    "app.web.volume@local",
    "app.web.secret@local",  # no secret name
    "app.-web.image@local",
    "app.web.image@-host",
    "app.web.image@local@other",
    "app.web image@local",
    "apps.web.image@local",
    "app.web.image@local extra",
    "app.web.container[0].image@local",
]


@pytest.mark.parametrize("text", INVALID)
def test_invalid_addresses_raise_a_readable_address_error(text: str) -> None:
    with pytest.raises(AddressError) as caught:
        Address.parse(text)
    message = str(caught.value)
    assert repr(text) in message
    assert "app.NAME.image@HOST" in message and "app.NAME.container[I]@HOST" in message
    assert isinstance(caught.value, ValueError)


def test_a_replica_index_with_leading_zeros_is_not_an_address() -> None:
    with pytest.raises(AddressError):
        Address.parse("app.web.container[01]@local")


def test_sort_key_puts_the_image_first_then_secrets_then_replicas_by_number() -> None:
    texts = [
        "app.web.container[10]@local",
        "app.api.container[0]@local",
        "app.web.container[2]@local",
        "app.web.secret.TOKEN@local",
        "app.web.image@local",
        "app.api.image@local",
        "app.web.container[0]@local",
    ]
    ordered = sorted(texts, key=lambda t: Address.parse(t).sort_key())
    assert ordered == [
        "app.api.image@local",
        "app.api.container[0]@local",
        "app.web.image@local",
        "app.web.secret.TOKEN@local",
        "app.web.container[0]@local",
        "app.web.container[2]@local",
        "app.web.container[10]@local",
    ]


def test_sort_key_orders_the_same_replica_by_host() -> None:
    keys = [Address.container("web", 0, h).sort_key() for h in ("local", "gpu1")]
    assert sorted(keys) == keys[::-1]


MATCHES = [
    ("app.web", "app.web.container[0]@local", True),
    ("app.web", "app.web.image@local", True),
    ("app.web", "app.webx.image@local", False),
    ("app.web", "app.webx.container[0]@local", False),
    ("app.web.container", "app.web.container[3]@local", True),
    ("app.web.container[1]", "app.web.container[1]@local", True),
    ("app.web.container[1]", "app.web.container[10]@local", False),
    ("app.web.container[1]@local", "app.web.container[1]@local", True),
    ("app.web.container[1]@local", "app.web.container[1]@gpu1", False),
    ("app.web.image", "app.web.image@gpu1", True),
    ("app.web.image", "app.web.container[0]@local", False),
    ("app", "app.web.image@local", True),
    ("app.we", "app.web.image@local", False),
    ("web", "app.web.image@local", False),
    ("app.web.secret", "app.web.secret.TOKEN@local", True),
]


@pytest.mark.parametrize("target,text,expected", MATCHES)
def test_matches_a_target_at_dot_or_bracket_boundaries(target: str, text: str, expected: bool) -> None:
    assert Address.parse(text).matches(target) is expected


def test_gateways_sort_after_every_app_and_match_their_own_targets() -> None:
    keys = ["gateway@local", "app.zz.container[0]@local", "app.a.image@local"]
    assert sorted(keys, key=lambda k: Address.parse(k).sort_key()) == [
        "app.a.image@local", "app.zz.container[0]@local", "gateway@local"]
    gateway = Address.gateway("gpu-a")
    assert gateway.matches("gateway") and gateway.matches("gateway@gpu-a")
    assert not gateway.matches("gateway@local") and not gateway.matches("app")


def test_gateway_targets_are_checked_and_cannot_be_moved() -> None:
    from state.address import check_target, moves

    check_target("gateway")
    check_target("gateway@local")
    with pytest.raises(AddressError):
        check_target("gateway.x")
    with pytest.raises(AddressError, match="cannot move a gateway"):
        moves(["gateway@local"], "gateway@local", "app.web.image@local")


def test_volumes_belong_to_the_stack_sort_last_and_match_their_own_targets() -> None:
    from state.address import check_target, moves

    volume = Address.parse("volume.hf-cache@gpu-a")
    assert (volume.app, volume.kind, volume.volume, volume.host) == ("", "volume", "hf-cache", "gpu-a")
    assert sorted([volume, Address.watcher("local"), Address.image("web", "local")], key=Address.sort_key)[-1] == volume
    assert volume.matches("volume") and volume.matches("volume.hf-cache") and volume.matches("volume.hf-cache@gpu-a")
    assert not volume.matches("volume.hf") and not volume.matches("app") and not volume.matches("volume@local")
    check_target("volume.hf-cache")
    check_target("volume@gpu-a")
    with pytest.raises(AddressError, match="cannot move a volume"):
        moves(["volume.hf-cache@gpu-a"], "volume.hf-cache@gpu-a", "volume.models@gpu-a")
