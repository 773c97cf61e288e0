"""PyTorch access to a curated dataset version (see :mod:`curate.dataset.torch`)."""

from curate.dataset.torch import CuratedDataset

__all__ = ["CuratedDataset"]
