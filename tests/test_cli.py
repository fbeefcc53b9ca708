"""The command line: one convention (`-h`, `--version`, defaults shown, the same flags for the same things), help
that loads no heavy code, and the first `Example` of every command's help run for real on tiny offline data."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import typer
import typer.main
from typer.testing import CliRunner

from cedar_hf.cli import COMMANDS, app
from cedar_hf.commands import normalize_args
from cedar_hf.version import __version__

ROOT = Path(__file__).resolve().parents[1]
# The order the examples run in: each one's outputs are the next one's inputs (as a user would chain them).
EXAMPLE_ORDER = ("extract", "train", "name", "explain", "attribute", "search", "evaluate", "score", "analyze",
                 "push", "explore", "caption", "study", "demo")


def _help(*args: str) -> str:
    result = CliRunner().invoke(app, [*args])
    assert result.exit_code == 0, result.output
    return result.output


def examples(command: str) -> list[str]:
    """The `cedar-hf <command> ...` lines of a command's help after its `Example(s)` heading."""
    text = _help(command, "--help")
    assert re.search(r"Examples?\b", text), f"{command} --help has no example"
    tail = text[re.search(r"Examples?\b", text).start():]
    return [line.strip() for line in tail.splitlines() if line.strip().startswith(f"cedar-hf {command}")]


def test_every_command_is_in_the_example_chain():
    missing = sorted(set(COMMANDS) - set(EXAMPLE_ORDER))
    assert not missing, f"add {missing} to EXAMPLE_ORDER (its first --help example must run offline after the others)"
    assert sorted(EXAMPLE_ORDER) == sorted(COMMANDS)


def parse(argv: list[str]) -> None:
    """Parse argv as `cedar-hf` would, without running it (a renamed or misspelt option raises)."""
    group = typer.main.get_command(app)
    with group.context_class(group, info_name="cedar-hf") as ctx:
        group.commands[argv[0]].make_context(argv[0], argv[1:], parent=ctx).close()


@pytest.mark.parametrize("command", COMMANDS)
def test_every_example_of_every_help_parses(command):
    """All examples, including those that need the Hub or your data (only the first of each is run)."""
    for line in examples(command):
        parse(shlex.split(line)[1:])


@pytest.mark.parametrize("command", COMMANDS)
def test_help_short_and_long_with_defaults_and_an_example(command):
    short, long = _help(command, "-h"), _help(command, "--help")
    assert short == long
    assert examples(command), f"no `cedar-hf {command} ...` example in its help"
    group = typer.main.get_command(app)
    shown = [p for p in group.commands[command].params
             if p.default not in (None, False, (), []) and not p.required and p.name != "help"]
    assert long.count("[default:") >= len(shown), [p.name for p in shown]  # every real default is shown
    assert "--output_dir" not in long and "--max_steps" not in long  # hyphenated names only


def test_the_same_things_have_the_same_flags():
    helps = {command: _help(command, "-h") for command in COMMANDS}
    for command, text in helps.items():
        if "--model" in text and command not in ("train",):
            assert "-m, --model" in text, command
        if "--data " in text or "--data," in text:
            assert "-d, --data" in text, command
        if "--output-dir" in text:
            assert "-o, --output-dir" in text, command
        for old in ("--labels-column", "--max-samples", "--max-texts", "--top-pairs", "--show "):
            assert old not in text, (command, old)
    for command in ("evaluate", "name"):  # their outputs are folders
        assert "--output " not in helps[command], command
    assert "-a, --architecture" in helps["train"] and "-m, --init-from, --model" in helps["train"]


def test_version_and_root_help():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"cedar-hf {__version__}"
    text = _help("-h")
    for command in COMMANDS:
        assert command in text
    example = re.search(r"Example: (cedar-hf [^\n]+)", text).group(1)
    parse(shlex.split(example)[1:])


def test_the_module_entry_point_runs_in_a_fresh_process():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "cedar_hf.cli", "--version"], capture_output=True, text=True, env=env)
    assert out.returncode == 0 and out.stdout.strip() == f"cedar-hf {__version__}", out.stderr[-2000:]


def test_normalize_args_aliases_underscores_and_multi_values():
    known = {"--max-steps", "--config", "--model", "-m", "--data"}
    assert normalize_args(["--max_steps", "5", "--config", "k=1", "b=2", "--data", "x"], known, {}, ["--config"]) \
        == ["--max-steps", "5", "--config", "k=1", "--config", "b=2", "--data", "x"]
    assert normalize_args(["--models", "a", "b", "-t", "0.1", "0.2"], known, {"--models": "--model"},
                          ["--model", "-t"]) == ["--model", "a", "--model", "b", "-t", "0.1", "-t", "0.2"]
    assert normalize_args(["--max_steps=7", "--", "--models"], known, {"--models": "--model"}, []) \
        == ["--max-steps=7", "--", "--models"]
    assert normalize_args(["--seeds", "-1", "2"], {"--seeds"}, {}, ["--seeds"]) == ["--seeds", "-1", "--seeds", "2"]


def test_train_refuses_an_architecture_given_as_the_model(tmp_path):
    result = CliRunner().invoke(app, ["train", "-d", str(tmp_path), "--model", "topk"])
    assert result.exit_code != 0 and "--architecture topk_sae" in result.output


def test_help_imports_no_command_code_beyond_the_package():
    """`cedar-hf --help` and every `<command> --help`: nothing beyond what `import cedar_hf` (the Auto-class
    registration, which needs torch and transformers) already loaded, except the training arguments."""
    script = (
        "import sys, cedar_hf\n"
        "base = set(sys.modules)\n"
        "from cedar_hf.cli import app, COMMANDS\n"
        "for args in [['--help'], *[[c, '--help'] for c in COMMANDS]]:\n"
        "    try:\n"
        "        app(args, prog_name='cedar-hf')\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('MODULES', ' '.join(sorted(set(sys.modules) - base)))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True).stdout
    loaded = out.split("MODULES", 1)[1].split()
    heavy = ("cedar_hf.interpret", "cedar_hf.evaluation", "cedar_hf.backbones", "cedar_hf.pipelines",
             "cedar_hf.analysis.explorer", "sklearn", "matplotlib", "open_clip", "gradio", "umap", "faiss",
             "sentence_transformers", "tensorboard")
    assert not [m for m in loaded if m.startswith(heavy)], [m for m in loaded if m.startswith(heavy)]


# ---- the first example of every command, run in order in one workspace ----

@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A folder with what the examples name: glosses.txt (shipped WordNet glosses), photo.png, blip-base/ (a tiny
    BLIP) and runs/blip-cedar (a CEDAR over its visual tokens)."""
    import torch

    import cedar_hf
    from cedar_hf.interpret.vocabulary import load_demo_texts
    from tiny_backbones import build_tiny_blip, make_images

    root = tmp_path_factory.mktemp("cli-examples")
    glosses = [r["gloss"] for r in load_demo_texts(240)]
    (root / "glosses.txt").write_text("\n".join(glosses) + "\n")
    make_images(1)[0].save(root / "photo.png")
    build_tiny_blip(root / "blip-base")
    torch.manual_seed(0)
    blip_cedar = cedar_hf.CedarModel(cedar_hf.CedarConfig(d_in=32, k=8, init_std=0.1, embedding_site="vision_tokens"))
    blip_cedar.save_pretrained(root / "runs" / "blip-cedar")
    return root


@pytest.mark.slow
def test_the_first_example_of_every_help_runs(workspace, monkeypatch):
    monkeypatch.chdir(workspace)
    for command in EXAMPLE_ORDER:
        argv = shlex.split(examples(command)[0])[1:]
        if command == "demo":
            argv += ["--quiet"]
        result = CliRunner().invoke(app, argv)
        assert result.exit_code == 0, f"{shlex.join(argv)}\n{result.output}"
        check = CHECKS.get(command)
        if check:
            check(workspace, result.output)


def _check_train(root: Path, output: str) -> None:
    metrics = json.loads((root / "runs" / "cedar" / "metrics.json").read_text())
    assert 0 < metrics["eval/fvu"] < 1


def _check_push(root: Path, output: str) -> None:
    assert "dry run: nothing was sent" in output and "model.safetensors" in output and "README.md" in output
    assert str(root) not in output  # no local path in the card or the listing


def _check_extract(root: Path, output: str) -> None:
    assert json.loads((root / "emb" / "cedar_metadata.json").read_text())["count"] == 240


def _check_name(root: Path, output: str) -> None:
    names = json.loads((root / "runs" / "cedar" / "concept_names.json").read_text())["names"]
    assert len(names) == 384 and all(entry["name"] for entry in names)


def _check_analyze(root: Path, output: str) -> None:
    skipped = json.loads((root / "analysis" / "analysis.json").read_text())["skipped"]
    assert set(skipped) == {"modality", "bridge", "stability"}  # text-only data, no pairs, no --reference
    assert "skipped modality: the `modality` column has one value only (['text'])" in output
    assert "skipped stability: no --reference" in output


def _check_demo(root: Path, output: str) -> None:
    """The demo's closing commands work on its own outputs: each parses, and the first one runs."""
    summary = json.loads((root / "demo-small" / "summary.json").read_text())
    assert Path(summary["embeddings"]).is_dir() and (Path(summary["model"]) / "config.json").is_file()
    commands = [shlex.split(c)[1:] for c in summary["next_commands"]]
    for argv in commands:
        parse(argv)
    result = CliRunner().invoke(app, commands[0])
    assert result.exit_code == 0, result.output


CHECKS = {"extract": _check_extract, "analyze": _check_analyze, "demo": _check_demo, "train": _check_train, "name": _check_name, "push": _check_push}
