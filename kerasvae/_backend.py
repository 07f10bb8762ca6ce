"""Sets TensorFlow up before it loads: Keras on TensorFlow, its start-up noise, its CPU kernels.

Makes sure Keras runs on TensorFlow, keeps TensorFlow's import out of the way until needed, and
chooses oneDNN's kernels where TensorFlow's default would run Eigen's (`prefer_onednn`, from the
CPU's flags in /proc/cpuinfo). Nothing here imports TensorFlow or Keras: `import kerasvae` and
the commands that only read configs (`kerasvae config`, `--help`, a config error) stay fast.
"""

import importlib.abc
import importlib.util
import logging
import os
import re
import sys
import tempfile
from pathlib import Path

# Read before the default below is set: a level the user chose is theirs to see.
USER_SET_TF_LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL" in os.environ

# TensorFlow's C++ start-up chatter (CUDA probes on CPU machines) drowns the CLI's own output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Lines TensorFlow 2.21's shared libraries print while they load, before absl logging is
# initialised, so that TF_CPP_MIN_LOG_LEVEL does not silence them (checked: levels 1-3).
_LOAD_NOISE = re.compile(
    r"All log messages before absl::InitializeLog|port\.cc:\d+\] oneDNN custom operations"
    r"|cudart_stub\.cc|cuda_(?:dnn|fft|blas|plugin)\.cc|Unable to register cu(?:DNN|FFT|BLAS)"
    r"|cpu_feature_guard\.cc|^To enable the following instructions: .*rebuild TensorFlow")

_NO_DRIVER_NOISE = re.compile(r"cuda_platform\.cc:\d+\] failed call to cuInit")


# The qualified names of the functions kerasvae compiles once per model (`once_per_model`).
_PER_MODEL_FUNCTIONS = set()


def once_per_model(fn):
  """Marks `fn`, about to become a tf.function made once per model, so that its first trace
  for each new model is not reported as retracing.

  TensorFlow counts traces by the Python function's code, not by the tf.function: a study
  that trains a dozen models in one process traces each of these once per model, and
  TensorFlow then warns "5 out of the last 9 calls ... triggered tf.function retracing".
  Other functions' retracing warnings still show.
  """
  _PER_MODEL_FUNCTIONS.add(fn.__qualname__)
  return fn


class _PerModelRetracingFilter(logging.Filter):
  def filter(self, record):
    message = record.getMessage()
    return not ("triggered tf.function retracing" in message
                and any(f"<function {name} at " in message for name in _PER_MODEL_FUNCTIONS))


logging.getLogger("tensorflow").addFilter(_PerModelRetracingFilter())


def ensure_tensorflow_backend():
  """Selects the TensorFlow backend for Keras 3, or fails if another one was forced.

  Raises:
    ImportError: if `KERAS_BACKEND` names another backend, or Keras was
      already imported with one.
  """
  requested = os.environ.setdefault("KERAS_BACKEND", "tensorflow")
  if requested != "tensorflow":
    raise ImportError(
        "kerasvae needs the TensorFlow backend of Keras 3. Expected "
        f"KERAS_BACKEND=tensorflow. Received: KERAS_BACKEND={requested}. "
        "Unset it or set it to 'tensorflow'.")
  keras = sys.modules.get("keras")
  if keras is not None and hasattr(keras, "backend"):
    active = keras.backend.backend()
    if active != "tensorflow":
      raise ImportError(
          "kerasvae needs the TensorFlow backend of Keras 3, but Keras was "
          f"already imported with backend={active!r}. Import kerasvae first "
          "or set KERAS_BACKEND=tensorflow.")


class _FirstImportHook(importlib.abc.MetaPathFinder):
  """Runs `wrapper(exec_module, module)` in place of `exec_module(module)` when `name` is first imported.

  A finder at the head of `sys.meta_path`: it lets the other finders find the
  module and wraps that loader's `exec_module`; it leaves `sys.meta_path` when
  the module is executed, so a mere `importlib.util.find_spec(name)` does not
  use it up.
  """

  def __init__(self, name, wrapper):
    self.name = name
    self.wrapper = wrapper

  def find_spec(self, fullname, path=None, target=None):  # pylint: disable=unused-argument
    if fullname != self.name:
      return None
    remove_hook(self)
    try:
      spec = importlib.util.find_spec(fullname)
    finally:
      sys.meta_path.insert(0, self)
    if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
      return spec
    exec_module = spec.loader.exec_module

    def wrapped(module):
      remove_hook(self)
      self.wrapper(exec_module, module)

    spec.loader.exec_module = wrapped
    return spec


def remove_hook(hook):
  while hook in sys.meta_path:
    sys.meta_path.remove(hook)


def on_first_import(name, wrapper):
  """Arranges for `wrapper(exec_module, module)` to run the first import of top-level module `name`.

  Returns:
    The hook, or None when `name` is already imported (nothing to wrap).
  """
  if name in sys.modules:
    return None
  for hook in sys.meta_path:
    if isinstance(hook, _FirstImportHook) and hook.name == name and hook.wrapper == wrapper:
      return hook
  hook = _FirstImportHook(name, wrapper)
  sys.meta_path.insert(0, hook)
  return hook


def _exec_without_load_noise(exec_module, module):
  """Executes TensorFlow's `__init__` with fd 2 captured, then writes back all but the load noise.

  The noise comes from C++ static initialisers writing straight to file descriptor 2,
  so only an OS-level redirection catches it; everything else printed meanwhile
  (Python warnings, real errors) is written to stderr afterwards, in order.
  """
  try:
    sys.stderr.flush()
    saved = os.dup(2)
  except (OSError, AttributeError, ValueError):
    exec_module(module)
    return
  with tempfile.TemporaryFile() as captured:
    os.dup2(captured.fileno(), 2)
    try:
      exec_module(module)
      # Listing devices initialises the CUDA platform now, whose failed cuInit on a machine
      # without a driver would otherwise print an error line at the first op.
      module.config.list_physical_devices("GPU")
    finally:
      try:
        sys.stderr.flush()
      except (OSError, ValueError):
        pass
      os.dup2(saved, 2)
      os.close(saved)
      captured.seek(0)
      text = captured.read().decode("utf-8", errors="replace")
      # cuInit's failure is noise only where the loader found no CUDA driver at all.
      no_driver = "Could not find cuda drivers" in text
      kept = "".join(line for line in text.splitlines(keepends=True)
                     if not (_LOAD_NOISE.search(line)
                             or (no_driver and _NO_DRIVER_NOISE.search(line))))
      if kept:
        sys.stderr.write(kept)
        sys.stderr.flush()


def quiet_tensorflow_import():
  """Drops TensorFlow's GPU-probe and CPU-feature lines from its first import in this process.

  Left alone when the user set `TF_CPP_MIN_LOG_LEVEL` (they want TensorFlow's logs) or
  TensorFlow is already imported. The command line calls this; importing kerasvae does not.
  """
  if USER_SET_TF_LOG_LEVEL:
    return None
  return on_first_import("tensorflow", _exec_without_load_noise)


# TensorFlow 2.21 on Linux runs its oneDNN kernels by default only on a CPU with one of these
# (tensorflow/core/util/util.cc, `IsMklEnabled`); on any other it runs Eigen's, which this
# build compiled for AVX without FMA. On a CPU without them (AMD EPYC before Zen 4, Intel before
# Cascade Lake) that made the conv VAE's train step 0.49-0.69x of oneDNN's and put it behind
# PyTorch (issue 29; benchmarks/README.md).
TF_ONEDNN_DEFAULT_FLAGS = ("avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8",
                           "amx_bf16")
# What oneDNN was measured faster than Eigen with: AVX2 with FMA, and AVX-512 without VNNI (each
# emulated on a Zen 5 by an ONEDNN_MAX_CPU_ISA cap). Below AVX2 it was never measured.
ONEDNN_WANTED_FLAGS = ("avx2", "fma")


def cpuinfo_fields(cpuinfo=None):
  """{field: value} of the first processor in /proc/cpuinfo (or the text `cpuinfo`); None
  where it cannot be read."""
  if cpuinfo is None:
    try:
      cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
      return None
  fields = {}
  for line in cpuinfo.splitlines():
    if not line.strip():
      break  # the first processor is enough
    key, _, value = line.partition(":")
    fields.setdefault(key.strip(), value.strip())
  return fields


def cpu_flags(cpuinfo=None):
  """The set of the first processor's flags in /proc/cpuinfo (`cpuinfo`: its text); empty where
  there is none."""
  fields = cpuinfo_fields(cpuinfo)
  return set((fields or {}).get("flags", "").split())


def tensorflow_onednn_default(flags):
  """Whether TensorFlow turns oneDNN on by itself on a Linux CPU with these /proc/cpuinfo flags."""
  return any(f in flags for f in TF_ONEDNN_DEFAULT_FLAGS)


def onednn_switch(flags, environ, tensorflow_imported):
  """The `TF_ENABLE_ONEDNN_OPTS` value to set before TensorFlow loads, or None to leave it.

  "1" only where TensorFlow would pick Eigen on a CPU whose oneDNN kernels are faster (AVX2 and
  FMA), the user has not chosen, and TensorFlow has not read the variable yet (it reads it once,
  when it loads).
  """
  if "TF_ENABLE_ONEDNN_OPTS" in environ or tensorflow_imported:
    return None
  if not all(f in flags for f in ONEDNN_WANTED_FLAGS) or tensorflow_onednn_default(flags):
    return None
  return "1"


def prefer_onednn():
  """Turns TensorFlow's oneDNN kernels on where TensorFlow's default runs Eigen's, slower there.

  The `kerasvae` command, the Kubeflow components and the benchmarks call this before they
  import TensorFlow; `import kerasvae` does not (it changes nothing on import). In a program of
  your own on such a CPU, set `TF_ENABLE_ONEDNN_OPTS=1` before importing TensorFlow, or call
  this first. `TF_ENABLE_ONEDNN_OPTS=0` keeps Eigen.

  Returns:
    The value set, or None when nothing was changed.
  """
  value = onednn_switch(cpu_flags(), os.environ, "tensorflow" in sys.modules)
  if value is not None:
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = value
  return value


def onednn_enabled(environ=None, flags=None):
  """Whether TensorFlow runs (or, not yet loaded, will run) its oneDNN kernels in this process.

  Args:
    environ: an environment to predict from (default: `os.environ`, and TensorFlow's own answer
      once it is loaded).
    flags: the CPU's flags to predict from (default: /proc/cpuinfo's).
  """
  if environ is None:
    if "tensorflow" in sys.modules:
      try:
        from tensorflow.python.util import _pywrap_util_port  # pylint: disable=import-outside-toplevel
        return bool(_pywrap_util_port.IsMklEnabled())
      except (ImportError, AttributeError):
        pass
    environ = os.environ
  value = environ.get("TF_ENABLE_ONEDNN_OPTS", "").strip().lower()
  if value in ("1", "true"):
    return True
  if value in ("0", "false"):
    return False
  return tensorflow_onednn_default(cpu_flags() if flags is None else flags)
