"""The Beam jobs: `ue preprocess` (raw rows -> hashed block records, spec.json, stats.json) and
`ue score` (raw rows -> P(click) shards from an exported model, stats.json).

    preprocess, score    each job's `main(argv)` and `run(argv)`; no Beam until the flags parse
    options              the jobs' flags as config dataclasses (no Beam, no TensorFlow)
    jobs                 the runner both jobs share, and their common read and stats steps
    read, validate       blocks of whole lines from byte ranges; dead letters with a reason
    split                which rows are eval rows: by content hash, by file, or by a column
    encode, sinks        hashing with the shared function; gzip TFRecord shards
    stats, sketch        preprocessing statistics; HyperLogLog distinct counts
    inference            RunInference over an exported model, one call per block
    score_output         the score tables and their CSV / Parquet shards
    score_stats          scoring statistics (the metrics `ue evaluate` reports too)
    accounting           rows read = kept + dead, per input file, and the one CombineFn
    outputs, globs       the output directory a job owns; whether two globs can overlap
"""
