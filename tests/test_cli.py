"""The command line: `drift --help` lists every command with one line, each command explains
its options, `python -m drift` is the same program, and the exit codes are those documented."""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys

import pytest

from drift.cli import COMMANDS, HYDRA_COMMANDS, main, usage


def test_help_lists_every_command_on_one_line(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out == usage() + "\n"
    for name, (_, help_line) in COMMANDS.items():
        (line,) = [line for line in out.splitlines() if line.strip().startswith(f"{name} ")]
        assert help_line in line


@pytest.mark.parametrize("args", [[], ["nope"]])
def test_no_or_unknown_command_is_exit_2_on_stderr(args: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "usage: drift <command>" in captured.err


@pytest.mark.parametrize("command", [c for c in COMMANDS if c not in HYDRA_COMMANDS])
def test_every_command_has_help_for_every_option(command: str, capsys) -> None:
    module_name, func_name = COMMANDS[command][0].split(":")
    with pytest.raises(SystemExit) as exit_:
        getattr(importlib.import_module(module_name), func_name)(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: drift {command} ")


def test_python_dash_m_drift_is_the_drift_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "drift", "--help"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == usage() + "\n"


def test_runs_started_together_get_their_own_output_folders() -> None:
    """Hydra names a run's folder by the second it started; the process id keeps two runs
    started in the same second (and their logs) apart."""
    from hydra import compose, initialize_config_dir

    from drift.cli.config import CONFIG_DIR

    script = (
        "from hydra import compose, initialize_config_dir\n"
        "from drift.cli.config import CONFIG_DIR\n"
        "with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base='1.3'):\n"
        "    cfg = compose('config', return_hydra_config=True)\n"
        "print(cfg.hydra.run.dir, cfg.hydra.sweep.dir)\n"
    )
    folders = [
        subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        ).stdout.split()
        for _ in range(2)
    ]
    assert folders[0][0] != folders[1][0] and folders[0][1] != folders[1][1]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", return_hydra_config=True)
    assert cfg.hydra.run.dir.endswith(f"-{os.getpid()}")


class _Parsed(Exception):
    """Carries the parser a command built, instead of letting it parse."""


def command_parser(command: str, monkeypatch) -> argparse.ArgumentParser:
    """The argparse parser `drift <command>` builds (caught at parse_args)."""

    def grab(self, *args, **kwargs):
        raise _Parsed(self)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", grab)
    module_name, func_name = COMMANDS[command][0].split(":")
    with pytest.raises(_Parsed) as caught:
        getattr(importlib.import_module(module_name), func_name)([])
    return caught.value.args[0]


@pytest.mark.parametrize("command", [c for c in COMMANDS if c not in HYDRA_COMMANDS])
def test_every_option_says_what_it_is_for(command: str, monkeypatch) -> None:
    parser = command_parser(command, monkeypatch)
    silent = [
        action.option_strings or [action.dest]
        for action in parser._actions
        if not action.help or action.help == argparse.SUPPRESS
    ]
    assert silent == [], f"drift {command}: options without help: {silent}"


@pytest.mark.parametrize("command", HYDRA_COMMANDS)
def test_drift_run_help_lists_every_config_group_and_flag(command: str, capsys) -> None:
    from drift.cli.reference import HYDRA_FLAGS, config_groups

    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: drift {command} ")
    for group in config_groups():
        assert f"  {group} " in out
    for flag, _ in HYDRA_FLAGS:
        assert f"  {flag} " in out
    assert max(len(line) for line in out.splitlines()) <= 100


def test_docs_cli_md_carries_the_help_the_commands_print() -> None:
    from drift.cli.reference import DOC, updated

    text = DOC.read_text()
    assert updated(text) == text, "docs/cli.md is stale: regenerate it with `make cli-docs`"
