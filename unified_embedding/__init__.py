"""unified-embedding: CTR ranking with one multiplexed embedding table and AutoInt."""

import os

# TFRS needs legacy Keras (tf-keras); this must be set before TensorFlow is first imported.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from unified_embedding.contract.spec import (
    FeatureSpec,
    FieldSpec,
    InputFormat,
    SpecError,
    TableSpec,
)

__all__ = [
    "FeatureSpec",
    "FieldSpec",
    "InputFormat",
    "SpecError",
    "TableSpec",
]
