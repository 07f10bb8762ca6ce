"""The benchmarks' `--quick` smoke runs: every variant runs and yields a rate (never a timing test)."""

import json
import math

import pytest

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


def test_disentanglement_scoring_quick_times_every_part(tmp_path):
  from benchmarks import disentanglement_scoring  # pylint: disable=import-outside-toplevel
  path = tmp_path / "scoring.json"
  results = disentanglement_scoring.main(["--quick", "--architectures", "mlp", "--json", str(path)])
  assert json.loads(path.read_text()) == json.loads(json.dumps(results))
  result = results["models"]["mlp"]
  assert (result["train_points"], result["eval_points"]) == (20, 10)
  seconds = result["seconds"]
  for score in ("beta_vae", "factor_vae", "mig", "dci", "sap", "all"):
    parts = seconds[score]
    assert all(math.isfinite(s) and s >= 0 for s in parts.values())
    assert parts["total"] == pytest.approx(sum(parts[p] for p in disentanglement_scoring.PARTS))
  assert seconds["all"]["total"] <= result["wall_seconds"]
  for score in ("beta_vae", "factor_vae", "mig", "dci", "sap"):
    assert seconds[score]["fitting"] > 0
  # Images drawn at these sizes: (20 + 10) points of 2 x 64 images, a variance estimate of 10,000
  # and (20 + 10) votes of 64, 20 codes, 20 + 10 codes twice; no score renders or encodes more
  # than it draws.
  drawn = {"beta_vae": 30 * 2 * 64, "factor_vae": 10000 + 30 * 64, "mig": 20, "dci": 30,
           "sap": 30}
  for score, images in drawn.items():
    encoded = result["images"][score]["encoded"]
    assert encoded == 0 if score == "sap" else 0 < encoded <= images  # SAP draws DCI's codes
    assert result["images"][score]["rendered"] <= images
  assert 0 <= result["scores"]["beta_vae_score"] <= 1 and result["scores"]["num_active_dims"] == 10
  assert 0 <= result["scores"]["dci_disentanglement"] <= 1 and 0 <= result["scores"]["sap"] <= 1


def test_conv_trace_attributes_onednn_lines_to_layers():
  """TF's convolution lines and PyTorch's deconvolution lines land on the same layer names."""
  from benchmarks import conv_trace  # pylint: disable=import-outside-toplevel
  shapes = conv_trace.layer_shapes({"filters": [32, 64]}, (16, 16, 1))
  line = "onednn_verbose,v1,primitive,exec,cpu,{},{},{},src:f32,,alg:x,mb8_{}kh4sh2,{}"
  tf_step = [("convolution", "brg_conv_fwd:avx2", "forward_training", "ic1oc32_ih16", 1.0),  # enc1
             ("convolution", "brg_conv_fwd:avx2", "forward_training", "ic32oc64_ih8", 2.0),  # enc2
             ("convolution", "brgconv_strided:avx2", "backward_data", "ic32oc64_ih8", 3.0),  # dec1
             ("convolution", "brgconv_strided:avx2", "backward_data", "ic1oc32_ih16", 4.0),  # dec2
             ("convolution", "jit:avx2", "backward_weights", "ic1oc32_ih16", 5.0),  # dec2
             ("convolution", "brg_conv_fwd:avx2", "forward_training", "ic1oc32_ih16", 6.0),  # dec2
             ("convolution", "jit:avx2", "backward_weights", "ic1oc32_ih16", 7.0)]  # enc1
  text = "\n".join(["=== kerasvae conv_trace step 0"]
                   + [line.format(p, i, d, k, ms) for p, i, d, k, ms in tf_step]
                   + ["=== kerasvae conv_trace end 10.0"])
  table = conv_trace.summarise(conv_trace.parse(text), shapes)
  assert {k: v[0] for k, v in table.items()} == {
      ("enc1 1->32 @16", "fwd"): 1.0, ("enc2 32->64 @8", "fwd"): 2.0,
      ("dec1 64->32 @4", "fwd"): 3.0, ("dec2 32->1 @8", "fwd"): 4.0,
      ("dec2 32->1 @8", "bwd-weights"): 5.0, ("dec2 32->1 @8", "bwd-data"): 6.0,
      ("enc1 1->32 @16", "bwd-weights"): 7.0}
  torch_step = [("convolution", "jit:avx2", "backward_weights", "ic1oc32_ih16", 1.0),
                ("deconvolution", "brg_deconv:avx2", "forward_training", "ic32oc1_ih8", 2.0)]
  text = "\n".join(["=== kerasvae conv_trace step 0"]
                   + [line.format(p, i, d, k, ms) for p, i, d, k, ms in torch_step])
  table = conv_trace.summarise(conv_trace.parse(text), shapes)
  assert set(table) == {("enc1 1->32 @16", "bwd-weights"), ("dec2 32->1 @8", "fwd")}


def test_conv_trace_names_tensorflow_profiler_ops_by_layer_and_pass():
  """Eigen's ops and oneDNN's (`_MklNative...`) alike; a transposed convolution's forward is a
  Conv2DBackpropInput; Keras' names count up with the graph's `_N` suffix after them."""
  from benchmarks import conv_trace  # pylint: disable=import-outside-toplevel
  shapes = conv_trace.layer_shapes({"filters": [32, 64]}, (16, 16, 1))
  op_ms = {"encoder_1/conv2d_4_1/Relu:_FusedConv2D": 1.0,  # enc1 (an earlier model took conv2d..3)
           "gradient_tape/encoder_1/conv2d_5_2/convolution/Conv2DBackpropInput:"
           "Conv2DBackpropInput": 2.0,  # enc2
           "gradient_tape/encoder_1/conv2d_5_2/convolution/Conv2DBackpropFilter:"
           "_MklNativeConv2DBackpropFilterWithBias": 3.0,
           "decoder_1/conv2d_transpose_1/conv_transpose:Conv2DBackpropInput": 4.0,  # dec1
           "gradient_tape/decoder_1/conv2d_transpose_1/conv_transpose/Conv2D:Conv2D": 5.0,
           "decoder_1/conv2d_transpose_1_2/conv_transpose:_MklNativeConv2DBackpropInput": 6.0,
           "gradient_tape/decoder_1/conv2d_transpose_1_2/BiasAdd/BiasAddGrad:BiasAddGrad": 0.5,
           "Adam/Sub:Sub": 0.25}
  table = conv_trace.label_tf_ops(op_ms, shapes)
  assert {k: v[0] for k, v in table.items()} == {
      ("enc1 1->32 @16", "fwd"): 1.0, ("enc2 32->64 @8", "bwd-data"): 2.0,
      ("enc2 32->64 @8", "bwd-weights"): 3.0, ("dec1 64->32 @4", "fwd"): 4.0,
      ("dec1 64->32 @4", "bwd-data"): 5.0, ("dec2 32->1 @8", "fwd"): 6.0, ("other", "ops"): 0.75}
  assert table[("enc2 32->64 @8", "bwd-weights")][1] == ["_MklNativeConv2DBackpropFilterWithBias"]
