"""`cedar-hf train`: train CEDAR or an SAE on an embedding dataset (Accelerate; resumable; seeds; mixtures).

The options are generated from two dataclasses: `TrainCommandArgs` below (what to train on and what to train) and
`cedar_hf.training.TrainingArgs` (how), one hyphenated option per field with the field's help and default — so a
field added to `TrainingArgs` is an option here with no change to this file. The help also lists every model
config key per architecture (for `--config key=value`). Multi-process: `accelerate launch -m cedar_hf.cli train`.
"""

from __future__ import annotations

import inspect
import json
import os
import typing
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import List, Optional

import typer

from cedar_hf.registry import DICTIONARY_CLASSES, resolve_architecture
from cedar_hf.training import TrainingArgs

from . import command_class

DESCRIPTION = (
    "Train a dictionary (CEDAR or an SAE) on embeddings saved by `cedar-hf extract` (a datasets folder, read "
    "memory-mapped). Each run writes the model (save_pretrained), training_args.json, metrics.json, resumable "
    "checkpoints/ and tracker logs/ into --output-dir. Devices, processes and mixed precision come from "
    "`accelerate config`; for several processes run `accelerate launch -m cedar_hf.cli train ...` (on a CPU-only "
    "machine two processes need `accelerate launch --multi_gpu --num_processes 2`; `--cpu` gives one).\n\n"
    "Examples:\n\n"
    "  cedar-hf train -d emb -a cedar --config k=8 parametrization=cayley curriculum_steps=100 --max-steps 200 "
    "--batch-size 64 --eval-fraction 0.1 "
    "-o runs/cedar\n\n"
    "  cedar-hf train -d emb -a cedar --config k=8 parametrization=orthogonal -o runs/cedar-riemannian\n\n"
    "  cedar-hf train -d emb -a topk --config k=64 expansion_factor=8 -o runs/topk\n\n"
    "  cedar-hf train -d emb --seeds 0 1 2 -o stability-seeds\n\n"
    "  cedar-hf train -d emb --mixtures image=1,text=0 image=1,text=1 image=0,text=1 -o by-mixture\n\n"
    "  cedar-hf train -d emb -o runs/cedar --resume latest"
)
SHORT = {"data": ["-d"], "architecture": ["-a"], "output_dir": ["-o"], "init_from": ["--model", "-m"]}
MULTI = ("--config", "--seeds", "--mixtures")
METAVARS = {"config": "KEY=VALUE ...", "seeds": "SEED ...", "mixtures": "MIXTURE ..."}
NOT_CONFIG_KEYS = {"self", "d_in", "backbone", "embedding_site", "training_data"}  # provenance, set by the run


@dataclass
class TrainCommandArgs:
    """Options of `cedar-hf train` beyond `TrainingArgs`."""

    data: str = field(metadata={"help": "Training embeddings: a folder written by datasets' save_to_disk "
                                        "(e.g. by `cedar-hf extract`), read memory-mapped."})
    architecture: Optional[str] = field(
        default=None,
        metadata={"help": "Kind of dictionary: cedar (the default), relu, topk, batchtopk, jumprelu, matryoshka, "
                          "semi-nmf (fitted by its own alternating algorithm), no-rotation (only the mean), or any "
                          "registered model_type. With --resume or --model: the checkpoint's / pretrained "
                          "dictionary's."},
    )
    config: list[str] = field(
        default_factory=list,
        metadata={"help": "Model config overrides as key=value (values parsed as JSON), e.g. --config k=16 "
                          "parametrization=cayley; the keys of each architecture are listed above. d_in comes "
                          "from the data."},
    )
    init_from: Optional[str] = field(
        default=None, metadata={"help": "A pretrained dictionary (folder or Hub id) to start from instead of a "
                                        "fresh model of --architecture."}
    )
    eval_data: Optional[str] = field(
        default=None, metadata={"help": "Held-out embeddings (a save_to_disk folder) for FVU / L0 / dead latents."}
    )
    eval_fraction: float = field(
        default=0.0,
        metadata={"help": "Without --eval-data: hold out this share of the training rows for evaluation "
                          "(a fixed split, the same for every seed)."},
    )
    seeds: Optional[list[int]] = field(
        default=None,
        metadata={"help": "Train one model per seed (e.g. --seeds 0 1 2), each into output_dir/seed-<s>, for "
                          "stability studies; overrides --seed."},
    )
    mixtures: Optional[list[str]] = field(
        default=None,
        metadata={"help": "Train one model per image:text mixture (e.g. --mixtures image=1,text=0 image=1,text=1 "
                          "image=0,text=1), each into output_dir/mixture-<image1_text1>[/seed-<s>]; overrides "
                          "--mixture."},
    )


def config_keys_help() -> str:
    """One line per architecture: its config keys with their defaults (what `--config` accepts)."""
    lines = []
    for model_type, (config_class, _) in sorted(DICTIONARY_CLASSES.items()):
        defaults: dict = {}
        for klass in reversed(config_class.__mro__):  # the base configs' keys (SAEConfig's expansion_factor) too
            if "__init__" in vars(klass) and klass.__module__.startswith("cedar_hf"):
                for p in inspect.signature(klass.__init__).parameters.values():
                    if p.name not in NOT_CONFIG_KEYS and p.default is not inspect.Parameter.empty:
                        defaults[p.name] = p.default
        keys = ", ".join(f"{name}={value!r}" for name, value in defaults.items())
        lines.append(f"  {model_type}: {keys}")
    return "Config keys (--config key=value) and their defaults:\n\n" + "\n\n".join(lines)


def _annotation(hint):
    """The typer annotation of a dataclass field: Optional[X] -> X (default None), list[X] -> List[X]."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is typing.Union and len(args) == 1:
        hint = args[0]
    if typing.get_origin(hint) is list:
        return List[typing.get_args(hint)[0]]
    return hint


def _parameters(dataclass_type) -> list[inspect.Parameter]:
    hints = typing.get_type_hints(dataclass_type)
    params = []
    for f in fields(dataclass_type):
        default = f.default if f.default is not MISSING else (
            f.default_factory() if f.default_factory is not MISSING else ...)
        decls = [f"--{f.name.replace('_', '-')}", *SHORT.get(f.name, []), *f.metadata.get("aliases", [])]
        choices = f.metadata.get("choices")
        text = f.metadata.get("help", "") + (f" One of: {', '.join(choices)}." if choices else "")
        metavar = METAVARS.get(f.name)
        option = typer.Option(default, *decls, help=text, show_default=default not in (None, ...), metavar=metavar)
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option,
                                        annotation=_annotation(hints[f.name])))
    return params


def _check_init_from(command: TrainCommandArgs) -> None:
    """`--model` once named the architecture here; a kind given to it now fails loudly instead of silently."""
    path = command.init_from
    if path and not os.path.isdir(path):
        try:
            kind = resolve_architecture(path)
        except ValueError:
            return
        raise typer.BadParameter(f"--model {path!r} must be a dictionary to start from (a folder or Hub id); for a "
                                 f"kind of dictionary use --architecture {kind}")


def run(command: TrainCommandArgs, args: TrainingArgs) -> list[str]:
    """Train one model per mixture and seed; returns the output folders."""
    from cedar_hf.data import EmbeddingStream
    from cedar_hf.training import train
    from cedar_hf.training.build import build_dictionary, training_datasets

    dataset, eval_dataset = training_datasets(command.data, command.eval_data, command.eval_fraction)
    d_in = EmbeddingStream(dataset, args.embedding_column).dim
    outputs = []
    for mixture in command.mixtures or [args.mixture]:
        for seed in command.seeds or [args.seed]:
            run_args: TrainingArgs = replace(args, seed=seed, mixture=mixture, output_dir=_run_folder(
                args.output_dir, mixture if command.mixtures else None, seed if command.seeds else None))
            from_checkpoint = args.resume_from_checkpoint and not (command.architecture or command.config
                                                                   or command.init_from)
            model = None if from_checkpoint else build_dictionary(command.architecture, command.config, d_in, seed,
                                                                  command.init_from)
            train(model, dataset, run_args, eval_dataset=eval_dataset)
            outputs.append(run_args.output_dir)
            _report(run_args.output_dir)
    return outputs


def _run_folder(output_dir: str, mixture: Optional[str], seed: Optional[int]) -> str:
    """output_dir[/mixture-image1_text3][/seed-<s>]"""
    from cedar_hf.data import parse_mixture

    parts = [output_dir]
    if mixture is not None:
        weights = parse_mixture(mixture)
        parts.append("mixture-" + "_".join(f"{name}{value:g}" for name, value in weights.items()))
    if seed is not None:
        parts.append(f"seed-{seed}")
    return os.path.join(*parts)


def _report(output_dir: str) -> None:
    from cedar_hf.training.checkpoint import list_checkpoints

    path = os.path.join(output_dir, "metrics.json")
    if int(os.environ.get("RANK", "0")) != 0:
        return
    if not os.path.isfile(path):
        found = list_checkpoints(output_dir)
        if found:
            typer.echo(f"stopped at checkpoint {found[-1]}; continue with --output-dir {output_dir} --resume latest")
        return
    with open(path) as f:
        metrics = json.load(f)
    shown = {k: round(v, 5) for k, v in metrics.items() if isinstance(v, float) and "/" in k}
    typer.echo(f"saved {output_dir}: {shown}")


def split_options(values: dict) -> tuple[TrainCommandArgs, TrainingArgs]:
    """The parsed options as the two dataclasses; a `ValueError` of either names the field."""
    names = {f.name for f in fields(TrainCommandArgs)}
    command = TrainCommandArgs(**{k: v for k, v in values.items() if k in names})
    args = TrainingArgs(**{k: v for k, v in values.items() if k not in names})
    return command, args


def train_command(**values) -> None:
    try:
        command, args = split_options(values)
        _check_init_from(command)
        run(command, args)
    except ValueError as error:
        typer.echo(f"Error: {error}", err=True)
        raise typer.Exit(code=2)


train_command.__signature__ = inspect.Signature(_parameters(TrainCommandArgs) + _parameters(TrainingArgs))
train_command.__doc__ = DESCRIPTION


def register(app: typer.Typer) -> None:
    app.command(
        "train", help=DESCRIPTION, epilog=config_keys_help(), cls=command_class(multi=MULTI),
        short_help="Train CEDAR or a sparse autoencoder on an embedding dataset (Accelerate).",
    )(train_command)


__all__ = ["TrainCommandArgs", "config_keys_help", "register", "run", "split_options"]
