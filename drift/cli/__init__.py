"""`drift <command> [args]`: one entry point for the harness's commands.

drift run [hydra overrides]     # = python -m drift.run
"""

from __future__ import annotations

import sys

COMMANDS = {
    "run": "drift.run:main",
    "export": "drift.serving.export:main",
    "gate": "drift.migration.gate:main",
    "cost": "drift.migration.cost:main",
    "recommend": "drift.migration.recommend:main",
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        names = ", ".join(sorted(COMMANDS))
        print(f"usage: drift <command> [args]; commands: {names}", file=sys.stderr)
        sys.exit(2)
    command = sys.argv.pop(1)
    module_name, func_name = COMMANDS[command].split(":")
    import importlib

    getattr(importlib.import_module(module_name), func_name)()
