"""The version of cedar-hf (a leaf module: read it without importing the models)."""

__version__ = "0.1.0"
