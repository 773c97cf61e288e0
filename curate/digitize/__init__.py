"""Digitised films as a source: scanned film images and a manifest CSV in, DICOM
Secondary Capture files out (Conversion Type DF), ready to scan into the index.

Modules: the manifest and its checks (`manifest`), reading a scan (`image`), the DICOM
file of a film and its UIDs (`film`), the run (`run`).
"""

from curate.digitize.film import Digitizer
from curate.digitize.run import DigitizeResult, digitize

__all__ = ["Digitizer", "DigitizeResult", "digitize"]
