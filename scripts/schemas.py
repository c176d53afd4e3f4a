"""Write schemas/NAME.schema.json from berth.ui.documents (the JSON berth prints).

    .venv/bin/python scripts/schemas.py          # write them
    .venv/bin/python scripts/schemas.py --check  # exit 1 if a file differs (the unit tests do this too)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from berth.ui.documents import DOCUMENTS, schema  # noqa: E402


def rendered(name: str) -> str:
    return json.dumps(schema(name), indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    out = ROOT / "schemas"
    stale = []
    for name in DOCUMENTS:
        path = out / f"{name}.schema.json"
        if "--check" in argv:
            if not path.exists() or path.read_text() != rendered(name):
                stale.append(path.name)
        else:
            out.mkdir(exist_ok=True)
            path.write_text(rendered(name))
    if stale:
        print(f"schemas: out of date: {', '.join(stale)} (run scripts/schemas.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
