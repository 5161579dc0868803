"""`python -m drift <command>`: the same as the `drift` command (drift/cli/__init__.py)."""

from drift.cli import main

main()
