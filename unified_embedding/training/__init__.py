"""`ue train`'s parts, one concept per module; `unified_embedding.training.loop` runs them.

cli           `ue train`: TrainJob's flags, the JSON result on stdout
export_cli    `ue export`: a trained run as the next SavedModel version of an export base
job           TrainJob: what the command line asks for, validated (no TensorFlow)
config        TrainConfig (the optimisers) and the strategies' names (no TensorFlow)
loop          the fit loop: `train(job)`
data          `tf.data` over the pipeline's records, checked against the contract
eval_rows     the rows training evaluates on, and how many positives they hold
inputs        the train and eval inputs `model.fit` takes under each strategy
callbacks     Keras callbacks of the fit loop
recalibrate   the output bias re-fit on the training rows once training stops
warm_start    `--warm-start-from`: a run or an export's weights, checked against the records
run           the run's files: run.json, the embedding layer's config, best weights
strategies    tf.distribute strategies: mirrored, multi-worker, parameter servers, TPU
precision     bfloat16 where the hardware has it natively
experiment    one in-memory experiment (a layout at a budget) for the budget study
"""
