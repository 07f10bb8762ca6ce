"""Distributed training: strategies, the training loop, checkpoints, resumption and callbacks.

One module per job:

  devices      tf.distribute strategies, the chief, whether bfloat16 can be computed here
  step         the compiled training step (gradients and update of every objective) and the
               learning-rate schedule
  checkpoints  the resumption checkpoint written off the training thread, the history beside
               it, what a finished training removes
  callbacks    what the loop does besides stepping: early stopping, TensorBoard scalars (written
               by `kerasvae.summaries`), the step's per-epoch pictures
  loop         `Trainer`: epochs of steps, evaluation, checkpoints, SIGINT/SIGTERM
  errors       `TrainingError`, `TrainingInterrupted`

The names below are the package's interface (`from kerasvae import training`).
"""

from kerasvae.training.callbacks import Callback
from kerasvae.training.callbacks import EarlyStopping
from kerasvae.training.callbacks import EpochEndFunction
from kerasvae.training.callbacks import TensorBoardScalars
from kerasvae.training.checkpoints import BEST_DIR
from kerasvae.training.checkpoints import CHECKPOINT_DIR
from kerasvae.training.checkpoints import HISTORY_FILE
from kerasvae.training.checkpoints import CheckpointWriter
from kerasvae.training.checkpoints import Resumption
from kerasvae.training.checkpoints import has_checkpoint
from kerasvae.training.checkpoints import history_json
from kerasvae.training.checkpoints import remove_resumption_state
from kerasvae.training.devices import AVX512_CORE_FLAGS
from kerasvae.training.devices import NO_BFLOAT16_ISA_CAPS
from kerasvae.training.devices import check_precision
from kerasvae.training.devices import describe_strategy
from kerasvae.training.devices import is_chief
from kerasvae.training.devices import make_strategy
from kerasvae.training.errors import TrainingError
from kerasvae.training.errors import TrainingInterrupted
from kerasvae.training.loop import Trainer
from kerasvae.training.step import LOGGED_TERMS
from kerasvae.training.step import learning_rate_schedule
from kerasvae.training.step import make_train_fn
