"""Exported models: everything that knows what an export base and a version folder are.

versions   the version rule: which folders under an export base are versions, the newest,
           the next, and which folder a model path names (no TensorFlow)
model      ExportedModel: one version loaded, its spec checked against its signatures,
           scoring raw or packed rows, attention and each row's strongest field pairs
publish    a version copied into a serving base as its next version, atomically (`ue push`)
writer     the SavedModel `ue export` writes (training/export_cli.py): signatures, warm-up
"""
