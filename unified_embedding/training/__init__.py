"""`ue train`'s parts, one concept per module; `unified_embedding.training.loop` runs them.

job.py         TrainJob: what the command line asks for, validated
strategies.py  tf.distribute strategies: mirrored, multi-worker, parameter servers, TPU
precision.py   bfloat16 where the hardware has it natively
run.py         the run's files: run.json, the embedding layer's config, best weights
inputs.py      the train and eval inputs `model.fit` takes under each strategy
callbacks.py   Keras callbacks of the fit loop
"""
