"""Versioned, de-identified, split datasets built from the index."""

from curate.dataset.build import BuildResult, build_dataset, plan_dataset
from curate.dataset.spec import DatasetSpec
from curate.dataset.versions import diff, list_versions, show

__all__ = ["BuildResult", "DatasetSpec", "build_dataset", "diff", "list_versions", "plan_dataset", "show"]
