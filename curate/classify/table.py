"""Index tables as the classifier sees them: any subset of the scanner's columns."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from curate.index.schema import INDEX_FILE_COLUMNS

#: Columns that are never features: identifiers, names, dates and times, where a file
#: lives (the index's file columns), patient demographics, and the labels themselves. A
#: model must learn what a series is, not who or where it came from.
NEVER_FEATURES = re.compile(
    r"(UID|ID|IDs|Name|Names|Date|Time|DateTime|Number|Age|Sex|Weight|Size|BirthDate)$"
    r"|^("
    + "|".join(INDEX_FILE_COLUMNS)
    + r"|InstitutionName|InstitutionalDepartmentName|InstitutionAddress|StationName|DeviceSerialNumber"
    r"|AccessionNumber|age_years|sex|study_year|series_type|label|site)$"
)
#: Except these, whose names end like identifiers but which describe the equipment.
ALLOWED = {
    "ManufacturerModelName",
    "EchoTrainLength",
    "ExposureTime",
    "InversionTime",
    "RepetitionTime",
    "EchoTime",
    "SequenceName",
    "ProtocolName",
    "NumberOfFrames",
    "AcquisitionNumber",
}


def as_frame(X) -> pd.DataFrame:
    """A pandas DataFrame from a DataFrame, an Arrow table or a 2-D array."""
    import scipy.sparse as sp

    if sp.issparse(X):
        raise TypeError("sparse input is not supported: pass an index table (pandas, Arrow) or a dense array")
    if isinstance(X, pd.DataFrame):
        frame = X
        if frame.shape[1] == 0:
            raise ValueError(f"0 feature(s) (shape={frame.shape}) while a minimum of 1 is required.")
        return frame
    if hasattr(X, "to_pandas") and hasattr(X, "schema"):  # pyarrow.Table / RecordBatch
        return X.to_pandas()
    array = np.asarray(X)
    if array.ndim != 2:
        raise ValueError(
            f"Expected 2D array, got an array of shape {array.shape}. Reshape your data: a table, one row per instance"
        )
    if array.shape[1] == 0:
        raise ValueError(f"0 feature(s) (shape={array.shape}) while a minimum of 1 is required.")
    return pd.DataFrame(array, columns=[f"x{i}" for i in range(array.shape[1])])


def is_feature_column(name: str) -> bool:
    return name in ALLOWED or not NEVER_FEATURES.search(name)
