"""The concept explorer (the paper's VLM-Explore, §6) as a local Gradio app.

A UMAP of the concept directions, coloured by modality score and sized by energy — an interactive plotly map
(hover for names, zoom, click to select) beside a static PNG for download; search by name or by meaning (the query
embedded with the dictionary's backbone and compared with every concept direction); each concept shows its name
with its match score (weak names marked), its top-activating examples split by sign, each end under its own
name, its bridges and its nearest directions. Each concept has a shareable URL (`?concept=12`).

Bridges: for a general dictionary the partners are Eq. 6's bridge matrix (`E[z_a z_bᵀ] ⊙ cos`); for an
orthogonal one (CEDAR) that matrix is diagonal by construction, so the page shows the same-axis bridge
`E[z_a,i z_b,i]` and co-activation partners instead, and says which definition is shown (see `bridge.py`).
Everything is computed once at startup (`prepare_explorer_data`, cached on disk); the callbacks only look things
up, so they are also easy to call from tests.
"""

from __future__ import annotations

import logging
import os
from typing import Callable, Optional

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ..backbones import load_backbone
from .explorer_data import ExplorerData, prepare_explorer_data

logger = logging.getLogger(__name__)
MAP_SIZE = (9.0, 6.4)  # inches at 100 dpi -> a 900 × 640 px map
CSS = """
#concept-map img {cursor: crosshair}
.concept-card h2 {margin-bottom: 0.2em}
footer {display: none !important}
.cedar-hidden {display: none !important}
"""


class ConceptExplorer:
    """Lookups behind the app: `search`, `show`, `nearest`, `render_map`; `build()` makes the `gr.Blocks`."""

    def __init__(self, data: ExplorerData, embed_query: Optional[Callable[[str], np.ndarray]] = None,
                 explain_match: Optional[Callable[[int, int], str]] = None):
        """`embed_query(text) -> (d,)` enables search by meaning (the dictionary's backbone's text embedding);
        `explain_match(row_a, row_b) -> str` the "explain this match" view (e.g. `interpret.attribution.
        match_explainer`: the two rows' similarity split over the concepts)."""
        self.data = data
        self.embed_query = embed_query
        self.explain_match = explain_match
        self._base_map, self._pixels = self._draw_base_map()

    # ---- the map ----------------------------------------------------------------------------------------------
    def _draw_base_map(self) -> tuple[np.ndarray, np.ndarray]:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        d = self.data
        fig, ax = plt.subplots(figsize=MAP_SIZE, dpi=100)
        fig.subplots_adjust(left=0.02, right=0.86, bottom=0.03, top=0.93)
        relative = d.energy / max(d.energy.max(), np.finfo(float).tiny)
        sizes = 6 + 260 * np.sqrt(relative)
        alive = d.energy > 0
        order = [i for i in np.argsort(-sizes, kind="stable") if alive[i]]  # large points behind small ones
        if d.scores is not None:
            colors, cmap, vmin, vmax = np.nan_to_num(d.scores, nan=0.5), "coolwarm", 0.0, 1.0
            label = f"modality score   (0 = {d.modality_names[1]} only, 1 = {d.modality_names[0]} only)"
        else:
            colors = np.log10(np.where(alive, d.energy, 1.0))
            cmap, vmin, vmax, label = "viridis", colors[alive].min() if alive.any() else 0, None, "log10 energy"
        points = ax.scatter(d.layout[order, 0], d.layout[order, 1], s=sizes[order], c=colors[order], cmap=cmap,
                            vmin=vmin, vmax=vmax, alpha=0.8, linewidths=0.3, edgecolors="#333333")
        if not alive.all():
            ax.scatter(d.layout[~alive, 0], d.layout[~alive, 1], s=6, c="#bbbbbb", linewidths=0,
                       label=f"never active ({int((~alive).sum())})")
            ax.legend(loc="lower right", fontsize=8, frameon=False)
        colorbar = fig.colorbar(points, ax=ax, fraction=0.04, pad=0.02)
        colorbar.set_label(label)
        ax.set_title(f"{d.n_latents} concepts of {d.title}: UMAP of directions, size = energy (click a point)",
                     fontsize=11)
        for i in np.argsort(-d.energy, kind="stable")[: min(15, int(alive.sum()))]:  # name the heaviest concepts
            ax.annotate(d.labels[i], d.layout[i], fontsize=8, color="#222222", xytext=(4, 4),
                        textcoords="offset points", alpha=0.85)
        ax.set_xticks([]), ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_color("#cccccc")
        fig.canvas.draw()
        image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
        pixels = ax.transData.transform(d.layout)  # display coords, origin bottom-left
        pixels[:, 1] = image.shape[0] - pixels[:, 1]
        plt.close(fig)
        return image, pixels

    def render_map(self, concept: Optional[int] = None) -> np.ndarray:
        """The map `(H, W, 3)` with `concept` ringed and lines to its bridge partners (or nearest directions)."""
        if concept is None:
            return self._base_map

        image = Image.fromarray(self._base_map)
        draw = ImageDraw.Draw(image)
        x0, y0 = self._pixels[concept]
        for other in self.related(concept):
            x1, y1 = self._pixels[other]
            draw.line([(x0, y0), (x1, y1)], fill=(255, 127, 14), width=2)
            draw.ellipse([x1 - 6, y1 - 6, x1 + 6, y1 + 6], outline=(255, 127, 14), width=2)
        draw.ellipse([x0 - 11, y0 - 11, x0 + 11, y0 + 11], outline=(0, 0, 0), width=3)
        font = ImageFont.load_default(size=15)
        label = f"#{concept} {self.data.labels[concept]}"
        draw.text((x0 + 14, y0 - 9), label, fill=(0, 0, 0), font=font, stroke_width=3, stroke_fill=(255, 255, 255))
        return np.asarray(image)

    def nearest(self, x: float, y: float) -> int:
        """The concept drawn closest to pixel `(x, y)` of the map."""
        return int(np.argmin(((self._pixels - np.array([x, y])) ** 2).sum(1)))

    def related(self, concept: int) -> list[int]:
        d = self.data
        source = d.partners if d.partners is not None else d.neighbors
        return [int(j) for j in source[concept]]

    # ---- lookups ----------------------------------------------------------------------------------------------
    def _modality_text(self, i: int) -> str:
        d = self.data
        if d.scores is None:
            return ""
        score = d.scores[i]
        if not np.isfinite(score):
            return "never active"
        a, b = d.modality_names
        side = a if score >= 0.8 else b if score <= 0.2 else "both" if 0.4 <= score <= 0.6 else (
            f"mostly {a}" if score > 0.5 else f"mostly {b}")
        return f"{score:.2f} ({side})"

    def display_name(self, i: int) -> str:
        """The concept's name, with `?` when weak."""
        d = self.data
        weak = d.weak is not None and bool(d.weak[i])
        return d.labels[i] + ("?" if weak else "")

    def _row(self, i: int, value: float, match: str = "") -> list:
        """A table row `[concept, name, value]` plus the modality when the data has modalities."""
        modality = [self._modality_text(i)] if self.data.scores is not None else []
        return [i, self.display_name(i), float(f"{value:.4g}")] + modality

    def search_meaning(self, query: str, limit: int = 20) -> list[tuple[int, float]]:
        """Concepts whose (oriented) direction is closest to the query's embedding relative to the dictionary's
        centre: `cos(embed(query) − decode(0), direction_i)`, best first. [] without an embedder."""
        d = self.data
        if self.embed_query is None or d.directions is None or not query.strip():
            return []
        q = np.asarray(self.embed_query(query), dtype=np.float64).reshape(-1)
        if q.shape[0] != d.directions.shape[1]:
            raise ValueError(f"the query embedding is {q.shape[0]}-d but the concepts are {d.directions.shape[1]}-d: "
                             "embed queries with the dictionary's backbone")
        q = q - (d.origin if d.origin is not None else 0.0)
        cos = d.directions @ q / max(np.linalg.norm(q), 1e-12)
        order = np.argsort(-cos, kind="stable")[:limit]
        return [(int(i), float(cos[i])) for i in order]

    def search(self, query: str = "", limit: int = 50) -> list[list]:
        """Concepts whose name (exact names first) or else alternatives contain `query`, each group by energy, then
        (with an embedder) the concepts nearest to the query's meaning; or the concept numbered `query`; or (empty
        query) all concepts by energy. Rows: `[concept, name, energy, modality, match]` (no modality column when
        the data has no modalities; match = "name", "alternative" or "meaning 0.42")."""
        d = self.data
        query = (query or "").strip().lower().lstrip("#")
        if not query:
            hits = list(range(d.n_latents))
        elif query.isdigit() and int(query) < d.n_latents:
            hits = [int(query)]
        else:
            by_name = [i for i in range(d.n_latents) if query in d.labels[i].lower()]
            by_alternative = [i for i in range(d.n_latents) if query not in d.labels[i].lower()
                              and any(query in name.lower() for name, _ in d.alternatives[i])]
            by_name.sort(key=lambda i: (d.labels[i].lower() != query, -d.energy[i]))  # exact name first
            rows = [self._row(i, d.energy[i]) + ["name"] for i in by_name]
            rows += [self._row(i, d.energy[i]) + ["alternative"] for i in sorted(by_alternative,
                                                                                key=lambda i: -d.energy[i])]
            seen = {row[0] for row in rows}
            try:
                meaning = self.search_meaning(query, limit)
            except (OSError, ValueError, RuntimeError) as err:  # e.g. the backbone cannot be loaded offline
                logger.warning("search by meaning is off: %s", err)
                self.embed_query, meaning = None, []
            rows += [self._row(i, d.energy[i]) + [f"meaning {cos:.2f}"] for i, cos in meaning if i not in seen]
            return rows[:limit]
        hits.sort(key=lambda i: -d.energy[i])
        return [self._row(i, d.energy[i]) + [""] for i in hits[:limit]]

    def card(self, i: int) -> str:
        """Markdown: name, number, energy and its rank, modality score, alternatives."""
        d = self.data
        lines = [f"## #{i} · {self.display_name(i)}"]
        if d.name_scores is not None and np.isfinite(d.name_scores[i]):
            weak = d.weak is not None and bool(d.weak[i])
            lines.append(f"**name match** {d.name_scores[i]:.2f}" + (
                " — **weak name**: below the 0.3 threshold, the word may not describe this concept" if weak else ""))
        if self._has_other_end(i):
            lines.append(f"**other end of the axis:** {d.other_labels[i]}")
        lines.append(f"**energy** {d.energy[i]:.4g} (rank {d.energy_rank[i]} of {d.n_latents})")
        if d.scores is not None:
            lines[-1] += f" · **modality score** {self._modality_text(i)}"
        if d.self_bridge is not None:
            lines[-1] += f" · **same-axis bridge** {d.self_bridge[i]:.3g}"
        if d.alternatives[i]:
            lines.append("**alternatives:** " + ", ".join(f"{name} ({score:.2f})" for name, score in d.alternatives[i]))
        return "\n\n".join(lines)

    def _has_other_end(self, i: int) -> bool:
        d = self.data
        return bool(d.other_rows) and len(d.other_rows[i]) > 0

    def examples(self, i: int) -> list[list]:
        """Top-activating rows of each end: `[end, value, modality, example]` — the named end's rows (oriented value
        > 0) under its name, then the other end's (value < 0) under that end's name; modality omitted without a
        modality column."""
        d = self.data
        rows = []
        ends = [(self.display_name(i), d.top_rows[i], d.top_values[i])]
        if d.other_rows:
            ends.append((d.other_labels[i], d.other_rows[i], d.other_values[i]))
        for end, end_rows, end_values in ends:
            for row, value in zip(end_rows, end_values):
                entry = [end, float(f"{value:.4g}")]
                if d.row_modality is not None:
                    entry.append(d.row_modality[row])
                rows.append(entry + [d.row_text[row]])
        return rows

    def gallery(self, i: int) -> list:
        """`(image, caption)` of the top-activating rows that have images (read from the dataset on demand)."""
        d = self.data
        if d.image_source is None:
            return []
        items = [(d.image(row), f"{value:.3g}") for row, value in zip(d.top_rows[i], d.top_values[i])]
        return [(image, caption) for image, caption in items if image is not None]

    def partner_rows(self, i: int) -> list[list]:
        """Bridge partners `[concept, name, bridge score, modality]`, or nearest directions `[.., cosine, ..]`."""
        d = self.data
        if d.partners is not None:
            pairs = zip(d.partners[i], d.partner_scores[i])
        else:
            pairs = zip(d.neighbors[i], d.neighbor_cos[i])
        return [self._row(int(j), s) for j, s in pairs]

    def partner_title(self) -> str:
        d = self.data
        if d.partners is None:
            return "Nearest concept directions (no aligned pairs)"
        if d.bridge_definition == "co-activation":
            return ("Co-activation partners across aligned pairs: E[z_a,i z_b,j] (orthogonal dictionary: Eq. 6's "
                    "cosine factor is 0 off the diagonal, so the same-axis bridge E[z_a,i z_b,i] is on the card)")
        return "Strongest bridge partners: E[z_a z_bᵀ] ⊙ cos(atoms) (Eq. 6)"

    def show(self, concept) -> tuple:
        """Everything the page shows for one concept: `(card, examples, gallery, partners, map, concept)`."""
        i = int(concept)
        if not 0 <= i < self.data.n_latents:
            raise ValueError(f"concept={i} must be in [0, {self.data.n_latents})")
        return self.card(i), self.examples(i), self.gallery(i), self.partner_rows(i), self.render_map(i), i

    def explain_rows(self, row_a, row_b) -> str:
        """The "explain this match" text of two dataset rows (a message when it is off or a row is bad)."""
        if self.explain_match is None:
            return "Explaining a match needs the dictionary's attribution (build_explorer(..., explain_match=...))."
        try:
            return "```\n" + self.explain_match(int(row_a), int(row_b)) + "\n```"
        except (TypeError, ValueError) as err:
            return f"**Cannot explain rows {row_a!r} and {row_b!r}: {err}**"

    def map_figure(self, concept: Optional[int] = None):
        """The interactive map: a plotly scatter (hover: name, match score, energy, modality; zoom and pan), with
        `concept` ringed and lines to its partners. Points carry their concept number as `customdata`."""
        from ._explorer_app import map_figure

        return map_figure(self, concept)

    def initial_concept(self) -> int:
        return int(np.argmax(self.data.energy))

    # ---- the app ----------------------------------------------------------------------------------------------
    def build(self):
        """The `gr.Blocks` app (launch it with `launch_explorer`)."""
        os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
        from ._explorer_app import build_blocks

        return build_blocks(self)


def query_embedder(backbone, model=None) -> Optional[Callable[[str], np.ndarray]]:
    """`text -> (d,)`: from an object with `embed_texts` (a cedar-hf Backbone); from a name/path for
    `load_backbone`; or, for `"config"`, from the model's `config.backbone`. A name is loaded on the first query
    (startup stays fast). None when there is nothing to embed with."""
    if backbone == "config":
        backbone = getattr(getattr(model, "config", None), "backbone", None)
    if backbone is None:
        return None
    if not isinstance(backbone, str) and not callable(getattr(backbone, "embed_texts", None)):
        raise ValueError(f"backbone {backbone!r} has no embed_texts(texts) method")
    loaded = {"backbone": None if isinstance(backbone, str) else backbone}

    def embed(text: str) -> np.ndarray:
        if loaded["backbone"] is None:
            loaded["backbone"] = load_backbone(backbone)
        vector = torch.as_tensor(loaded["backbone"].embed_texts([text])[0])
        return vector.detach().double().cpu().numpy()

    return embed


def build_explorer(model, data, pairs=None, modalities=None, progress: bool = True, backbone="config",
                   explain_match: Optional[Callable[[int, int], str]] = None, **kwargs):
    """Precompute the views of `model` over `data` and build the Gradio app (`gr.Blocks`; the lookups are its
    `.explorer` attribute). `backbone` enables search by meaning: the dictionary's own `config.backbone`
    ("config", the default; loaded on the first query), a `Backbone`, a name for `load_backbone`, or None.
    `explain_match(row_a, row_b) -> str` turns on the "explain this match" view. Keyword arguments go to
    `prepare_explorer_data` (examples, partners, umap_neighbors, cache_dir)."""
    explorer = ConceptExplorer(prepare_explorer_data(model, data, pairs=pairs, modalities=modalities,
                                                     progress=progress, **kwargs), embed_query=query_embedder(backbone, model),
                               explain_match=explain_match)
    app = explorer.build()
    app.explorer = explorer
    return app


def launch_explorer(app, host: str = "127.0.0.1", port: Optional[int] = None, **kwargs):
    """Serve the app locally: no share link, no analytics, system fonts only (nothing is fetched online)."""
    from ._explorer_app import PAGE_JS, theme

    kwargs.setdefault("prevent_thread_lock", False)
    return app.launch(server_name=host, server_port=port, share=False, theme=theme(), css=CSS, js=PAGE_JS,
                      ssr_mode=False, show_error=True, **kwargs)
