"""Where the conv step's time goes, per layer: oneDNN's verbose trace of TensorFlow and PyTorch.

Usage:
  python -m benchmarks.conv_trace [--batch-size 128] [--warmup 8] [--steps 10]
      [--frameworks tf tf-ops torch-cl torch-default] [--max-isa AVX2] [--save-traces DIR]

Runs the conv beta-VAE step of `train_throughput` (the bare TF step without XLA, as `kerasvae
train` runs conv models on CPU, and the PyTorch step channels-last and in the default layout),
each in a fresh process with `ONEDNN_VERBOSE=1`, and sums the `exec` lines of the traced steps
(after the warm-up) per layer and per pass: the oneDNN primitive, the implementation it picked
(`brg_conv_fwd:avx512_core`, `jit:avx2`, `gemm`, `ref`, ...) and its median milliseconds per
step. TensorFlow runs with `TF_NUM_INTEROP_THREADS=1` here so that its ops do not overlap and
each primitive's time is its own (the benchmark runs with TensorFlow's defaults); verbose
printing slows both frameworks, so the rates printed here are not the benchmark's.

Layers: `encK` is the K-th stride-2 convolution, `decK` the K-th transposed convolution. A
transposed convolution's forward is a convolution's backward-data and its backward-data a
convolution's forward: TensorFlow calls oneDNN's convolution for all three (Conv2DBackpropInput
etc.), PyTorch its deconvolution primitive. Where an encoder and a decoder layer have the same
convolution shape, TensorFlow's lines are told apart by their order in the step (the decoder's
forward comes before the encoder's backward, its weight gradient before the encoder's).
`--max-isa AVX2` sets `ONEDNN_MAX_CPU_ISA` (and PyTorch's `ATEN_CPU_CAPABILITY`) to make an
AVX-512 CPU dispatch as one without it: the kernels of that machine class, not its caches.

`tf-ops` times the same TensorFlow step with TensorFlow's own profiler instead: per layer and
pass the TensorFlow ops (`_MklNativeConv2DBackpropFilter` with oneDNN, `Conv2DBackpropFilter`
with Eigen's kernels) and their median ms per step. It is the column that still sees something
when TensorFlow runs Eigen's kernels (`TF_ENABLE_ONEDNN_OPTS=0`, or TensorFlow's own default on
a CPU without VNNI, bf16 or AMX): oneDNN's trace then holds only the `gemm_api` calls Eigen's
matrix products make.
"""

import argparse
import collections
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

MARK = "=== kerasvae conv_trace"


def layer_shapes(model, image_shape):
  """{(kind, oneDNN shape key): layer name}: TF's convolution descriptors and PyTorch's deconvolutions."""
  height, _, channels = image_shape
  filters = list(model["filters"])
  shapes = collections.defaultdict(list)
  previous, size = channels, height
  for k, f in enumerate(filters, 1):  # encoder: conv previous -> f at size -> size / 2
    shapes[("conv", f"ic{previous}oc{f}_ih{size}")].append(f"enc{k} {previous}->{f} @{size}")
    previous, size = f, size // 2
  chain = [filters[-1]] + list(reversed(filters[:-1])) + [channels]
  size = height // 2 ** len(filters)
  for k in range(1, len(chain)):  # decoder: transposed conv chain[k-1] -> chain[k] at size -> 2 size
    name = f"dec{k} {chain[k - 1]}->{chain[k]} @{size}"
    shapes[("conv", f"ic{chain[k]}oc{chain[k - 1]}_ih{2 * size}")].append(name)  # as TF's conv
    shapes[("deconv", f"ic{chain[k - 1]}oc{chain[k]}_ih{size}")].append(name)  # PyTorch's
    size *= 2
  return shapes


def parse(text):
  """The traced steps: lists of (primitive, implementation, propagation, shape key, ms)."""
  steps, current = [], None
  for line in text.splitlines():
    if line.startswith(MARK):
      word = line[len(MARK):].split()[0]
      current = [] if word == "step" else None
      if current is not None:
        steps.append(current)
      continue
    if current is None or not line.startswith("onednn_verbose") or ",exec," not in line:
      continue
    fields = line.split(",")
    match = re.search(r"ic\d+oc\d+_ih\d+", fields[-2])
    current.append((fields[5], fields[6], fields[7], match.group(0) if match else fields[-2],
                    float(fields[-1])))
  return steps


PASS = {"forward_training": "fwd", "backward_data": "bwd-data", "backward_weights": "bwd-weights"}
# A transposed convolution computed by convolution primitives: which pass each propagation is.
AS_TRANSPOSED = {"forward_training": "bwd-data", "backward_data": "fwd",
                 "backward_weights": "bwd-weights"}


def label(step, shapes):
  """[(layer, pass, implementation, ms)] for one traced step."""
  out, seen = [], collections.Counter()
  # PyTorch runs transposed convolutions as oneDNN deconvolutions: its convolutions are the encoder's.
  deconvolutions = any(line[0] == "deconvolution" for line in step)
  for primitive, implementation, propagation, key, ms in step:
    if primitive == "deconvolution":
      names = shapes.get(("deconv", key), [key])
      out.append((names[0], PASS[propagation], implementation, ms))
    elif primitive == "convolution":
      names = shapes.get(("conv", key), [key])
      encoders = [n for n in names if n.startswith("enc")]
      decoders = [] if deconvolutions else [n for n in names if n.startswith("dec")]
      # In one step: forward_training comes for the encoder first, backward_data and
      # backward_weights for the decoder first (see the module docstring).
      order = encoders + decoders if propagation == "forward_training" else decoders + encoders
      n = seen[(propagation, key)]
      seen[(propagation, key)] += 1
      name = order[min(n, len(order) - 1)] if order else key
      what = (AS_TRANSPOSED if name.startswith("dec") else PASS)[propagation]
      out.append((name, what, implementation, ms))
    else:
      out.append(("other", primitive, implementation, ms))
  return out


def _layer_order(name):
  """conv2d_transpose_3 -> 3, conv2d -> 0: Keras' automatic names count up in creation order."""
  tail = name.rsplit("_", 1)
  return int(tail[1]) if len(tail) == 2 and tail[1].isdigit() else 0


def label_tf_ops(op_ms, shapes):
  """{(layer, pass): (ms per step, op types)} from {TensorFlow op name: ms per step}; the layers
  named as in `layer_shapes` (`shapes`).

  Names as the profiler gives them, "gradient_tape/decoder_1/conv2d_transpose_2_1/conv_transpose/
  Conv2DBackpropFilter:Conv2DBackpropFilter": the network, its layer (Keras' name with the graph's
  `_N` suffix), and after the colon the op type. A transposed convolution's forward is a
  Conv2DBackpropInput and its backward-data a Conv2D. Every other op is "other".
  """
  layers = collections.defaultdict(set)  # network -> Keras layer names
  parsed = []
  for name, ms in op_ms.items():
    scope, _, op_type = name.rpartition(":")
    parts = scope.split("/")
    index = next((i for i, p in enumerate(parts[:-1]) if p.startswith(("encoder", "decoder"))),
                 None)
    network = layer = None
    if index is not None and "Conv2D" in op_type:
      network = parts[index].rsplit("_", 1)[0]
      layer = parts[index + 1].rsplit("_", 1)[0]  # the graph's suffix off
      layers[network].add(layer)
    parsed.append((network, layer, op_type, ms))
  full = {n.split()[0]: n for names in shapes.values() for n in names}  # enc1 -> enc1 1->32 @64
  names = {(network, layer): full.get(f"{'enc' if network == 'encoder' else 'dec'}{k}", layer)
           for network, found in layers.items()
           for k, layer in enumerate(sorted(found, key=_layer_order), 1)}
  out = collections.defaultdict(lambda: [0.0, set()])
  for network, layer, op_type, ms in parsed:
    if layer is None:
      key = ("other", "ops")
    else:
      if "BackpropFilter" in op_type:
        what = "bwd-weights"
      elif "BackpropInput" in op_type:
        what = "fwd" if network == "decoder" else "bwd-data"
      else:
        what = "bwd-data" if network == "decoder" else "fwd"
      key = (names[(network, layer)], what)
    out[key][0] += ms
    if layer is not None:
      out[key][1].add(op_type)
  return {k: (ms, sorted(types)) for k, (ms, types) in out.items()}


def profile_tf_ops(step, batches, warmup, steps):
  """{TensorFlow op name: median ms per step} of `steps` steps under TensorFlow's profiler."""
  import glob  # pylint: disable=import-outside-toplevel
  import tempfile  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from tensorflow.tsl.profiler.protobuf import xplane_pb2  # pylint: disable=import-outside-toplevel
  for i in range(warmup):
    float(step(batches[i % 2]))
  per_step = []
  with tempfile.TemporaryDirectory() as logdir:
    for i in range(steps):  # one profile per step: a median over steps, as for oneDNN's trace
      tf.profiler.experimental.start(f"{logdir}/{i}")
      float(step(batches[i % 2]))
      tf.profiler.experimental.stop()
      space = xplane_pb2.XSpace()
      space.ParseFromString(Path(glob.glob(f"{logdir}/{i}/**/*.xplane.pb",
                                           recursive=True)[0]).read_bytes())
      totals = collections.defaultdict(float)
      for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
          continue
        for line in plane.lines:
          if not line.name.startswith("tf_Compute"):
            continue  # the executor's threads: every op once, by the name "scope:OpType"
          for event in line.events:
            name = plane.event_metadata[event.metadata_id].name
            if ":" in name and "::" not in name:  # not ExecutorState::Process
              totals[name] += event.duration_ps / 1e9
      per_step.append(totals)
  names = {n for totals in per_step for n in totals}
  return {n: statistics.median(t.get(n, 0.0) for t in per_step) for n in names}


def summarise(steps, shapes):
  """{(layer, pass): (median ms per step, implementations)} over the traced steps."""
  totals, implementations = [], collections.defaultdict(set)
  for step in steps:
    totals.append(collections.defaultdict(float))
    for name, what, implementation, ms in label(step, shapes):
      totals[-1][(name, what)] += ms
      implementations[(name, what)].add(implementation)
  return {k: (statistics.median(t.get(k, 0.0) for t in totals), sorted(v))
          for k, v in implementations.items()}


def worker(framework, batch_size, warmup, steps):
  """Runs the step with trace marks on stdout (oneDNN's verbose lines go there too)."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  from benchmarks import train_throughput  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(0)
  images = (rng.random((2 * batch_size, 64, 64, 1)) < 0.1).astype(np.float32)  # dSprites-like
  model = train_throughput.DSPRITES_MODEL
  if framework in ("tf", "tf-ops"):
    step, batches = train_throughput.make_bare_step(images, model, batch_size, jit_compile=False)
  else:
    step, batches = train_throughput.make_torch_conv_step(
        images, model, batch_size, channels_last=framework == "torch-cl")

  def mark(text):
    sys.stdout.flush()
    os.write(1, f"{MARK} {text}\n".encode())

  if framework in ("tf", "tf-ops"):
    from kerasvae import _backend  # pylint: disable=import-outside-toplevel
    mark(f"kernels {'oneDNN' if _backend.onednn_enabled() else 'Eigen'}")
  if framework == "tf-ops":
    start = time.perf_counter()
    op_ms = profile_tf_ops(step, batches, warmup, steps)
    mark(f"ops {json.dumps(op_ms)}")
    mark(f"end {steps * batch_size / (time.perf_counter() - start):.1f}")
    return
  for i in range(warmup):
    float(step(batches[i % 2]))
  start = time.perf_counter()
  for i in range(steps):
    mark(f"step {i}")
    float(step(batches[i % 2]))
  mark(f"end {steps * batch_size / (time.perf_counter() - start):.1f}")


def trace(framework, args, shapes):
  """Runs `framework`'s worker in a fresh process: ({(layer, pass): (ms, implementations)},
  examples/s while tracing, what computed the step and what the ms are of)."""
  env = dict(os.environ, ONEDNN_VERBOSE="1", TF_CPP_MIN_LOG_LEVEL="2")
  if framework in ("tf", "tf-ops"):
    env["TF_NUM_INTEROP_THREADS"] = "1"
  if args.max_isa:
    env["ONEDNN_MAX_CPU_ISA"] = args.max_isa
    env["ATEN_CPU_CAPABILITY"] = args.max_isa.lower() if args.max_isa.upper() in (
        "AVX2", "AVX512") else "default"
  repo = str(Path(__file__).resolve().parents[1])
  env["PYTHONPATH"] = os.pathsep.join([repo] + [p for p in env.get("PYTHONPATH", "").split(
      os.pathsep) if p])
  result = subprocess.run([sys.executable, "-m", "benchmarks.conv_trace", "--worker", framework,
                           "--batch-size", str(args.batch_size), "--warmup", str(args.warmup),
                           "--steps", str(args.steps)], env=env, capture_output=True, text=True,
                          check=False)
  if result.returncode:
    raise RuntimeError(f"The {framework} trace failed (exit {result.returncode}):\n"
                       f"{result.stderr[-3000:]}")
  if args.save_traces:
    Path(args.save_traces).mkdir(parents=True, exist_ok=True)
    (Path(args.save_traces) / f"{framework}.trace").write_text(result.stdout)
  rate = [l for l in result.stdout.splitlines() if l.startswith(f"{MARK} end")]
  isa = [l.split(",")[-1] for l in result.stdout.splitlines() if ",info,cpu,isa:" in l]
  version = [l.split(",")[3] for l in result.stdout.splitlines() if ",info,oneDNN" in l]
  rate = float(rate[0].split()[-1]) if rate else float("nan")
  kernels = f"{MARK} kernels Eigen" in result.stdout
  ops = [l for l in result.stdout.splitlines() if l.startswith(f"{MARK} ops ")]
  if ops:
    what = (f"TensorFlow's profiler, {'Eigen' if kernels else 'oneDNN'}'s kernels; "
            f"{args.steps} profiled steps")
    return label_tf_ops(json.loads(ops[0][len(f"{MARK} ops "):]), shapes), rate, what, "ops"
  steps = parse(result.stdout)
  what = ("Eigen's kernels, oneDNN's custom ops off (TF_ENABLE_ONEDNN_OPTS): only the gemm_api "
          "calls of Eigen's matrix products reach oneDNN; `--frameworks tf-ops` times the ops"
          if kernels else (version or ["oneDNN ?"])[0] + ", " + (isa or ["isa ?"])[0])
  return summarise(steps, shapes), rate, f"{what}; {len(steps)} traced steps", "oneDNN"


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch-size", type=int, default=128)
  parser.add_argument("--warmup", type=int, default=8)
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--frameworks", nargs="+", default=["tf", "torch-cl", "torch-default"],
                      choices=["tf", "tf-ops", "torch-cl", "torch-default"])
  parser.add_argument("--max-isa", default=None, help="ONEDNN_MAX_CPU_ISA, e.g. AVX2.")
  parser.add_argument("--save-traces", default=None, help="Keep the raw traces in this folder.")
  parser.add_argument("--json", default=None, help="Write the per-layer table here.")
  parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.worker:
    return worker(args.worker, args.batch_size, args.warmup, args.steps)
  from benchmarks import train_throughput  # pylint: disable=import-outside-toplevel
  from kerasvae import artifacts  # pylint: disable=import-outside-toplevel
  frameworks = [f for f in args.frameworks
                if f.startswith("tf") or train_throughput.torch_available()]
  print(f"machine: {artifacts.cpu_description()}; {train_throughput.load_average()}")
  shapes = layer_shapes(train_throughput.DSPRITES_MODEL, (64, 64, 1))
  tables = {}
  for framework in frameworks:
    tables[framework], rate, what, timed = trace(framework, args, shapes)
    total = sum(ms for ms, _ in tables[framework].values())
    print(f"\n{framework}: {what} at batch {args.batch_size}, {rate:,.0f} examples/s meanwhile; "
          f"{timed} {total:.1f} ms per step")
    for (name, what), (ms, implementations) in sorted(
        tables[framework].items(), key=lambda kv: (kv[0][0] == "other", kv[0][0][:3] == "dec", kv[0])):
      print(f"  {name:<18} {what:<16} {ms:8.2f} ms  {' / '.join(implementations)}")
  layers = sorted({name for table in tables.values() for name, _ in table},
                  key=lambda n: (n == "other", n[:3] == "dec", n))
  print("\nms per step, per layer (fwd + bwd-data + bwd-weights; other = reorders, dense layers):")
  print(f"{'layer':<18}" + "".join(f"{f:>15}" for f in frameworks))
  for name in layers:
    print(f"{name:<18}" + "".join(
        f"{sum(ms for (n, _), (ms, _) in tables[f].items() if n == name):15.2f}"
        for f in frameworks))
  if args.json:
    Path(args.json).write_text(json.dumps({f: {f"{n} {w}": v for (n, w), v in t.items()}
                                           for f, t in tables.items()}, indent=1))
  return tables


if __name__ == "__main__":
  main()
