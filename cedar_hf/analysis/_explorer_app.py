"""The Gradio layout and event wiring of the explorer (the lookups live in `explorer.ConceptExplorer`)."""

from __future__ import annotations

import gradio as gr
import numpy as np
import plotly.graph_objects as go

# Runs once in the page: clicking a point of the plotly map selects that concept (through a hidden textbox and
# button, since Gradio forwards no plotly click events), and every selection is written to the URL (?concept=12)
# so that the address bar always holds a shareable link to the concept shown.
# The click handler is bound by a MutationObserver, i.e. before the browser handles any input after the plot
# appears (a 400 ms poll alone lost a click made just after the map was drawn); the poll stays as a fallback.
# A bound plot carries data-cedar-bound="1".
PAGE_JS = """
() => {
  const bind = () => {
    const plot = document.querySelector('#concept-plot .js-plotly-plot');
    if (plot && !plot._cedarBound && plot.on) {
      plot._cedarBound = true;
      plot.on('plotly_click', (event) => {
        const point = event.points && event.points[0];
        if (!point || point.customdata === undefined) return;
        const box = document.querySelector('#concept-picked textarea, #concept-picked input');
        box.value = String(point.customdata);
        box.dispatchEvent(new Event('input', {bubbles: true}));
        setTimeout(() => document.querySelector('#concept-pick-button').click(), 50);
      });
      plot.setAttribute('data-cedar-bound', '1');
    }
  };
  new MutationObserver(bind).observe(document.body, {subtree: true, childList: true, attributes: true,
                                                     attributeFilter: ['class']});
  bind();
  setInterval(bind, 400);
}
"""
URL_JS = """
(concept) => {
  const url = new URL(window.location.href);
  url.searchParams.set('concept', String(concept));
  window.history.replaceState(null, '', url.toString());
  return [];
}
"""


def theme():
    """A light theme on system fonts only, so the page never asks a font server for anything."""
    return gr.themes.Soft(
        primary_hue="orange",
        font=["ui-sans-serif", "system-ui", "Segoe UI", "Helvetica", "Arial", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"],
    )


def map_figure(explorer, concept=None):
    """The interactive map: a plotly scatter (hover: name, match score, energy, modality; zoom and pan), with
    `concept` ringed and lines to its partners. Points carry their concept number as `customdata`."""
    d = explorer.data
    relative = d.energy / max(d.energy.max(), np.finfo(float).tiny)
    sizes = 4 + 30 * np.sqrt(relative)
    hover = []
    for i in range(d.n_latents):
        score = "" if d.name_scores is None or not np.isfinite(d.name_scores[i]) else (
            f"<br>match {d.name_scores[i]:.2f}" + (" (weak)" if d.weak is not None and d.weak[i] else ""))
        modality = f"<br>modality {explorer._modality_text(i)}" if d.scores is not None else ""
        hover.append(f"#{i} {explorer.display_name(i)}{score}<br>energy {d.energy[i]:.3g}{modality}")
    color = np.nan_to_num(d.scores, nan=0.5) if d.scores is not None else np.log10(np.maximum(d.energy, 1e-12))
    # a colour key in the title: plotly's SVG colour bar renders blank under Gradio's page (gradient url())
    key = (f"red = {d.modality_names[0]}, blue = {d.modality_names[1]}" if d.scores is not None
           else "colour = log10 energy")
    fig = go.Figure(go.Scatter(
        x=d.layout[:, 0], y=d.layout[:, 1], mode="markers", customdata=np.arange(d.n_latents), text=hover,
        hovertemplate="%{text}<extra></extra>",
        marker=dict(size=sizes, color=color, colorscale="RdBu_r" if d.scores is not None else "Viridis",
                    cmin=0 if d.scores is not None else None, cmax=1 if d.scores is not None else None,
                    line=dict(width=0.5, color="#333"), opacity=0.8, showscale=False)))
    if concept is not None:
        x0, y0 = d.layout[concept]
        for j in explorer.related(concept):
            fig.add_trace(go.Scatter(x=[x0, d.layout[j, 0]], y=[y0, d.layout[j, 1]], mode="lines",
                                       line=dict(color="#ff7f0e", width=2), hoverinfo="skip", showlegend=False))
        fig.add_trace(go.Scatter(x=[x0], y=[y0], mode="markers+text", text=[f"#{concept} "
                      f"{explorer.display_name(concept)}"], textposition="top right", hoverinfo="skip",
                      marker=dict(size=18, color="rgba(0,0,0,0)", line=dict(width=3, color="black")),
                      showlegend=False))
    fig.update_layout(showlegend=False, margin=dict(l=10, r=10, t=30, b=10), height=560, dragmode="zoom",
                      title=dict(text=f"{d.n_latents} concepts of {d.title} ({key}; size = energy): hover for "
                                 "names, drag to zoom, click to select", font=dict(size=12)),
                      xaxis=dict(visible=False), yaxis=dict(visible=False), plot_bgcolor="white")
    return fig


def _summary(explorer) -> str:
    d = explorer.data
    parts = [f"**{d.n_latents} concepts** of `{d.title}` over **{len(d.row_text)} embeddings**"]
    if d.modality_names:
        parts.append(f"modalities **{d.modality_names[0]}** (red) vs **{d.modality_names[1]}** (blue)")
    if d.partners is None:
        parts.append("no aligned pairs: nearest directions shown instead of bridge partners")
    elif d.bridge_definition == "co-activation":
        parts.append("orthogonal dictionary: bridges shown as the same axis co-active across aligned pairs, "
                     "partners by co-activation")
    else:
        parts.append("bridge partners from aligned pairs (Eq. 6)")
    if d.weak is not None and d.weak.any():
        parts.append(f"{int(d.weak.sum())} weak names (match < 0.3) marked with ?")
    search = "search by name or by meaning" if explorer.embed_query is not None else "search by name"
    return " · ".join(parts) + f".  Click a point on the map, {search}, or pick a row; the URL links to the concept."


def _initial(explorer, request: gr.Request | None) -> int:
    """The concept named by the URL's `?concept=` (a number or a name), else the most energetic one."""
    wanted = (dict(request.query_params).get("concept") if request is not None else None) or ""
    wanted = wanted.strip().lstrip("#")
    if wanted.isdigit() and int(wanted) < explorer.data.n_latents:
        return int(wanted)
    if wanted:
        hits = explorer.search(wanted, limit=1)
        if hits:
            return int(hits[0][0])
    return explorer.initial_concept()


def build_blocks(explorer):
    d = explorer.data
    example_headers = ["end", "value"] + (["modality"] if d.row_modality is not None else []) + ["example"]
    modality_header = ["modality"] if d.scores is not None else []
    score_header = ("bridge score" if d.bridge_definition == "bridge" else "co-activation"
                    if d.bridge_definition == "co-activation" else "cosine")
    partner_headers = ["#", "concept", score_header] + modality_header
    table_headers = ["#", "concept", "energy"] + modality_header + ["match"]
    widths = ["10%", "34%", "16%", "22%", "18%"] if modality_header else ["12%", "48%", "20%", "20%"]
    partner_widths = ["12%", "40%", "20%", "28%"] if modality_header else ["15%", "60%", "25%"]
    search_label = ("Search concepts by name or meaning (or #number)" if explorer.embed_query is not None
                    else "Search concepts by name (or #number)")

    with gr.Blocks(title="cedar-hf explorer", analytics_enabled=False) as app:
        gr.Markdown("# cedar-hf concept explorer")
        gr.Markdown(_summary(explorer))
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                with gr.Tab("Interactive map"):
                    plot = gr.Plot(value=explorer.map_figure(), elem_id="concept-plot", show_label=False)
                with gr.Tab("Static map (PNG)"):
                    concept_map = gr.Image(value=explorer.render_map(), label="Concept map", show_label=False,
                                           interactive=False, elem_id="concept-map", buttons=["download"],
                                           format="png")
            with gr.Column(scale=2):
                query = gr.Textbox(label=search_label, placeholder="e.g. horse, or: music", elem_id="concept-search",
                                   submit_btn=True)
                results = gr.Dataframe(value=explorer.search(""), headers=table_headers, interactive=False,
                                       label="Concepts (by energy) — click a row", max_height=520,
                                       elem_id="concept-results", wrap=True, column_widths=widths)
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                card = gr.Markdown(elem_classes=["concept-card"], elem_id="concept-card")
                examples = gr.Dataframe(headers=example_headers, interactive=False, wrap=True,
                                        label="Top-activating examples of each end (value = sign·code)",
                                        elem_id="concept-examples")
                gallery = gr.Gallery(label="Top-activating images", columns=4, height=260,
                                     visible=d.image_source is not None, elem_id="concept-gallery")
            with gr.Column(scale=2):
                partners = gr.Dataframe(headers=partner_headers, interactive=False, wrap=True,
                                        label=f"{explorer.partner_title()} — click a row", elem_id="concept-partners",
                                        column_widths=partner_widths)
        with gr.Accordion("Explain this match: why two rows are similar, concept by concept", open=False,
                          visible=explorer.explain_match is not None, elem_id="match-accordion"):
            with gr.Row():
                row_a = gr.Number(value=0, precision=0, label="row A", elem_id="match-row-a")
                row_b = gr.Number(value=1, precision=0, label="row B", elem_id="match-row-b")
                explain = gr.Button("Explain", elem_id="match-explain")
            match_text = gr.Markdown(elem_id="match-explanation")
        with gr.Row(elem_classes=["cedar-hidden"]):
            picked = gr.Textbox(elem_id="concept-picked", show_label=False, container=False)
            pick = gr.Button("select", elem_id="concept-pick-button")
            # the concept shown, kept in the page (not a server-side State) so its change can update the URL
            selected = gr.Number(value=explorer.initial_concept(), precision=0, elem_id="concept-selected",
                                 show_label=False, container=False)

        outputs = [card, examples, gallery, partners, concept_map, selected, plot]

        def view(i: int) -> tuple:
            return (*explorer.show(i), explorer.map_figure(int(i)))

        def on_map_select(evt: gr.SelectData):
            return view(explorer.nearest(*evt.index[:2]))

        def on_row_select(evt: gr.SelectData):
            row = evt.row_value
            return view(int(row[0])) if row else view(explorer.initial_concept())

        def on_pick(text: str):
            text = (text or "").strip()
            return view(int(text)) if text.isdigit() and int(text) < d.n_latents else tuple(gr.skip() for _ in outputs)

        def on_search(text: str):
            hits = explorer.search(text)
            shown = view(hits[0][0]) if hits else tuple(gr.skip() for _ in outputs)
            return (hits or [[None, "no concept matches"] + [None] * (len(table_headers) - 2)], *shown)

        def on_load(request: gr.Request):
            return view(_initial(explorer, request))

        concept_map.select(on_map_select, None, outputs)
        results.select(on_row_select, None, outputs)
        partners.select(on_row_select, None, outputs)
        pick.click(on_pick, picked, outputs)
        query.submit(on_search, query, [results, *outputs])
        app.load(on_load, None, outputs)
        explain.click(explorer.explain_rows, [row_a, row_b], match_text)
        selected.change(None, selected, None, js=URL_JS)
    return app
