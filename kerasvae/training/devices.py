"""Where training runs and in what precision: tf.distribute strategies, the chief, bfloat16 checks.

`make_strategy` turns `train.strategy` into a strategy and `describe_strategy` into the line
the train step prints; `is_chief` says which process writes; `check_precision` refuses a
bfloat16 network on a CPU whose oneDNN cannot compute it.
"""

import os

import tensorflow as tf

from kerasvae import _backend
from kerasvae import artifacts
from kerasvae.config import ConfigError
from kerasvae.training.errors import TrainingError


def make_strategy(name="auto"):
  """The tf.distribute strategy called `name`.

  Args:
    name: `auto` (MirroredStrategy when more than one GPU is visible, the
      default strategy otherwise), `default`, `one_device`, `mirrored` (all
      local GPUs, or all logical CPU devices when there is no GPU) or
      `multi_worker` (MultiWorkerMirroredStrategy from `TF_CONFIG`).
  """
  if name == "multi_worker":
    # Must come before anything initialises the TF runtime (even listing devices).
    if "TF_CONFIG" not in os.environ:
      raise TrainingError("train.strategy=multi_worker needs the TF_CONFIG environment variable "
                          "(cluster and task of this worker). Received: TF_CONFIG unset")
    return tf.distribute.MultiWorkerMirroredStrategy()
  gpus = tf.config.list_logical_devices("GPU")
  if name == "auto":
    name = "mirrored" if len(gpus) > 1 else "default"
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "one_device":
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
  if name == "mirrored":
    devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices)
  raise TrainingError(f"Expected train.strategy in auto, default, one_device, mirrored, "
                      f"multi_worker. Received: {name!r}")


def describe_strategy(strategy, requested):
  """One line: which strategy trains, on how many replicas, and a warning where `mirrored`
  was asked for and found a single device (no data parallelism)."""
  replicas = strategy.num_replicas_in_sync
  try:
    devices = strategy.extended.worker_devices
  except (AttributeError, RuntimeError):  # the default strategy has no device list
    devices = ()
  line = (f"train: {type(strategy).__name__.lstrip('_')} ({requested}), {replicas} "
          f"replica{'s' if replicas != 1 else ''}"
          + (f" on {', '.join(d.rsplit('/', 1)[-1].lower() for d in devices)}" if devices else ""))
  if requested in ("mirrored", "multi_worker") and replicas == 1:
    line += (": one replica, so no data parallelism (MirroredStrategy needs several GPUs, or "
             "the CPU split into logical devices)")
  return line


# oneDNN ISA caps (ONEDNN_MAX_CPU_ISA) without oneDNN's bfloat16 convolutions and matrix
# products: TensorFlow still sends bfloat16 layers to oneDNN, whose primitive cannot be made;
# measured with TF 2.21: an eager call raises, a compiled train step aborts the process.
NO_BFLOAT16_ISA_CAPS = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2")
# The least an x86 CPU needs for oneDNN's bfloat16 kernels (its `avx512_core`); a CPU without
# them dispatches as those caps do.
AVX512_CORE_FLAGS = ("avx512f", "avx512bw", "avx512vl", "avx512dq")


def check_precision(precision, cpu_flags=None, environ=None, gpus=None):
  """Refuses a bfloat16 network where TensorFlow cannot compute it; notes where it is unmeasured.

  Args:
    precision: `train.precision` (or a loaded model's `network_dtype`).
    cpu_flags: the CPU's flags (default: /proc/cpuinfo's first processor).
    environ: the environment (default `os.environ`).
    gpus: whether a GPU computes (default: TensorFlow's logical GPU devices).

  Returns:
    A note to print ("" when there is nothing to say).

  Raises:
    ConfigError: mixed_bfloat16 computed by oneDNN where it has no bfloat16 kernels: under an
      ONEDNN_MAX_CPU_ISA without them, or on an x86 CPU without AVX-512.
  """
  if precision == "float32":
    return ""
  if gpus is None:
    gpus = bool(tf.config.list_logical_devices("GPU"))
  if gpus:
    return ""
  if cpu_flags is None:
    cpu_flags = _backend.cpu_flags()
  onednn = _backend.onednn_enabled(environ, cpu_flags)  # None: TensorFlow's own answer
  environ = os.environ if environ is None else environ
  cap = environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
  if onednn and cap in NO_BFLOAT16_ISA_CAPS:
    raise ConfigError(
        f"train.precision: {precision} computes the networks in bfloat16 with oneDNN, which "
        f"has no bfloat16 kernels under ONEDNN_MAX_CPU_ISA={cap} (TensorFlow would abort in "
        "the first step: 'could not create a primitive descriptor'). Expected train.precision: "
        "float32 with this cap, or ONEDNN_MAX_CPU_ISA unset or AVX512_CORE and above. "
        f"Received: ONEDNN_MAX_CPU_ISA={environ['ONEDNN_MAX_CPU_ISA']}")
  missing = [f for f in AVX512_CORE_FLAGS if f not in cpu_flags]
  if onednn and "sse2" in cpu_flags and missing:  # an x86 CPU below oneDNN's avx512_core
    raise ConfigError(
        f"train.precision: {precision} computes the networks in bfloat16 with oneDNN, whose "
        "bfloat16 kernels need AVX-512 (avx512f, avx512bw, avx512vl, avx512dq); on this CPU "
        "it dispatches as under ONEDNN_MAX_CPU_ISA=AVX2, where TensorFlow aborts in the first "
        "step ('could not create a primitive descriptor'). Expected train.precision: float32 "
        "on this CPU (TF_ENABLE_ONEDNN_OPTS=0 would leave bfloat16 to Eigen's kernels instead: "
        f"not measured). Received: a CPU without {', '.join(missing)} "
        f"({artifacts.cpu_description()})")
  if not any(f in cpu_flags for f in ("avx512_bf16", "amx_bf16")):
    return (f"note: {precision} on a CPU without bfloat16 instructions (avx512_bf16, "
            "amx_bf16): on AVX-512 without them oneDNN converts every bfloat16 tensor to "
            "float32 and back, and the dSprites conv VAE trained at 0.47-0.66x float32's "
            "speed (benchmarks/README.md); train.precision: float32 is likely faster here")
  return ""


def is_chief(strategy):
  """Whether this process writes logs, checkpoints and artifacts."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not getattr(resolver, "task_type", None):
    return True
  return resolver.task_type == "chief" or (resolver.task_type == "worker"
                                           and resolver.task_id == 0)


def without_merge_call(strategy):
  """True for the strategies whose optimizer update has no cross-replica merge_call (the
  default and one-device ones), so it may run inside an XLA-compiled function; a mirrored
  strategy's all-reduce (even over one device) may not."""
  return (isinstance(strategy, tf.distribute.OneDeviceStrategy)
          or type(strategy).__name__ == "_DefaultDistributionStrategy")

