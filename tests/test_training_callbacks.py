"""The training loop's callbacks alone, without a training: early stopping and TensorBoard scalars."""

import keras
import numpy as np
import tensorflow as tf

from kerasvae import training


def test_early_stopping_keeps_the_best_weights_and_stops_when_patience_runs_out(tmp_path):
  model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
  stopping = training.EarlyStopping(model, patience=2,
                                    best_prefix=str(tmp_path / "best" / "model"))
  best = [w.copy() for w in model.get_weights()]
  assert stopping.on_evaluation(None, {"objective": -5.0}) is False  # the first is the best
  model.set_weights([w + 1.0 for w in best])
  assert stopping.on_evaluation(None, {"objective": -6.0}) is False  # 1 without improvement
  assert stopping.on_evaluation(None, {"elbo": -7.0, "objective": -5.5}) is True  # 2: stop
  assert float(stopping.best.numpy()) == -5.0 and int(stopping.evals_since_best.numpy()) == 2
  assert sorted(stopping.state()) == ["best_eval_elbo", "evals_since_best"]
  stopping.on_train_end(None)  # the best weights come back
  assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), best))


def test_early_stopping_scores_an_evaluation_without_the_objective_by_its_elbo(tmp_path):
  model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
  stopping = training.EarlyStopping(model, patience=1, best_prefix=str(tmp_path / "model"))
  stopping.on_evaluation(None, {"elbo": -3.0})
  assert float(stopping.best.numpy()) == -3.0
  stopping.on_evaluation(None, {"reconstruction": 2.0})  # an autoencoder: −reconstruction
  assert float(stopping.best.numpy()) == -2.0


def test_without_patience_early_stopping_never_stops_nor_writes(tmp_path):
  model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
  stopping = training.EarlyStopping(model, patience=0, best_prefix=str(tmp_path / "model"))
  assert not any(stopping.on_evaluation(None, {"objective": -v}) for v in range(5))
  assert list(tmp_path.iterdir()) == []


def test_tensorboard_scalars_writes_a_record_to_the_two_runs(tmp_path):
  class Trainer:  # what the callback reads of the loop
    scheduled_names = ("kl_weight",)

  callback = training.TensorBoardScalars(str(tmp_path / "logs"))
  record = {"train/loss": 3.0, "epoch": 2, "learning_rate": 0.125, "kl_weight": 0.5,
            "seconds": 1.0, "examples_per_second": 8.0, "validation/elbo": -4.0,
            "validation/kl_per_dim": [0.25, 0.75], "elapsed": 2.0}
  callback.on_epoch_end(Trainer(), 2, record)
  callback.on_train_end(Trainer())
  tags = {}
  for run in ("train", "validation"):
    for path in (tmp_path / "logs" / run).glob("events.out.tfevents.*"):
      for event in tf.compat.v1.train.summary_iterator(str(path)):
        for value in event.summary.value:
          tags[(run, value.tag)] = (event.step, float(tf.make_ndarray(value.tensor)))
  assert tags == {("train", "loss"): (2, 3.0), ("train", "learning_rate"): (2, 0.125),
                  ("train", "kl_weight"): (2, 0.5), ("train", "examples_per_second"): (2, 8.0),
                  ("validation", "elbo"): (2, -4.0), ("validation", "kl_per_dim/z0"): (2, 0.25),
                  ("validation", "kl_per_dim/z1"): (2, 0.75)}
