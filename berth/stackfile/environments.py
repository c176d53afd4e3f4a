"""Environments (`berth -e staging ...`): berth.staging.toml laid over berth.toml, as
Kamal's destinations lay deploy.staging.yml over deploy.yml and Terraform workspaces keep
one configuration with state apart.

The overlay is TOML of the same shape as the base; tables merge key by key, every other
value (a list included) replaces the base's. The stack is named STACK-ENV unless the
overlay names it itself, so each environment keeps its own state and never plans a
change to another's resources.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from berth.stackfile.models import NAME_PATTERN, NAME_RULE

ENVIRONMENT = re.compile(NAME_PATTERN)


def overlay_file(base: Path, environment: str) -> Path:
    """berth.toml -> berth.ENV.toml beside it (prod.toml -> prod.ENV.toml)."""
    return base.with_name(f"{base.stem}.{environment}{base.suffix}")


def environment_problem(environment: str) -> str | None:
    if not ENVIRONMENT.fullmatch(environment):
        return f"environment name {environment!r} must be {NAME_RULE}"
    return None


def merged(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """base with overlay over it: tables merged key by key, anything else replaced."""
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def set_by_overlay(base: dict[str, Any], overlay: dict[str, Any], path: tuple[str | int, ...]) -> bool:
    """Whether the value at `path` (its string keys) comes from the overlay: the overlay
    writes that key, and either the base has no such key or the overlay's value is not a
    table merged into the base's."""
    keys = [part for part in path if isinstance(part, str)]
    if not keys:
        return False
    in_base, in_overlay = base, overlay
    for depth, key in enumerate(keys):
        if not isinstance(in_overlay, dict) or key not in in_overlay:
            return False
        in_overlay = in_overlay[key]
        in_base = in_base.get(key) if isinstance(in_base, dict) else None
        if in_base is None or not isinstance(in_overlay, dict):
            return True  # the overlay adds this key, or replaces the base's value here
    return False
