"""Offline evaluation: model quality, explanations, the embedding-budget study, run comparison.

The notebooks in `notebooks/` are thin callers of these modules:

    quality       calibration by bucket, score histogram, AUC by slices of a field's values
    attention     attention weights from an exported model, averaged into field-pair strengths
    study_data    the rows a study trains and evaluates on (generated with a ceiling, or real)
    budget_study  layouts x budgets x seeds through `experiment.train_and_evaluate`, probes sweep
    runs          TensorBoard scalars and summary / eval JSON of training runs as DataFrames
    plots         matplotlib figures from those DataFrames
"""
