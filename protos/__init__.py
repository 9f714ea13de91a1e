"""Service contracts (.proto) and the Python modules generated from them by generate.py."""
