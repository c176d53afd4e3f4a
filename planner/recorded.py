"""The desired configuration as berth records it: with every state version an apply
writes, in saved plans, and for `rollback`.

A record is the loaded Stack as JSON with every secret value replaced by a digest, so a
record can be shown, stored and diffed but never leaks a secret. `stack_from_record`
turns a record back into a Stack for planning; secret values then come from wherever
the current configuration gets them (records hold names and digests only).
"""

from __future__ import annotations

import json
from typing import Any

from planner.desired import Stack
from state.canonical import canonical_hash, sha256_hex

RECORD_FORMAT = 1
# Keys whose values are secret wherever they appear below a key naming secrets.
_SECRET_VALUE_KEYS = {"value", "values", "data", "content", "secret_value"}


def digest(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)  # not compact: kept as written
    return "sha256:" + sha256_hex(text)


def recorded_config(stack: Stack, *, destroy: bool = False) -> dict[str, Any]:
    """The configuration to record for `stack`: JSON-safe, secrets as digests only. A
    destroy records the stack with no apps: that is what it leaves desired."""
    if destroy:
        stack = stack.model_copy(update={"apps": {}})
    # environment only when set: records of stacks without one stay as they were
    dumped = stack.model_dump(mode="json", exclude={"environment"} if stack.environment is None else None)
    return {"format": RECORD_FORMAT, "stack": _redact(dumped, under_secret=False)}


def stack_from_record(record: dict[str, Any]) -> Stack:
    """The Stack a record holds. One recorded before berth refused some value (a memory
    limit under Docker's minimum, say) is refused now with the rule, never a traceback."""
    from pydantic import ValidationError

    from planner.diagnostics import Diagnostic, DiagnosticsError

    try:
        return Stack.model_validate(record["stack"])
    except ValidationError as err:
        raise DiagnosticsError([Diagnostic(
            f"the recorded configuration holds a value berth refuses: {'.'.join(map(str, error['loc']))}: "
            f"{error['msg'].removeprefix('Value error, ')}",
            detail="Docker would refuse it when the container is created; apply the stack file with the value fixed")
            for error in err.errors(include_url=False)]) from None


def record_digest(record: dict[str, Any]) -> str:
    """The digest the store names a record by (the same canonical JSON)."""
    return canonical_hash(record)


def _redact(value: Any, *, under_secret: bool) -> Any:
    """Secret values become digests: any value of a key in _SECRET_VALUE_KEYS below a key
    that names secrets (`secrets`, `secret_values`…), and any plain string mapped directly
    by such a key's table when it carries values rather than names (`secret_values`)."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            secretish = "secret" in str(key).lower()
            if under_secret and str(key) in _SECRET_VALUE_KEYS and item is not None:
                out[key] = digest(item)
            elif str(key).lower() in ("secret_values", "secret_data") and isinstance(item, dict):
                out[key] = {k: digest(v) for k, v in item.items()}
            else:
                out[key] = _redact(item, under_secret=under_secret or secretish)
        return out
    if isinstance(value, list):
        return [_redact(item, under_secret=under_secret) for item in value]
    return value
