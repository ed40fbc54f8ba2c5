"""Architectures (by name), training, and checkpoints."""
from models.registry import build_model, model_names, register_model

__all__ = ["build_model", "model_names", "register_model"]
