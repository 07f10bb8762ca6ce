"""Wall time of the `kerasvae` commands that should not wait for TensorFlow.

Usage:
  python -m benchmarks.cli_startup [--runs 7]

Times, each in a fresh process, `kerasvae config`, `kerasvae --help` and a config
error (`kerasvae run --config bad.yaml` with a misspelt key), and reports the median
and the range of `--runs` runs, interleaved so that a change of machine load hits every
command alike. The goal is under 2 s each. It also reports whether each command
imported TensorFlow (it should not: only `ingest`, `train`, `evaluate`, `export`, `run`
and `study` need it) and, for reference, the time of `python -c "import tensorflow"`.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Run in the measured process after the command: did it import TensorFlow?
_PROBE = ("import sys; from kerasvae import cli; code = cli.main(sys.argv[1:]); "
          "print('tensorflow imported:', 'tensorflow' in sys.modules, file=sys.stderr)")


def command_line():
  """The `kerasvae` console script when it is installed, else `python -m kerasvae.cli`."""
  script = shutil.which("kerasvae")
  return [script] if script else [sys.executable, "-m", "kerasvae.cli"]


def time_command(argv, env):
  start = time.perf_counter()
  proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
  return time.perf_counter() - start, proc


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--runs", type=int, default=7, help="Runs of each command.")
  parser.add_argument("--no-tensorflow-reference", action="store_true",
                      help="Skip timing `import tensorflow`.")
  args = parser.parse_args(argv)
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
  with tempfile.TemporaryDirectory(prefix="kerasvae-startup-") as tmp:
    bad = Path(tmp) / "bad.yaml"
    bad.write_text("model:\n  latent_dims: 3\n")
    base = command_line()
    commands = {"kerasvae config": ["config"], "kerasvae --help": ["--help"],
                "config error": ["run", "--config", str(bad)]}
    print("{} cores; load average {:.2f} {:.2f} {:.2f}; command {}".format(
        os.cpu_count(), *os.getloadavg(), " ".join(base)))
    times = {name: [] for name in commands}
    for _ in range(args.runs):
      for name, extra in commands.items():
        seconds, proc = time_command(base + extra, env)
        expected = 2 if name == "config error" else 0
        if proc.returncode != expected:
          raise SystemExit(f"{name}: exit status {proc.returncode}, expected {expected}:\n"
                           f"{proc.stderr}")
        times[name].append(seconds)
    imports = {}
    for name, extra in commands.items():
      if extra == ["--help"]:
        continue  # argparse exits before the probe could print
      proc = subprocess.run([sys.executable, "-c", _PROBE, *extra], env=env,
                            capture_output=True, text=True, check=False)
      imports[name] = "tensorflow imported: True" in proc.stderr
  results = {}
  for name, values in times.items():
    results[name] = statistics.median(values)
    note = "" if name not in imports else (
        "; imports TensorFlow" if imports[name] else "; TensorFlow not imported")
    print(f"{name:16s} median {results[name]:.2f} s over {len(values)} runs "
          f"(min {min(values):.2f}, max {max(values):.2f}){note}")
  if not args.no_tensorflow_reference:
    seconds, _ = time_command([sys.executable, "-c", "import tensorflow"], env)
    results["import tensorflow"] = seconds
    print(f"for reference, python -c 'import tensorflow': {seconds:.2f} s (one run)")
  print("load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
  return results


if __name__ == "__main__":
  main()
