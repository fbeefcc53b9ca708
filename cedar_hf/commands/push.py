"""`cedar-hf push`: upload a dictionary (with its model card) or an embedding dataset (with a dataset card)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import command_class, load_dictionary_option

HELP = (
    "Push a dictionary (--model, a save_pretrained folder) or an embedding dataset (--data alone, a cedar-hf "
    "extract folder) to the Hugging Face Hub repository REPO_ID. A dictionary goes up with model.safetensors, "
    "config.json, concept_names.json, its evaluation.json / metrics.json / training_args.json and a model card "
    "(YAML metadata: library_name cedar-hf, pipeline_tag, base_model, datasets, tags and a model-index of the "
    "matched-FVU evaluation; usage; the 20 highest-energy concepts over --data when it is given; limitations). "
    "A dataset goes up with datasets' own push, its cedar_metadata.json and a dataset card. Local paths in the "
    "config and the card are replaced by folder names.\n\n"
    "--dry-run renders the card and lists the files with no network and no token.\n\n"
    "The token comes from --token, HF_TOKEN or `hf auth login`; it is never printed. A push without a token or to "
    "a repository you cannot write fails with a clear message.\n\n"
    "Examples:\n\n"
    "  cedar-hf push me/cedar-glosses -m runs/cedar -d emb --dry-run\n\n"
    "  cedar-hf push me/cedar-clip-vit-b32 -m runs/cedar -d emb/ --training-dataset me/coco-clip-embeddings\n\n"
    "  cedar-hf push me/coco-clip-embeddings -d emb/ --source-dataset detection-datasets/coco"
)
ALIASES = {"--dataset": "--training-dataset", "--embeddings": "--data", "--source": "--source-dataset"}


def push(
    repo_id: str = typer.Argument(..., help="Target repository, owner/name."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Dictionary folder to push."),
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Embedding dataset folder: pushed itself when "
                                        "--model is not given, else used to rank the card's concepts by energy."),
    token: Optional[str] = typer.Option(None, help="Hub token with write access (default: HF_TOKEN or the "
                                        "stored login)."),
    private: Optional[bool] = typer.Option(None, "--private/--public", help="Visibility of a new repository."),
    commit_message: Optional[str] = typer.Option(None, help="Commit message."),
    training_dataset: Optional[str] = typer.Option(None, help="Hub id of the training embeddings (model card "
                                                   "metadata `datasets`)."),
    source_dataset: Optional[str] = typer.Option(None, help="For a dataset push: Hub id of the images/texts "
                                                 "embedded."),
    license: Optional[str] = typer.Option(None, help="License id for the card metadata, e.g. apache-2.0."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Render the card and list the files; send nothing."),
) -> None:
    from cedar_hf.hub.push import HubPushError, push_dictionary_to_hub, push_embeddings_to_hub

    if model is None and data is None:
        raise typer.BadParameter("give --model DICTIONARY (with --data to rank its concepts) or --data DATASET")
    if data is not None and not data.is_dir():
        raise typer.BadParameter(f"--data {str(data)!r} is not a folder")
    try:
        if model is None:
            result = push_embeddings_to_hub(str(data), repo_id, token=token, private=private, dry_run=dry_run,
                                            commit_message=commit_message, license=license, source=source_dataset)
        else:
            dictionary = load_dictionary_option(model)
            result = push_dictionary_to_hub(dictionary, repo_id, token=token, private=private, dry_run=dry_run,
                                            commit_message=commit_message, dataset=training_dataset,
                                            embeddings=str(data) if data else None,
                                            model_dir=model if Path(model).is_dir() else None, license=license)
    except HubPushError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    if dry_run:
        typer.echo(f"{result.card}\n\n{result}\n(dry run: nothing was sent)")
        return
    typer.echo(f"pushed {model or data} to {repo_id}: {getattr(result, 'commit_url', result)}")


def register(app: typer.Typer) -> None:
    app.command(name="push", help=HELP, cls=command_class(ALIASES),
                short_help="Push a dictionary or an embedding dataset to the Hub, with its card.")(push)
