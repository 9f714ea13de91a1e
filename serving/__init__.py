"""Online serving: exported SavedModels behind gRPC (our Ranking API and TF Serving's).

Modules, one concept each: `predictor` (a SavedModel version and its request validation, no
gRPC), `batching`, `model_manager` (versions, hot reload), `tensors` (TF Serving tensors <->
batches), `servicer` and `tf_serving` (thin gRPC servicers), `metrics`, `server`, `client`.
Import the submodules directly: most of them import TensorFlow, the client does not.
"""
