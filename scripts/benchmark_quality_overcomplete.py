"""Train overcomplete 0.3.0's TopKSAE and BatchTopKSAE on the benchmark's tensors and export what the contract needs.

Runs INSIDE the separate venv `scripts/benchmark_quality.py` creates (benchmarks/cache/overcomplete-venv), so
overcomplete never becomes a dependency of cedar-hf. Input: a `torch.save`d dict with `train`, `val` (float32),
`mean`, `scale` (the SAE standardisation of cedar-hf: x_c = (x − μ)·s). Output per model: the encoder's Linear
weight and bias, the (fused, eval-mode) dictionary, the inference rule (top-k or the running threshold, which
overcomplete keeps as a plain attribute outside the state_dict) and overcomplete's own codes and reconstructions
of the validation tensors, so the caller can check its re-expression of the model against overcomplete itself.

Training runs epoch by epoch with overcomplete's own `train_sae` (Adam, `top_k_auxiliary_loss`) and stops on the
same held-out plateau rule as cedar-hf's `cedar-hf` recipe: the held-out FVU (dataset level, in the standardised
space) has not improved by `--min-delta` (relative) for `--patience` epochs, or `--max-epochs` is reached; for
BatchTopK, evaluations in the running threshold's first 459 steps (momentum 0.99) do not count. A checkpoint
after every epoch (`OUT.pt.{kind}.ckpt`, written atomically) lets a run cut short continue exactly where it
stopped; it is removed once OUT.pt is written.

    python scripts/benchmark_quality_overcomplete.py IN.pt OUT.pt --seed 0 --max-epochs 30 --batch-size 1024
"""

import argparse
import math
import os
from pathlib import Path
import time

import torch
from overcomplete.sae import BatchTopKSAE, TopKSAE, train_sae
from overcomplete.sae.losses import top_k_auxiliary_loss
from torch.utils.data import DataLoader, TensorDataset


def held_out_fvu(model, val_c: torch.Tensor, train_mean_c: torch.Tensor) -> float:
    with torch.no_grad():
        model.eval()
        _, _, x_hat = model(val_c)
        model.train()
    return float((val_c - x_hat).pow(2).sum() / (val_c - train_mean_c).pow(2).sum())


def train_one(kind: str, x_c: torch.Tensor, val_c: torch.Tensor, n_latents: int, k: int, args) -> tuple:
    torch.manual_seed(args.seed)
    d = x_c.shape[1]
    if kind == "topk":
        model = TopKSAE(d, nb_concepts=n_latents, top_k=k)
    else:  # overcomplete's BatchTopK counts top_k over the WHOLE batch: k per sample × batch size
        model = BatchTopKSAE(d, nb_concepts=n_latents, top_k=k * args.batch_size, threshold_momentum=0.99)
    generator = torch.Generator().manual_seed(args.seed)
    loader = DataLoader(TensorDataset(x_c), batch_size=args.batch_size, shuffle=True, drop_last=True,
                        generator=generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    started, best, bad, history, done, earlier_seconds = time.time(), float("inf"), 0, [], 0, 0.0
    # as cedar-hf's recipe: evaluations before the running threshold has forgotten its start (momentum^t ≤ 1 %)
    # do not count towards the plateau; TopK has no such state
    settling = math.ceil(math.log(0.01) / math.log(0.99)) if kind == "batchtopk" else 0
    train_mean_c = x_c.mean(0)
    checkpoint = Path(f"{args.output}.{kind}.ckpt")
    run = {"kind": kind, "seed": args.seed, "max_epochs": args.max_epochs, "patience": args.patience,
           "min_delta": args.min_delta, "batch_size": args.batch_size, "lr": args.lr, "eval_rows": args.eval_rows,
           "n_latents": n_latents, "k": k, "rows": x_c.shape[0]}
    if checkpoint.exists():  # a run cut short: continue it exactly, or refuse one of other settings
        state = torch.load(checkpoint, weights_only=False)
        if state["run"] != run:
            changed = {key: (state["run"].get(key), value) for key, value in run.items() if state["run"].get(key) != value}
            raise SystemExit(f"{checkpoint} belongs to a run with other settings {changed} (saved, now); delete it "
                             "to start afresh")
        model.load_state_dict(state["model"])
        if state["running_threshold"] is not None:
            model.running_threshold = state["running_threshold"]
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        best, bad, history, done, earlier_seconds = (state["best"], state["bad"], state["history"], state["epoch"],
                                                     state["seconds"])
        print(f"{kind} seed {args.seed}: resuming after epoch {done} from {checkpoint}", flush=True)
    epoch = done
    plateaued = lambda: args.patience > 0 and bad >= args.patience  # patience 0: no plateau stop, the whole budget
    while epoch < args.max_epochs and not plateaued():  # (a checkpoint of the stopping epoch ends at once)
        epoch += 1
        train_sae(model, loader, top_k_auxiliary_loss, optimizer, nb_epochs=1, monitoring=0)
        fvu = held_out_fvu(model, val_c[: args.eval_rows], train_mean_c)
        history.append({"epoch": epoch, "step": epoch * len(loader), "eval/fvu": fvu})
        print(f"{kind} seed {args.seed} epoch {epoch}: held-out FVU {fvu:.4f}", flush=True)
        if epoch * len(loader) > settling:
            if fvu < best * (1 - args.min_delta):
                best, bad = fvu, 0
            else:
                bad += 1
        seconds = earlier_seconds + time.time() - started
        _save_atomic({"run": run, "model": model.state_dict(), "running_threshold": getattr(model, "running_threshold",
                      None), "optimizer": optimizer.state_dict(), "generator": generator.get_state(),
                      "torch_rng": torch.get_rng_state(), "best": best, "bad": bad, "history": history,
                      "epoch": epoch, "seconds": seconds}, checkpoint)
    info = {"epochs": epoch, "steps": epoch * len(loader), "seconds": earlier_seconds + time.time() - started,
            "stopped_on_plateau": plateaued(), "history": history, "checkpoint": checkpoint}
    return model.eval(), info


def _save_atomic(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


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
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-epochs", type=int, default=30)
    parser.add_argument("--patience", type=int, default=3, help="epochs without --min-delta gain that stop a "
                        "training; 0: no plateau stop, every run trains --max-epochs")
    parser.add_argument("--min-delta", type=float, default=0.002)
    parser.add_argument("--eval-rows", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--expansion", type=int, default=8)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--kinds", nargs="+", default=["topk", "batchtopk"])
    args = parser.parse_args()
    data = torch.load(args.inputs)
    standardize = lambda x: (x - data["mean"]) * data["scale"]  # noqa: E731
    train_c, val_c = standardize(data["train"]), standardize(data["val"])
    n_latents = args.expansion * train_c.shape[1]
    result = {"overcomplete_version": "0.3.0", "seed": args.seed, "lr": args.lr, "batch_size": args.batch_size}
    checkpoints = []
    for kind, k in (("topk", 64), ("batchtopk", 32)):
        if kind not in args.kinds:
            continue
        model, info = train_one(kind, train_c, val_c, n_latents, k, args)
        checkpoints.append(info.pop("checkpoint"))
        result[kind] = {**export(model, kind, val_c, k), **info}
        print(f"{kind}: epochs {info['epochs']}, {info['seconds']:.0f} s")
    _save_atomic(result, Path(args.output))
    for checkpoint in checkpoints:  # the finished file holds everything they did
        checkpoint.unlink(missing_ok=True)

if __name__ == "__main__":
    main()
