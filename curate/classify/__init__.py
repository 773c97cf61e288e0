"""Series types from header metadata: a scikit-learn classifier, a model that adapts to
the user's own archive, the rule baseline they must beat, and generators of realistic
metadata to train and test them on."""

from curate.classify.adapt import adapt_to_archive
from curate.classify.default import load_default_model
from curate.classify.model import SeriesTypeClassifier
from curate.classify.rules import UNKNOWN, RuleLabeler

__all__ = ["UNKNOWN", "RuleLabeler", "SeriesTypeClassifier", "adapt_to_archive", "load_default_model"]
