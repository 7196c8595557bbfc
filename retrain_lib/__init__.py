"""Retraining of Coral Edge TPU models: data checks, training, int8 conversion, packaging."""

__version__ = "0.1.0"
