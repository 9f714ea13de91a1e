"""The shared table's size: parameter budgets, the embedding layouts and what each costs,
probes per field."""
