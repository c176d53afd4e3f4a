"""The weights step: put one source's entry into its host's cache (planner.weights.cache).

A local directory is copied over the host's own file transport (only files the host
lacks); hf:// and https:// are fetched on the host by fetch_script.py in a short-lived
helper container, whose image is built from planner/weights/fetcher (cached by content
hash, as the gateway's is) and sent to hosts whose images are built elsewhere.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

from planner.graph import Step, StepKind
from planner.plan import Change
from planner.resources import secret_parts
from planner.steps import StepContext, handles
from providers.base import Provider
from providers.types import LABEL_CONTENT_HASH, ProviderError
from state.address import Address

FETCHER = Path(__file__).parent / "fetcher"
SCRIPT = Path(__file__).parent / "fetch_script.py"


def helper_tag() -> tuple[str, dict[str, str]]:
    content = hashlib.sha256((FETCHER / "Dockerfile").read_bytes()).hexdigest()
    return f"berth-weights-fetcher:{content[:12]}", {LABEL_CONTENT_HASH: content, "berth.role": "weights-fetcher"}


def helper_image(ctx: StepContext, step: Step, provider: Provider) -> str:
    tag, labels = helper_tag()
    with ctx.local(f"weights-fetcher@{provider.host}", threading.Lock):
        provider.build_image(str(FETCHER), "Dockerfile", {}, tag, labels, ctx.progress(step))
        if not provider.builds_here:
            provider.receive_image(tag, tag, ctx.progress(step))
    return tag


@handles(StepKind.WEIGHTS)
def fetch_weights(ctx: StepContext, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
    from planner.weights.cache import key_of, local_entries, source_of

    change = changes[0]
    after = change.after
    if after["kind"] == "dir":
        source = source_of(after)
        try:
            files = local_entries(source)
        except OSError as err:
            raise ProviderError(f"cannot read weights directory {after['source']}: {err.strerror or err}") from None
        key = key_of(source, files)
        if after["key"] and key != after["key"]:
            raise ProviderError(f"weights directory {after['source']} changed since the plan was made; "
                                "run berth plan again")
        before = change.before or {}
        previous = before.get("key") if before.get("source") == after["source"] and before.get("key") != key else None
        sent = provider.put_weights(key, after["source"], files, ctx.progress(step), previous)
        detail = f"sent {sent / 1e6:.1f} MB" if sent else "nothing sent"
    else:
        image = helper_image(ctx, step, provider)
        token = secret_parts(ctx.stack, address.app, after["secret"]) if after.get("secret") else None
        key = provider.fetch_weights(image, SCRIPT.read_text(), after["source"], list(after["allow"]),
                                     list(after["ignore"]), token, ctx.progress(step))
        if after["key"] and key != after["key"]:
            raise ProviderError(f"{after['source']} was fetched as entry {key[:12]}, not {after['key'][:12]} "
                                "as planned")
        detail = "fetched"
    ctx.record(change, address, key, attributes=after | {"key": key})
    return f"entry {key[:12]}, {detail}"
