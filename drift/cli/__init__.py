"""`drift <command> [args]` (or `python -m drift <command>`): the harness's command line.

Every command is a thin wrapper: it parses arguments and calls the library (drift/ below cli/),
which never sees argparse or Hydra. `drift --help` lists the commands; `drift <command> --help`
lists a command's options.

Exit codes, for every command: 0 done; 1 done, and the answer is "no" (`drift gate`: re-index,
the adapter falls below the threshold; `drift recommend`: no strategy reaches the target); 2 bad
input (a config, an argument or a file that cannot be used), with one message on stderr naming
the problem; 3 (`drift gate` only) the adapter is below the status quo: serve old-model queries.
`drift run` checks the whole config before anything loads and names every problem in that one
line (drift/run.py); Hydra's own refusals (an unknown config key, a malformed override) exit 1
with Hydra's message.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

# command -> ("module:function", one line of help): adding a command is one line here (its
# module parses its own arguments; docs/cli.md regenerates with `make cli-docs`). The Hydra
# entries (HYDRA_COMMANDS) read overrides from sys.argv; the others take their argument list.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("drift.run:main", "run one experiment from Hydra configs (= python -m drift.run)"),
    "encode": (
        "drift.encode:main",
        "encode a shard of a run's items into the cache (Hydra, as run)",
    ),
    "export": ("drift.cli.export:main", "write a verified serving artifact of a fitted adapter"),
    "gate": ("drift.cli.gate:main", "judge from held-out pairs whether an adapter may serve"),
    "cost": ("drift.cli.cost:main", "price adapter, full re-index and dual index at scale"),
    "recommend": ("drift.cli.recommend:main", "choose a migration strategy from measured results"),
    "tables": ("drift.cli.tables:main", "tidy tables (csv, parquet) from folders of result files"),
    "figures": ("drift.cli.figures:main", "the paper's figures from folders of result files"),
    "plot-migration": ("drift.cli.plot_migration:main", "cost-quality, stream, timeline figures"),
    "plot-strategies": ("drift.cli.plot_strategies:main", "every strategy's R@10 as bars + table"),
    "compare-designs": ("drift.cli.compare_designs:main", "paired design differences in a sweep"),
    "compare-runs": ("drift.cli.compare_runs:main", "two runs of one config side by side"),
    "gate-calibration": ("drift.cli.gate_calibration:main", "gate estimates against measured ARR"),
    "scale-law": ("drift.cli.scale_law:main", "per-tenfold slopes of corpus-size sweeps, CIs"),
    "claims": ("drift.cli.claims:main", "the paper's claims beside the committed measurements"),
    "mteb": ("drift.cli.mteb:main", "score strategies with mteb's tasks, evaluator and files"),
}
HYDRA_COMMANDS = ("run", "encode")
EXIT_CODES = (
    "exit codes: 0 done; 1 done, and the answer is no (gate: re-index; recommend: no strategy",
    "            reaches the target); 2 bad input; 3 (gate) serve old-model queries",
)


BAD_INPUT = 2  # the exit code of bad input, for every command


def refused(prog: str, err: Exception) -> int:
    """Say why `prog` refused its input, in one line on stderr; return the exit code for it."""
    message = " ".join(str(err).splitlines())
    print(f"{prog}: {type(err).__name__}: {message}", file=sys.stderr)
    return BAD_INPUT


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {help_line}" for name, (_, help_line) in COMMANDS.items()]
    return "\n".join(
        [
            "usage: drift <command> [args]   (drift <command> --help for its options)",
            "",
            "commands:",
            *lines,
            "",
            *EXIT_CODES,
        ]
    )


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage(), file=sys.stdout if args else sys.stderr)
        sys.exit(0 if args else 2)
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"drift: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        sys.exit(2)
    module_name, func_name = COMMANDS[command][0].split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    if command in HYDRA_COMMANDS and {"-h", "--help"} & set(rest):  # one line per group and flag
        from drift.cli.reference import run_help

        print(run_help(command))
        sys.exit(0)
    if command in HYDRA_COMMANDS:  # Hydra parses sys.argv itself
        sys.argv = [f"drift {command}", *rest]
        func()
        return
    status = func(rest)
    sys.exit(status or 0)
