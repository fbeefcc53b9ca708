"""cedar-hf: readable embeddings of vision–language models.

CEDAR (a learned orthogonal rotation) and the SAE family as Hugging Face `PreTrainedModel`s behind one contract
(`encode`, `decode`, `reconstruct`, `forward`, `concept_directions`), wrapped around frozen CLIP, BLIP, CoCa
or text encoders. The only import-time side effect is the Auto-class registration below; the heavier parts
(backbones, training, evaluation, interpretation, analysis) load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from transformers import AutoConfig, AutoModel

from .configuration_base import DictionaryConfig
from .configuration_baselines import NoRotationConfig, SemiNMFConfig
from .configuration_cedar import CedarConfig
from .configuration_sae import (
    BatchTopKSAEConfig,
    JumpReLUSAEConfig,
    MatryoshkaSAEConfig,
    ReLUSAEConfig,
    SAEConfig,
    TopKSAEConfig,
)
from .modeling_base import DictionaryOutput, DictionaryPreTrainedModel
from .modeling_baselines import NoRotation, SemiNMF
from .modeling_cedar import CedarModel
from .modeling_sae import SparseAutoencoder
from .modeling_sae_batchtopk import BatchTopKSAE
from .modeling_sae_jumprelu import JumpReLUSAE
from .modeling_sae_matryoshka import MatryoshkaSAE
from .modeling_sae_relu import ReLUSAE
from .modeling_sae_topk import TopKSAE

__version__ = "0.1.0"

# ---- the one registration block: AutoConfig / AutoModel load every dictionary with no trust_remote_code ----
DICTIONARY_CLASSES: dict[str, tuple[type, type]] = {
    CedarConfig.model_type: (CedarConfig, CedarModel),
    ReLUSAEConfig.model_type: (ReLUSAEConfig, ReLUSAE),
    TopKSAEConfig.model_type: (TopKSAEConfig, TopKSAE),
    BatchTopKSAEConfig.model_type: (BatchTopKSAEConfig, BatchTopKSAE),
    JumpReLUSAEConfig.model_type: (JumpReLUSAEConfig, JumpReLUSAE),
    MatryoshkaSAEConfig.model_type: (MatryoshkaSAEConfig, MatryoshkaSAE),
    SemiNMFConfig.model_type: (SemiNMFConfig, SemiNMF),
    NoRotationConfig.model_type: (NoRotationConfig, NoRotation),
}


def register_dictionary(config_class: type, model_class: type) -> None:
    """Register a dictionary architecture with the Auto classes (idempotent)."""
    model_type = config_class.model_type
    try:
        AutoConfig.register(model_type, config_class, exist_ok=True)
    except TypeError:  # older transformers without exist_ok
        AutoConfig.register(model_type, config_class)
    try:
        AutoModel.register(config_class, model_class, exist_ok=True)
    except TypeError:
        AutoModel.register(config_class, model_class)
    DICTIONARY_CLASSES[model_type] = (config_class, model_class)


for _config_class, _model_class in list(DICTIONARY_CLASSES.values()):
    register_dictionary(_config_class, _model_class)

# Wrapped models (a frozen backbone composed with a dictionary): Auto classes only, not DICTIONARY_CLASSES.
from .configuration_wrapped import CedarBlipConfig, CedarClipConfig  # noqa: E402
from .modeling_wrapped import CedarBlipForConditionalGeneration, CedarClipModel  # noqa: E402

for _config_class, _model_class in ((CedarBlipConfig, CedarBlipForConditionalGeneration), (CedarClipConfig, CedarClipModel)):
    AutoConfig.register(_config_class.model_type, _config_class, exist_ok=True)
    AutoModel.register(_config_class, _model_class, exist_ok=True)

# ---- lazily imported public API (name -> module) ----
_LAZY = {
    # backbones and extraction
    "load_backbone": "cedar_hf.backbones",
    "Backbone": "cedar_hf.backbones",
    "extract_embeddings": "cedar_hf.data",
    "load_embeddings": "cedar_hf.data",
    "read_metadata": "cedar_hf.data",
    "sparse_tokens": "cedar_hf.backbones.hooks",
    # training
    "train": "cedar_hf.training",
    "TrainingArgs": "cedar_hf.training",
    # evaluation
    "evaluation": "cedar_hf.evaluation",
    # interpretation and Hub
    "name_concepts": "cedar_hf.interpret",
    "explain": "cedar_hf.interpret",
    "load_vocabulary": "cedar_hf.interpret",
    "push_dictionary_to_hub": "cedar_hf.hub",
    "push_embeddings_to_hub": "cedar_hf.hub",
    "ConceptIndex": "cedar_hf.interpret",
    "top_activating": "cedar_hf.interpret",
    "sparse_captions": "cedar_hf.interpret",
    "caption_report": "cedar_hf.interpret",
    "steer": "cedar_hf.interpret",
    "run_demo": "cedar_hf.interpret.demo",
    # analyses
    "analysis": "cedar_hf.analysis",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'cedar_hf' has no attribute {name!r}")
    module = importlib.import_module(module_name)
    value = module if module_name.endswith("." + name) else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "CedarBlipConfig",
    "CedarBlipForConditionalGeneration",
    "CedarClipConfig",
    "CedarClipModel",
    "DICTIONARY_CLASSES",
    "BatchTopKSAE",
    "BatchTopKSAEConfig",
    "CedarConfig",
    "CedarModel",
    "DictionaryConfig",
    "DictionaryOutput",
    "DictionaryPreTrainedModel",
    "JumpReLUSAE",
    "JumpReLUSAEConfig",
    "MatryoshkaSAE",
    "MatryoshkaSAEConfig",
    "NoRotation",
    "NoRotationConfig",
    "ReLUSAE",
    "ReLUSAEConfig",
    "SAEConfig",
    "SemiNMF",
    "SemiNMFConfig",
    "SparseAutoencoder",
    "TopKSAE",
    "TopKSAEConfig",
    "register_dictionary",
    *_LAZY,
]
