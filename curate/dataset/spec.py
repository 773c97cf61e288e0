"""What a dataset is made of: the spec of ``conf/dataset/<name>.yaml``."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field

from curate.deid.profile import Options
from curate.errors import ConfigError

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass
class SplitSpec:
    train: float = 0.8
    val: float = 0.1
    test: float = 0.1
    #: Keep each label's share alike across splits (patients are still never shared).
    stratify: bool = True

    def __post_init__(self) -> None:
        if min(self.train, self.val, self.test) < 0 or abs(self.train + self.val + self.test - 1) > 1e-6:
            raise ConfigError(
                f"split ratios must be non-negative and sum to 1, not {self.train}/{self.val}/{self.test}"
            )


@dataclass
class QualitySpec:
    exclude_burned_in: bool = True
    exclude_derived: bool = False
    min_rows: int = 0
    min_columns: int = 0


@dataclass
class ExportSpec:
    """Images written beside the DICOM files for fast training: ``png16`` (16-bit
    greyscale) or ``npy`` (float16), the longer side `size` pixels, after the same LUT,
    window and MONOCHROME1 handling as the loader applies. None: no export."""

    format: str | None = None
    size: int = 512

    def __post_init__(self) -> None:
        if self.format not in (None, "png16", "npy"):
            raise ConfigError(f"export.format must be png16, npy or null, not {self.format!r}")
        if self.size < 8:
            raise ConfigError(f"export.size must be at least 8, not {self.size}")


@dataclass
class DatasetSpec:
    name: str
    #: A SQL condition over the index (view ``idx``, joined with series types when the
    #: index has them), e.g. ``Modality IN ('CR','DX') AND body_part = 'CHEST'``.
    select: str = "TRUE"
    #: Keep only these predicted series types (needs series_types.parquet beside the index).
    series_types: list[str] = field(default_factory=list)
    #: Keep only instances of these predicted types: each instance's own answer, which
    #: may differ from its series' (a CR series may hold a PA and a lateral).
    instance_types: list[str] = field(default_factory=list)
    #: The column that gives each instance its label (null: no label).
    label: str | None = None
    quality: QualitySpec = field(default_factory=QualitySpec)
    #: Drop copies: the same SOPInstanceUID, and the same pixel bytes under another UID.
    dedupe_pixels: bool = True
    split: SplitSpec = field(default_factory=SplitSpec)
    deid: Options = field(default_factory=Options)
    uid_root: str = "2.25"
    export: ExportSpec = field(default_factory=ExportSpec)

    def __post_init__(self) -> None:
        if not NAME.match(self.name):
            raise ConfigError(f"dataset name {self.name!r}: letters, digits, '.', '_', '-' only (it names a folder)")

    @classmethod
    def from_dict(cls, raw: dict) -> DatasetSpec:
        raw = dict(raw)
        return cls(
            name=raw.pop("name"),
            select=raw.pop("select", "TRUE") or "TRUE",
            series_types=list(raw.pop("series_types", None) or []),
            instance_types=list(raw.pop("instance_types", None) or []),
            label=raw.pop("label", None),
            quality=QualitySpec(**(raw.pop("quality", None) or {})),
            dedupe_pixels=raw.pop("dedupe_pixels", True),
            split=SplitSpec(**(raw.pop("split", None) or {})),
            deid=Options(**(raw.pop("deid", None) or {})),
            uid_root=str(raw.pop("uid_root", "2.25")),
            export=ExportSpec(**(raw.pop("export", None) or {})),
            **raw,
        )

    def to_dict(self) -> dict:
        return asdict(self)

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()
