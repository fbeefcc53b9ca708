"""`cedar-hf extract`: embed images or texts with a frozen backbone into a `datasets` folder (resumable)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import command_class

SITES = ("image_embeds", "vision_tokens", "text_embeds")
EPILOG = (
    "Examples:\n\n"
    "  cedar-hf extract glosses.txt -b minilm --site text_embeds -o emb\n\n"
    "  cedar-hf extract photos/ -b openai/clip-vit-base-patch32 -o emb/clip-image\n\n"
    "  cedar-hf extract nlphuji/flickr30k --split test -b openai/clip-vit-base-patch32 --site text_embeds "
    "--text-column caption -o emb/clip-text\n\n"
    "  cedar-hf extract photos/ -b Salesforce/blip-image-captioning-base --site vision_tokens -o emb/blip-tokens\n\n"
    "  accelerate launch -m cedar_hf.cli extract photos/ -b hf-hub:laion/CoCa-ViT-L-14-laion2B-s13B-b90k -o emb/coca\n\n"
    "Rerunning the same command after an interruption resumes from the first unfinished shard."
)


def extract(
    source: str = typer.Argument(
        ..., help="An image folder (class sub-folders become `label`), a saved `datasets` folder, a Hub dataset id, "
        "or a .txt file with one text per line."
    ),
    backbone: str = typer.Option(
        ..., "--backbone", "-b", help="Frozen encoder: a transformers id/folder (CLIP, SigLIP, BLIP, vision "
        "encoder-decoder, text encoder), an open_clip id (hf-hub:..., local-dir:...), or 'minilm'."
    ),
    output_dir: Path = typer.Option(..., "--output-dir", "-o", help="Folder to save the embedding dataset into."),
    site: Optional[str] = typer.Option(
        None, "--site", "-s", help="image_embeds (pooled image embedding), vision_tokens (one row per "
        "image holding all its visual tokens, N x d) or text_embeds. Default: text_embeds for a text-only "
        "backbone (e.g. minilm) or a .txt source, else image_embeds."
    ),
    split: Optional[str] = typer.Option(None, help="Split of a dataset source (default: train, else the first)."),
    image_column: Optional[str] = typer.Option(None, help="Image column of a dataset source (default: the first Image column)."),
    text_column: Optional[str] = typer.Option(None, help="Text column of a dataset source (default: text/caption/sentence/gloss, else the first string column)."),
    label_column: Optional[str] = typer.Option(None, help="Label column to keep (default: label or labels when present)."),
    id_column: Optional[str] = typer.Option(None, help="Column of unique row ids (default: id when present, else the row index)."),
    prompt: Optional[str] = typer.Option(None, help="Template for texts, e.g. 'a photo of {}'."),
    batch_size: int = typer.Option(32, help="Rows per forward pass."),
    shard_size: Optional[int] = typer.Option(
        None, help="Rows per shard: the unit written at once, held in memory, and resumed from (default: 1024; 64 "
        "for vision_tokens)."
    ),
    on_error: str = typer.Option("skip", help="Unreadable image: 'skip' it (reported by id, listed in the metadata) or 'raise'."),
    max_rows: Optional[int] = typer.Option(None, help="Embed only the first N rows."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, cuda:1, ... (default: CUDA when available; the process's device under accelerate)."),
    dtype: str = typer.Option("float32", help="Backbone precision: float32, float16 or bfloat16 (embeddings are stored as float32)."),
    normalize: Optional[bool] = typer.Option(
        None, "--normalize/--no-normalize", help="L2-normalise pooled embeddings (default: the backbone's own choice "
        "— on for CLIP/SigLIP/CoCa, as the sentence-transformers config says for text encoders, off for BLIP)."
    ),
    overwrite: bool = typer.Option(False, help="Start again (discarding partial work); the existing output is "
                                   "replaced only once the new one is complete."),
) -> None:
    """Embed every image or text of SOURCE with a frozen backbone; save a `datasets` folder with `embedding`, `id`,
    `modality`, `label` / `text` columns and `cedar_metadata.json` (backbone, site, dim, count, mean)."""
    from cedar_hf.backbones import load_backbone
    from cedar_hf.data import extract_embeddings, process_state, read_metadata

    if site is not None and site not in SITES:
        raise typer.BadParameter(f"--site {site!r} must be one of {', '.join(SITES)}")
    if on_error not in ("skip", "raise"):
        raise typer.BadParameter(f"--on-error {on_error!r} must be 'skip' or 'raise'")
    state = process_state()
    kwargs = {} if normalize is None else {"normalize": normalize}
    model = load_backbone(backbone, device=device or (state.device if state.num_processes > 1 else None),
                          dtype=dtype, **kwargs)
    try:
        dataset = extract_embeddings(
            model, source, output_dir, site=site, split=split, image_column=image_column, text_column=text_column,
            label_column=label_column, id_column=id_column, prompt=prompt, batch_size=batch_size,
            shard_size=shard_size, on_error=on_error, max_samples=max_rows, overwrite=overwrite,
        )
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err
    if state.is_main_process:
        metadata = read_metadata(output_dir)
        site = metadata["site"]
        shape = "x".join(str(s) for s in dataset.features["embedding"].shape) if site == "vision_tokens" else metadata["dim"]
        typer.echo(f"{metadata['count']} {metadata['modality']} embeddings ({site}, {shape}) from "
                   f"{metadata['backbone']} -> {output_dir}")
        if metadata["skipped"]:
            typer.echo(f"skipped {len(metadata['skipped'])} unreadable: " + ", ".join(e["id"] for e in metadata["skipped"][:10]))


def register(app: typer.Typer) -> None:
    app.command(
        "extract",
        help=(extract.__doc__ or "") + "\n\n" + EPILOG,
        short_help="Embed images or texts with a frozen backbone into a datasets folder.",
        cls=command_class({"--max-samples": "--max-rows"}),
    )(extract)
