"""Test set-up: Triton runs in interpreter mode when there is no GPU.

TRITON_INTERPRET must be set before Triton is first imported, so it is set here, before
any test module imports igrsr's Triton bindings.
"""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
