"""Canonical JSON and its hash: sorted keys, no spaces, sha256 in hex.

The one definition behind config-hash labels on running containers, the names of
recorded configurations and the digests records carry; its output must never change.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def canonical_hash(value: Any) -> str:
    return sha256_hex(canonical_json(value))


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
