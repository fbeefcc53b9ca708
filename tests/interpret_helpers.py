"""Shared pieces of the interpretation tests: a fake word backbone and a quick CEDAR fit on planted data."""

from __future__ import annotations

import torch

from builders import build_model, planted_sparse, random_rotation


class WordBackbone:
    """A fake text backbone: each word has a fixed embedding `mean + 2·direction`; prompts are recorded and
    stripped (so "a photo of dog" embeds like "dog"). Unknown texts embed as the mean of their known words."""

    name_or_path = "fake/word-backbone"

    def __init__(self, words: list[str], directions: torch.Tensor, mean: torch.Tensor):
        self.table = {w: mean + 2.0 * directions[i] for i, w in enumerate(words)}
        self.mean = mean
        self.site_dims = {"text_embeds": mean.numel()}
        self.seen_prompts: list = []
        self.calls = 0

    def embed_texts(self, texts, batch_size=64, prompt=None):
        self.calls += 1
        self.seen_prompts.append(prompt)
        rows = []
        for text in texts:
            word = text
            if prompt is not None:
                prefix, suffix = prompt.split("{}")
                word = text.removeprefix(prefix.format()).removesuffix(suffix)
            if word in self.table:
                rows.append(self.table[word])
            else:
                known = [self.table[w] for w in word.split() if w in self.table]
                rows.append(torch.stack(known).mean(0) if known else self.mean.clone())
        return torch.stack(rows)


def planted_word_world(d: int = 32, n_distractors: int = 300, seed: int = 0, offset: float = 3.0):
    """`d` planted words whose centred embeddings are the rows of a random rotation, plus random distractors.
    Returns (backbone, vocabulary, planted_words, atoms (d, d), mean)."""
    g = torch.Generator().manual_seed(seed)
    atoms = random_rotation(d, g)  # (d, d) rows: planted concept directions
    distractors = torch.nn.functional.normalize(torch.randn(n_distractors, d, generator=g), dim=-1)
    planted = [f"planted{i}" for i in range(d)]
    vocabulary = planted + [f"word{i}" for i in range(n_distractors)]
    mean = offset * torch.nn.functional.normalize(torch.randn(d, generator=g), dim=0)
    backbone = WordBackbone(vocabulary, torch.cat([atoms, distractors]), mean)
    return backbone, vocabulary, planted, atoms, mean


def fit_cedar(z: torch.Tensor, k: int, steps: int = 600, curriculum: int = 300, lr: float = 3e-2, batch: int = 512):
    """A quick CEDAR fit (k curriculum from d down to k, then fixed k) — enough for planted data in small d."""
    d = z.shape[1]
    model = build_model("cedar", d_in=d, k=k, init_std=0.0)
    model.set_mean(z.mean(0))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(1)
    for step in range(steps):
        k_now = round(d + min(step / curriculum, 1.0) * (k - d))
        x = z[torch.randint(0, z.shape[0], (batch,), generator=g)]
        loss = model(x, k=k_now).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def planted_cedar(d: int = 32, k: int = 3, n: int = 4000, seed: int = 0):
    """A CEDAR trained on data whose atoms are the planted words' centred embeddings."""
    backbone, vocabulary, planted, atoms, mean = planted_word_world(d, seed=seed)
    z, _, _ = planted_sparse(n, d, k, atoms=atoms, seed=seed, offset=0.0)
    z = z + mean  # the data live around the words' mean, like real embeddings
    return fit_cedar(z, k), backbone, vocabulary, planted, atoms
