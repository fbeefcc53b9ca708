"""Train overcomplete 0.3.0's TopKSAE and BatchTopKSAE on the benchmark's tensors and export what the contract needs.

Runs INSIDE the separate venv `scripts/benchmark_quality.py` creates (benchmarks/cache/overcomplete-venv), so
overcomplete never becomes a dependency of cedar-hf. Input: a `torch.save`d dict with `train`, `val` (float32),
`mean`, `scale` (the SAE standardisation of cedar-hf: x_c = (x − μ)·s). Output per model: the encoder's Linear
weight and bias, the (fused, eval-mode) dictionary, the inference rule (top-k or the running threshold, which
overcomplete keeps as a plain attribute outside the state_dict) and overcomplete's own codes and reconstructions
of the validation tensors, so the caller can check its re-expression of the model against overcomplete itself.

    python scripts/benchmark_quality_overcomplete.py IN.pt OUT.pt --steps 1000 --batch-size 1024
"""

import argparse
import time

import torch
from overcomplete.sae import BatchTopKSAE, TopKSAE, train_sae
from overcomplete.sae.losses import top_k_auxiliary_loss
from torch.utils.data import DataLoader, TensorDataset


def train_one(kind: str, x_c: torch.Tensor, n_latents: int, k: int, steps: int, batch_size: int, lr: float):
    torch.manual_seed(0)
    d = x_c.shape[1]
    if kind == "topk":
        model = TopKSAE(d, nb_concepts=n_latents, top_k=k)
    else:  # overcomplete's BatchTopK counts top_k over the WHOLE batch: k per sample × batch size
        model = BatchTopKSAE(d, nb_concepts=n_latents, top_k=k * batch_size, threshold_momentum=0.99)
    loader = DataLoader(TensorDataset(x_c), batch_size=batch_size, shuffle=True, drop_last=True)
    epochs = max(1, round(steps / len(loader)))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    started = time.time()
    logs = train_sae(model, loader, top_k_auxiliary_loss, optimizer, nb_epochs=epochs, monitoring=1)
    return model.eval(), {"epochs": epochs, "steps": epochs * len(loader), "seconds": time.time() - started,
                          "final_r2": logs["r2"][-1] if logs.get("r2") else None}


@torch.no_grad()
def export(model, kind: str, val_c: torch.Tensor, k: int) -> dict:
    linear = model.encoder.final_block[0]
    _, codes, x_hat_c = model(val_c)
    threshold = getattr(model, "running_threshold", None)
    return {
        "rule": kind,
        "k": k,
        "W_enc": linear.weight.detach().clone(),
        "b_enc": linear.bias.detach().clone(),
        "dictionary": model.get_dictionary().detach().clone(),
        "threshold": float(threshold) if threshold is not None else None,
        "val_codes": codes.to_sparse(),
        "val_reconstruction_c": x_hat_c,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs")
    parser.add_argument("output")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--expansion", type=int, default=8)
    parser.add_argument("--lr", type=float, default=5e-4)
    args = parser.parse_args()
    data = torch.load(args.inputs)
    standardize = lambda x: (x - data["mean"]) * data["scale"]  # noqa: E731
    train_c, val_c = standardize(data["train"]), standardize(data["val"])
    n_latents = args.expansion * train_c.shape[1]
    result = {"overcomplete_version": __import__("overcomplete").__version__ if hasattr(__import__("overcomplete"),
                                                                                        "__version__") else "0.3.0"}
    for kind, k in (("topk", 64), ("batchtopk", 32)):
        model, info = train_one(kind, train_c, n_latents, k, args.steps, args.batch_size, args.lr)
        result[kind] = {**export(model, kind, val_c, k), **info}
        print(f"{kind}: {info}")
    torch.save(result, args.output)


if __name__ == "__main__":
    main()
