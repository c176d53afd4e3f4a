"""`berth completion bash|zsh|fish`: a completion script for the shell, printed for the
user to source (`source <(berth completion bash)`), made from the parser itself so it
never lists a command or option berth does not have."""

from __future__ import annotations

import argparse
from typing import Any

from berth.commands import EXIT_OK


def register(commands: Any) -> None:
    completion = commands.add_parser("completion", help="print a shell completion script (bash, zsh or fish)")
    completion.add_argument("shell", choices=("bash", "zsh", "fish"))
    completion.add_argument("--no-color", action="store_true", help=argparse.SUPPRESS)
    completion.set_defaults(run=cmd_completion)


def words(parser: argparse.ArgumentParser) -> dict[str, list[str]]:
    """Per command path ("", "plan", "state list"): its subcommands and options."""
    found: dict[str, list[str]] = {}

    def walk(p: argparse.ArgumentParser, path: str) -> None:
        options = [o for a in p._actions for o in a.option_strings if o.startswith("--") or len(o) == 2]
        subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        names = [name for s in subs for name in s.choices]
        found[path] = names + options
        for s in subs:
            for name, child in s.choices.items():
                walk(child, f"{path} {name}".strip())

    walk(parser, "")
    return found


def cmd_completion(args: argparse.Namespace, ui: Any) -> int:
    from berth.cli import build_parser

    table = words(build_parser())
    print({"bash": _bash, "zsh": _zsh, "fish": _fish}[args.shell](table))
    return EXIT_OK


def _bash(table: dict[str, list[str]]) -> str:
    cases = "\n".join(f'        "{path}") opts="{" ".join(w)}" ;;' for path, w in table.items())
    return f"""# berth completion for bash: source <(berth completion bash)
_berth() {{
    local cur path word
    cur="${{COMP_WORDS[COMP_CWORD]}}"
    path=""
    for word in "${{COMP_WORDS[@]:1:COMP_CWORD-1}}"; do
        case "$word" in -*) ;; *) case " $(_berth_words "${{path:+$path }}$word") " in "  ") ;; *) path="${{path:+$path }}$word" ;; esac ;; esac
    done
    COMPREPLY=( $(compgen -W "$(_berth_words "$path")" -- "$cur") )
    case "$cur" in -*|"") ;; *) [ ${{#COMPREPLY[@]}} -eq 0 ] && COMPREPLY=( $(compgen -f -- "$cur") ) ;; esac
}}
_berth_words() {{
    local opts=""
    case "$1" in
{cases}
        *) opts="" ;;
    esac
    echo "$opts"
}}
complete -o default -F _berth berth"""


def _zsh(table: dict[str, list[str]]) -> str:
    return "# berth completion for zsh: source <(berth completion zsh)\nautoload -U +X bashcompinit && bashcompinit\n" \
        + _bash(table).split("\n", 1)[1]


def _fish(table: dict[str, list[str]]) -> str:
    lines = ["# berth completion for fish: berth completion fish | source", "complete -c berth -f"]
    top = [w for w in table[""] if not w.startswith("-")]
    lines.append(f"complete -c berth -n '__fish_use_subcommand' -a '{' '.join(top)}'")
    for path, found in table.items():
        if not path:
            continue
        parts = path.split()
        cond = " && ".join(f"__fish_seen_subcommand_from {p}" for p in parts)
        subs = [w for w in found if not w.startswith("-")]
        if subs:
            lines.append(f"complete -c berth -n '{cond}' -a '{' '.join(subs)}'")
        for option in (w for w in found if w.startswith("--")):
            lines.append(f"complete -c berth -n '{cond}' -l {option[2:]}")
    return "\n".join(lines)
