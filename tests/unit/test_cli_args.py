"""The pseidon-dagster parser without a server: help on every argument, -v anywhere, `config keys`. The commands
against the servers: tests/integration/system/test_cli.py."""
from __future__ import annotations

import argparse

from pseidon_dagster import cli


def cli_main(capsys, *args) -> tuple[int, str, str]:
    """pseidon-dagster ARGS in this process: (exit code, stdout, stderr)."""
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _parsers(parser: argparse.ArgumentParser, path=("pseidon-dagster",)):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


def test_every_positional_and_flag_has_help():
    missing = []
    for path, parser in _parsers(cli.build_parser()):
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            if not (action.help or "").strip() or action.help == argparse.SUPPRESS:
                missing.append(f"{' '.join(path)} {'/'.join(action.option_strings) or action.dest}")
    assert not missing, missing


def test_verbose_works_before_and_after_the_subcommand():
    parse = cli.build_parser().parse_args
    assert parse(["-v", "logs", "list"]).verbose is True
    assert parse(["logs", "list", "-v"]).verbose is True
    assert parse(["logs", "list"]).verbose is False


def test_config_keys_prints_the_readme_table(capsys):
    code, out, _ = cli_main(capsys, "config", "keys")
    assert code == 0 and "| `:kafka-use-earliest` | `false` |" in out and "| `:vault :row-prefixes` |" in out
