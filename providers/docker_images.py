"""Images on one engine through docker-py's APIClient: a legacy-builder build (the
fallback where no BuildKit client is here: providers.buildkit), a pull, and the removal
of a tag; plain functions of (api, host) that DockerEngine calls under its locks.

Errors are ProviderErrors naming the host; docker-py is loaded only when one runs.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any, Callable

from providers.docker_spec import split_ref
from providers.types import BuildOptions, Progress, ProviderError, summary


def build(
    api: Any, host: str, context: str, dockerfile: str, args: dict[str, str], tag: str,
    labels: dict[str, str], progress: Progress, options: BuildOptions | None = None,
    log: Path | None = None,
) -> str:
    """Build and tag from a local context directory with Docker's legacy builder (the
    API's), streaming its steps to progress and its output to the log file; a failure
    carries the last 30 lines of output. Returns the image ID."""
    import docker.errors

    from providers.buildkit import TAIL, BuildFailed, output_line, plain

    options = options or BuildOptions()
    last: deque[str] = deque(maxlen=TAIL)
    partial = [""]
    out = open(log, "w", encoding="utf-8") if log is not None else None

    def lines(text: str) -> None:
        if out is not None:
            out.write(text)
            out.flush()
        text = partial[0] + text
        *whole, partial[0] = text.split("\n")
        for line in map(plain, whole):
            if line.startswith("Step "):
                progress(line.strip())
            elif line.strip() and not line.startswith((" ---> ", "Removing intermediate")):
                last.append(line)
                output_line(progress, line)

    try:
        for chunk in api.build(
            path=context, dockerfile=dockerfile, buildargs=args or None, tag=tag,
            labels=labels, rm=True, forcerm=True, decode=True,
            target=options.target or None, cache_from=list(options.cache_from) or None,
        ):
            if "error" in chunk:
                lines("\n")
                where = f" (whole log: {log})" if log is not None else ""
                raise BuildFailed(f"image build failed on {host}: {chunk['error'].strip()}{where}", "\n".join(last))
            lines(chunk.get("stream", ""))
        return api.inspect_image(tag)["Id"]
    except docker.errors.DockerException as err:
        raise ProviderError(f"image build failed on {host}: {summary(err)}") from None
    finally:
        if out is not None:
            out.close()


def pull(api: Any, host: str, ref: str, progress: Progress) -> str:
    """Pull ref onto the host; returns its image ID."""
    import docker.errors

    try:
        repo, tag = split_ref(ref)
        for chunk in api.pull(repo, tag=tag, stream=True, decode=True):
            if "error" in chunk:
                raise ProviderError(f"pull of {ref} failed on {host}: {chunk['error']}")
            if chunk.get("status", "").startswith(("Pulling from", "Digest", "Status")):
                progress(chunk["status"])
        return api.inspect_image(ref)["Id"]
    except docker.errors.DockerException as err:
        raise ProviderError(
            f"image {ref} is not on host {host} and could not be pulled: {summary(err)}"
        ) from None


def remove(send: Callable[..., tuple[int, str]], host: str, ref: str) -> None:
    """Untag ref (the image goes with its last tag) or remove an untagged image by ID;
    never forced, and absent or in use is not an error. send: DockerEngine._send (no
    docker-py: a destroy loads none)."""
    from urllib.parse import quote

    path = f"/images/{quote(ref, safe='/:@')}"
    status, message = send("DELETE", path)
    if status in (200, 404, 409):  # 409: in use by a container berth does not own
        return
    # Two tags of one image untagged at once: the engine deletes the image with the
    # first and may answer the second "unrecognized image ID". The tag is gone either
    # way, which is all this step asks.
    if send("GET", f"{path}/json")[0] == 404:
        return
    raise ProviderError(f"host {host}: cannot remove image: {message}")
