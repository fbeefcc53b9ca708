"""`cedar-hf push`: upload a dictionary (with its model card) or an embedding dataset (with a dataset card)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

HELP = (
    "Push a dictionary folder (save_pretrained output) or an embedding dataset folder (from cedar-hf extract) to "
    "the Hugging Face Hub. A dictionary goes up with model.safetensors, config.json, concept_names.json, its "
    "evaluation.json / metrics.json / training_args.json and a model card (YAML metadata: library_name cedar-hf, "
    "base_model, datasets, tags, metrics; usage; the 20 highest-energy concepts when --embeddings is given; "
    "limitations). A dataset goes up with datasets' own push, its cedar_metadata.json and a dataset card.\n\n"
    "The token comes from --token, HF_TOKEN or `hf auth login`; it is never printed. A push without a token or to "
    "a repository you cannot write fails with a clear message.\n\n"
    "Examples:\n"
    "  cedar-hf push runs/cedar me/cedar-clip-vit-b32 --embeddings emb/ --dataset me/coco-clip-embeddings\n"
    "  cedar-hf push emb/ me/coco-clip-embeddings --source detection-datasets/coco"
)


def push(
    path: Path = typer.Argument(..., help="Dictionary folder or embedding dataset folder."),
    repo_id: str = typer.Argument(..., help="Target repository, owner/name."),
    token: Optional[str] = typer.Option(None, help="Hub token with write access (default: HF_TOKEN or the "
                                        "stored login)."),
    private: Optional[bool] = typer.Option(None, "--private/--public", help="Visibility of a new repository."),
    commit_message: Optional[str] = typer.Option(None, help="Commit message."),
    dataset: Optional[str] = typer.Option(None, help="Hub id of the training embeddings (model card metadata)."),
    embeddings: Optional[Path] = typer.Option(None, help="Embedding dataset folder to rank the concepts by energy "
                                              "for the model card."),
    source: Optional[str] = typer.Option(None, help="For a dataset push: Hub id of the images/texts embedded."),
    license: Optional[str] = typer.Option(None, help="License id for the card metadata, e.g. apache-2.0."),
) -> None:
    from cedar_hf.data import METADATA_FILE
    from cedar_hf.hub import (
        HubPushError,
        push_dictionary_to_hub,
        push_embeddings_to_hub,
    )

    if not path.is_dir():
        raise typer.BadParameter(f"{path} is not a folder")
    try:
        if (path / METADATA_FILE).is_file():
            result = push_embeddings_to_hub(str(path), repo_id, token=token, private=private,
                                            commit_message=commit_message, license=license, source=source)
        else:
            from cedar_hf.auto import load_dictionary

            model = load_dictionary(path)
            result = push_dictionary_to_hub(model, repo_id, token=token, private=private,
                                            commit_message=commit_message, dataset=dataset,
                                            embeddings=str(embeddings) if embeddings else None, model_dir=path,
                                            license=license)
    except HubPushError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"pushed {path} to {repo_id}: {getattr(result, 'commit_url', result)}")


def register(app: typer.Typer) -> None:
    app.command(name="push", help=HELP)(push)
