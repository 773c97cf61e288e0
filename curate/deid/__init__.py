"""De-identification to DICOM PS3.15 Annex E: the profile as data (:mod:`.profile`)
and keyed pseudonyms (:mod:`.pseudonym`)."""

from curate.deid.profile import Options, Profile, rules
from curate.deid.pseudonym import Pseudonymizer, load_key
from curate.errors import DeidKeyError

__all__ = ["DeidKeyError", "Options", "Profile", "Pseudonymizer", "load_key", "rules"]
