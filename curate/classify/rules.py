"""The obvious header rules: the baseline every model must beat, and a source of weak labels.

They read what a careful person would read first (Modality, BodyPartExamined,
ViewPosition, ImageType, the MR timing parameters and a few words of the series
description) and answer ``unknown`` when those say nothing.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from curate.classify.table import as_frame
from curate.index.derive import BODY_PART_SYNONYMS, VIEW_SYNONYMS

UNKNOWN = "unknown"
XRAY = {"CR", "DX", "DR", "RG"}


def _string(row: pd.Series, column: str) -> str:
    """The cell as text; "" where it is missing (None, or NaN as pandas reads a null)."""
    value = row.get(column)
    return value if isinstance(value, str) else ""


def _text(row: pd.Series, *columns: str) -> str:
    return " ".join(v for v in (row.get(c) for c in columns) if isinstance(v, str)).lower()


def _number(row: pd.Series, column: str) -> float | None:
    value = row.get(column)
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if np.isnan(value) else value


def _parts(value) -> list[str]:
    if isinstance(value, (list, tuple, np.ndarray)):
        return [str(v).upper() for v in value]
    return [p.upper() for p in value.split("\\") if p] if isinstance(value, str) else []


def _radiograph(row: pd.Series) -> str:
    part = _string(row, "BodyPartExamined").strip().upper()
    part = BODY_PART_SYNONYMS.get(part, part)
    if part and part != "CHEST":
        return "not_chest"
    view = _string(row, "ViewPosition").strip().upper()
    view = VIEW_SYNONYMS.get(view) or view
    if not part and not view:
        return UNKNOWN
    return {
        "PA": "chest_pa",
        "AP": "chest_ap",
        "LATERAL": "chest_lateral",
        "OBLIQUE": "chest_other",
        "DECUBITUS": "chest_other",
    }.get(view, UNKNOWN)


def _mr(row: pd.Series) -> str:
    text = _text(row, "SeriesDescription", "ProtocolName")
    image_type = _parts(row.get("ImageType"))
    if "LOCALIZER" in image_type or re.search(r"\b(loc|localizer|scout|survey)\b", text):
        return "mr_localizer"
    if "ADC" in image_type or "adc" in text:
        return "mr_adc"
    if "DIFFUSION" in image_type or re.search(r"dwi|diff", text):
        return "mr_dwi"
    if "PERFUSION" in image_type or "perf" in text:
        return "mr_perfusion"
    if "swi" in text:
        return "mr_swi"
    if "flair" in text or "dark-fluid" in text:
        return "mr_flair"
    if re.search(r"\bpd|proton", text):
        return "mr_pd"
    tr, te = _number(row, "RepetitionTime"), _number(row, "EchoTime")
    contrast = bool(_string(row, "ContrastBolusAgent").strip()) or re.search(r"\+c|post|gd", text)
    if "t1" in text or (tr is not None and te is not None and tr < 800 and te < 30):
        return "mr_t1_contrast" if contrast else "mr_t1"
    if "t2" in text or (tr is not None and te is not None and tr > 2000 and te > 60):
        return "mr_t2"
    return UNKNOWN


def _ct(row: pd.Series) -> str:
    text = _text(row, "SeriesDescription", "ProtocolName")
    image_type = _parts(row.get("ImageType"))
    if "dose" in text or _string(row, "Modality") == "SR":
        return "ct_dose_report"
    if "LOCALIZER" in image_type or re.search(r"scout|topogram|surview", text):
        return "ct_scout"
    if "REFORMATTED" in image_type or re.search(r"\b(cor|sag|mpr)", text):
        return "ct_reformat"
    if "AXIAL" in image_type or "ax" in text:
        return "ct_axial"
    return UNKNOWN


class RuleLabeler:
    """Series types from the obvious header rules; ``unknown`` where they say nothing."""

    def predict(self, X) -> np.ndarray:
        frame = as_frame(X)
        out = []
        for _, row in frame.iterrows():
            modality = _string(row, "Modality").strip().upper()
            if modality in XRAY:
                out.append(_radiograph(row))
            elif modality == "MR":
                out.append(_mr(row))
            elif modality in ("CT", "SR"):
                out.append(_ct(row))
            else:
                out.append(UNKNOWN)
        return np.array(out, dtype=object)
