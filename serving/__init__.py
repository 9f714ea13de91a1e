"""Online serving: exported SavedModels behind gRPC (our Ranking API and TF Serving's).

Modules, one concept each: `predictor` (a SavedModel version and its request validation, no
gRPC), `batching`, `model_config` (the `--model-config-file`), `model_versions` (one model's
versions side by side, hot reload), `model_manager` (the served models), `tensors` (TF Serving
tensors <-> batches), `examples` (tf.train.Examples <-> batches), `servicer` and `tf_serving`
(thin gRPC servicers), `metrics`, `server`, `workers`
(several server processes on one port), `logs`, `client`. Import the submodules directly: most
of them import TensorFlow, the client does not, and `workers` and `logs` import neither
TensorFlow nor gRPC (the parent of the workers must not, before it forks).
"""
