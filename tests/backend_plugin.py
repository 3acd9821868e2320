"""pytest plugin for the per-backend runs of tests/training/test_backends.py (`-p backend_plugin`).

- The reference tests compare layer outputs with NumPy through `np.asarray`. A torch tensor
  that takes part in autograd refuses `__array__` ("Can't call numpy() on Tensor that requires
  grad"); what the tests compare is its values, so NumPy reads it detached, exactly as
  `keras.ops.convert_to_numpy` does. Nothing else about torch changes.
- Property tests run 5 examples each instead of the suite's 15: the same properties, checked
  on every backend, within the suite's time budget (the full 15 run on the suite's backend).
"""

import keras
from hypothesis import settings

PER_BACKEND_EXAMPLES = 5


def pytest_configure(config):
    if keras.backend.backend() != "torch":
        return
    import torch

    original = torch.Tensor.__array__

    def detached_array(self, *args, **kwargs):
        tensor = self.detach().cpu()
        if tensor.dtype == torch.bfloat16:  # NumPy has no bfloat16: float32 holds it exactly
            tensor = tensor.float()
        return original(tensor, *args, **kwargs)

    torch.Tensor.__array__ = detached_array


def pytest_collection_modifyitems(session, config, items):
    # After tests/conftest.py has loaded the suite's profile: the per-backend one wins.
    settings.register_profile("per_backend", settings.get_profile("keras_attn"),
                              max_examples=PER_BACKEND_EXAMPLES)
    settings.load_profile("per_backend")
