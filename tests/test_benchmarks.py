"""The benchmarks' `--quick` smoke runs: every variant runs and yields a rate (never a timing test)."""

import math

from benchmarks import train_throughput
from tests.conftest import MNIST_DIR


def test_train_throughput_quick_runs_every_variant(tmp_path, capsys):
  with_mnist = (MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file()
  argv = ["--quick", "--output", str(tmp_path), "--mnist-dir", str(MNIST_DIR)]
  results = train_throughput.main(argv + ([] if with_mnist else ["--no-mlp"]))
  assert set(results) == ({"mnist", "dsprites"} if with_mnist else {"dsprites"})
  expected = {"reader", "bare", "keras", "project spe=10", "project spe=10 (step)",
              "project spe=10 train only", "project spe=10 train only (step)"}
  for best, memory in results.values():
    variants = {variant for _, variant in best}
    assert expected <= variants
    assert all(rate > 0 and math.isfinite(rate) for rate in best.values())
    assert all(mb > 100 for mb in memory.values())  # a TF process's resident set
  out = capsys.readouterr().out
  assert "project spe=10 train only: (1)/(2) epoch" in out
  if train_throughput.torch_available():  # the PyTorch peer of the conv step, in its own process
    assert (128, "torch channels-last") in results["dsprites"][0]
    assert "128 against torch channels-last: bare/torch" in out
