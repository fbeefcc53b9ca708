"""`cedar-hf train`: train CEDAR or an SAE on an embedding dataset (Accelerate; resumable; seeds; mixtures).

Every `TrainingArgs` field is an option (parsed by transformers' `HfArgumentParser`, so `--help` lists them all
with their help). Multi-process: `accelerate launch -m cedar_hf.cli train ...`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from typing import Optional

import typer

DESCRIPTION = (
    "Train a dictionary (CEDAR or an SAE) on embeddings saved by `cedar-hf extract` (a datasets folder). "
    "Devices, processes and mixed precision come from `accelerate config`; for several processes run "
    "`accelerate launch -m cedar_hf.cli train ...`. Examples:\n"
    "  cedar-hf train --data emb/ --architecture cedar --config k=10 parametrization=cayley --max_steps 5000\n"
    "  cedar-hf train --data emb/ --architecture topk --config k=64 expansion_factor=8 --output_dir topk\n"
    "  cedar-hf train --data emb/ --seeds 0 1 2 --output_dir stability-seeds\n"
    "  cedar-hf train --data emb/ --mixtures image=1,text=0 image=1,text=1 image=0,text=1 --output_dir by-mixture\n"
    "  cedar-hf train --data emb/ --output_dir run --resume latest"
)


@dataclass
class TrainCommandArgs:
    """Options of `cedar-hf train` beyond `TrainingArgs`."""

    data: str = field(metadata={"help": "Training embeddings: a folder written by datasets' save_to_disk "
                                        "(e.g. by `cedar-hf extract`), read memory-mapped."})
    architecture: Optional[str] = field(
        default=None,
        metadata={"aliases": ["--model"],
                  "help": "cedar (the default), relu, topk, batchtopk, jumprelu, matryoshka, semi-nmf (fitted by its "
                          "own alternating algorithm), no-rotation (only the mean), or any registered model_type. "
                          "With --resume or --init_from: the checkpoint's / pretrained dictionary's."},
    )
    config: list[str] = field(
        default_factory=list,
        metadata={"help": "Model config overrides as key=value (values parsed as JSON), e.g. --config k=16 "
                          "parametrization=cayley, or --config expansion_factor=8 k=64. d_in comes from the data."},
    )
    init_from: Optional[str] = field(
        default=None, metadata={"help": "Start from this pretrained dictionary folder instead of a fresh model."}
    )
    eval_data: Optional[str] = field(
        default=None, metadata={"help": "Held-out embeddings (a save_to_disk folder) for FVU / L0 / dead latents."}
    )
    eval_fraction: float = field(
        default=0.0,
        metadata={"help": "Without --eval_data: hold out this share of the training rows for evaluation "
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


def run(command: TrainCommandArgs, args) -> list[str]:
    """Train one model per seed; returns the output folders."""
    from cedar_hf.data import EmbeddingStream
    from cedar_hf.training import TrainingArgs, train
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
            typer.echo(f"stopped at checkpoint {found[-1]}; continue with --output_dir {output_dir} --resume latest")
        return
    with open(path) as f:
        metrics = json.load(f)
    shown = {k: round(v, 5) for k, v in metrics.items() if isinstance(v, float) and "/" in k}
    typer.echo(f"saved {output_dir}: {shown}")


def parse(argv: list[str]):
    from transformers import HfArgumentParser

    from cedar_hf.training import TrainingArgs

    parser = HfArgumentParser((TrainCommandArgs, TrainingArgs), prog="cedar-hf train", description=DESCRIPTION)
    import argparse

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    command, args = parser.parse_args_into_dataclasses(args=argv)
    return command, args


def register(app: typer.Typer) -> None:
    @app.command(
        "train",
        help="Train CEDAR or an SAE on an embedding dataset (Accelerate; --resume; --seeds; --mixture). "
             "Run `cedar-hf train --help` for every option.",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
        add_help_option=False,
    )
    def train_command(ctx: typer.Context) -> None:
        try:
            command, args = parse(list(ctx.args))
            run(command, args)
        except ValueError as error:
            typer.echo(f"Error: {error}", err=True)
            raise typer.Exit(code=2)


__all__ = ["TrainCommandArgs", "parse", "register", "run"]
