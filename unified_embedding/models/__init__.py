"""AutoInt and AutoInt+ ranking models, assembled from injected blocks.

config.py   AutoIntConfig, DEFAULT_TRAIN_MODEL: the hyper-parameters (no TensorFlow)
autoint.py  the Keras model and its blocks
"""
