"""The foreground run's parts that need no engine, and a CLI that does nothing when imported."""

import subprocess
import sys


def test_importing_the_cli_reads_no_terminal_and_makes_no_console():
    shown = subprocess.run(
        [sys.executable, "-c", "import devstack.cli as cli, devstack.foreground;"
                               "print(cli.console.cache_info().currsize, cli.err_console.cache_info().currsize)"],
        capture_output=True, text=True, check=True)
    assert shown.stdout.split() == ["0", "0"]


def test_the_piped_width_is_read_when_a_console_is_made(monkeypatch):
    from devstack import cli

    monkeypatch.delenv("COLUMNS", raising=False)
    assert cli._piped_width() == (None if sys.stdout.isatty() else 200)
    monkeypatch.setenv("COLUMNS", "90")
    assert cli._piped_width() is None
