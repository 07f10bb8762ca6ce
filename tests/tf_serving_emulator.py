"""TF Serving's Predict path without the server binary, for tests (none can be installed here).

Each step follows TF Serving's own code, so that a request this module accepts
is one the server accepts and converts to the same tensors:

- REST JSON → `PredictRequest`: `FillPredictRequestFromJson` in
  tensorflow_serving/util/json_tensor.cc. Row format (`instances`): a
  non-empty list, either of bare values (one-input signatures only) or of
  objects whose keys are exactly the signature's inputs; each input is the
  stack of its entries along a new dimension 0, every entry of the same shape.
  Columnar format (`inputs`): a bare value (one-input signatures only) or an
  object naming every input (extra keys are ignored); each value is the whole
  tensor, scalars included. Leaves must sit at the same depth (dense
  tensors), DT_INT32 takes JSON integers only, DT_FLOAT any JSON number.
- `PredictRequest` → `Session::Run`: `RunPredict` in
  servables/tensorflow/predict_util.cc and `GetInputValues` in
  tensorflow/cc/saved_model/util.cc: the signature (default
  `serving_default`), the input count check, a missing input filled from the
  SignatureDef's `defaults` or refused, `output_filter`. The SavedModel is run
  as the server runs it: its MetaGraphDef loaded into a session with the
  "serve" tag, fed and fetched by the SignatureDef's tensor names.
- `PredictResponse` → JSON: `MakeJsonFromTensors` in json_tensor.cc. Rows:
  `{"predictions": [...]}`, one entry per batch item (a dict of outputs when
  there are several, all with the same dimension 0 >= 1); columns:
  `{"outputs": ...}` (a dict when there are several outputs).
"""

import json

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2


class ServingError(Exception):
  """What TF Serving answers with INVALID_ARGUMENT (gRPC) or HTTP 400 (REST)."""


class Servable:
  """One SavedModel version loaded as TF Serving loads it."""

  def __init__(self, path):
    self.graph = tf.Graph()
    self.session = tf.compat.v1.Session(graph=self.graph)
    with self.graph.as_default():
      self.meta_graph = tf.compat.v1.saved_model.loader.load(self.session, ["serve"], str(path))
    self.signatures = self.meta_graph.signature_def

  def signature(self, name):
    name = name or "serving_default"
    if name not in self.signatures:
      raise ServingError(f'Serving signature key "{name}" not found.')
    return self.signatures[name]

  def predict(self, request):
    """A `PredictRequest` in, a `PredictResponse` out (predict_util.cc RunPredict)."""
    signature = self.signature(request.model_spec.signature_name)
    sent, expected = set(request.inputs), set(signature.inputs)
    if len(sent) > len(expected) or (len(sent) < len(expected) and not signature.defaults):
      raise ServingError(f"input size does not match signature: {len(sent)}!={len(expected)}. "
                         f"Sent extra: {sorted(sent - expected)}. "
                         f"Missing but required: {sorted(expected - sent)}.")
    feeds = {}
    for alias, info in signature.inputs.items():
      if alias in request.inputs:
        proto = request.inputs[alias]
      elif alias in signature.defaults:
        proto = signature.defaults[alias]
      else:
        raise ServingError(f"Signature input alias: {alias} not found in request and no default "
                           "value provided.")
      feeds[info.name] = tf.make_ndarray(proto)
    if sent - expected:
      raise ServingError(f"Inputs contains invalid name: {sorted(sent - expected)}")
    aliases = list(request.output_filter) or sorted(signature.outputs)
    for alias in aliases:
      if alias not in signature.outputs:
        raise ServingError(f"output tensor alias not found in signature: {alias}")
    values = self.session.run([signature.outputs[a].name for a in aliases], feeds)
    response = predict_pb2.PredictResponse()
    response.model_spec.name = request.model_spec.name
    response.model_spec.signature_name = request.model_spec.signature_name or "serving_default"
    for alias, value in zip(aliases, values):
      response.outputs[alias].CopyFrom(tf.make_tensor_proto(value))
    return response

  def rest_predict(self, body):
    """A REST :predict body (str or dict) in, the JSON response as a dict out."""
    request, row_format = predict_request_from_json(body, self.signature)
    return json_from_predict_response(self.predict(request), row_format)


def _dense(value, dtype, what):
  """A JSON value as an array of `dtype`, as json_tensor.cc's GetDenseTensorShape/FillTensorProto."""
  shape, item = [], value
  while isinstance(item, list):
    shape.append(len(item))
    if not item:
      break
    item = item[0]
  leaves = []

  def fill(v, level):
    if isinstance(v, list):
      if level >= len(shape) or len(v) != shape[level]:
        raise ServingError(f"{what}: encountered a list of size {len(v)} at level {level}, "
                           f"expected shape {shape}")
      for x in v:
        fill(x, level + 1)
      return
    if level != len(shape):
      raise ServingError(f"{what}: JSON value {v!r} found at level {level + 1}, "
                         f"expected at level {len(shape)}")
    if dtype == tf.int32 and (isinstance(v, bool) or not isinstance(v, int)):
      raise ServingError(f"{what}: JSON value {v!r} is not of expected type: int32")
    if dtype == tf.float32 and (isinstance(v, bool) or not isinstance(v, (int, float))):
      raise ServingError(f"{what}: JSON value {v!r} is not of expected type: float")
    leaves.append(v)

  fill(value, 0)
  return np.array(leaves, dtype.as_numpy_dtype).reshape(shape)


def predict_request_from_json(body, signature_of):
  """A REST body → (`PredictRequest`, whether it is the row format) (FillPredictRequestFromJson)."""
  doc = json.loads(body) if isinstance(body, str) else json.loads(json.dumps(body))
  if not isinstance(doc, dict):
    raise ServingError("JSON Value is not object")
  request = predict_pb2.PredictRequest()
  if "signature_name" in doc:
    if not isinstance(doc["signature_name"], str):
      raise ServingError("'signature_name' key must be a string value.")
    request.model_spec.signature_name = doc["signature_name"]
  inputs = signature_of(request.model_spec.signature_name).inputs
  names = sorted(inputs)
  dtypes = {name: tf.as_dtype(inputs[name].dtype) for name in names}
  if ("instances" in doc) == ("inputs" in doc):
    raise ServingError("Expecting exactly one of 'inputs' or 'instances' keys")
  tensors = {}
  if "instances" in doc:
    rows = doc["instances"]
    if not isinstance(rows, list) or not rows:
      raise ServingError("Expecting 'instances' to be a non-empty list")
    objects = isinstance(rows[0], dict)
    if not objects and len(names) > 1:
      raise ServingError("instances is a plain list, but expecting list of objects as multiple "
                         "input tensors required as per tensorinfo_map")
    columns = {}
    for i, row in enumerate(rows):
      if isinstance(row, dict) != objects:
        raise ServingError(f"Mixed objects and values at item {i} of 'instances'")
      items = row if objects else {names[0]: row}
      if set(items) != set(names):
        raise ServingError(f"Failed to process element: {i} of 'instances' list. JSON object "
                           f"keys must be equal to: {','.join(names)}")
      for name, value in items.items():
        array = _dense(value, dtypes[name], f"instances[{i}].{name}")
        if columns.get(name) and columns[name][0].shape != array.shape:
          raise ServingError(f"Expecting shape {list(columns[name][0].shape)} but got: "
                             f"{list(array.shape)}")
        columns.setdefault(name, []).append(array)
    tensors = {name: np.stack(arrays) for name, arrays in columns.items()}
  else:
    value = doc["inputs"]
    if not isinstance(value, dict):
      if len(names) > 1:
        raise ServingError("inputs is a plain value/list, but expecting an object as multiple "
                           "input tensors required as per tensorinfo_map")
      value = {names[0]: value}
    for name in names:
      if name not in value:
        raise ServingError(f"Missing named input: {name} in 'inputs' object.")
      tensors[name] = _dense(value[name], dtypes[name], f"inputs.{name}")
  for name, array in tensors.items():
    request.inputs[name].CopyFrom(tf.make_tensor_proto(array, dtype=dtypes[name]))
  return request, "instances" in doc


def json_from_predict_response(response, row_format):
  """A `PredictResponse` → the REST response body as a dict (MakeJsonFromTensors)."""
  outputs = {name: tf.make_ndarray(proto) for name, proto in sorted(response.outputs.items())}
  if not row_format:
    if len(outputs) == 1:
      return {"outputs": next(iter(outputs.values())).tolist()}
    return {"outputs": {name: value.tolist() for name, value in outputs.items()}}
  sizes = set()
  for name, value in outputs.items():
    if value.ndim == 0 or value.shape[0] < 1:
      raise ServingError(f"Tensor name: {name} has no shape information or an invalid batch size")
    sizes.add(value.shape[0])
  if len(sizes) > 1:
    raise ServingError(f"Tensors have inconsistent batch sizes: {sorted(sizes)}")
  if len(outputs) == 1:
    return {"predictions": next(iter(outputs.values())).tolist()}
  return {"predictions": [{name: value[i].tolist() for name, value in outputs.items()}
                          for i in range(sizes.pop())]}
