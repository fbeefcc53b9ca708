"""`cedar-hf caption`: dense vs sparse captions, recurring words across samples, steering one concept."""

from __future__ import annotations

from typing import List, Optional

import typer

from . import command_class, load_dictionary_option

HELP = (
    "Caption images from sparse visual tokens (the CEDAR paper's free-form explanations). Every visual token of "
    "the captioning backbone (BLIP, a vision encoder-decoder) is replaced by its k-sparse reconstruction before "
    "the text decoder reads it; the model's own generate runs unchanged. For each image it prints the dense "
    "caption, the sparse caption, --samples sampled sparse captions at --temperature and the words that recur "
    "in at least half of them.\n\n"
    "--steer NAME=DELTA (repeatable) raises (DELTA > 0) or lowers (DELTA < 0) one named coordinate of every "
    "token's code and prints the resulting caption; NAME may be a latent index.\n\n"
    "--compare MODEL (repeatable) adds captions from other dictionaries at the same k beside them, e.g. the "
    "no-rotation baseline (`cedar-hf train -a no-rotation` on the same tokens): dense vs CEDAR vs no rotation, "
    "as in the CEDAR paper's Study 3.\n\n"
    "Examples (blip-base: a BLIP folder or Hub id):\n\n"
    "  cedar-hf caption photo.png -m runs/blip-cedar -b blip-base --k 8 --samples 2 --steer 0=3\n\n"
    "  cedar-hf caption cat.jpg dog.jpg -m runs/blip-cedar -b Salesforce/blip-image-captioning-base --k 10 "
    "--samples 5 --temperature 0.3 --steer beach=3"
)


def _parse_steer(spec: str) -> tuple[str, float]:
    name, sep, value = spec.rpartition("=")
    try:
        if not sep or not name:
            raise ValueError
        return name, float(value)
    except ValueError:
        raise typer.BadParameter(f"--steer {spec!r} must look like NAME=DELTA, e.g. dog=3 or 17=-2") from None


def caption(
    images: List[str] = typer.Argument(..., help="Image files."),
    model: str = typer.Option(..., "--model", "-m", help="Dictionary trained on the backbone's vision_tokens."),
    backbone: Optional[str] = typer.Option(None, "--backbone", "-b", help="Captioning backbone (default: the dictionary's "
                                           "config.backbone), e.g. Salesforce/blip-image-captioning-base."),
    k: int = typer.Option(10, help="Active latents per visual token."),
    samples: int = typer.Option(5, help="Sampled sparse captions per image (0: none)."),
    temperature: float = typer.Option(0.3, help="Sampling temperature of those samples (low: near-greedy)."),
    num_beams: int = typer.Option(1, help="Beams for the dense and the deterministic sparse caption."),
    max_new_tokens: int = typer.Option(30, help="Longest caption, in tokens."),
    steer: List[str] = typer.Option([], help="NAME=DELTA: caption with that coordinate raised/lowered."),
    seed: int = typer.Option(0, help="Seed of the sampling."),
    compare: List[str] = typer.Option([], help="Another dictionary folder/Hub id whose sparse captions (same k) "
                                      "are printed beside --model's, e.g. a no-rotation baseline. Repeatable."),
) -> None:
    from cedar_hf.data import open_images
    from cedar_hf.interpret.captions import caption_report
    from cedar_hf.interpret.captions import steer as steer_captions
    from cedar_hf.interpret.naming import resolve_backbone

    dictionary = load_dictionary_option(model)
    captioner = resolve_backbone(backbone, dictionary) if backbone or dictionary.config.backbone else None
    if captioner is None or not callable(getattr(captioner, "caption", None)):
        raise typer.BadParameter("a captioning backbone is needed (--backbone, e.g. a BLIP)")
    pil = open_images(images)
    reports = caption_report(captioner, dictionary, pil, k=k, samples=samples, temperature=temperature,
                             sources=images, seed=seed, num_beams=num_beams, max_new_tokens=max_new_tokens)
    for report in reports:
        typer.echo(str(report))
    if compare:
        from cedar_hf.interpret.captions import compare_captions, format_comparison

        named = {model: dictionary, **{path: load_dictionary_option(path, "--compare") for path in compare}}
        rows = compare_captions(captioner, named, pil, k=k, num_beams=num_beams, max_new_tokens=max_new_tokens)
        typer.echo("side by side:\n" + format_comparison(rows, images, k))
    for spec in steer:
        name, delta = _parse_steer(spec)
        concept = int(name) if name.isdigit() else name
        steered = steer_captions(captioner, dictionary, pil, concept, delta=delta, k=k, num_beams=num_beams,
                                 max_new_tokens=max_new_tokens)
        for source, text in zip(images, steered):
            typer.echo(f"{source}\n  steered {name} {delta:+g}: {text}")


def register(app: typer.Typer) -> None:
    app.command(name="caption", help=HELP, cls=command_class(),
                short_help="Dense vs sparse captions, recurring words, steering one concept.")(caption)
