"""Every CLI command has teaching help with an example and is documented in README.md;
every command the README shows exists."""
from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from vlaecodec.cli.main import cli

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def _commands(group: click.Group, path: tuple[str, ...] = ()):
    for name, cmd in sorted(group.commands.items()):
        yield path + (name,), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, path + (name,))


COMMANDS = list(_commands(cli))
LEAVES = [(p, c) for p, c in COMMANDS if not isinstance(c, click.Group)]


@pytest.mark.parametrize("path,cmd", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_command_has_help_with_example(path, cmd):
    assert cmd.help and len(cmd.help.strip()) > 40, f"{' '.join(path)} needs a docstring"
    assert "Example" in cmd.help, f"{' '.join(path)}'s docstring needs an example line"
    assert f"vlaecodec {' '.join(path)}" in cmd.help
    r = CliRunner().invoke(cli, [*path, "--help"])
    assert r.exit_code == 0 and r.output.strip()


@pytest.mark.parametrize("path", [p for p, _ in LEAVES], ids=[" ".join(p) for p, _ in LEAVES])
def test_command_in_readme(path):
    assert f"vlaecodec {' '.join(path)}" in README, f"README.md does not show `vlaecodec {' '.join(path)}`"


def test_readme_commands_exist():
    code = "\n".join(re.findall(r"```sh\n(.*?)```", README, flags=re.S) + re.findall(r"`([^`\n]+)`", README))
    shown = re.findall(r"(?:^|\| |&& )vlaecodec ([a-z-]+(?: [a-z-]+)*)", code, flags=re.M)
    assert shown
    for words in shown:
        group, cmd = cli, None
        for w in words.split():
            if not isinstance(group, click.Group) or w not in group.commands:
                break
            cmd = group = group.commands[w]
        assert cmd is not None, f"README shows unknown command `vlaecodec {words}`"


def test_readme_opens_with_two_setup_commands():
    block = re.search(r"```sh\n(.*?)```", README, flags=re.S).group(1)
    assert block.split("\n")[:2] == ["make demo", "make test"] and block.count("\n") == 2
