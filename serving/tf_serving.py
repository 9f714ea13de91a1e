"""TensorFlow Serving's `PredictionService` (Predict, Classify, Regress, MultiInference,
GetModelMetadata) and `ModelService` (GetModelStatus) over the same models, so an unchanged TF
Serving client gets the same scores as our own API.

A ModelSpec picks the model by `name`, the version by `version` or `version_label` (neither: the
newest loaded). Predict takes signature `serving_default` (one tensor per field, the default) or
`packed`, and answers `probability`. Classify, Regress and MultiInference take tf.train.Examples
(`serving.examples`), parsed here rather than by the export's `from_examples` signature so they
share the batcher; they answer under the names `serving_default`, `from_examples` and
`classification` / `regression`. Classify answers what a `tf.estimator` binary classifier
exports: classes "0" and "1" scored 1 - p and p; Regress answers p, the click probability.
GetModelMetadata answers the SavedModel's signature defs. HandleReloadConfigRequest stays
UNIMPLEMENTED: the config file is re-read instead (`--model-config-file-poll-wait-seconds`).

GetModelStatus (and the REST status, `model_status`) tells a client that a version failed to
load, never why: the reason (file-system paths, exception text) goes to the server log, once.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from pathlib import Path

import grpc
import numpy as np
from google.protobuf import any_pb2
from tensorflow.core.protobuf import error_codes_pb2, saved_model_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    input_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from serving.batching import Batcher
from serving.examples import batch_from_input
from serving.model_manager import ModelManager, VersionStatus
from serving.predictor import InvalidRequest, Predictor
from serving.prometheus import Metrics
from serving.servicer import handle
from serving.tensors import SIGNATURES, batch_from_request, probability_tensor
from unified_embedding.contract.artifacts import SAVED_MODEL_FILE

SIGNATURE_DEF = "signature_def"
CLASSIFY = "tensorflow/serving/classify"
REGRESS = "tensorflow/serving/regress"
EXAMPLE_SIGNATURES = {
    CLASSIFY: ("serving_default", "from_examples", "classification"),
    REGRESS: ("serving_default", "from_examples", "regression"),
}
_STATE = get_model_status_pb2.ModelVersionStatus.State
LOAD_FAILED = "the version failed to load; the server log says why"


@cache
def signature_defs(path: Path) -> get_model_metadata_pb2.SignatureDefMap:
    """The served signatures' defs, read from `<version>/saved_model.pb`."""
    saved = saved_model_pb2.SavedModel.FromString((path / SAVED_MODEL_FILE).read_bytes())
    defs = get_model_metadata_pb2.SignatureDefMap()
    for name, signature in saved.meta_graphs[0].signature_def.items():
        defs.signature_def[name].CopyFrom(signature)
    return defs


def model_status(statuses: Iterable[VersionStatus]) -> get_model_status_pb2.GetModelStatusResponse:
    """The versions' states as clients see them: a failed version is UNKNOWN with LOAD_FAILED
    (its error, which may name paths and hold exception text, is only in the server log)."""
    response = get_model_status_pb2.GetModelStatusResponse()
    for s in statuses:
        entry = response.model_version_status.add(version=s.version, state=_STATE.Value(s.state))
        if s.error_message:
            entry.status.error_code = error_codes_pb2.UNKNOWN
            entry.status.error_message = LOAD_FAILED
        else:
            entry.status.error_code = error_codes_pb2.OK
    return response


def _model_spec(name: str, predictor: Predictor, signature: str = "") -> model_pb2.ModelSpec:
    spec = model_pb2.ModelSpec(name=name, signature_name=signature)
    spec.version.value = predictor.version
    return spec


def example_signature(method: str, spec: model_pb2.ModelSpec) -> str:
    signature = spec.signature_name or "serving_default"
    if signature not in EXAMPLE_SIGNATURES[method]:
        raise InvalidRequest(
            f"signature `{signature}` does not answer {method.split('/')[-1]}; "
            f"use one of {list(EXAMPLE_SIGNATURES[method])}"
        )
    return signature


def classification(scores: np.ndarray) -> classification_pb2.ClassificationResult:
    """Per example, class "0" scored 1 - p and class "1" scored p (a binary estimator's)."""
    result = classification_pb2.ClassificationResult()
    for p in scores.tolist():
        result.classifications.add().classes.extend(
            [
                classification_pb2.Class(label="0", score=1.0 - p),
                classification_pb2.Class(label="1", score=p),
            ]
        )
    return result


def regression(scores: np.ndarray) -> regression_pb2.RegressionResult:
    return regression_pb2.RegressionResult(
        regressions=[regression_pb2.Regression(value=p) for p in scores.tolist()]
    )


class PredictionServiceServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, models: ModelManager, batcher: Batcher, metrics: Metrics) -> None:
        self.models = models
        self.batcher = batcher
        self.metrics = metrics

    def _predictor(self, spec: model_pb2.ModelSpec) -> tuple[str, Predictor]:
        """The model's name and the predictor of the version or label `spec` asks for."""
        versions = self.models.versions(spec.name)
        version = spec.version.value if spec.HasField("version") else 0
        return versions.name, versions.get(version, spec.version_label)

    async def _scores(
        self, spec: model_pb2.ModelSpec, request_input: input_pb2.Input
    ) -> tuple[str, Predictor, np.ndarray]:
        name, predictor = self._predictor(spec)
        scores = await self.batcher.predict(predictor, batch_from_input(predictor, request_input))
        return name, predictor, scores

    async def Predict(
        self, request: predict_pb2.PredictRequest, context: grpc.aio.ServicerContext
    ) -> predict_pb2.PredictResponse:
        async def predict() -> predict_pb2.PredictResponse:
            name, predictor = self._predictor(request.model_spec)
            wanted = set(request.output_filter) - {"probability"}
            if wanted:
                raise InvalidRequest(
                    f"unknown output `{sorted(wanted)[0]}`; the signature answers `probability`"
                )
            scores = await self.batcher.predict(predictor, batch_from_request(predictor, request))
            signature = request.model_spec.signature_name or "serving_default"
            response = predict_pb2.PredictResponse(
                model_spec=_model_spec(name, predictor, signature)
            )
            response.outputs["probability"].CopyFrom(probability_tensor(scores))
            return response

        return await handle("Predict", self.metrics, context, predict)

    async def GetModelMetadata(
        self,
        request: get_model_metadata_pb2.GetModelMetadataRequest,
        context: grpc.aio.ServicerContext,
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        async def metadata() -> get_model_metadata_pb2.GetModelMetadataResponse:
            name, predictor = self._predictor(request.model_spec)
            unknown = set(request.metadata_field) - {SIGNATURE_DEF}
            if unknown or not request.metadata_field:
                raise InvalidRequest(
                    f"`metadata_field` should be [{SIGNATURE_DEF!r}]. Received: "
                    f"{list(request.metadata_field)}"
                )
            packed = any_pb2.Any()
            packed.Pack(signature_defs(predictor.path))
            return get_model_metadata_pb2.GetModelMetadataResponse(
                model_spec=_model_spec(name, predictor),
                metadata={SIGNATURE_DEF: packed},
            )

        return await handle("GetModelMetadata", self.metrics, context, metadata)

    async def Classify(
        self, request: classification_pb2.ClassificationRequest, context: grpc.aio.ServicerContext
    ) -> classification_pb2.ClassificationResponse:
        async def classify() -> classification_pb2.ClassificationResponse:
            signature = example_signature(CLASSIFY, request.model_spec)
            name, predictor, scores = await self._scores(request.model_spec, request.input)
            return classification_pb2.ClassificationResponse(
                model_spec=_model_spec(name, predictor, signature), result=classification(scores)
            )

        return await handle("Classify", self.metrics, context, classify)

    async def Regress(
        self, request: regression_pb2.RegressionRequest, context: grpc.aio.ServicerContext
    ) -> regression_pb2.RegressionResponse:
        async def regress() -> regression_pb2.RegressionResponse:
            signature = example_signature(REGRESS, request.model_spec)
            name, predictor, scores = await self._scores(request.model_spec, request.input)
            return regression_pb2.RegressionResponse(
                model_spec=_model_spec(name, predictor, signature), result=regression(scores)
            )

        return await handle("Regress", self.metrics, context, regress)

    async def MultiInference(
        self, request: inference_pb2.MultiInferenceRequest, context: grpc.aio.ServicerContext
    ) -> inference_pb2.MultiInferenceResponse:
        async def infer() -> inference_pb2.MultiInferenceResponse:
            tasks = request.tasks
            if not tasks:
                raise InvalidRequest("`tasks` is empty; give at least one inference task")
            names = sorted({t.model_spec.name for t in tasks})
            if len(names) > 1:
                raise InvalidRequest(f"every task should name the same model. Received: {names}")
            signatures = []
            for task in tasks:
                if task.method_name not in EXAMPLE_SIGNATURES:
                    raise InvalidRequest(
                        f"task `method_name` should be one of "
                        f"{list(EXAMPLE_SIGNATURES)}. Received: "
                        f"{task.method_name!r}"
                    )
                signatures.append(example_signature(task.method_name, task.model_spec))
            if len(set(signatures)) < len(signatures):
                raise InvalidRequest(
                    f"every task should name a different signature. Received: {signatures}"
                )
            name, predictor, scores = await self._scores(tasks[0].model_spec, request.input)
            response = inference_pb2.MultiInferenceResponse()
            for task, signature in zip(tasks, signatures, strict=True):
                result = response.results.add(model_spec=_model_spec(name, predictor, signature))
                if task.method_name == CLASSIFY:
                    result.classification_result.CopyFrom(classification(scores))
                else:
                    result.regression_result.CopyFrom(regression(scores))
            return response

        return await handle("MultiInference", self.metrics, context, infer)


class ModelServiceServicer(model_service_pb2_grpc.ModelServiceServicer):
    """GetModelStatus; HandleReloadConfigRequest stays UNIMPLEMENTED (see the module doc)."""

    def __init__(self, models: ModelManager, metrics: Metrics) -> None:
        self.models = models
        self.metrics = metrics

    async def GetModelStatus(
        self,
        request: get_model_status_pb2.GetModelStatusRequest,
        context: grpc.aio.ServicerContext,
    ) -> get_model_status_pb2.GetModelStatusResponse:
        async def status() -> get_model_status_pb2.GetModelStatusResponse:
            spec = request.model_spec
            version = spec.version.value if spec.HasField("version") else 0
            return model_status(self.models.status(spec.name, version, spec.version_label))

        return await handle("GetModelStatus", self.metrics, context, status)


__all__ = [
    "EXAMPLE_SIGNATURES",
    "LOAD_FAILED",
    "SIGNATURES",
    "ModelServiceServicer",
    "PredictionServiceServicer",
    "classification",
    "example_signature",
    "model_status",
    "regression",
    "signature_defs",
]
