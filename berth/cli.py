"""The `berth` command line: parse arguments, run one command, map outcomes to exit codes.

Start-up stays fast: this module imports only the standard library at the top; each
command imports what it uses (docker, networkx and rich never load for --version).
Commands live in berth/commands/, one module per group, each with `register()`.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # argparse and typing cost 5 ms: the no-op fast path (berth/noop.py) needs neither
    import argparse
    from typing import Any

COMMAND_MODULES = ("plan", "apply", "refresh", "state", "importing", "rollback", "status", "logs", "hosts",
                   "output", "validate", "exec", "show", "completion")


def build_parser() -> argparse.ArgumentParser:
    import argparse
    import importlib

    from berth import __version__

    parser = argparse.ArgumentParser(
        prog="berth",
        description="Deploy model servers onto Docker hosts: plan shows what would change, apply makes it so.",
    )
    parser.add_argument("--version", action="version", version=f"berth {__version__}")
    # Also before the command, for the commands whose own -f means something else
    # (`berth -f FILE logs -f`, as kubectl and docker logs take -f for --follow).
    parser.add_argument("-f", "--file", dest="global_file", metavar="PATH",
                        help="stack file, or a directory holding berth.toml (also taken after the command)")
    parser.add_argument("-e", "--env", dest="environment", metavar="NAME",
                        help="an environment: berth.NAME.toml laid over berth.toml, as stack STACK-NAME with its own state")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"berth.commands.{name}").register(commands)
    return parser


EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell sees from `git log | head`


def main(argv: list[str] | None = None) -> int:
    try:
        try:
            return _main(argv)
        finally:
            sys.stdout.flush()  # here, not at exit, so that a closed pipe is seen here too
    except BrokenPipeError:
        return _closed_stdout()


def _closed_stdout() -> int:
    """stdout's reader went away (`berth status | head`): stop quietly, as other CLIs do.
    stdout is pointed at /dev/null so the interpreter's last flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return EXIT_BROKEN_PIPE


def _main(argv: list[str] | None) -> int:
    from berth import noop

    attempt = noop.attempt(sys.argv[1:] if argv is None else list(argv))
    if attempt.code is not None:
        return attempt.code
    from berth.commands import EXIT_INTERRUPTED

    args = build_parser().parse_args(argv)
    args.noop = attempt
    if getattr(args, "file", None) is None and args.global_file:
        args.file = args.global_file
    from berth.ui.console import make_consoles

    ui = make_consoles(args.no_color)
    try:
        try:
            return args.run(args, ui)
        finally:
            noop.WATCH.active = False  # what the rest of the process opens is no plan's input
    except BrokenPipeError:
        raise
    except KeyboardInterrupt:
        ui.say("Interrupted.", "yellow", err=True)
        return EXIT_INTERRUPTED
    except Exception as err:  # every expected failure is rendered below; this is the last guard
        return _render_error(err, ui)


def _render_error(err: Exception, ui: Any) -> int:
    from planner.diagnostics import DiagnosticsError
    from providers.types import ProviderError
    from state.address import AddressError
    from state.errors import StateError

    if isinstance(err, DiagnosticsError):
        for diagnostic in err.diagnostics:
            ui.say(f"Error: {diagnostic}", "bold red", err=True)
    elif isinstance(err, (StateError, ProviderError, AddressError)):
        ui.say(f"Error: {err}", "bold red", err=True)
    else:
        if os.environ.get("BERTH_DEBUG"):
            raise err
        ui.say(f"Error: internal error: {type(err).__name__}: {err} (set BERTH_DEBUG=1 for the traceback)", "bold red", err=True)
    from berth.commands import EXIT_ERROR

    return EXIT_ERROR



if __name__ == "__main__":
    sys.exit(main())
