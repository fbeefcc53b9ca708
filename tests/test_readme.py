"""Every code block of README.md stays true: unmarked bash/python blocks run, in order, in one scratch folder (as a
reader would paste them, one after the other); a block marked `<!-- readme: needs-hub: why -->` or `<!-- readme: not-run: why -->` is not
run, but every `cedar-hf` command in it must still parse against the real CLI (so a renamed option fails here)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import typer.main

from cedar_hf.cli import app

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(?:<!-- readme: (?P<mark>needs-hub|not-run): (?P<why>[^>]+?) -->\n)?```(?P<lang>\w*)\n"
                   r"(?P<code>.*?)```", re.S)
SCRIPTS = {"bash scripts/demo.sh", "bash scripts/test.sh"}  # the README's two commands: CI and the demo themselves


def blocks() -> list[dict]:
    return [m.groupdict() for m in BLOCK.finditer((ROOT / "README.md").read_text())]


def command_lines(code: str) -> list[list[str]]:
    """The `cedar-hf ...` / `accelerate launch -m cedar_hf.cli ...` commands of a bash block, as argv after the
    program (continuation lines joined, comments dropped)."""
    out = []
    for line in code.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words[:1] == ["cedar-hf"]:
            out.append(words[1:])
        elif words[:2] == ["accelerate", "launch"] and "cedar_hf.cli" in words:
            out.append(words[words.index("cedar_hf.cli") + 1:])
    return out


def parse(argv: list[str]) -> None:
    """Parse argv as `cedar-hf` would, without running the command (raises click's UsageError on a bad option)."""
    group = typer.main.get_command(app)
    name, *rest = argv
    assert name in group.commands, f"no command {name!r} (README: cedar-hf {shlex.join(argv)})"
    with group.context_class(group, info_name="cedar-hf") as ctx:
        group.commands[name].make_context(name, rest, parent=ctx).close()


def test_the_readme_has_runnable_and_marked_blocks_only():
    found = blocks()
    assert {b["code"].strip() for b in found} >= SCRIPTS  # the two commands, exactly as they are
    for block in found:
        if block["lang"] in ("bash", "python", "sh", "console"):
            assert block["mark"] is None or block["why"].strip(), block["code"][:80]
        else:
            assert block["lang"] == "" and block["mark"] is None, block  # untagged blocks are diagrams


def test_every_command_in_the_readme_parses():
    commands = [argv for b in blocks() if b["lang"] == "bash" for argv in command_lines(b["code"])]
    assert len(commands) >= 15
    for argv in commands:
        parse(argv)


def _only_cedar_hf(code: str) -> bool:
    lines = [line for line in code.replace("\\\n", " ").splitlines() if shlex.split(line, comments=True)]
    return bool(lines) and len(command_lines(code)) == len(lines)


@pytest.mark.slow
def test_the_readme_blocks_run_in_order(tmp_path, monkeypatch):
    """In one folder, in order. A block of `cedar-hf` commands runs each through the CLI app in this process and a
    python block runs as a fresh script namespace here (a subprocess each would spend ~10 s per command importing
    torch); any other bash runs in bash. `tests/test_cli.py` runs the real entry point in a subprocess."""
    from typer.testing import CliRunner

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    ran = 0
    for block in blocks():
        code = block["code"]
        if block["mark"] or code.strip() in SCRIPTS or block["lang"] not in ("bash", "python"):
            continue
        if block["lang"] == "python":
            exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
        elif _only_cedar_hf(code):
            for argv in command_lines(code):
                result = CliRunner().invoke(app, argv)
                assert result.exit_code == 0, f"README: cedar-hf {shlex.join(argv)}\n{result.output[-3000:]}"
        else:
            result = subprocess.run(["bash", "-euo", "pipefail", "-c", code], capture_output=True, text=True,
                                    timeout=900, env={**os.environ, "PYTHONPATH": str(ROOT)})
            assert result.returncode == 0, f"README block failed:\n{code}\n{result.stderr[-3000:]}"
        ran += 1
    assert ran >= 5
    assert (tmp_path / "runs" / "cedar" / "concept_names.json").is_file() and (tmp_path / "dog.png").is_file()
