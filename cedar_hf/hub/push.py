"""The Hub: push a dictionary (weights, config, concept names, a model card) or an embedding dataset (with a dataset
card). Loading needs nothing here: `CedarModel.from_pretrained("user/repo")` / `AutoModel.from_pretrained` work from
a Hub id (after `import cedar_hf`), concept names included.

The cards are rendered from the Jinja templates in `model_cards/` (shipped in the wheel as
`cedar_hf/resources/model_cards/`) with `huggingface_hub.ModelCard.from_template`; a value that is not known renders
as "[More Information Needed]". The token is handed to `huggingface_hub` only; it is never printed or logged.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import httpx
from huggingface_hub import (
    DatasetCard,
    DatasetCardData,
    HfApi,
    ModelCard,
    ModelCardData,
    get_token,
)
from huggingface_hub.errors import (
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
)

from ..atomic import read_json, write_json
from ..data import METADATA_FILE, read_metadata
from ..data import load_dataset as load_embedding_dataset
from .cards import MISSING, dataset_card_values, model_card_values, public_config, public_json, template_path
from .ids import is_hub_id

MODEL_EXTRA_FILES = ("evaluation.json", "metrics.json", "training_args.json")


class HubPushError(RuntimeError):
    """A push to the Hugging Face Hub failed (no token, no write access, offline...); the message says why."""


def render_model_card(
    model,
    repo_id: Optional[str] = None,
    dataset: Optional[str] = None,
    embeddings: Any = None,
    model_dir: Union[None, str, os.PathLike] = None,
    license: Optional[str] = None,
    top_n: int = 20,
    progress: bool = True,
) -> ModelCard:
    """The model card of a dictionary (a `huggingface_hub.ModelCard`; `str(card)` is the README).

    Args:
        model: the dictionary.
        repo_id: the Hub id it goes to (used in the usage snippet and the title).
        dataset: Hub id of the training dataset (YAML `datasets`); defaults to `config.training_data["dataset"]`.
        embeddings: an embedding dataset (folder, `datasets.Dataset` or tensor) to rank concepts by energy
            (mean |code|); without it the card says the energies are unknown.
        model_dir: folder with `evaluation.json` / `metrics.json` / `training_args.json`; defaults to the folder the
            model was loaded from.
        license: an SPDX id / Hub license for the YAML metadata.
        top_n: how many of the highest-energy concepts to list.
    """
    values = model_card_values(model, repo_id, dataset, embeddings, _model_dir(model, model_dir), top_n, progress)
    meta = values.pop("metadata")
    eval_results = meta.pop("eval_results", None)
    card_data = ModelCardData(license=license, eval_results=eval_results, **meta)
    return ModelCard.from_template(card_data, template_path=str(template_path("dictionary_card.md")), **values)


def _model_dir(model, model_dir) -> Optional[Path]:
    if model_dir is not None:
        path = Path(model_dir)
        if not path.is_dir():
            raise ValueError(f"model_dir {str(path)!r} is not a folder")
        return path
    loaded_from = getattr(model.config, "_name_or_path", "") or getattr(model, "name_or_path", "")
    return Path(loaded_from) if loaded_from and Path(loaded_from).is_dir() else None


def _resolve_token(token: Optional[str]) -> str:
    token = token or get_token()
    if not token:
        raise HubPushError(
            "No Hugging Face token found: log in with `hf auth login`, set the HF_TOKEN environment variable, "
            "or pass token=... (it needs write access to the repository)."
        )
    return token


def _hub_error(exc: Exception, repo_id: str, repo_type: str) -> HubPushError:
    """A clear message for a failed Hub call; built from the status code only, so no secret can leak into it."""
    if isinstance(exc, OfflineModeIsEnabled):
        names = [name for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
                 if os.environ.get(name, "").strip().upper() in ("1", "ON", "YES", "TRUE")] or ["HF_HUB_OFFLINE"]
        shown = " and ".join(f"{name}={os.environ.get(name, '1')}" for name in names)
        return HubPushError(f"cannot push {repo_type} {repo_id!r}: offline mode is on ({shown}); unset "
                            f"{' and '.join(names)} to push.")
    if isinstance(exc, httpx.TransportError):
        return HubPushError(f"cannot push {repo_type} {repo_id!r}: the Hub (huggingface.co) cannot be reached "
                            f"({type(exc).__name__}: no network, a proxy or a firewall); check the connection and "
                            "HTTPS_PROXY, then retry.")
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(exc, RepositoryNotFoundError) or status in (401, 403, 404):
        return HubPushError(
            f"cannot write to the {repo_type} repository {repo_id!r} (HTTP {status}): the token is invalid or has no "
            f"write access to that namespace. Use a token with the 'write' role for the owner of {repo_id!r}."
        )
    return HubPushError(f"pushing {repo_type} {repo_id!r} to the Hub failed (HTTP {status}): {type(exc).__name__}")


def push_dictionary_to_hub(
    model,
    repo_id: str,
    token: Optional[str] = None,
    private: Optional[bool] = None,
    commit_message: Optional[str] = None,
    dataset: Optional[str] = None,
    embeddings: Any = None,
    model_dir: Union[None, str, os.PathLike] = None,
    license: Optional[str] = None,
    revision: Optional[str] = None,
    create_pr: bool = False,
    progress: bool = True,
    dry_run: bool = False,
    **save_kwargs,
):
    """Upload a dictionary to the Hub: `model.safetensors`, `config.json`, `concept_names.json` (when named), the
    model folder's `evaluation.json` / `metrics.json` / `training_args.json`, and a `README.md` model card.

    `model.push_to_hub(repo_id, ...)` calls this. The folder is written with `save_pretrained` into a temporary
    directory, the card rendered (see `render_model_card` for `dataset`, `embeddings`, `model_dir`, `license`), then
    `HfApi.create_repo(exist_ok=True)` + `HfApi.upload_folder` send it in one commit. `save_kwargs` (e.g.
    `max_shard_size`) go to `save_pretrained`.

    With `dry_run=True` nothing is sent and no token is needed: the folder is staged and a `PushPlan` (files,
    sizes, the card's text) is returned instead.

    Raises:
        HubPushError: no token, no write access to `repo_id`, or offline mode; the message never contains the token.

    Returns:
        The `CommitInfo` of the upload (`.commit_url`, `.pr_url`), or the `PushPlan` of a dry run.
    """
    if not is_hub_id(repo_id):
        raise ValueError(f"repo_id={repo_id!r} must look like 'owner/name' (a Hub repository id)")
    token = None if dry_run else _resolve_token(token)
    with tempfile.TemporaryDirectory(prefix="cedar-hf-push-") as folder:
        card = stage_dictionary(model, folder, repo_id, dataset, embeddings, model_dir, license, progress,
                                **save_kwargs)
        if dry_run:
            return PushPlan(repo_id, "model", _listing(folder), str(card))
        api = HfApi(token=token)
        try:
            api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            return api.upload_folder(
                repo_id=repo_id,
                folder_path=folder,
                repo_type="model",
                commit_message=commit_message or f"Upload {type(model).__name__} with cedar-hf",
                revision=revision,
                create_pr=create_pr,
            )
        except (HfHubHTTPError, OfflineModeIsEnabled, httpx.TransportError) as exc:
            raise _hub_error(exc, repo_id, "model") from None


@dataclass
class PushPlan:
    """What a push would upload (`dry_run=True`): the repository, the files with their sizes, the card's text."""

    repo_id: str
    repo_type: str
    files: list[tuple[str, int]]
    card: str

    def __str__(self) -> str:
        rows = "\n".join(f"  {name}  ({size:,} bytes)" for name, size in self.files)
        return f"would push to the {self.repo_type} repository {self.repo_id}:\n{rows}"


def _listing(folder) -> list[tuple[str, int]]:
    root = Path(folder)
    return sorted((str(p.relative_to(root)), p.stat().st_size) for p in root.rglob("*") if p.is_file())


def stage_dictionary(model, folder, repo_id: str, dataset=None, embeddings=None, model_dir=None, license=None,
                     progress: bool = True, **save_kwargs) -> ModelCard:
    """Write into `folder` exactly what a push uploads: `save_pretrained` output (with local paths in the config
    replaced by folder names, see `public_config`), the model folder's extra JSON files and the `README.md`
    card. Returns the card."""
    source_dir = _model_dir(model, model_dir)
    card = render_model_card(model, repo_id, dataset, embeddings, source_dir, license, progress=progress)
    with public_config(model.config):
        model.save_pretrained(folder, **save_kwargs)
    for name in MODEL_EXTRA_FILES:  # local paths in them (output_dir, the evaluation data) as folder names
        if source_dir is not None and (source_dir / name).is_file():
            values = read_json(source_dir / name, name)
            write_json(Path(folder) / name, public_json(values), indent=1)
    card.save(Path(folder) / "README.md")
    return card


def render_dataset_card(dataset, repo_id: str, metadata: Optional[dict] = None, license: Optional[str] = None,
                        source: Optional[str] = None) -> DatasetCard:
    """The dataset card of an embedding dataset (`datasets.Dataset`), from `model_cards/dataset_card.md`."""
    values = dataset_card_values(dataset, repo_id, metadata or {}, source)
    card_data = DatasetCardData(license=license, **values.pop("metadata"))
    return DatasetCard.from_template(card_data, template_path=str(template_path("dataset_card.md")), **values)


def push_embeddings_to_hub(
    dataset: Any,
    repo_id: str,
    token: Optional[str] = None,
    private: Optional[bool] = None,
    commit_message: Optional[str] = None,
    license: Optional[str] = None,
    source: Optional[str] = None,
    dry_run: bool = False,
):
    """Push an embedding dataset (a folder from `cedar-hf extract` or a `datasets.Dataset`) with `datasets`' own
    `push_to_hub`, then its `cedar_metadata.json` and a dataset card (`README.md`).

    Args:
        source: Hub id of the images/texts the embeddings were computed from (YAML `source_datasets`).
    Raises:
        HubPushError: as for `push_dictionary_to_hub`.

    With `dry_run=True` nothing is sent: returns a `PushPlan` listing the dataset's local files (datasets' push
    converts them to parquet shards), the card and the metadata file.
    """
    if not is_hub_id(repo_id):
        raise ValueError(f"repo_id={repo_id!r} must look like 'owner/name' (a Hub repository id)")
    token = None if dry_run else _resolve_token(token)
    metadata = read_metadata(dataset, required=False) if isinstance(dataset, (str, os.PathLike)) else {}
    ds = load_embedding_dataset(dataset)
    if "embedding" not in getattr(ds, "column_names", []):
        raise ValueError(f"not an embedding dataset: no 'embedding' column in {getattr(ds, 'column_names', ds)!r}")
    card = render_dataset_card(ds, repo_id, metadata, license, source)
    if dry_run:
        local = _listing(dataset) if isinstance(dataset, (str, os.PathLike)) else []
        extra = [("README.md", len(str(card).encode()))]
        return PushPlan(repo_id, "dataset", sorted(local + extra), str(card))
    message = commit_message or "Upload embeddings with cedar-hf"
    api = HfApi(token=token)
    try:
        ds.push_to_hub(repo_id, token=token, private=private, commit_message=message)
        with tempfile.TemporaryDirectory(prefix="cedar-hf-push-") as folder:
            card.save(Path(folder) / "README.md")
            if metadata:
                write_json(Path(folder) / METADATA_FILE, metadata, indent=1)
            return api.upload_folder(repo_id=repo_id, folder_path=folder, repo_type="dataset",
                                     commit_message=f"{message}: dataset card")
    except (HfHubHTTPError, OfflineModeIsEnabled, httpx.TransportError) as exc:
        raise _hub_error(exc, repo_id, "dataset") from None


__all__ = [
    "HubPushError",
    "PushPlan",
    "MISSING",
    "is_hub_id",
    "push_dictionary_to_hub",
    "push_embeddings_to_hub",
    "render_dataset_card",
    "render_model_card",
    "stage_dictionary",
]
