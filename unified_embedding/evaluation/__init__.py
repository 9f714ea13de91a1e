"""Offline evaluation: model quality, explanations, the embedding-budget study, run comparison.

    evaluate, cli    `ue evaluate`: an exported model's metrics on labelled raw rows
    gate, push_cli   `ue push`: a candidate against the serving model, paired; blessing.json
    scoring          labelled rows read in the model's format and scored
    quality          calibration by bucket, score histogram, AUC by slices of a field's values
    attention        attention weights averaged into field-pair strengths
    study_data       the rows a study trains and evaluates on (generated with a ceiling, or real)
    dataset_entries  a notebook's `datasets` parameter, checked before any work
    budget_study     layouts x budgets x seeds through `experiment.train_and_evaluate`
    runs             TensorBoard scalars and summary / eval JSON of training runs as DataFrames
    plots, budget_plots   matplotlib figures from those DataFrames
    daily_plots      next-day metrics per day, strategy and layout (benchmarks/daily.py)
    json_report      JSON with `null` where a number is undefined, never `NaN`

The notebooks in `notebooks/` are thin callers of these modules.
"""
