"""Binary-classification metrics.

exact      NumPy, over all scores at once: AUC, log loss, calibration, ECE (the oracles)
summary    ScoreSummary: the same metrics from a mergeable histogram, summed per block of
           rows and merged across workers (what `ue evaluate` and `ue score` report)
histogram  the logit histogram both histogram AUCs count in, their AUC and bound, refinement
delong     DeLong's paired test of two AUCs on the same rows (`ue push`)
streaming  Keras metrics for training: AUC (with its bound), calibration and ECE, batch by batch
"""
