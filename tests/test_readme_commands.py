"""The README's commands, pasted in order into a fresh folder, run (and run again).

The commands are read from README.md itself: the `gflow ...` lines of its indented and fenced
blocks (a `$ ` prompt and a trailing `# comment` are taken off; `pip install` is what the
checkout already did). A command shown failing (`gflow run bad.toml`) must fail with the line
the README prints. In CI the sequence runs once (about a minute on 2 cores) and the rule that
makes a second pass work is checked on every command: each one that writes carries `--force`,
or is a sweep, which skips its complete runs. The `slow` test pastes everything twice.
"""
from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest

from conftest import ROOT, run_gflow

README = (ROOT / "README.md").read_text()
#: the README's demonstration of a bad case, and the quickstart key it breaks
BAD_CASE = "bad.toml"
WRITERS = {"run", "compare", "plot", "sweep", "ensemble"}


def readme_commands() -> list[tuple[str, list[str]]]:
    """(the command line as printed, the lines the README shows right after it in the same
    block), in README order."""
    found: list[tuple[str, list[str]]] = []
    fenced, current = False, None
    for line in README.splitlines():
        if line.startswith("```"):
            fenced, current = not fenced, None
            continue
        text = line if fenced else line[4:] if line.startswith("    ") else None
        if not text:
            current = None          # a block ends, or a blank line inside one
            continue
        command = text[2:] if text.startswith("$ ") else text
        part = next((p.strip() for p in command.split("&&") if p.strip().startswith("gflow ")), None)
        if part is not None:
            found.append((part.split(" #")[0].strip(), []))
            current = found[-1][1]
        elif current is not None and not text.startswith("$"):
            current.append(text)
        else:
            current = None
    return found


COMMANDS = readme_commands()


@pytest.fixture
def folder(tmp_path):
    """A new folder holding what the README's commands name: the bundled cases, and `bad.toml`
    made as the README says (the quickstart with data.nodes = -2)."""
    shutil.copytree(ROOT / "cases", tmp_path / "cases")
    quickstart = (ROOT / "cases" / "quickstart.toml").read_text()
    assert "nodes = 32" in quickstart
    (tmp_path / BAD_CASE).write_text(quickstart.replace("nodes = 32", "nodes = -2"))
    return tmp_path


def paste(folder: Path) -> None:
    for command, shown in COMMANDS:
        result = run_gflow(*shlex.split(command)[1:], cwd=folder, timeout=300)
        if BAD_CASE in command:
            assert result.returncode == 2, command
            assert result.stderr.strip() == shown[0], (command, result.stderr)
            continue
        assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
        for expected in shown:
            assert re.search(_pattern(expected), result.stdout), (command, expected, result.stdout)


def _pattern(line: str) -> str:
    """A shown output line as a regex, its wall time left free ("fv: 518 steps in 1.54 s, ...")."""
    seconds = r"in [0-9.]+ s"
    return seconds.join(re.escape(part) for part in re.split(seconds, line))


def test_the_readme_shows_the_commands_a_user_needs():
    names = [shlex.split(c)[1] for c, _ in COMMANDS]
    assert {"run", "info", "check", "compare", "plot", "sweep"} <= set(names), names
    assert COMMANDS[0][0] == "gflow run cases/quickstart.toml --force"       # the fresh-machine command


def test_every_command_that_writes_can_run_again():
    for command, _ in COMMANDS:
        words = shlex.split(command)
        if words[1] in WRITERS and BAD_CASE not in command:
            assert "--force" in words or words[1] == "sweep", command


def test_the_readme_commands_run_in_order_in_a_new_folder(folder):
    paste(folder)
    assert (folder / "runs" / "qs" / "compare.txt").is_file() and (folder / "fv.gif").is_file()


@pytest.mark.slow
def test_the_readme_commands_run_twice(folder):
    paste(folder)
    paste(folder)
