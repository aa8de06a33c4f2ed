"""Segmentation tests run torch on one thread.

Their models are tiny: extra threads gain nothing, and on a busy shared CPU OpenMP threads waiting
for each other made the trainer tests 10-40x slower. The caller's thread count is restored.
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
