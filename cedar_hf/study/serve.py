"""`serve_study`: the study's tasks as a local web form (Gradio), one task per page, every answer stored at once.

The app reads only the `public` folder (tasks and images), never the key. A participant enters an id, answers
task after task (Study 1: a 5-point preference between concept lists A and B; Study 2: tick every relevant
concept; Study 3: rate each description 1–3), and each "Next" writes that answer to the answers folder
(`store.save_answer`, atomic) before the next task appears. A participant who comes back with the same id resumes
at the first task they have not answered; so after a crash of the server nothing but an unsent page is lost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import gradio as gr

from .store import answer_record, answered_tasks, check_participant, load_tasks, save_answer

CSS = "#done, #intro {max-width: 760px} .concept-list {font-size: 1.05rem}"
INTRO = ("## Welcome\nYou will see images with concept lists or descriptions. There are no right or wrong answers: "
         "give your own impression. Your answers are saved after every task, so you can stop and come back with "
         "the same participant id.")


def theme():
    """System fonts only, so the page never asks a font server for anything (the machine may be offline)."""
    return gr.themes.Soft(font=["ui-sans-serif", "system-ui", "Segoe UI", "Helvetica", "Arial", "sans-serif"],
                          font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"])


def _concept_list(title: str, concepts) -> str:
    return f"**{title}**\n\n" + "\n".join(f"- {c}" for c in concepts)


class StudyForm:
    """The tasks, the answers folder and the page updates for one task (no Gradio state of its own)."""

    def __init__(self, public_dir, answers_dir=None):
        self.public_dir = Path(public_dir).resolve()
        self.tasks = load_tasks(self.public_dir)
        self.answers_dir = Path(answers_dir) if answers_dir else self.public_dir.parent / "answers"
        self.n_ratings = max([len(t["options"]) for t in self.tasks if t["study"] == 3] or [1])

    def first_open(self, participant: str) -> int:
        done = answered_tasks(self.answers_dir, participant)
        return next((i for i, t in enumerate(self.tasks) if t["task"] not in done), len(self.tasks))

    def view(self, index: int) -> list:
        """Updates for [intro, task column, done, progress, prompt, image, list A, list B, choice, selected,
        *ratings, status] showing task `index` (past the end: the thank-you page)."""
        hidden = [gr.update(visible=False)]
        if index >= len(self.tasks):
            return ([gr.update(visible=False), gr.update(visible=False), gr.update(visible=True)]
                    + [gr.update()] * 3 + hidden * 4 + hidden * self.n_ratings + [gr.update(value="")])
        task = self.tasks[index]
        study, options = task["study"], task["options"]
        ratings = [gr.update(visible=study == 3 and i < len(options), value=None,
                             label=f"Description {i + 1}: \u201c{options[i]}\u201d" if study == 3 and i < len(options) else "")
                   for i in range(self.n_ratings)]
        return [gr.update(visible=False), gr.update(visible=True), gr.update(visible=False),
                gr.update(value=f"Task {index + 1} of {len(self.tasks)} (study {study})"),
                gr.update(value=f"### {task['prompt']}"),
                gr.update(value=str(self.public_dir / task["image"])),
                gr.update(visible=study == 1, value=_concept_list("Concept list A", options[0]) if study == 1 else ""),
                gr.update(visible=study == 1, value=_concept_list("Concept list B", options[1]) if study == 1 else ""),
                gr.update(visible=study == 1, value=None, choices=task.get("scale", []) if study == 1 else []),
                gr.update(visible=study == 2, value=[], choices=options if study == 2 else []),
                *ratings, gr.update(value="")]

    def start(self, participant: str, state: dict):
        """Outputs: [state, *view outputs, the intro's status line]."""
        try:
            participant = check_participant(participant)
        except ValueError as err:
            return [state, *self._stay(""), gr.update(value=f"**{err}**")]
        state = {"participant": participant, "index": self.first_open(participant)}
        return [state, *self.view(state["index"]), gr.update(value="")]

    def _stay(self, message: str) -> list:
        n = 10 + self.n_ratings
        return [gr.update()] * n + [gr.update(value=f"**{message}**")]

    def next(self, state: dict, choice, selected, *ratings):
        if not state or "participant" not in state:
            return [state, *self._stay("enter your participant id first")]
        task = self.tasks[state["index"]]
        try:
            record = answer_record(state["participant"], task, choice=choice, selected=selected or [],
                                   ratings=[None if r is None else int(r) + 1 for r in ratings[:len(task["options"])]]
                                   if task["study"] == 3 else ())
        except (ValueError, TypeError):
            return [state, *self._stay("Please answer every question on this page before going on.")]
        save_answer(self.answers_dir, record)  # stored before the next page is shown
        state = {**state, "index": self.first_open(state["participant"])}
        return [state, *self.view(state["index"])]


def build_study_app(public_dir, answers_dir=None) -> gr.Blocks:
    """The Gradio app serving the tasks in `public_dir`; answers go to `answers_dir` (default `<study>/answers`)."""
    form = StudyForm(public_dir, answers_dir)
    with gr.Blocks(title="cedar-hf user study") as app:
        state = gr.State({})
        with gr.Column(elem_id="intro") as intro:
            gr.Markdown(INTRO)
            participant = gr.Textbox(label="Participant id", elem_id="participant", placeholder="e.g. p01")
            start = gr.Button("Start", elem_id="start", variant="primary")
            intro_status = gr.Markdown(elem_id="intro-status")
        with gr.Column(visible=False, elem_id="task") as task_column:
            progress = gr.Markdown(elem_id="progress")
            prompt = gr.Markdown(elem_id="prompt")
            image = gr.Image(type="filepath", interactive=False, show_label=False, elem_id="task-image", height=320)
            with gr.Row():
                list_a = gr.Markdown(elem_id="list-a", elem_classes="concept-list")
                list_b = gr.Markdown(elem_id="list-b", elem_classes="concept-list")
            choice = gr.Radio([], type="index", label="Your preference", elem_id="choice")
            selected = gr.CheckboxGroup([], type="index", label="Relevant concepts", elem_id="selected")
            ratings = [gr.Radio(["1 – Does not describe the image", "2 – Partially describes the image",
                                 "3 – Describes the image"], type="index", elem_id=f"rating-{i}", visible=False)
                       for i in range(form.n_ratings)]
            status = gr.Markdown(elem_id="status")
            next_button = gr.Button("Next", elem_id="next", variant="primary")
        with gr.Column(visible=False, elem_id="done") as done:
            gr.Markdown("## Thank you!\nAll your answers are saved. You can close this page.")
        outputs = [intro, task_column, done, progress, prompt, image, list_a, list_b, choice, selected, *ratings, status]
        start.click(form.start, [participant, state], [state, *outputs, intro_status])
        participant.submit(form.start, [participant, state], [state, *outputs, intro_status])
        next_button.click(form.next, [state, choice, selected, *ratings], [state, *outputs])
    app.study_form = form
    return app


def serve_study(public_dir, answers_dir=None, host: str = "127.0.0.1", port: Optional[int] = None, **kwargs):
    """Serve the study locally (no share link, no analytics); returns what `Blocks.launch` returns."""
    app = build_study_app(public_dir, answers_dir)
    kwargs.setdefault("prevent_thread_lock", False)
    result = app.launch(server_name=host, server_port=port, share=False, theme=theme(), css=CSS, ssr_mode=False,
                        allowed_paths=[str(app.study_form.public_dir)], show_error=True, **kwargs)
    return app if kwargs["prevent_thread_lock"] else result


__all__ = ["StudyForm", "build_study_app", "serve_study"]
