"""AutoInt and AutoInt+ ranking models, assembled from injected blocks."""
