"""Exported models: the SavedModel writer, export bases and their versions."""
