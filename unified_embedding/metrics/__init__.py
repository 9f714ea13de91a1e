"""Binary-classification metrics: exact in NumPy, and streaming Keras counterparts."""
