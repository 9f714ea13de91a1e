"""Keras layers: the embedding layouts and AutoInt's interacting layer."""

from unified_embedding.layers.collisionless import CollisionlessEmbedding
from unified_embedding.layers.field_embedding import FieldEmbedding
from unified_embedding.layers.interacting import InteractingLayer
from unified_embedding.layers.per_feature_hash import PerFeatureHashEmbedding
from unified_embedding.layers.unified import UnifiedEmbedding

__all__ = [
    "CollisionlessEmbedding",
    "FieldEmbedding",
    "InteractingLayer",
    "PerFeatureHashEmbedding",
    "UnifiedEmbedding",
]
