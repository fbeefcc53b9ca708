"""The Gradio layout and event wiring of the explorer (the lookups live in `explorer.ConceptExplorer`)."""

from __future__ import annotations

import gradio as gr


def theme():
    """A light theme on system fonts only, so the page never asks a font server for anything."""
    return gr.themes.Soft(
        primary_hue="orange",
        font=["ui-sans-serif", "system-ui", "Segoe UI", "Helvetica", "Arial", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"],
    )


def _summary(explorer) -> str:
    d = explorer.data
    parts = [f"**{d.n_latents} concepts** of `{d.title}` over **{len(d.row_text)} embeddings**"]
    if d.modality_names:
        parts.append(f"modalities **{d.modality_names[0]}** (red) vs **{d.modality_names[1]}** (blue)")
    parts.append("bridge partners from aligned pairs" if d.partners is not None else "no aligned pairs: "
                 "nearest directions shown instead of bridge partners")
    return " · ".join(parts) + ".  Click a point on the map, search by name, or pick a row in a table."


def build_blocks(explorer):
    d = explorer.data
    example_headers = ["code"] + (["modality"] if d.row_modality is not None else []) + ["example"]
    partner_title = "Strongest bridge partners" if d.partners is not None else "Nearest concept directions"
    modality_header = ["modality"] if d.scores is not None else []
    partner_headers = ["#", "concept", "bridge score" if d.partners is not None else "cosine"] + modality_header
    table_headers = ["#", "concept", "energy"] + modality_header
    widths = ["12%", "40%", "20%", "28%"] if modality_header else ["15%", "60%", "25%"]

    with gr.Blocks(title="cedar-hf explorer", analytics_enabled=False) as app:
        gr.Markdown("# cedar-hf concept explorer")
        gr.Markdown(_summary(explorer))
        selected = gr.State(explorer.initial_concept())
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                concept_map = gr.Image(value=explorer.render_map(), label="Concept map", show_label=False,
                                       interactive=False, elem_id="concept-map", buttons=["download"], format="png")
            with gr.Column(scale=2):
                query = gr.Textbox(label="Search concepts by name (or #number)", placeholder="e.g. horse",
                                   elem_id="concept-search", submit_btn=True)
                results = gr.Dataframe(value=explorer.search(""), headers=table_headers, interactive=False,
                                       label="Concepts (by energy) — click a row", max_height=520,
                                       elem_id="concept-results", wrap=True,
                                       column_widths=widths)
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                card = gr.Markdown(elem_classes=["concept-card"], elem_id="concept-card")
                examples = gr.Dataframe(headers=example_headers, interactive=False, wrap=True,
                                        label="Top-activating examples", elem_id="concept-examples",
                                        column_widths=["13%", "12%", "75%"] if d.row_modality else ["15%", "85%"])
                gallery = gr.Gallery(label="Top-activating images", columns=4, height=260,
                                     visible=d.image_source is not None, elem_id="concept-gallery")
            with gr.Column(scale=2):
                partners = gr.Dataframe(headers=partner_headers, interactive=False, wrap=True,
                                        label=f"{partner_title} — click a row", elem_id="concept-partners",
                                        column_widths=widths)

        outputs = [card, examples, gallery, partners, concept_map, selected]

        def on_map_select(evt: gr.SelectData):
            return explorer.show(explorer.nearest(*evt.index[:2]))

        def on_row_select(evt: gr.SelectData):
            row = evt.row_value
            return explorer.show(int(row[0])) if row else explorer.show(explorer.initial_concept())

        def on_search(text: str):
            hits = explorer.search(text)
            shown = explorer.show(hits[0][0]) if hits else tuple(gr.skip() for _ in outputs)
            return (hits or [[None, "no concept matches"] + [None] * (len(table_headers) - 2)], *shown)

        concept_map.select(on_map_select, None, outputs)
        results.select(on_row_select, None, outputs)
        partners.select(on_row_select, None, outputs)
        query.submit(on_search, query, [results, *outputs])
        app.load(explorer.show, selected, outputs)
    return app
