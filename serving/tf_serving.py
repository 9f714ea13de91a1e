"""TensorFlow Serving's `PredictionService` (Predict, GetModelMetadata) over the same models, so
an unchanged TF Serving client gets the same scores as our own API.

Predict takes signature `serving_default` (one tensor per field, the default) or `packed`, and
answers `probability`; GetModelMetadata answers the SavedModel's signature defs.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import grpc
from google.protobuf import any_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    model_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from serving.batching import Batcher
from serving.metrics import Metrics
from serving.model_manager import ModelManager
from serving.predictor import InvalidRequest, Predictor
from serving.servicer import handle
from serving.tensors import SIGNATURES, batch_from_request, probability_tensor
from unified_embedding.artifacts import SAVED_MODEL_FILE

SIGNATURE_DEF = "signature_def"


@cache
def signature_defs(path: Path) -> get_model_metadata_pb2.SignatureDefMap:
    """The served signatures' defs, read from `<version>/saved_model.pb`."""
    saved = saved_model_pb2.SavedModel.FromString((path / SAVED_MODEL_FILE).read_bytes())
    defs = get_model_metadata_pb2.SignatureDefMap()
    for name, signature in saved.meta_graphs[0].signature_def.items():
        defs.signature_def[name].CopyFrom(signature)
    return defs


def _model_spec(name: str, predictor: Predictor, signature: str = "") -> model_pb2.ModelSpec:
    spec = model_pb2.ModelSpec(name=name, signature_name=signature)
    spec.version.value = predictor.version
    return spec


class PredictionServiceServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, models: ModelManager, batcher: Batcher, metrics: Metrics) -> None:
        self.models = models
        self.batcher = batcher
        self.metrics = metrics

    def _predictor(self, spec: model_pb2.ModelSpec) -> Predictor:
        if spec.HasField("version_label"):
            raise InvalidRequest("version labels are not supported; give a version number")
        return self.models.get(spec.name or self.models.config.model_name,
                               spec.version.value if spec.HasField("version") else 0)  # fmt: skip

    async def Predict(
        self, request: predict_pb2.PredictRequest, context: grpc.aio.ServicerContext
    ) -> predict_pb2.PredictResponse:
        async def predict() -> predict_pb2.PredictResponse:
            predictor = self._predictor(request.model_spec)
            wanted = set(request.output_filter) - {"probability"}
            if wanted:
                raise InvalidRequest(f"unknown output `{sorted(wanted)[0]}`; the signature "
                                     "answers `probability`")  # fmt: skip
            scores = await self.batcher.predict(predictor, batch_from_request(predictor, request))
            signature = request.model_spec.signature_name or "serving_default"
            response = predict_pb2.PredictResponse(
                model_spec=_model_spec(self.models.config.model_name, predictor, signature)
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
            predictor = self._predictor(request.model_spec)
            unknown = set(request.metadata_field) - {SIGNATURE_DEF}
            if unknown or not request.metadata_field:
                raise InvalidRequest(f"`metadata_field` should be [{SIGNATURE_DEF!r}]. Received: "
                                     f"{list(request.metadata_field)}")  # fmt: skip
            packed = any_pb2.Any()
            packed.Pack(signature_defs(predictor.path))
            return get_model_metadata_pb2.GetModelMetadataResponse(
                model_spec=_model_spec(self.models.config.model_name, predictor),
                metadata={SIGNATURE_DEF: packed},
            )

        return await handle("GetModelMetadata", self.metrics, context, metadata)

    # Classify, Regress and MultiInference stay UNIMPLEMENTED (the generated base class).


__all__ = ["SIGNATURES", "PredictionServiceServicer", "signature_defs"]
