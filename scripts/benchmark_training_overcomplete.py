"""A worker that trains overcomplete 0.3.0's TopKSAE on command, for `scripts/benchmark_training.py`.

Runs INSIDE the separate overcomplete venv (overcomplete never becomes a dependency of cedar-hf) and reads one
JSON command per line on stdin, answering one JSON line on stdout, so the caller can interleave its steps
round-robin with cedar-hf's models (the caller waits while the worker runs: they never share the cores).

A step is the body of `overcomplete.sae.train_sae` with `monitoring=0`: zero_grad, forward, the
`top_k_auxiliary_loss` criterion, the dead-code tracker update, backward, Adam step.

    {"cmd": "setup", "name": "speed", "inputs": "x.pt", "n_latents": 6144, "k": 64, "lr": 5e-4, "batch": 1024}
    {"cmd": "steps", "name": "speed", "n": 5}      -> {"times": [seconds per step, ...]}
    {"cmd": "eval", "name": "speed"}               -> {"fvu": ..., "l0": ...}   (on the `val` tensor)
"""

import json
import sys
import time

import torch
from overcomplete.sae import TopKSAE
from overcomplete.sae.losses import top_k_auxiliary_loss
from overcomplete.sae.trackers import DeadCodeTracker


class Run:
    def __init__(self, inputs: str, n_latents: int, k: int, lr: float, batch: int, seed: int = 0):
        data = torch.load(inputs)
        self.train, self.val, self.batch = data["train"], data.get("val"), batch
        torch.manual_seed(seed)
        self.model = TopKSAE(self.train.shape[1], nb_concepts=n_latents, top_k=k)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.generator = torch.Generator().manual_seed(seed)
        self.order, self.position = torch.empty(0, dtype=torch.long), 0
        self.tracker = None

    def next_batch(self) -> torch.Tensor:
        if len(self.train) == self.batch:  # the speed test: one fixed batch
            return self.train
        if self.position + self.batch > len(self.order):  # a new epoch, reshuffled; the last partial batch dropped
            self.order, self.position = torch.randperm(len(self.train), generator=self.generator), 0
        rows = self.order[self.position:self.position + self.batch]
        self.position += self.batch
        return self.train[rows]

    def step(self) -> float:
        x = self.next_batch()
        started = time.perf_counter()
        self.model.train()
        self.optimizer.zero_grad()
        z_pre, z, x_hat = self.model(x)
        loss = top_k_auxiliary_loss(x, x_hat, z_pre, z, self.model.get_dictionary())
        if self.tracker is None:
            self.tracker = DeadCodeTracker(z.shape[1], x.device)
        self.tracker.update(z)
        loss.backward()
        self.optimizer.step()
        return time.perf_counter() - started

    @torch.no_grad()
    def evaluate(self) -> dict:
        """FVU of the standardised held-out rows (their mean is ~0: standardised with the training mean)."""
        self.model.eval()
        _, z, x_hat = self.model(self.val)
        error = float((self.val.double() - x_hat.double()).pow(2).sum())
        total = float(self.val.double().pow(2).sum())
        return {"fvu": error / total, "l0": float((z != 0).sum(-1).double().mean())}


def main() -> None:
    torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else torch.get_num_threads())
    runs = {}
    for line in sys.stdin:
        command = json.loads(line)
        try:
            if command["cmd"] == "setup":
                runs[command["name"]] = Run(command["inputs"], command["n_latents"], command["k"], command["lr"],
                                            command["batch"], command.get("seed", 0))
                answer = {"ok": True, "torch": torch.__version__, "threads": torch.get_num_threads()}
            elif command["cmd"] == "steps":
                answer = {"times": [runs[command["name"]].step() for _ in range(command["n"])]}
            elif command["cmd"] == "eval":
                answer = runs[command["name"]].evaluate()
            elif command["cmd"] == "drop":
                runs.pop(command["name"], None)
                answer = {"ok": True}
            else:
                answer = {"error": f"unknown command {command['cmd']!r}"}
        except Exception as error:  # reported to the caller, which raises it with the command
            answer = {"error": f"{type(error).__name__}: {error}"}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
