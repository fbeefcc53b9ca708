"""LP: a linear classifier trained on original embeddings, scored on reconstructions (paper App. B, after MSAE).

The probe is trained once per dataset on the original training embeddings; every dictionary is then scored by the
probe's cross-entropy and accuracy on its reconstructions of held-out data (lower cross-entropy = more class
information preserved), plus the KL divergence between the probe's predictions on originals and reconstructions
and how often their argmax agrees (what MSAE's `linear_eval.py` reports). Two training recipes:
`train_linear_probe` (protocol `cedar-hf`: inputs centred by μ and divided by one global RMS, model selection on
a held-out slice of the *training* data) and `probe_msae.train_linear_probe_msae` (protocol `msae`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm


def encode_labels(labels: Sequence | torch.Tensor, classes: Optional[Sequence] = None) -> tuple[torch.Tensor, list]:
    """Map labels (strings or integers) to class indices. Returns `(indices (N,), classes)`; with `classes` given,
    labels outside it get index -1 (scored as unknown)."""
    values = labels.tolist() if isinstance(labels, torch.Tensor) else list(labels)
    if classes is None:
        classes = sorted(set(values), key=lambda v: (str(type(v)), v))
    lookup = {c: i for i, c in enumerate(classes)}
    return torch.tensor([lookup.get(v, -1) for v in values], dtype=torch.long), list(classes)


@dataclass
class LinearProbe:
    """A trained linear classifier over centred embeddings scaled by one number (`(x − center) / scale`), or, with
    `normalize=True`, L2-normalised after centring (`(x − center) / ‖x − center‖`, MSAE's recipe; `scale` unused).

    One global scale, not a per-dimension one: per-dimension standardisation blows low-variance directions up,
    the probe learns to lean on them, and reconstructions (which drop exactly those directions first) then get
    absurd logits — LP would measure that artefact instead of the class information kept."""

    linear: nn.Linear
    classes: list
    center: torch.Tensor
    scale: torch.Tensor
    history: list = field(default_factory=list)
    normalize: bool = False

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """What the linear layer sees for embeddings `x` `(B, d)`."""
        centred = x - self.center
        return torch.nn.functional.normalize(centred, dim=-1) if self.normalize else centred / self.scale

    @torch.no_grad()
    def logits(self, x: torch.Tensor, batch_size: int = 8192) -> torch.Tensor:
        x = x.reshape(-1, self.center.numel()).float()
        return torch.cat([self.linear(self.inputs(xb)) for xb in x.split(batch_size)])

    @torch.no_grad()
    def agreement(self, x: torch.Tensor, x_hat: torch.Tensor) -> dict:
        """MSAE's `valid_linear_probe`: mean over samples of KL(p(x) ‖ p(x̂)) of the probe's softmax, and the
        fraction of samples whose predicted class is the same: `{"kl", "argmax_agreement"}`."""
        original, reconstructed = self.logits(x).double(), self.logits(x_hat).double()
        log_p, log_q = original.log_softmax(-1), reconstructed.log_softmax(-1)
        kl = (log_p.exp() * (log_p - log_q)).sum(-1)
        same = original.argmax(-1) == reconstructed.argmax(-1)
        return {"kl": float(kl.mean()), "argmax_agreement": float(same.double().mean())}

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, labels: Sequence | torch.Tensor) -> dict:
        """`{"cross_entropy", "accuracy", "n"}` of the probe on `x` (rows whose label the probe never saw are
        left out and counted in `"n_unknown_labels"`)."""
        target, _ = encode_labels(labels, self.classes)
        if target.numel() != x.shape[0]:
            raise ValueError(f"{target.numel()} labels for {x.shape[0]} embeddings")
        known = target >= 0
        if not bool(known.any()):
            raise ValueError("none of the evaluation labels occurs in the probe's training labels")
        logits = self.logits(x[known])
        return {
            "cross_entropy": float(nn.functional.cross_entropy(logits.double(), target[known])),
            "accuracy": float((logits.argmax(-1) == target[known]).double().mean()),
            "n": int(known.sum()),
            "n_unknown_labels": int((~known).sum()),
        }


def train_linear_probe(
    x: torch.Tensor,
    labels: Sequence | torch.Tensor,
    epochs: int = 60,
    batch_size: int = 512,
    learning_rate: float = 1e-2,
    weight_decay: float = 1e-2,
    holdout_fraction: float = 0.1,
    patience: int = 2,
    seed: int = 0,
    progress: bool = True,
    center: Optional[torch.Tensor] = None,
) -> LinearProbe:
    """
    Train a linear classifier on original embeddings `x` `(N, d)` with AdamW; ReduceLROnPlateau (factor 0.1)
    watches the cross-entropy on a held-out `holdout_fraction` of the rows; training stops once the learning rate
    has dropped three times (or after `epochs`), and the best held-out epoch is kept. Small training sets use
    smaller batches (at least 20 steps per epoch). `center` (protocol `cedar-hf`: the training mean μ) replaces
    the mean of the fitted rows as the centring point.
    """
    target, classes = encode_labels(labels)
    if len(classes) < 2:
        raise ValueError(f"a linear probe needs at least 2 classes, got {len(classes)}: {classes}")
    if target.numel() != x.shape[0]:
        raise ValueError(f"{target.numel()} labels for {x.shape[0]} embeddings")
    if not 0 < holdout_fraction < 1:
        raise ValueError(f"holdout_fraction={holdout_fraction} must be in (0, 1)")
    x = x.reshape(x.shape[0], -1).float()
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(x.shape[0], generator=generator)
    n_hold = max(1, int(round(holdout_fraction * x.shape[0])))
    hold, fit = order[:n_hold], order[n_hold:]
    center = x[fit].mean(0) if center is None else torch.as_tensor(center).reshape(-1).float()
    if center.numel() != x.shape[1]:
        raise ValueError(f"center has {center.numel()} entries, expected d={x.shape[1]}")
    scale = (x[fit] - center).pow(2).sum(-1).mean().sqrt().clamp_min(1e-12) / x.shape[1] ** 0.5  # RMS per dim
    batch_size = max(1, min(batch_size, fit.numel() // 20))
    torch.manual_seed(seed)
    probe = LinearProbe(nn.Linear(x.shape[1], len(classes)), classes, center, scale)
    optimizer = torch.optim.AdamW(probe.linear.parameters(), lr=learning_rate, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.1, patience=patience)
    best = (float("inf"), None)
    for epoch in tqdm(range(epochs), desc="linear probe", disable=not progress, leave=False):
        probe.linear.train()
        for index in fit[torch.randperm(fit.numel(), generator=generator)].split(batch_size):
            loss = nn.functional.cross_entropy(probe.linear((x[index] - center) / scale), target[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        probe.linear.eval()
        held = nn.functional.cross_entropy(probe.logits(x[hold]), target[hold]).item()
        probe.history.append({"epoch": epoch, "holdout_cross_entropy": held, "lr": optimizer.param_groups[0]["lr"]})
        if held < best[0]:
            best = (held, {k: v.clone() for k, v in probe.linear.state_dict().items()})
        scheduler.step(held)
        if optimizer.param_groups[0]["lr"] < learning_rate * 1e-3 * 0.5:
            break  # three reductions: converged
    probe.linear.load_state_dict(best[1])
    return probe


__all__ = ["LinearProbe", "encode_labels", "train_linear_probe"]
