"""Held-out metrics during training: FVU against the training mean, L0, latents that never fire."""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from ..data import EmbeddingStream


@torch.no_grad()
def evaluate_stream(model, stream: EmbeddingStream, train_mean: torch.Tensor, batch_rows: int = 4096,
                    max_rows: Optional[int] = None, k: Optional[int] = None,
                    with_loss: bool = False) -> dict[str, float]:
    """
    `fvu = Σ‖x − x̂‖² / Σ‖x − μ‖²` (μ the training mean, Gao et al. 2024), the mean L0 and the share of latents
    that never fire, over the held-out rows (all tokens), at the model's default k (or `k`). `with_loss` adds
    `loss`: the model's own objective (`model(x).loss` in eval mode, e.g. NMSE + λ·L1 for a ReLU SAE), averaged
    over rows — what a plateau on a penalised objective has to watch, since its FVU may rise as it sparsifies.
    """
    was_training = model.training
    model.eval()
    device = next(iter(model.parameters()), train_mean).device
    mean = train_mean.to(device=device, dtype=torch.float64)
    error = total = l0 = loss = 0.0
    tokens = 0
    fired = None
    positions = np.arange(min(len(stream), max_rows or len(stream)))
    for block in stream.iter_blocks(batch_rows, positions):
        x = torch.from_numpy(block).reshape(-1, stream.dim).to(device)
        if with_loss:  # one pass: the eval-mode forward's codes and reconstruction are encode's and decode's
            out = model(x, k=k)
            codes, x_hat = out.codes, out.reconstruction
            loss += float(out.loss.double()) * x.shape[0]
        else:
            codes = model.encode(x, k=k)
            x_hat = model.decode(codes)
        error += float((x.double() - x_hat.double()).pow(2).sum())
        total += float((x.double() - mean).pow(2).sum())
        active = codes != 0
        l0 += float(active.sum())
        fired = active.any(0) if fired is None else fired | active.any(0)
        tokens += x.shape[0]
    model.train(was_training)
    result = {
        "fvu": error / max(total, np.finfo(np.float64).tiny),
        "l0": l0 / tokens,
        "never_active_fraction": float(1.0 - fired.float().mean()),
    }
    if with_loss:
        result["loss"] = loss / tokens
    return result


__all__ = ["evaluate_stream"]
