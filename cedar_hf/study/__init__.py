"""The CEDAR paper's user studies (App. D) as a kit: build the tasks, serve them as a web form, analyse the answers.

    cedar_hf.study.build_study("study/", images, dictionaries={"cedar": a, "msae": b}, backbone=coca)
    cedar_hf.study.serve.serve_study("study/public")          # Gradio, imported on use
    cedar_hf.study.analyze_study("study/")                     # Figures 5-7 + statistics -> study/analysis/

Layout of a study folder: `public/` (tasks.json + images: all participants see), `key.json` (which method made which
option; kept apart), `answers/` (one JSON file per answer; `datasets.load_dataset("study/answers")` reads it), `analysis/`.
"""

from .analyze import analyze_study
from .build import STUDY1_SCALE, STUDY3_SCALE, build_study, make_tasks, write_study
from .stats import binomial_ci, sign_test, wilcoxon
from .store import answer_record, load_answers, load_tasks, save_answer

__all__ = ["STUDY1_SCALE", "STUDY3_SCALE", "analyze_study", "answer_record", "binomial_ci", "build_study",
           "load_answers", "load_tasks", "make_tasks", "save_answer", "sign_test", "wilcoxon", "write_study"]
