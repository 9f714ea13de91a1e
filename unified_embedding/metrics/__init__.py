"""Binary-classification metrics.

exact      NumPy, over all scores at once: AUC, log loss, calibration, ECE (the oracles)
summary    ScoreSummary: the same metrics from a mergeable histogram, summed per block of
           rows and merged across workers (what `ue evaluate` and `ue score` report)
streaming  Keras metrics for training: calibration and ECE, batch by batch
"""
