"""Online serving: exported SavedModels behind gRPC (our Ranking API and TF Serving's) and REST.

    config, cli          what `ue serve` is asked to do (its flags' dataclasses); `ue serve`,
                         `ue predict`
    predictor            a SavedModel version and its request validation, no gRPC
    batching             requests merged into batches; `batching_parameters`: TF Serving's
                         `--batching_parameters_file` mapped onto it
    model_config         TF Serving's `--model_config_file`
    model_versions       one model's versions side by side, hot reload
    model_manager        the served models
    tensors, examples    TF Serving tensors and tf.train.Examples <-> batches
    json_tensors, rest   TF Serving's REST JSON <-> batches; the REST API (aiohttp)
    servicer, tf_serving thin gRPC servicers over the predictor
    server, workers      one server process; several on one port, healed when one dies
    prometheus, logs     metrics and logging
    client               a small gRPC client (no TensorFlow)

Import the submodules directly: most import TensorFlow; `config`, `cli`, `workers` and `logs`
import neither TensorFlow nor gRPC (the parent of the workers must not, before it forks).
"""
