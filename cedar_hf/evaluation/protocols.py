"""Named evaluation protocols: what exactly FVU, CS, CKNNA and LP mean in a report.

`cedar-hf` (the default) puts every metric in ONE declared space, the embeddings centred by the training mean μ
(`x − μ`, `x̂ − μ`):

- FVU: dataset level, `Σ‖x − x̂‖² / Σ‖x − μ‖²` (Gao et al. 2024); the threshold search matches it.
- CS: mean cosine of `x − μ` and `x̂ − μ`. For CEDAR at any τ, `x̂ − μ = Uᵀ Π(U(x − μ))` is an orthogonal
  projection, so per sample `CS_i = √(1 − FVU_i)` with `FVU_i = ‖x_i − x̂_i‖² / ‖x_i − μ‖²` — the identity the
  paper's Table 1 shows to three digits.
- CKNNA (k = 10): linear kernels of `x − μ` and `x̂ − μ` over all evaluation rows at once (blocked, exact).
- LP: a probe trained on `(x − μ)/r` (r one global RMS, `probe.train_linear_probe`), scored by cross-entropy
  (and accuracy) on `(x̂ − μ)/r` of held-out rows.

`msae` is MSAE's scoring as the CEDAR paper used it ("closely follows the MSAE framework"), matched to
WolodjaZ/MSAE `score_topk_sae_embeddings.py` + `metrics.py` (FVU, CS, CKNNA) and `linear_eval.py` (LP):

- FVU: per sample in the raw space, `var_d(x − x̂) / var_d(x)`, averaged (`metrics.explained_variance_full`);
  the threshold search matches this one.
- CS: the raw cosine of `x` and `x̂` (`torch.nn.functional.cosine_similarity`), averaged.
- CKNNA (k = 10): rows shuffled (seed 42), cut into batches of `cknna_batch_size` (MSAE: 10000; incomplete last
  batch dropped), CKNNA between the raw batch and its *codes* (not its reconstruction) with the reference code's
  1e-6 in the denominator, averaged over batches. Deviation: when the data has fewer rows than one batch, MSAE
  would report nothing (NaN); we use one batch of all rows and record the size used.
- LP: `probe_msae.train_linear_probe_msae` (L2-normalised `x − μ`, AdamW lr 1e-3, ReduceLROnPlateau, 100
  epochs, patience 5); cross-entropy on the L2-normalised reconstructions, as the CEDAR paper reports it.

Other FVU variants are available by name (`metrics.FVU_VARIANTS`): `get_protocol("cedar-hf", fvu="msae-loss")`.
Every row of a report carries all variants under `fvu_variants` whatever the protocol.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from .cknna import cknna, cknna_batched
from .metrics import FVU_DEFINITIONS, all_fvu_variants, cosine_similarity, fvu_variant


@dataclass(frozen=True)
class Protocol:
    """How each metric is computed. `centre`: CS and CKNNA see `x − μ` (True) or raw embeddings (False);
    `cknna_against`: "reconstruction" or "codes"; `cknna_batch_size`: None = all rows at once; `probe`:
    "cedar-hf" or "msae" (the LP recipe)."""

    name: str
    fvu: str
    centre: bool
    cknna_against: str
    cknna_batch_size: Optional[int]
    cknna_epsilon: float
    probe: str
    cknna_seed: int = 42
    summary: str = ""

    def __post_init__(self):
        fvu_variant(self.fvu)  # raises on an unknown name
        if self.cknna_against not in ("reconstruction", "codes"):
            raise ValueError(f"cknna_against={self.cknna_against!r} must be 'reconstruction' or 'codes'")
        if self.probe not in ("cedar-hf", "msae"):
            raise ValueError(f"probe={self.probe!r} must be 'cedar-hf' or 'msae'")
        if self.cknna_batch_size is not None and self.cknna_batch_size < 4:
            raise ValueError(f"cknna_batch_size={self.cknna_batch_size} must be >= 4 (or None for all rows)")

    @property
    def space(self) -> str:
        return "centred by the training mean μ (x − μ, x̂ − μ)" if self.centre else "raw embeddings"

    def definitions(self, cknna_k: int = 10) -> dict:
        where = "x_i − μ, x̂_i − μ" if self.centre else "x_i, x̂_i (raw)"
        against = "x̂ − μ" if self.centre and self.cknna_against == "reconstruction" else (
            "the codes" if self.cknna_against == "codes" else "x̂")
        rows = ("all evaluation rows at once" if self.cknna_batch_size is None else
                f"mean over shuffled full batches of {self.cknna_batch_size} rows (seed {self.cknna_seed})")
        probe = ("probe on (x − μ)/RMS (AdamW lr 1e-2, ReduceLROnPlateau on a held-out slice of the training "
                 "data); cross-entropy on (x̂ − μ)/RMS" if self.probe == "cedar-hf" else
                 "MSAE's probe on (x − μ)/‖x − μ‖ (AdamW lr 1e-3, ReduceLROnPlateau(max, 0.5, 5) on eval macro-F1, "
                 "≤ 100 epochs, early stop after 5); cross-entropy on (x̂ − μ)/‖x̂ − μ‖")
        return {
            "FVU": FVU_DEFINITIONS[self.fvu],
            "CS": f"mean_i cos({where})",
            "CKNNA": f"k = {cknna_k}, linear kernels of {'x − μ' if self.centre else 'x'} vs {against}, {rows}"
                     + (f", +{self.cknna_epsilon:g} in the denominator" if self.cknna_epsilon else ""),
            "LP": probe,
        }

    def to_dict(self, cknna_k: int = 10) -> dict:
        """The `protocol` object of `evaluation.json` (stable keys: name, summary, space, fvu_variant,
        definitions, parameters)."""
        return {
            "name": self.name,
            "summary": self.summary,
            "space": self.space,
            "fvu_variant": self.fvu,
            "definitions": self.definitions(cknna_k),
            "parameters": {"cknna_k": cknna_k, "cknna_against": self.cknna_against,
                           "cknna_batch_size": self.cknna_batch_size, "cknna_epsilon": self.cknna_epsilon,
                           "cknna_seed": self.cknna_seed, "centre": self.centre, "probe": self.probe},
        }


PROTOCOLS = {
    "cedar-hf": Protocol("cedar-hf", fvu="dataset", centre=True, cknna_against="reconstruction",
                         cknna_batch_size=None, cknna_epsilon=0.0, probe="cedar-hf",
                         summary="every metric in the space centred by the training mean; FVU dataset-level"),
    "msae": Protocol("msae", fvu="msae-score", centre=False, cknna_against="codes", cknna_batch_size=10000,
                     cknna_epsilon=1e-6, probe="msae",
                     summary="MSAE's scoring as the CEDAR paper's Table 1 used it (WolodjaZ/MSAE); use it to "
                             "compare with the paper's numbers"),
}


def get_protocol(protocol="cedar-hf", **overrides) -> Protocol:
    """A `Protocol` by name (`"cedar-hf"`, `"msae"`) or as given, with fields replaced by `overrides` (e.g.
    `cknna_batch_size=2048`, `fvu="msae-loss"`); a protocol changed that way gets "+changed" in its name."""
    if isinstance(protocol, str):
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r}; choose one of {sorted(PROTOCOLS)}")
        protocol = PROTOCOLS[protocol]
    changed = {k: v for k, v in overrides.items() if v is not None and getattr(protocol, k) != v}
    if not changed:
        return protocol
    label = ",".join(f"{k}={v}" for k, v in changed.items())
    return dataclasses.replace(protocol, **changed, name=f"{protocol.name}+{label}")


def score_reconstruction(protocol: Protocol, x: torch.Tensor, x_hat: torch.Tensor, mean: torch.Tensor,
                         codes_of_rows: Callable[[torch.Tensor], torch.Tensor], cknna_k: int = 10,
                         cache: Optional[dict] = None) -> dict:
    """FVU (the protocol's variant, and every variant by name), CS and CKNNA of one reconstruction.
    `codes_of_rows(rows)` gives the codes of those rows (used when CKNNA is against the codes). Pass one `cache`
    dict for every call on the same `x`, `mean` and protocol: the originals' CKNNA neighbours are found once."""
    mean = torch.as_tensor(mean, dtype=torch.float64).reshape(-1)
    variants = all_fvu_variants(x, x_hat, mean)
    row = {"fvu": variants[protocol.fvu], "fvu_variants": variants,
           "CS": cosine_similarity(x, x_hat, mean if protocol.centre else None)}
    left = (x.double() - mean).to(x.dtype) if protocol.centre else x
    if protocol.cknna_against == "codes":
        right_of_rows = codes_of_rows
    else:
        right = (x_hat.double() - mean).to(x.dtype) if protocol.centre else x_hat
        right_of_rows = right.__getitem__
    if protocol.cknna_batch_size is None:
        rows = torch.arange(x.shape[0])
        row["CKNNA"] = cknna(left, right_of_rows(rows), k=cknna_k, epsilon=protocol.cknna_epsilon, cache=cache,
                             cache_key=("all", protocol.centre))
    else:
        batched = cknna_batched(left, right_of_rows, protocol.cknna_batch_size, k=cknna_k,
                                seed=protocol.cknna_seed, epsilon=protocol.cknna_epsilon, cache=cache)
        row.update(CKNNA=batched["mean"], CKNNA_std=batched["std"], CKNNA_batches=batched["n_batches"],
                   CKNNA_batch_size=batched["batch_size"])
    return row


__all__ = ["PROTOCOLS", "Protocol", "get_protocol", "score_reconstruction"]
