"""The concept explorer (the paper's VLM-Explore, §6) as a local Gradio app.

A UMAP of the concept directions, coloured by modality score and sized by energy; click a point (or search by
name, or pick a row) to see the concept's name and alternatives, its top-activating examples (texts or images),
its strongest bridge partners and its nearest directions. Everything is computed once at startup
(`prepare_explorer_data`); the callbacks only look things up, so they are also easy to call from tests.
"""

from __future__ import annotations

import os
from typing import Optional

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .explorer_data import ExplorerData, prepare_explorer_data

MAP_SIZE = (9.0, 6.4)  # inches at 100 dpi -> a 900 × 640 px map
CSS = """
#concept-map img {cursor: crosshair}
.concept-card h2 {margin-bottom: 0.2em}
footer {display: none !important}
"""


class ConceptExplorer:
    """Lookups behind the app: `search`, `show`, `nearest`, `render_map`; `build()` makes the `gr.Blocks`."""

    def __init__(self, data: ExplorerData):
        self.data = data
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

    def _row(self, i: int, value: float) -> list:
        """A table row `[concept, name, value]` plus the modality when the data has modalities."""
        modality = [self._modality_text(i)] if self.data.scores is not None else []
        return [i, self.data.labels[i], float(f"{value:.4g}")] + modality

    def search(self, query: str = "", limit: int = 50) -> list[list]:
        """Concepts whose name (exact names first) or else alternatives contain `query`, each group by energy; or
        the concept numbered `query`; or (empty query) all concepts by energy.
        Rows: `[concept, name, energy, modality]` (no modality column when the data has no modalities)."""
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
            return [self._row(i, d.energy[i]) for i in
                    (by_name + sorted(by_alternative, key=lambda i: -d.energy[i]))[:limit]]
        hits.sort(key=lambda i: -d.energy[i])
        return [self._row(i, d.energy[i]) for i in hits[:limit]]

    def card(self, i: int) -> str:
        """Markdown: name, number, energy and its rank, modality score, alternatives."""
        d = self.data
        lines = [f"## #{i} · {d.labels[i]}",
                 f"**energy** {d.energy[i]:.4g} (rank {d.energy_rank[i]} of {d.n_latents})"]
        if d.scores is not None:
            lines[-1] += f" · **modality score** {self._modality_text(i)}"
        if d.alternatives[i]:
            lines.append("**alternatives:** " + ", ".join(f"{name} ({score:.2f})" for name, score in d.alternatives[i]))
        return "\n\n".join(lines)

    def examples(self, i: int) -> list[list]:
        """Top-activating rows: `[activation, modality, example]` (modality omitted without a modality column)."""
        d = self.data
        rows = []
        for row, value in zip(d.top_rows[i], d.top_values[i]):
            entry = [float(f"{value:.4g}")]
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

    def show(self, concept) -> tuple:
        """Everything the page shows for one concept: `(card, examples, gallery, partners, map, concept)`."""
        i = int(concept)
        if not 0 <= i < self.data.n_latents:
            raise ValueError(f"concept={i} must be in [0, {self.data.n_latents})")
        return self.card(i), self.examples(i), self.gallery(i), self.partner_rows(i), self.render_map(i), i

    def initial_concept(self) -> int:
        return int(np.argmax(self.data.energy))

    # ---- the app ----------------------------------------------------------------------------------------------
    def build(self):
        """The `gr.Blocks` app (launch it with `launch_explorer`)."""
        os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
        from ._explorer_app import build_blocks

        return build_blocks(self)


def build_explorer(model, data, pairs=None, modalities=None, progress: bool = True, **kwargs):
    """Precompute the views of `model` over `data` and build the Gradio app (`gr.Blocks`; the lookups are its
    `.explorer` attribute). Keyword arguments go to `prepare_explorer_data` (examples, partners, umap_neighbors)."""
    explorer = ConceptExplorer(prepare_explorer_data(model, data, pairs=pairs, modalities=modalities,
                                                     progress=progress, **kwargs))
    app = explorer.build()
    app.explorer = explorer
    return app


def launch_explorer(app, host: str = "127.0.0.1", port: Optional[int] = None, **kwargs):
    """Serve the app locally: no share link, no analytics, system fonts only (nothing is fetched online)."""
    from ._explorer_app import theme

    kwargs.setdefault("prevent_thread_lock", False)
    return app.launch(server_name=host, server_port=port, share=False, theme=theme(), css=CSS, ssr_mode=False,
                      show_error=True, **kwargs)
