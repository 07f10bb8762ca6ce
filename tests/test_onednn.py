"""Which CPU kernels TensorFlow runs: oneDNN's where they are faster, also where TensorFlow's own
default would leave them off (issue 29: AVX2 CPUs without VNNI, bf16 or AMX ran Eigen's)."""

import json
import subprocess
import sys

import pytest

from kerasvae import _backend
from tests.pipeline_helpers import REPO
from tests.pipeline_helpers import subprocess_env

# /proc/cpuinfo flags (the oneDNN-relevant part) of the CPU classes in benchmarks/README.md.
EPYC_ZEN2 = {"sse4_2", "avx", "avx2", "fma", "bmi2"}  # machine B: AVX2, no AVX-512, no VNNI
SKYLAKE_SP = EPYC_ZEN2 | {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"}  # no VNNI
CASCADE_LAKE = SKYLAKE_SP | {"avx512_vnni"}
ALDER_LAKE = EPYC_ZEN2 | {"avx_vnni"}
ZEN5 = CASCADE_LAKE | {"avx512_bf16", "avx_vnni"}  # machine C
SAPPHIRE_RAPIDS = ZEN5 | {"amx_tile", "amx_int8", "amx_bf16"}
SANDY_BRIDGE = {"sse4_2", "avx"}  # no AVX2, no FMA
ARM = {"fp", "asimd", "sve"}


@pytest.mark.parametrize("flags, tensorflow_default", [
    (EPYC_ZEN2, False), (SKYLAKE_SP, False), (SANDY_BRIDGE, False), (ARM, False),
    (CASCADE_LAKE, True), (ALDER_LAKE, True), (ZEN5, True), (SAPPHIRE_RAPIDS, True)])
def test_tensorflow_default_is_predicted_from_the_cpu_flags(flags, tensorflow_default):
  # TensorFlow 2.21's list (tensorflow/core/util/util.cc): AVX512_VNNI, AVX512_BF16, AVX_VNNI, AMX.
  assert _backend.tensorflow_onednn_default(flags) is tensorflow_default
  assert _backend.onednn_enabled({}, flags) is tensorflow_default
  assert _backend.onednn_enabled({"TF_ENABLE_ONEDNN_OPTS": "1"}, flags) is True
  assert _backend.onednn_enabled({"TF_ENABLE_ONEDNN_OPTS": "false"}, flags) is False


def test_onednn_is_turned_on_only_where_tensorflow_would_run_eigen_on_an_avx2_cpu():
  for flags in (EPYC_ZEN2, SKYLAKE_SP):
    assert _backend.onednn_switch(flags, {}, tensorflow_imported=False) == "1"
    # The user's choice stands, either way; once TensorFlow has loaded it is too late to set.
    for value in ("0", "1", "false"):
      assert _backend.onednn_switch(flags, {"TF_ENABLE_ONEDNN_OPTS": value}, False) is None
    assert _backend.onednn_switch(flags, {}, tensorflow_imported=True) is None
  # TensorFlow turns it on by itself there, and without AVX2 and FMA it was never measured.
  for flags in (CASCADE_LAKE, ALDER_LAKE, ZEN5, SAPPHIRE_RAPIDS, SANDY_BRIDGE, ARM, set()):
    assert _backend.onednn_switch(flags, {}, tensorflow_imported=False) is None


def test_the_flags_are_read_from_the_first_processor():
  cpuinfo = ("processor\t: 0\nmodel name\t: AMD EPYC 7B12\nflags\t\t: fpu avx avx2 fma\n\n"
             "processor\t: 1\nflags\t\t: avx512_vnni\n")
  assert _backend.cpu_flags(cpuinfo) == {"fpu", "avx", "avx2", "fma"}
  assert _backend.cpu_flags("") == set()


def _fresh(code, **env):
  """Runs `code` in a fresh Python whose CPU reads as machine B's (`_backend.cpu_flags`
  patched before anything else), and returns what it printed as JSON."""
  prelude = ("import json, os, sys\n"
             "from kerasvae import _backend\n"
             f"_backend.cpu_flags = lambda cpuinfo=None: {sorted(EPYC_ZEN2)!r}\n")
  environ = subprocess_env(**env)
  if "TF_ENABLE_ONEDNN_OPTS" not in env:
    environ.pop("TF_ENABLE_ONEDNN_OPTS", None)
  proc = subprocess.run([sys.executable, "-c", prelude + code], cwd=REPO, env=environ,
                        capture_output=True, text=True, timeout=180)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


TENSORFLOW_ANSWER = (
    "import tensorflow\n"
    "from tensorflow.python.util import _pywrap_util_port\n"
    "from kerasvae import artifacts\n"
    "print(json.dumps([value, os.environ.get('TF_ENABLE_ONEDNN_OPTS'),\n"
    "                  _pywrap_util_port.IsMklEnabled(), artifacts.machine()['onednn']]))\n")


def test_tensorflow_runs_onednn_when_the_switch_is_set_before_it_loads():
  """The real TensorFlow in a fresh process: it reads the variable prefer_onednn sets."""
  assert _fresh("value = _backend.prefer_onednn()\n" + TENSORFLOW_ANSWER) == ["1", "1", True, True]
  # The user's 0 keeps Eigen, and the metadata says so.
  assert _fresh("value = _backend.prefer_onednn()\n" + TENSORFLOW_ANSWER,
                TF_ENABLE_ONEDNN_OPTS="0") == [None, "0", False, False]
  # TensorFlow loaded first: too late, nothing is set.
  assert _fresh("import tensorflow\nvalue = _backend.prefer_onednn()\n"
                + TENSORFLOW_ANSWER)[:2] == [None, None]


@pytest.mark.parametrize("entry_point", [
    "from kerasvae import cli\ncli.main(['config'])",  # the kerasvae command
    "import kerasvae.steps.kfp_adapter",  # what every Kubeflow component imports first
    "import benchmarks.train_throughput"])  # the benchmarks time what the command runs
def test_every_entry_point_sets_the_switch_before_tensorflow_loads(entry_point):
  printed = _fresh(entry_point + "\nprint(json.dumps(['tensorflow' in sys.modules, "
                   "os.environ.get('TF_ENABLE_ONEDNN_OPTS')]))\n")
  assert printed == [False, "1"]


def test_importing_the_library_changes_nothing():
  assert _fresh("import kerasvae.models\n"
                "print(json.dumps(os.environ.get('TF_ENABLE_ONEDNN_OPTS')))\n") is None
