"""The BuildKit plain-progress parser on output captured from Debian's docker 20.10
(DOCKER_BUILDKIT=1 docker build --progress=plain), and the choice of builder."""

from __future__ import annotations

from pathlib import Path

from providers.buildkit import Builder, PlainProgress, choose, clis_on_path, failure_message

CAPTURED = Path(__file__).parent / "plain_progress"


def _feed(name: str) -> tuple[PlainProgress, list[tuple[str, str]]]:
    parser = PlainProgress()
    shown = [s for line in (CAPTURED / name).read_text().splitlines(keepends=True) if (s := parser.feed(line))]
    return parser, shown


def test_steps_and_their_output_lines_are_shown_in_order_internal_steps_are_not() -> None:
    _, shown = _feed("cached_then_run.txt")
    assert shown == [
        ("step", "[1/3] FROM docker.io/library/busybox:latest"),
        ("step", "[2/3] RUN echo hello-marker && echo line2"),
        ("step", "[3/3] RUN echo second"),
        ("output", "second"),
    ]


def test_a_cached_step_is_marked_cached() -> None:
    parser, _ = _feed("cached_then_run.txt")
    assert parser.steps[5].cached and not parser.steps[6].cached
    assert parser.failed is None


def test_a_failed_run_gives_its_instruction_exit_code_and_last_30_lines_once() -> None:
    parser, shown = _feed("failed_run.txt")
    instruction, code, tail = parser.failure()
    assert instruction == "RUN echo failing-out; for i in $(seq 1 40); do echo out$i; done; exit 3"
    assert code == 3
    # BuildKit repeats the failing step's last lines after the error: counted once.
    assert tail == [f"out{i}" for i in range(11, 41)]
    assert [text for kind, text in shown if kind == "output"].count("out40") == 1
    # Output of other steps is kept to their own step.
    assert list(parser.steps[5].output) == ["hello-marker", "line2"]


def test_the_failure_message_names_host_instruction_code_and_log() -> None:
    parser, _ = _feed("failed_run.txt")
    message, tail = failure_message("gpu-a", parser, Path("/s/.berth/logs/build-web-1.log"))
    assert message == ("image build failed on gpu-a: RUN echo failing-out; for i in $(seq 1 40); do echo out$i; "
                       "done; exit 3 exited with code 3 (whole log: /s/.berth/logs/build-web-1.log)")
    assert tail.splitlines() == [f"out{i}" for i in range(11, 41)]


def test_an_error_outside_any_step_is_its_last_line() -> None:
    parser, shown = _feed("bad_dockerfile.txt")
    assert shown == []
    message, tail = failure_message("local", parser, None)
    assert message == ("image build failed on local: failed to solve with frontend dockerfile.v0: failed to "
                       "create LLB definition: dockerfile parse error line 2: unknown instruction: RUNN")
    assert tail == ""


def test_buildx_first_then_a_cli_with_built_in_buildkit_then_legacy() -> None:
    new, old = ("/usr/local/bin/docker", "28.2.2", False), ("/usr/bin/docker", "20.10.24+dfsg1", False)
    assert choose([new, old]) == Builder("buildkit", "/usr/bin/docker", "20.10.24+dfsg1")
    assert choose([(new[0], new[1], True), old]) == Builder("buildx", "/usr/local/bin/docker", "28.2.2")
    assert choose([new]) == Builder("legacy")  # 23.0+ without buildx has no BuildKit client
    assert choose([]) == Builder("legacy")
    assert choose([new, old], forced="legacy") == Builder("legacy")
    assert choose([(new[0], new[1], True), old], forced="buildkit").kind == "buildkit"


def test_every_docker_on_path_once(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "docker").write_text("#!/bin/sh\n")
        (tmp_path / name / "docker").chmod(0o755)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "docker").symlink_to(tmp_path / "a" / "docker")
    path = ":".join(str(tmp_path / n) for n in ("a", "c", "b"))
    assert clis_on_path(path) == [str(tmp_path / "a" / "docker"), str(tmp_path / "b" / "docker")]


def test_lines_repeated_after_a_steps_error_are_not_its_output_again() -> None:
    parser = PlainProgress()
    for line in ["#4 [2/2] RUN x", "#4 0.1 one", "#4 0.2 two", "#4 ERROR: process did not complete: exit code: 2",
                 "------", " > [2/2] RUN x:", "#4 0.2 two", "------"]:
        parser.feed(line + "\n")
    assert parser.failure() == ("RUN x", 2, ["one", "two"])


def test_a_cache_import_error_before_a_failing_run_is_not_the_failure() -> None:
    parser = PlainProgress()
    for line in ["#5 importing cache manifest from nosuch/image:tag", "#5 ERROR: failed to do request: Head ...",
                 "#8 [runtime 1/1] RUN false", "#8 0.3 about to fail",
                 "#8 ERROR: executor failed running [/bin/sh -c false]: exit code: 1"]:
        parser.feed(line + "\n")
    assert parser.failure() == ("RUN false", 1, ["about to fail"])


def test_a_legacy_builds_colour_escapes_are_not_part_of_its_output_lines() -> None:
    from providers.docker_images import build

    class Api:
        def build(self, **kwargs):
            yield {"stream": "Step 2/3 : RUN uv pip install -r r.txt\n"}
            yield {"stream": "\x1b[91mResolved 15 packages in 473ms\n\x1b[0m"}
            yield {"stream": " ---> 1234\n"}

        def inspect_image(self, tag):
            return {"Id": "sha256:" + "0" * 64}

    seen: list[tuple[str, bool]] = []
    build(Api(), "local", "/ctx", "Dockerfile", {}, "t:1", {}, lambda m, output=False: seen.append((m, output)))
    assert seen == [("Step 2/3 : RUN uv pip install -r r.txt", False), ("Resolved 15 packages in 473ms", True)]
