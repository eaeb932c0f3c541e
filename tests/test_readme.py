"""Every code block of README.md runs: the Python ones in-process, the shell ones (the ``ase-negnn`` quick-start
commands on the bundled data) as CLI calls in a scratch directory. The two set-up commands are what .ci/run runs."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README, flags=re.S)
SETUP = ("pip install", "python -m pytest")  # the two set-up commands: run by .ci/run itself


def test_readme_is_short_and_has_the_two_setup_commands():
    assert len(README.splitlines()) <= 150
    bash = [code for lang, code in BLOCKS if lang == "bash"]
    assert any("pip install -e" in c and "examples/demo.py" in c for c in bash)
    assert any(c.strip() == "python -m pytest -q" for c in bash)


@pytest.mark.parametrize("code", [c for lang, c in BLOCKS if lang == "python"], ids=lambda c: c.splitlines()[1][:40])
def test_python_blocks_run(code):
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})


def _commands():
    for lang, code in BLOCKS:
        if lang != "bash":
            continue
        for line in code.splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("ase-negnn "):
                yield line


def test_shell_blocks_run(tmp_path, monkeypatch):
    from ase_negnn.cli import cli

    commands = list(_commands())
    assert commands, "the README shows no ase-negnn command"
    for name in ("examples", "tests"):
        (tmp_path / name).symlink_to(ROOT / name)
    monkeypatch.chdir(tmp_path)
    for line in commands:
        args = shlex.split(line)[1:]
        if "--no-progress" not in args and args[0] in ("train", "predict", "screen", "embed", "select"):
            args.append("--no-progress")
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, f"{line}\n{result.output}"
