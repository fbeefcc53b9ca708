"""The one contract every dictionary model keeps, and the checks they share.

`encode(x, k=None) -> codes`, `decode(codes) -> x_hat`, `reconstruct(x, k=None)`, `forward(x, k=None) ->
DictionaryOutput`, `concept_directions -> (n_latents, d_in)`. Inputs may be `(B, d_in)` or `(B, N, d_in)`
(visual tokens); a token matrix is handled token-wise with the same dictionary. Evaluation, naming,
captioning and the explorer use only this contract, so none of them branches on the model type.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from safetensors import SafetensorError
from transformers import PretrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput, cached_file

from .atomic import clean_temporaries, read_json, temp_directory
from .configuration_base import DictionaryConfig
from .hub.push import push_dictionary_to_hub
from .registry import DICTIONARY_CLASSES

CONCEPT_NAMES_FILE = "concept_names.json"


@dataclass
class DictionaryOutput(ModelOutput):
    """
    Output of a dictionary model's `forward`.

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*):
            The training objective (reconstruction term plus any sparsity / auxiliary terms).
        reconstruction (`torch.FloatTensor` of shape `(..., d_in)`):
            The reconstruction in the original embedding space.
        codes (`torch.FloatTensor` of shape `(..., n_latents)`):
            The sparse codes.
        reconstruction_loss (`torch.FloatTensor`, *optional*):
            The reconstruction term alone.
        auxiliary_loss (`torch.FloatTensor`, *optional*):
            Sparsity / aux-k terms, when the model has any.
        fvu (`torch.FloatTensor`, *optional*):
            Batch fraction of variance unexplained, `Σ‖x − x̂‖² / Σ‖x − x̄‖²` (batch mean x̄), for logging.
        l0 (`torch.FloatTensor`, *optional*):
            Mean number of non-zero codes per sample.
    """

    loss: Optional[torch.FloatTensor] = None
    reconstruction: Optional[torch.FloatTensor] = None
    codes: Optional[torch.FloatTensor] = None
    reconstruction_loss: Optional[torch.FloatTensor] = None
    auxiliary_loss: Optional[torch.FloatTensor] = None
    fvu: Optional[torch.FloatTensor] = None
    l0: Optional[torch.FloatTensor] = None


class DictionaryPreTrainedModel(PreTrainedModel):
    """Base of every dictionary model: the shared checks, token-wise reshaping and `reconstruct`."""

    config_class = DictionaryConfig
    base_model_prefix = "dictionary"
    main_input_name = "x"
    supports_gradient_checkpointing = False

    def __init__(self, config: DictionaryConfig, *inputs, **kwargs):
        super().__init__(config, *inputs, **kwargs)
        # Names of the latents (see `cedar_hf.name_concepts`): saved as concept_names.json beside the weights,
        # loaded back by from_pretrained (also from the Hub), pushed with push_to_hub.
        self.concept_names: Optional[dict[str, Any]] = None

    @property
    def concept_labels(self) -> list[str]:
        """One readable label per latent: its name when the dictionary has been named, else `latent {i}`."""
        names = {int(entry["latent"]): entry["name"] for entry in (self.concept_names or {}).get("names", [])}
        return [names.get(i, f"latent {i}") for i in range(self.config.n_latents)]

    def save_pretrained(self, save_directory: str | os.PathLike, *args, **kwargs) -> None:
        """`PreTrainedModel.save_pretrained` made crash-safe, plus `concept_names.json`.

        Everything is written into a temporary folder beside `save_directory` first. A new (or empty) folder is
        then renamed into place in one step; into a folder that already holds other files (a training run's
        `checkpoints/`, `metrics.json`, ...) each file is moved in by an atomic rename, weights first, so a kill
        at any moment leaves every file whole and the folder loadable. A stale `concept_names.json` is removed
        when this model has no names (the folder always describes the model saved last).
        """
        if kwargs.get("push_to_hub"):
            raise ValueError("save_pretrained(push_to_hub=True) is not supported; call push_to_hub")
        final = Path(save_directory)
        clean_temporaries(final, only_dead=True)  # what a killed earlier save left here
        # Inside an existing folder (files are then moved in one by one; the run's cleanup finds leftovers there),
        # beside a new one (then renamed into place whole).
        tmp = temp_directory(final / "save" if final.is_dir() and any(final.iterdir()) else final)
        try:
            super().save_pretrained(tmp, *args, **kwargs)
            if self.concept_names is not None:
                (tmp / CONCEPT_NAMES_FILE).write_text(json.dumps(self.concept_names, indent=1))
            _move_into(tmp, final, remove=() if self.concept_names is not None else (CONCEPT_NAMES_FILE,))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """`PreTrainedModel.from_pretrained` that refuses a folder of another model (a BERT folder, or a CEDAR
        folder loaded as a TopKSAE) instead of returning a freshly initialised model, names the file when one
        is truncated or not valid JSON, and loads `concept_names.json`."""
        hub_kwargs = {key: kwargs[key] for key in ("cache_dir", "revision", "token", "local_files_only") if key in kwargs}
        if not isinstance(kwargs.get("config"), PretrainedConfig):  # AutoModel passes the config it checked
            saved_type = _check_saved_type(cls, pretrained_model_name_or_path, hub_kwargs)
            if saved_type is not None and not getattr(cls.config_class, "model_type", ""):  # the base class
                concrete = DICTIONARY_CLASSES[saved_type][1]
                return concrete.from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        try:
            model = super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        except SafetensorError as err:
            raise ValueError(f"the weights in {str(pretrained_model_name_or_path)!r} cannot be read ({err}): the "
                             "file is truncated or corrupt; save the model again") from err
        model.validate_loaded_weights(str(pretrained_model_name_or_path))
        names_file = cached_file(
            pretrained_model_name_or_path,
            CONCEPT_NAMES_FILE,
            _raise_exceptions_for_missing_entries=False,
            _raise_exceptions_for_connection_errors=False,
            **hub_kwargs,
        )
        if names_file is not None:
            model.concept_names = read_json(names_file, "concept names file")
        return model

    def validate_loaded_weights(self, source: str) -> None:
        """Called by `from_pretrained` on the loaded weights: raise a `ValueError` naming `source` when they
        break the model's invariants (CEDAR's stored U must be orthogonal). Nothing to check by default."""

    def push_to_hub(self, repo_id: str, **kwargs):
        """Upload weights, config, concept names and a model card rendered from `model_cards/` (see
        `cedar_hf.hub.push_dictionary_to_hub` for the options)."""
        return push_dictionary_to_hub(self, repo_id, **kwargs)

    # ---- the contract ---------------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor, k: Optional[int] = None) -> torch.Tensor:
        """Sparse codes `(..., n_latents)` of embeddings `x` `(..., d_in)`."""
        x = self.check_input(x)
        return self._encode(x.reshape(-1, self.config.d_in), self.resolve_k(k)).reshape(
            *x.shape[:-1], self.config.n_latents
        )

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Reconstruction `(..., d_in)` of codes `(..., n_latents)`."""
        if codes.shape[-1] != self.config.n_latents:
            raise ValueError(
                f"codes have last dimension {codes.shape[-1]}, expected n_latents={self.config.n_latents}"
            )
        return self._decode(codes.reshape(-1, self.config.n_latents)).reshape(*codes.shape[:-1], self.config.d_in)

    def reconstruct(self, x: torch.Tensor, k: Optional[int] = None) -> torch.Tensor:
        """`decode(encode(x, k))`: the embedding as the dictionary sees it with k active latents."""
        return self.decode(self.encode(x, k))

    def dense_codes(self, x: torch.Tensor) -> torch.Tensor:
        """Codes under the loosest sparsity this model supports: the starting point of threshold sweeps
        (FVU-matched comparison zeroes codes below τ from here). Defaults to `encode(x)`."""
        return self.encode(x)

    @property
    def concept_directions(self) -> torch.Tensor:
        """`(n_latents, d_in)`: atom i is `decode(e_i) − decode(0)` (so `decode(a·e_i) − decode(0) = a·atom_i`)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, k: Optional[int] = None, **kwargs) -> DictionaryOutput:
        raise NotImplementedError

    # ---- shared pieces --------------------------------------------------------------------------------------
    def _encode(self, x: torch.Tensor, k: Optional[int]) -> torch.Tensor:  # (B, d_in) -> (B, n_latents)
        raise NotImplementedError

    def _decode(self, codes: torch.Tensor) -> torch.Tensor:  # (B, n_latents) -> (B, d_in)
        raise NotImplementedError

    def check_input(self, x: torch.Tensor) -> torch.Tensor:
        """Raise a `ValueError` naming the problem for a wrong shape, dtype or non-finite values."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"expected a torch.Tensor of shape (..., d_in={self.config.d_in}), got {type(x).__name__}")
        if x.dim() < 1 or x.shape[-1] != self.config.d_in:
            raise ValueError(
                f"input has shape {tuple(x.shape)}: last dimension must be d_in={self.config.d_in}"
                f" ({type(self).__name__} was built for {self.config.d_in}-d embeddings"
                + (f" of {self.config.backbone}" if self.config.backbone else "")
                + ")"
            )
        if not x.is_floating_point():
            raise ValueError(f"input dtype {x.dtype} is not floating point")
        finite = torch.isfinite(x)
        if not bool(finite.all()):
            rows = (~finite.reshape(-1, x.shape[-1])).any(-1).nonzero().flatten()
            kind = "NaN" if bool(torch.isnan(x).any()) else "Inf"
            raise ValueError(
                f"input contains {kind} values in {rows.numel()} row(s) (flattened row indices {rows[:10].tolist()}"
                + (" ...)" if rows.numel() > 10 else ")")
            )
        param = next(self.parameters(), None)
        if param is not None and x.dtype != param.dtype:
            x = x.to(param.dtype)
        return x

    def check_mean(self, mean: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """A training-mean vector as a tensor like `like`, refused unless finite and of length d_in."""
        mean = torch.as_tensor(mean, dtype=like.dtype, device=like.device).reshape(-1)
        if mean.numel() != self.config.d_in or not bool(torch.isfinite(mean).all()):
            raise ValueError(f"mean must be a finite vector of length d_in={self.config.d_in}, got {tuple(mean.shape)}")
        return mean

    def resolve_k(self, k: Optional[int]) -> Optional[int]:
        """The k an `encode`/`forward` call runs with; variants whose default is not a count override this."""
        return self.check_k(k)

    def check_k(self, k: Optional[int]) -> Optional[int]:
        """`k` (or the config's default when None) checked against `[1, n_latents]`."""
        if k is None:
            k = self.config.k
        if k is None:
            return None
        if isinstance(k, bool) or not isinstance(k, int):
            if isinstance(k, torch.Tensor) and k.numel() == 1:
                k = int(k.item())
            else:
                raise ValueError(f"k={k!r} must be an integer in [1, n_latents={self.config.n_latents}]")
        if not 1 <= k <= self.config.n_latents:
            raise ValueError(f"k={k} must be in [1, n_latents={self.config.n_latents}]")
        return k

    def l1_output(self, x: torch.Tensor, codes: torch.Tensor, x_hat: torch.Tensor, return_dict: bool = True):
        """The output of an L1-objective model (CEDAR, no-rotation): loss = mean over samples (and tokens) of
        `‖z − ẑ‖₁`. `codes`, `x_hat` are flat `(B·N, ·)`; `x` has the caller's shape."""
        flat = x.reshape(-1, self.config.d_in)
        loss = (flat - x_hat).abs().sum(-1).mean()
        out = DictionaryOutput(
            loss=loss,
            reconstruction=x_hat.reshape(x.shape),
            codes=codes.reshape(*x.shape[:-1], self.config.n_latents),
            reconstruction_loss=loss,
            fvu=self.batch_fvu(flat, x_hat).detach(),
            l0=self.mean_l0(codes).detach(),
        )
        return out if return_dict else out.to_tuple()

    @staticmethod
    def batch_fvu(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
        """Fraction of variance unexplained of one batch (logging; evaluation uses the training mean)."""
        x = x.reshape(-1, x.shape[-1])
        x_hat = x_hat.reshape(-1, x.shape[-1])
        total = (x - x.mean(0, keepdim=True)).pow(2).sum()
        return (x - x_hat).pow(2).sum() / total.clamp_min(torch.finfo(x.dtype).tiny)

    @staticmethod
    def mean_l0(codes: torch.Tensor) -> torch.Tensor:
        return (codes != 0).float().sum(-1).mean()


# Weights first, the config next, the names last: a folder caught between two files still loads.
_MOVE_ORDER = {"model.safetensors": 0, "config.json": 2, CONCEPT_NAMES_FILE: 3}


def _move_into(tmp: Path, final: Path, remove: tuple[str, ...] = ()) -> None:
    """Put the files of the finished folder `tmp` into `final`: one rename of the folder when `final` is new or
    empty, else one atomic rename per file."""
    if tmp.parent != final and (not final.exists() or (final.is_dir() and not any(final.iterdir()))):
        if final.exists():
            final.rmdir()
        os.replace(tmp, final)
        return
    if not final.is_dir():
        raise ValueError(f"save_pretrained: {str(final)!r} is a file, not a folder")
    for entry in sorted(tmp.iterdir(), key=lambda p: (_MOVE_ORDER.get(p.name, 1), p.name)):
        os.replace(entry, final / entry.name)
    for name in remove:
        (final / name).unlink(missing_ok=True)


def _check_saved_type(cls, name_or_path, hub_kwargs: dict) -> Optional[str]:
    """The saved model_type; refuses, naming the folder, a saved model that is not this dictionary class (or
    not a dictionary at all)."""
    config_file = cached_file(name_or_path, "config.json", _raise_exceptions_for_missing_entries=False,
                              _raise_exceptions_for_connection_errors=False, **hub_kwargs)
    if config_file is None:
        return None  # transformers' own error (missing folder, no config.json, no network) follows
    saved = read_json(config_file, "model config")
    saved_type = saved.get("model_type") if isinstance(saved, dict) else None
    if saved_type not in DICTIONARY_CLASSES:
        raise ValueError(f"{str(name_or_path)!r} holds a {saved_type or 'model without model_type'!r} model, not a "
                         f"cedar-hf dictionary (one of {sorted(DICTIONARY_CLASSES)})")
    wanted = getattr(cls.config_class, "model_type", "")
    if wanted and saved_type != wanted:
        raise ValueError(f"{str(name_or_path)!r} holds a {saved_type!r} dictionary, not a {wanted!r} "
                         f"({cls.__name__}); load it with {DICTIONARY_CLASSES[saved_type][1].__name__}"
                         ".from_pretrained or cedar_hf.load_dictionary")
    return saved_type


def signed_topk(values: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k entries of largest |value| with their sign, zero the rest (CEDAR's Π_k). (B, n) -> (B, n)"""
    if k >= values.shape[-1]:
        return values
    index = values.abs().topk(k, dim=-1, sorted=False).indices  # (B, k)
    return torch.zeros_like(values).scatter(-1, index, values.gather(-1, index))


__all__ = ["DictionaryOutput", "DictionaryPreTrainedModel", "signed_topk"]
