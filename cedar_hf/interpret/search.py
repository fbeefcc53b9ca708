"""Concept search: index an embedding dataset's sparse codes, then query by concept names or by an example.

    index = ConceptIndex(dictionary, "embeddings/")           # encodes every row once
    index.search(concepts=["dog", "beach"], n=5)              # rows where those concepts are strongest together
    index.search(example="a dog running on sand", backbone=backbone, n=5)
    index.explain_match("a dog running on sand", row=17, backbone=backbone)   # why that row matched, exactly

Two spaces:
- `"codes"` (default): rows are compared through their k-sparse codes. A concept query scores a row by the sum of
  its coefficients on the named latents, oriented by each name (see `name_concepts`); an example
  query by the cosine between sparse codes. Both are exact sparse products over `N·k` non-zeros (scipy), which
  beats any approximate kNN index at these sizes, so no index library is used here.
- "Explain this match": `explain_match(example, row)` splits the similarity of the query and a row's embedding over
  the concepts with `attribute_similarity` (exact for CEDAR: the top-k axes, the other axes and the mean terms add up
  to the cosine); `search(..., explain=True)` attaches the strongest terms to every result as `why`. It explains the
  embeddings' own similarity, which the codes-space ranking approximates with k terms.
- `"reconstruction"`: an example query compares dense reconstructions `x̂` by cosine — a dense kNN problem, served
  by faiss (`IndexFlatIP`, exact inner product on unit vectors) when `faiss-cpu` is installed, else numpy.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import numpy as np
import scipy.sparse as sp
import torch

from cedar_hf.analysis.codes import compute_codes
from cedar_hf.data import load_dataset

from .attribution import SimilarityAttribution, attribute_similarity
from .explanations import _embed
from .naming import resolve_backbone

SPACES = ("codes", "reconstruction")


def resolve_concepts(dictionary, concepts: Union[str, int, Sequence[Union[str, int]]]) -> list[tuple[int, float]]:
    """(latent, direction) per concept: the code direction (±1) in which the concept grows. A name counts with its
    axis' `sign` (see `name_concepts`), an `opposite` name with the other sign, a latent index with +1."""
    concepts = [concepts] if isinstance(concepts, (str, int)) else list(concepts)
    entries = (dictionary.concept_names or {}).get("names", [])
    labels = dictionary.concept_labels
    resolved, missing = [], []
    for concept in concepts:
        if isinstance(concept, int) or (isinstance(concept, str) and concept.strip().isdigit()):
            latent = int(concept)
            if not 0 <= latent < len(labels):
                raise ValueError(f"latent {latent} is out of range [0, {len(labels)})")
            resolved.append((latent, 1.0))
            continue
        found = [(int(e["latent"]), float(e.get("sign", 1))) for e in entries if e["name"] == concept]
        found += [(int(e["latent"]), -float(e.get("sign", 1))) for e in entries
                  if (e.get("opposite") or {}).get("name") == concept]
        if not found:  # unnamed dictionaries: "latent i" labels
            found = [(i, 1.0) for i, label in enumerate(labels) if label == concept]
        (resolved.extend(found) if found else missing.append(concept))
    if missing:
        raise ValueError(f"no latent is named {missing}; known names include {labels[:8]}")
    return resolved


class ConceptIndex:
    """Sparse codes of every row of an embedding dataset, searchable by concept names or by an example.

    Args:
        dictionary: any cedar-hf dictionary (named for name queries).
        data: an embedding dataset (folder, `datasets.Dataset` with `embedding`, optionally `id`/`text`/`label`/
            `modality`) or a tensor `(N, d)`.
        k: active latents per row (the dictionary's default when None).
        space: "codes" or "reconstruction" for example queries (see the module docstring).
    """

    def __init__(self, dictionary, data: Any, k: Optional[int] = None, space: str = "codes",
                 batch_size: int = 1024, progress: bool = True):
        if space not in SPACES:
            raise ValueError(f"space={space!r} must be one of {SPACES}")
        self.dictionary, self.k, self.space = dictionary, k, space
        self.dataset = None if isinstance(data, (torch.Tensor, np.ndarray)) else load_dataset(data)
        self._tensor = torch.as_tensor(data, dtype=torch.float32) if self.dataset is None else None
        self.codes: sp.csr_matrix = compute_codes(dictionary, data, batch_size=batch_size, k=k, progress=progress)
        norms = np.sqrt(np.asarray(self.codes.multiply(self.codes).sum(1)).ravel())
        self._unit_codes = sp.diags(1.0 / np.maximum(norms, 1e-12)) @ self.codes
        self._dense = self._build_dense_index() if space == "reconstruction" else None

    def __len__(self) -> int:
        return self.codes.shape[0]

    def _build_dense_index(self):
        with torch.no_grad():
            x_hat = self.dictionary.decode(torch.from_numpy(self.codes.toarray()).float()).numpy()
        x_hat = np.ascontiguousarray(x_hat / np.maximum(np.linalg.norm(x_hat, axis=1, keepdims=True), 1e-12),
                                     dtype=np.float32)
        try:
            import faiss
        except ImportError:
            return ("numpy", x_hat)
        index = faiss.IndexFlatIP(x_hat.shape[1])
        index.add(x_hat)
        return ("faiss", index)

    def _rows(self, order: np.ndarray, scores: np.ndarray, matches: Optional[np.ndarray] = None) -> list[dict]:
        columns = set(getattr(self.dataset, "column_names", []) or [])
        results = []
        for i, (row, score) in enumerate(zip(order.tolist(), scores.tolist())):
            record = self.dataset[int(row)] if self.dataset is not None else {}
            results.append({"row": int(row), "score": float(score),
                            **({"matches": int(matches[i])} if matches is not None else {}),
                            **{key: (record.get(key) if key in columns else None)
                               for key in ("id", "text", "modality", "label")}})
        return results

    @staticmethod
    def _top(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        n = min(n, scores.size)
        part = np.argpartition(-scores, n - 1)[:n]
        order = part[np.argsort(-scores[part], kind="stable")]
        return order, scores[order]

    def search_concepts(self, concepts, n: int = 10) -> list[dict]:
        """Rows ranked first by how many of the concepts are active on the named end (all of them first), then by
        the sum of their signed coefficients; rows where none is active are left out."""
        query = np.zeros(self.codes.shape[1], dtype=np.float64)
        for latent, sign in resolve_concepts(self.dictionary, concepts):
            query[latent] += sign
        columns = np.flatnonzero(query)
        signed = self.codes[:, columns].multiply(np.sign(query[columns])).tocsr()  # (N, q): > 0 on the named end
        matches = np.asarray((signed > 0).sum(1)).ravel()
        scores = np.asarray(self.codes @ query).ravel()
        order = np.lexsort((-scores, -matches))
        order = order[matches[order] > 0][:n]
        return self._rows(order, scores[order], matches[order])

    def _embed_example(self, example, backbone) -> torch.Tensor:
        if isinstance(example, (torch.Tensor, np.ndarray)):
            return torch.as_tensor(example, dtype=torch.float32).reshape(1, -1)
        backbone = resolve_backbone(backbone, self.dictionary)
        site = getattr(self.dictionary.config, "embedding_site", None)
        x, _, _ = _embed([example], backbone, site, "search")
        return x.reshape(1, -1) if x.dim() == 2 else x.mean(1)

    def search_example(self, example, n: int = 10, backbone=None) -> list[dict]:
        """Rows nearest to an example (a text, an image, or an embedding) in this index's space."""
        x = self._embed_example(example, backbone)
        with torch.no_grad():
            code = self.dictionary.encode(x, k=self.k).double().numpy().ravel()
        if self.space == "codes":
            scores = np.asarray(self._unit_codes @ (code / max(np.linalg.norm(code), 1e-12))).ravel()
            return self._rows(*self._top(scores, n))
        with torch.no_grad():
            x_hat = self.dictionary.decode(torch.from_numpy(code).float().reshape(1, -1)).numpy()
        x_hat = (x_hat / max(np.linalg.norm(x_hat), 1e-12)).astype(np.float32)
        kind, index = self._dense
        if kind == "faiss":
            scores, order = index.search(x_hat, min(n, len(self)))
            return self._rows(order[0], scores[0])
        return self._rows(*self._top(index @ x_hat[0], n))

    def row_embedding(self, row: int) -> torch.Tensor:
        """The embedding `(d,)` of one indexed row (pooled rows only: token rows have no single vector)."""
        if not 0 <= int(row) < len(self):
            raise ValueError(f"row={row} is out of range [0, {len(self)})")
        x = self._tensor[int(row)] if self._tensor is not None else torch.as_tensor(
            self.dataset[int(row)]["embedding"], dtype=torch.float32)
        if x.dim() != 1:
            raise ValueError(f"row {row} holds a token matrix of shape {tuple(x.shape)}; explaining a match needs "
                             "pooled embeddings (image_embeds, text_embeds)")
        return x

    def explain_match(self, example, row: int, backbone=None, k: Optional[int] = None) -> SimilarityAttribution:
        """Why `row` matches `example` (a text, an image or an embedding): their similarity split over the concepts
        (`attribute_similarity`; k defaults to this index's k)."""
        query = self._embed_example(example, backbone)[0]
        attribution = attribute_similarity(self.dictionary, query, self.row_embedding(row), k=k or self.k)
        record = self.dataset[int(row)] if self.dataset is not None else {}
        source = record.get("text") or record.get("id") or f"row {row}"
        attribution.sources = ("query" if not isinstance(example, str) else example, str(source))
        return attribution

    def search(self, concepts=None, example=None, n: int = 10, backbone=None, explain: bool = False,
               terms: int = 3) -> list[dict]:
        """`search_concepts(concepts)` or `search_example(example)`: give exactly one of them. With `explain=True`
        (example queries) every result gets `why`: its `terms` strongest (concept, share of the cosine) pairs, the
        residual and the mean terms (see `explain_match`)."""
        if (concepts is None) == (example is None):
            raise ValueError("give exactly one of concepts=[names] or example=(text, image or embedding)")
        if n < 1:
            raise ValueError(f"n={n} must be at least 1")
        if concepts is not None:
            return self.search_concepts(concepts, n)
        results = self.search_example(example, n, backbone)
        if explain:
            query = self._embed_example(example, backbone)[0]  # embedded once, explained against every result
            for result in results:
                why = attribute_similarity(self.dictionary, query, self.row_embedding(result["row"]), k=self.k)
                result["why"] = {"cosine": why.cosine, "terms": [[label, share] for label, share in why.terms(terms, "cosine")]}
        return results


__all__ = ["ConceptIndex", "resolve_concepts"]
