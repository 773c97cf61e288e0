"""Series types from header metadata: a scikit-learn classifier, the rule baseline it
must beat, and a generator of realistic metadata to train and test it on."""

from curate.classify.default import load_default_model
from curate.classify.model import SeriesTypeClassifier
from curate.classify.rules import UNKNOWN, RuleLabeler

__all__ = ["UNKNOWN", "RuleLabeler", "SeriesTypeClassifier", "load_default_model"]
