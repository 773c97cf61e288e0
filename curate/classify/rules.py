"""The obvious header rules: the baseline every model must beat, and a source of weak labels.

They read what a careful person would read first (Modality, BodyPartExamined,
ViewPosition, ImageType, the MR timing parameters and a few words of the series
description) and answer ``unknown`` when those say nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

from curate.classify.table import as_frame
from curate.index.derive import BODY_PART_SYNONYMS, VIEW_SYNONYMS

UNKNOWN = "unknown"
XRAY = {"CR", "DX", "DR", "RG"}


def _string(row: Mapping, column: str) -> str:
    """The cell as text; "" where it is missing (None, or NaN as pandas reads a null)."""
    value = row.get(column)
    return value if isinstance(value, str) else ""


def _text(row: Mapping, *columns: str) -> str:
    return " ".join(v for v in (row.get(c) for c in columns) if isinstance(v, str)).lower()


def _number(row: Mapping, column: str) -> float | None:
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


#: A chest radiograph's type by its (normalised) ViewPosition.
VIEW_TYPES = {
    "PA": "chest_pa",
    "AP": "chest_ap",
    "LATERAL": "chest_lateral",
    "OBLIQUE": "chest_other",
    "DECUBITUS": "chest_other",
}


def _texts(frame: pd.DataFrame, column: str) -> pd.Series:
    """A column as text, stripped and upper-cased; "" where it is missing or not text."""
    if column not in frame:
        return pd.Series("", index=frame.index, dtype=object)
    values = [v if isinstance(v, str) else "" for v in frame[column].to_numpy()]
    return pd.Series(values, index=frame.index, dtype=object).str.strip().str.upper()


def _normalised(values: pd.Series, synonyms: dict[str, str]) -> pd.Series:
    mapped = values.map(synonyms)
    return mapped.where(mapped.notna() & (mapped != ""), values)


def _radiographs(frame: pd.DataFrame) -> np.ndarray:
    """The radiograph rule, column by column: not chest where the body part says another;
    else the view's type; unknown where neither says anything."""
    part = _normalised(_texts(frame, "BodyPartExamined"), BODY_PART_SYNONYMS)
    view = _normalised(_texts(frame, "ViewPosition"), VIEW_SYNONYMS)
    types = view.map(VIEW_TYPES).fillna(UNKNOWN).to_numpy(dtype=object)
    types[((part != "") & (part != "CHEST")).to_numpy()] = "not_chest"
    return types


def _mr(row: Mapping) -> str:
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


def _ct(row: Mapping) -> str:
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


#: The columns the MR and CT rules read, row by row.
ROW_RULE_COLUMNS = ("Modality", "SeriesDescription", "ProtocolName", "ImageType", "RepetitionTime", "EchoTime")
ROW_RULE_COLUMNS += ("ContrastBolusAgent",)


class RuleLabeler:
    """Series types from the obvious header rules; ``unknown`` where they say nothing.
    The radiograph rule runs column by column; the MR and CT rules row by row, on their
    own rows only, read as plain dicts."""

    def predict(self, X) -> np.ndarray:
        frame = as_frame(X)
        out = np.full(len(frame), UNKNOWN, dtype=object)
        modality = _texts(frame, "Modality")
        xray = modality.isin(XRAY).to_numpy()
        if xray.any():
            out[xray] = _radiographs(frame[xray])
        columns = [c for c in ROW_RULE_COLUMNS if c in frame]
        for rows, rule in ((modality == "MR").to_numpy(), _mr), (modality.isin(["CT", "SR"]).to_numpy(), _ct):
            if rows.any():
                out[rows] = [rule(row) for row in frame.loc[rows, columns].to_dict("records")]
        return out
