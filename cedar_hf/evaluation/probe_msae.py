"""The linear probe of protocol `msae`: WolodjaZ/MSAE `linear_eval.py`, `train_linear_probe`, line by line.

- Inputs: the SAE's pre-processed embeddings (`SAEDataset.process_data`: minus the training mean, times a scale,
  with MSAE's default `mean_center=True`), L2-normalised — so the scale cancels and the probe sees
  `(x − μ) / ‖x − μ‖`. Reconstructions are mapped the same way.
- One `nn.Linear(d, n_classes)`, AdamW (lr 1e-3, PyTorch's default weight decay 0.01), batch 512, shuffled,
  cross-entropy, at most 100 epochs.
- After each epoch: macro-F1 on the *evaluation* data (MSAE selects on the set it then scores);
  `ReduceLROnPlateau(mode="max", factor=0.5, patience=5)` on it; early stop after 5 epochs without a new best.
- MSAE keeps `best_model = linear_probe.state_dict()` — a dict of references to the live parameters, so the
  "best" weights it reloads are in fact the last epoch's. We keep the last epoch's weights too (the measured
  behaviour of the code the paper ran), and record the epoch of the best F1 in `history`.
- Deviation: MSAE asserts every evaluation label occurs in training; we select on the rows whose label does
  (LP then skips the others, counted in `n_unknown_labels`).

The CEDAR paper then reports the probe's cross-entropy against the labels on reconstructions (its "LP"); MSAE's
own script reports KL and argmax agreement (`LinearProbe.agreement`). Both are computed.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from .probe import LinearProbe, encode_labels


def macro_f1(target: torch.Tensor, predicted: torch.Tensor) -> float:
    """sklearn's `f1_score(average="macro")`: the mean per-class F1 = 2TP / (2TP + FP + FN) over every class that
    occurs in `target` or `predicted`."""
    classes = torch.unique(torch.cat([target, predicted]))
    scores = []
    for c in classes:
        tp = int(((predicted == c) & (target == c)).sum())
        fp = int(((predicted == c) & (target != c)).sum())
        fn = int(((predicted != c) & (target == c)).sum())
        scores.append(2 * tp / (2 * tp + fp + fn))
    return float(sum(scores) / len(scores))


def train_linear_probe_msae(x: torch.Tensor, labels: Sequence, x_eval: torch.Tensor, eval_labels: Sequence,
                            center: torch.Tensor, epochs: int = 100, batch_size: int = 512,
                            learning_rate: float = 1e-3, patience: int = 5, seed: int = 42,
                            progress: bool = True) -> LinearProbe:
    """Train MSAE's probe on `x` (training embeddings) with model selection on `x_eval`; see the module text."""
    target, classes = encode_labels(labels)
    if len(classes) < 2:
        raise ValueError(f"a linear probe needs at least 2 classes, got {len(classes)}: {classes}")
    if target.numel() != x.shape[0]:
        raise ValueError(f"{target.numel()} labels for {x.shape[0]} embeddings")
    eval_target, _ = encode_labels(eval_labels, classes)
    known = eval_target >= 0  # MSAE asserts every evaluation label is a training label; we select on those rows
    if not bool(known.any()):
        raise ValueError(f"none of the {eval_target.numel()} evaluation labels occurs in the training labels")
    x_eval, eval_target = x_eval[known], eval_target[known]
    x = x.reshape(x.shape[0], -1).float()
    center = torch.as_tensor(center).reshape(-1).float()
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    probe = LinearProbe(nn.Linear(x.shape[1], len(classes)), classes, center, torch.ones(()), normalize=True)
    inputs = probe.inputs(x)
    optimizer = torch.optim.AdamW(probe.linear.parameters(), lr=learning_rate)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.5, patience=5)
    best, since_best = 0.0, 0
    for epoch in tqdm(range(epochs), desc="linear probe (MSAE)", disable=not progress, leave=False):
        probe.linear.train()
        for index in torch.randperm(x.shape[0], generator=generator).split(batch_size):
            loss = nn.functional.cross_entropy(probe.linear(inputs[index]), target[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        probe.linear.eval()
        f1 = macro_f1(eval_target, probe.logits(x_eval).argmax(-1))
        scheduler.step(f1)
        probe.history.append({"epoch": epoch, "eval_macro_f1": f1, "lr": optimizer.param_groups[0]["lr"],
                              "best": f1 > best})
        if f1 > best:
            best, since_best = f1, 0
        else:
            since_best += 1
            if since_best >= patience:
                break
    return probe


__all__ = ["macro_f1", "train_linear_probe_msae"]
