"""The shared table's size.

params    what each embedding layout costs in parameters; the `BudgetPlan` a budget makes
layouts   the embedding layouts (unified, per_feature, collisionless): one registry entry each
plan      a `--budget` parsed, the table it buys, the budget sized from the data
probes    probes per field for a table
"""
