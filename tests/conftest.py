"""Pytest configuration: environment that must be set before TensorFlow is imported."""

import os

# TFRS needs legacy (tf-keras) Keras; this must happen before anything imports tensorflow.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
