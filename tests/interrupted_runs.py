"""A training run killed between two epochs, for the resume tests of every trainer (classifier,
language model, streamed, --init-from): `fit(..., callbacks=[InterruptAfterEpoch(n)])` raises
`SimulatedKillError` at the end of epoch n, after Keras's `BackupAndRestore` has saved it, as a
kill at that moment would leave the run folder."""

import keras


class SimulatedKillError(Exception):
    """Stands for the process being killed between two epochs."""


class InterruptAfterEpoch(keras.callbacks.Callback):
    """Raises `SimulatedKillError` at the end of epoch `epoch` (0-based)."""

    def __init__(self, epoch: int = 0):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise SimulatedKillError
