"""cedar-hf: readable embeddings of vision–language models.

CEDAR (a learned orthogonal rotation) and the SAE family as Hugging Face `PreTrainedModel`s behind one contract
(`encode`, `decode`, `reconstruct`, `forward`, `concept_directions`), wrapped around frozen CLIP, BLIP, CoCa
or text encoders. The only import-time side effect is the Auto-class registration below; the heavier parts
(backbones, training, evaluation, interpretation, analysis) load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

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
from .configuration_splice import SpliceConfig
from .configuration_wrapped import CedarBlipConfig, CedarClipConfig
from .modeling_base import DictionaryOutput, DictionaryPreTrainedModel
from .modeling_baselines import NoRotation, SemiNMF
from .modeling_cedar import CedarModel
from .modeling_sae import SparseAutoencoder
from .modeling_sae_batchtopk import BatchTopKSAE
from .modeling_sae_jumprelu import JumpReLUSAE
from .modeling_sae_matryoshka import MatryoshkaSAE
from .modeling_sae_relu import ReLUSAE
from .modeling_sae_topk import TopKSAE
from .modeling_splice import SpliceModel
from .modeling_wrapped import (
    CedarBlipForConditionalGeneration,
    CedarClipModel,
    register_wrapped_models,
)
from .registry import DICTIONARY_CLASSES, register_dictionary
from .version import __version__

# ---- the one registration block: AutoConfig / AutoModel load every dictionary with no trust_remote_code ----
register_dictionary(CedarConfig, CedarModel)
register_dictionary(ReLUSAEConfig, ReLUSAE)
register_dictionary(TopKSAEConfig, TopKSAE)
register_dictionary(BatchTopKSAEConfig, BatchTopKSAE)
register_dictionary(JumpReLUSAEConfig, JumpReLUSAE)
register_dictionary(MatryoshkaSAEConfig, MatryoshkaSAE)
register_dictionary(SemiNMFConfig, SemiNMF)
register_dictionary(NoRotationConfig, NoRotation)
register_dictionary(SpliceConfig, SpliceModel)
# Wrapped models (a frozen backbone composed with a dictionary): Auto classes only, not dictionaries.
register_wrapped_models()

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
    "OrthogonalAdam": "cedar_hf.optim",
    # evaluation
    "evaluation": "cedar_hf.evaluation",
    # interpretation and Hub
    "name_concepts": "cedar_hf.interpret",
    "explain": "cedar_hf.interpret",
    "attribute_similarity": "cedar_hf.interpret",
    "load_vocabulary": "cedar_hf.interpret",
    "push_dictionary_to_hub": "cedar_hf.hub",
    "push_embeddings_to_hub": "cedar_hf.hub",
    "ConceptIndex": "cedar_hf.interpret",
    "top_activating": "cedar_hf.interpret",
    "sparse_captions": "cedar_hf.interpret",
    "caption_report": "cedar_hf.interpret",
    "steer": "cedar_hf.interpret",
    "run_demo": "cedar_hf.pipelines.demo",
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
    "SpliceConfig",
    "SpliceModel",
    "TopKSAE",
    "TopKSAEConfig",
    "__version__",
    "register_dictionary",
    *_LAZY,
]
