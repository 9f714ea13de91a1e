"""Exported models: everything that knows what an export base and a version folder are.

versions   the version rule: which folders under an export base are versions, the newest,
           the next, and which folder a model path names (no TensorFlow)
model      ExportedModel: one version loaded, its spec checked against its signatures,
           scoring raw or packed rows, attention and each row's strongest field pairs
writer     `ue export`: the SavedModel, its signatures and warm-up requests
cli        `ue export`'s flags and main
"""
