#!/usr/bin/env bash
# The main job of README.md: set up ./.venv, then run the offline demo (WordNet glosses -> MiniLM -> CEDAR ->
# named concepts -> explanations). Extra arguments go to `cedar-hf demo` (see `cedar-hf demo --help`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup_venv.sh
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} TOKENIZERS_PARALLELISM=false
exec .venv/bin/cedar-hf demo "$@"
