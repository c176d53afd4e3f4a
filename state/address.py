"""Addresses: the stable names of everything berth manages.

An address is parsed once and compared as data. Its text form is what plans, state,
`--target`, labels and logs use, so `str(Address.parse(s)) == s` must hold for every
valid s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class ResourceKind(StrEnum):
    """What a resource is: the kind in its address, ResourceState.type and Change.type.

    gateway: the stack's part (its routes) of the serving proxy of one host, which
    every stack asking for its port there shares (planner.serving.gateway); watcher: the
    liveness watcher of one host (planner.serving.watcher); both belong to the stack,
    not to an app. secret: a secret file on a host. volume: a named volume the stack's
    apps on one host mount (volume.NAME@HOST); it belongs to the stack and outlives
    containers.
    """

    IMAGE = "image"
    CONTAINER = "container"
    SECRET = "secret"
    GATEWAY = "gateway"
    WATCHER = "watcher"
    VOLUME = "volume"
    WEIGHTS = "weights"

    @property
    def per_host(self) -> bool:
        """One per host, named after it (gateway@HOST, watcher@HOST)."""
        return self in (ResourceKind.GATEWAY, ResourceKind.WATCHER)


Kind = ResourceKind  # the name Address's field had

NAME = r"[A-Za-z0-9][A-Za-z0-9_-]*"
HOST = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
_PATTERN = re.compile(
    rf"^app\.(?P<app>{NAME})\."
    rf"(?:(?P<image>image)|(?P<what>container|weights)\[(?P<index>0|[1-9]\d*)\]|secret\.(?P<secret>{NAME}))"
    rf"@(?P<host>{HOST})$"
)
# The serving gateway and the liveness watcher of one host: they belong to the stack,
# not to an app (app is "").
_GATEWAY = re.compile(rf"^gateway@(?P<host>{HOST})$")
_WATCHER = re.compile(rf"^watcher@(?P<host>{HOST})$")
_VOLUME = re.compile(rf"^volume\.(?P<volume>{NAME})@(?P<host>{HOST})$")


class AddressError(ValueError):
    pass


@dataclass(frozen=True, eq=False)
class Address:
    """Plans, steps and state hold these; the text form exists only at the edges (files,
    labels, output), and pydantic models read and write an Address as that text.

    Compared as data; an Address also equals (and hashes like) its own text, so a lookup
    by the text an edge holds (state's keys, a label, a test's expectation) finds it."""

    app: str
    kind: ResourceKind
    host: str
    index: int = 0
    secret: str = ""
    volume: str = ""  # a named volume's name (kind volume)
    _text: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", ResourceKind(self.kind))
        object.__setattr__(self, "_text", self._format())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Address):
            return self._text == other._text
        if isinstance(other, str):
            return self._text == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._text)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        """In a pydantic model, an Address is read from its text (or taken as it is) and
        written as its text, so files that hold addresses keep their format."""
        from pydantic_core import core_schema

        def read(value: Any) -> Address:
            return value if isinstance(value, Address) else cls.parse(value)

        return core_schema.no_info_plain_validator_function(
            read, serialization=core_schema.plain_serializer_function_ser_schema(str, return_schema=core_schema.str_schema()),
            json_schema_input_schema=core_schema.str_schema())

    @classmethod
    def secret_file(cls, app: str, secret: str, host: str) -> Address:
        return cls(app=app, kind=ResourceKind.SECRET, host=host, secret=secret)

    @classmethod
    def image(cls, app: str, host: str) -> Address:
        return cls(app=app, kind=ResourceKind.IMAGE, host=host)

    @classmethod
    def container(cls, app: str, index: int, host: str) -> Address:
        return cls(app=app, kind=ResourceKind.CONTAINER, host=host, index=index)

    @classmethod
    def weights(cls, app: str, index: int, host: str) -> Address:
        """The app's index-th `[[apps.NAME.weights]]` source on host."""
        return cls(app=app, kind=ResourceKind.WEIGHTS, host=host, index=index)

    @classmethod
    def gateway(cls, host: str) -> Address:
        return cls(app="", kind=ResourceKind.GATEWAY, host=host)

    @classmethod
    def watcher(cls, host: str) -> Address:
        return cls(app="", kind=ResourceKind.WATCHER, host=host)

    @classmethod
    def named_volume(cls, volume: str, host: str) -> Address:
        return cls(app="", kind=ResourceKind.VOLUME, host=host, volume=volume)

    @classmethod
    def parse(cls, text: str | Address) -> Address:
        if isinstance(text, Address):  # parsed already (at the edge)
            return text
        if not isinstance(text, str):
            raise AddressError(f"{text!r} is not a resource address")
        if gateway := _GATEWAY.match(text.strip()):
            return cls.gateway(gateway["host"])
        if watcher := _WATCHER.match(text.strip()):
            return cls.watcher(watcher["host"])
        if volume := _VOLUME.match(text.strip()):
            return cls.named_volume(volume["volume"], volume["host"])
        match = _PATTERN.match(text.strip())
        if not match:
            raise AddressError(
                f"{text!r} is not a resource address; expected app.NAME.image@HOST, "
                "app.NAME.container[I]@HOST, app.NAME.weights[I]@HOST, app.NAME.secret.SECRET@HOST, volume.NAME@HOST, "
                "gateway@HOST or watcher@HOST"
            )
        if match["image"]:
            return cls.image(match["app"], match["host"])
        if match["index"] is not None:
            make = cls.weights if match["what"] == "weights" else cls.container
            return make(match["app"], int(match["index"]), match["host"])
        return cls.secret_file(match["app"], match["secret"], match["host"])

    def sort_key(self) -> tuple:
        """Plans and state list an app's image first, then its secrets, its weights, then replicas;
        gateways after every app, then watchers, then volumes."""
        if self.kind is ResourceKind.VOLUME:
            return (3, "", 0, self.volume, 0, self.host)
        if self.kind.per_host:
            return (1 if self.kind is ResourceKind.GATEWAY else 2, "", 0, "", 0, self.host)
        return (0, self.app, ("image", "secret", "weights", "container").index(self.kind), self.secret, self.index, self.host)

    def __str__(self) -> str:
        return self._text

    def _format(self) -> str:
        match self.kind:
            case "gateway" | "watcher":
                return f"{self.kind}@{self.host}"
            case "volume":
                return f"volume.{self.volume}@{self.host}"
            case "image":
                middle = "image"
            case "container" | "weights":
                middle = f"{self.kind}[{self.index}]"
            case "secret":
                middle = f"secret.{self.secret}"
        return f"app.{self.app}.{middle}@{self.host}"

    def matches(self, target: str) -> bool:
        """Whether `--target` text selects this address: a whole address, or a prefix
        of one at a dot or bracket boundary (`app.web` selects all of web's resources),
        optionally narrowed to one host (`app.web@gpu1`, `app.web.container[0]@local`)."""
        bare_target, at, host = target.strip().partition("@")
        if at and host != self.host:
            return False
        bare = str(self).split("@", 1)[0]
        if self.kind.per_host:
            return bare_target == self.kind
        return bare == bare_target or any(bare.startswith(bare_target + sep) for sep in ".[")


_TARGET = re.compile(
    rf"^(?:gateway|watcher)(?:@{HOST})?$|^volume(?:\.{NAME})?(?:@{HOST})?$|^app(?:\.{NAME}(?:\.(?:image|(?:container|weights)(?:\[(?:0|[1-9]\d*)\])?|secret(?:\.{NAME})?))?)?(?:@{HOST})?$"
)


def check_target(text: str) -> None:
    """Raise AddressError unless text is something `--target` or `state rm` can select."""
    if not _TARGET.match(text.strip()):
        raise AddressError(
            f"{text!r} selects no address; expected app.NAME, app.NAME@HOST, app.NAME.image, "
            "app.NAME.container[I], app.NAME.weights[I], gateway, gateway@HOST, watcher, watcher@HOST, volume.NAME or a whole address like app.NAME.container[I]@HOST"
        )


_APP_ONLY = re.compile(rf"^app\.({NAME})$")


def moves(keys: list[str], source: str, destination: str) -> dict[str, str]:
    """What `state mv OLD NEW` renames, OLD → NEW, among the addresses state holds: one
    whole address to another of the same kind on the same host, or app.OLD → app.NEW
    for every resource of the app (kind, replica and host kept)."""
    from dataclasses import replace

    old_app, new_app = _APP_ONLY.match(source.strip()), _APP_ONLY.match(destination.strip())
    if old_app and new_app:
        return {key: str(replace(Address.parse(key), app=new_app[1]))
                for key in keys if Address.parse(key).app == old_app[1]}
    if old_app or new_app:
        raise AddressError("state mv moves an app to an app (app.OLD app.NEW) or an address to an address")
    old, new = Address.parse(source), Address.parse(destination)
    for kind in ("gateway", "watcher"):
        if kind in (old.kind, new.kind):
            raise AddressError(f"state mv cannot move a {kind}: there is one per host, named after it")
    if "volume" in (old.kind, new.kind):
        raise AddressError("state mv cannot move a volume: its Docker volume is named after it (berth-STACK-NAME)")
    if old.kind != new.kind:
        raise AddressError(f"state mv cannot turn a {old.kind} into a {new.kind}")
    if old.host != new.host:
        raise AddressError("state mv cannot move a resource to another host: it lives where it is")
    return {str(old): str(new)} if str(old) in keys else {}
