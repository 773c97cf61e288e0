"""Chest radiograph archives as real ones look, for testing how a series-type model holds
up where the project's first generator (:mod:`curate.classify.synth`) is too kind.

Two profiles follow what two real public chest radiograph archives showed when their
header tables were measured (the archives themselves are not in the project):

- ``"A"``: many header fields, three sites. ViewPosition is missing for about a third
  of the images, and one site copies the study's "PA" to every image, laterals
  included. A frontal and a lateral often share one series.
- ``"B"``: few header fields (18, identifiers included), two manufacturers, no
  descriptions. ViewPosition is spelled POSTEROANTERIOR / LATERAL / LL and is missing
  for 43% of the images.

Both use vendors, models and languages the first generator never uses, and their
detector sizes and exposures overlap between views. The ViewPosition rule
(:func:`view_position_rule`) scores about 0.61 (A) and 0.78 (B) frontal-vs-lateral
balanced accuracy on them, as it does on the real archives.

Rows are instances: the index's keyword columns, plus ``series_type`` (the truth) and
``site``. A study is a patient's visit: a PA and a lateral, a portable AP, or a PA
alone. The same seed gives the same rows. Frozen: models are tuned against it, so
changing it changes what the tests measure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from curate.index.derive import VIEW_SYNONYMS

FRONTAL = ("chest_pa", "chest_ap")
LATERAL = "chest_lateral"


@dataclass(frozen=True)
class ArchiveSite:
    name: str
    manufacturer: str
    models: tuple[str, ...]
    language: str  # key of WORDS
    #: Share of images whose ViewPosition is empty.
    missing_view: float
    #: Share of laterals whose ViewPosition says PA (the study's view copied to every image).
    lateral_as_pa: float
    #: Whether the PA and the lateral of a visit share one series.
    one_series: bool
    #: Share of images with a processing description that names the view (CR readers do).
    names_view: float
    #: Spellings of (PA, AP, lateral) in ViewPosition.
    view_spelling: tuple[str, str, str] = ("PA", "AP", "LL")
    #: Exposure (mAs) of a lateral against a PA: overlapping where close to 1.
    lateral_exposure: float = 2.0
    #: Whether the site writes the fields of the rich profile (descriptions, dose, geometry).
    rich: bool = True


# Words per language: (chest, PA, AP, lateral, bedside).
WORDS = {
    "it": ("TORACE", "PA", "AP", "LATERALE", "LETTO"),
    "nl": ("THORAX", "PA", "AP", "ZIJ", "BED"),
    "en": ("CHEST", "PA", "AP", "LAT", "PORTABLE"),
    "pt": ("TORAX", "PA", "AP", "PERFIL", "LEITO"),
}

PROFILES: dict[str, tuple[ArchiveSite, ...]] = {
    "A": (
        ArchiveSite("A1", "AGFA", ("DX-D 300", "CR 85-X"), "it", 0.10, 0.95, True, 0.0, lateral_exposure=1.6),
        ArchiveSite("A2", "KONICA MINOLTA", ("AeroDR", "REGIUS 190"), "nl", 0.75, 0.0, False, 0.6),
        ArchiveSite("A3", "Shimadzu", ("RADspeed Pro",), "en", 0.25, 0.45, False, 0.3, lateral_exposure=2.4),
    ),
    "B": (
        ArchiveSite(
            "B1", "SAMSUNG", ("GC85A",), "pt", 0.43, 0.0, False, 0.0, ("POSTEROANTERIOR", "AP", "LATERAL"), 1.5, False
        ),
        ArchiveSite(
            "B2", "DRGEM", ("TOPAZ",), "pt", 0.43, 0.0, False, 0.0, ("POSTEROANTERIOR", "AP", "LL"), 1.8, False
        ),
    ),
}

#: The 18 fields of the poor profile (B), identifiers included.
POOR_FIELDS = (
    "SOPInstanceUID",
    "SeriesInstanceUID",
    "StudyInstanceUID",
    "PatientID",
    "StudyDate",
    "PatientSex",
    "PatientAge",
    "Modality",
    "Manufacturer",
    "ManufacturerModelName",
    "BodyPartExamined",
    "ViewPosition",
    "Rows",
    "Columns",
    "PhotometricInterpretation",
    "BitsStored",
    "PixelSpacing",
    "KVP",
)


def _uid(rng: np.random.Generator) -> str:
    return "2.25." + str(int(rng.integers(1, 2**62)) * 1_000_003 + int(rng.integers(1, 10**6)))


def _visit(rng: np.random.Generator) -> list[str]:
    """The views of one visit: mostly a PA and a lateral; portable APs stand alone."""
    kind = rng.choice(["pa_lat", "ap", "pa"], p=[0.55, 0.3, 0.15])
    return {"pa_lat": ["chest_pa", LATERAL], "ap": ["chest_ap"], "pa": ["chest_pa"]}[str(kind)]


def _image(site: ArchiveSite, view: str, rng: np.random.Generator) -> dict:
    chest, pa, ap, lat, bedside = WORDS[site.language]
    spelled_pa, spelled_ap, spelled_lat = site.view_spelling
    shown = {"chest_pa": spelled_pa, "chest_ap": spelled_ap, LATERAL: spelled_lat}[view]
    if view == LATERAL and rng.random() < site.lateral_as_pa:
        shown = spelled_pa
    if rng.random() < site.missing_view:
        shown = ""
    # One detector for every view (43 x 43 cm or 35 x 43 cm, either way round), a smaller
    # cassette at the bedside: sizes overlap between PA and lateral.
    if view == "chest_ap":
        long_side, short_side = int(rng.integers(2300, 2700)), int(rng.integers(1900, 2300))
        portrait = rng.random() < 0.5
    else:
        square = rng.random() < 0.5
        long_side = int(rng.integers(2800, 3072))
        short_side = long_side if square else int(rng.integers(2300, 2600))
        portrait = rng.random() < (0.75 if view == "chest_pa" else 0.9)
    rows, cols = (long_side, short_side) if portrait else (short_side, long_side)
    mas = {"chest_pa": 2.0, "chest_ap": 2.2, LATERAL: 2.0 * site.lateral_exposure}[view]
    kvp = {"chest_pa": 118, "chest_ap": 90, LATERAL: 121}[view]
    row = {
        "Modality": str(rng.choice(["DX", "CR"], p=[0.7, 0.3])),
        "Manufacturer": site.manufacturer,
        "ManufacturerModelName": str(rng.choice(site.models)),
        "BodyPartExamined": str(rng.choice([chest, "CHEST", ""], p=[0.5, 0.3, 0.2])),
        "ViewPosition": shown,
        "Rows": rows,
        "Columns": cols,
        "PhotometricInterpretation": str(rng.choice(["MONOCHROME1", "MONOCHROME2"], p=[0.3, 0.7])),
        "BitsStored": int(rng.choice([12, 14, 16])),
        "PixelSpacing": float(rng.choice([0.139, 0.143, 0.148, 0.16])),
        "KVP": float(kvp + rng.normal(0, 7)),
    }
    if not site.rich:
        return row
    words = {
        "chest_pa": [f"{chest} {pa}", f"{chest}", f"{chest} 2P"],
        "chest_ap": [f"{chest} {ap} {bedside}", f"{chest} {bedside}", f"{chest}"],
        LATERAL: [f"{chest} {lat}", f"{chest}", f"{chest} 2P"],
    }[view]
    exposure = float(np.exp(rng.normal(np.log(mas), 0.45)))
    row.update(
        SeriesDescription=str(rng.choice(words)) if rng.random() < 0.7 else "",
        StudyDescription=f"RX {chest}",
        ProtocolName=f"{chest}" if rng.random() < 0.6 else "",
        AcquisitionDeviceProcessingDescription=(
            {"chest_pa": f"{chest} {pa}", "chest_ap": f"{chest} {ap}", LATERAL: f"{chest} {lat}"}[view]
            if rng.random() < site.names_view
            else (f"{chest}" if rng.random() < 0.5 else "")
        ),
        Exposure=exposure,
        XRayTubeCurrent=float(rng.normal(320 if view != "chest_ap" else 160, 60)),
        ExposureTime=float(max(1.0, exposure / 0.32 + rng.normal(0, 3))),
        ExposureIndex=float(rng.normal({"chest_pa": 380, "chest_ap": 330, LATERAL: 430}[view], 90)),
        DistanceSourceToDetector=float(rng.normal(1800 if view != "chest_ap" else 1050, 80)),
        ImageType=str(rng.choice(["ORIGINAL\\PRIMARY", "DERIVED\\PRIMARY"], p=[0.8, 0.2])),
        PatientOrientation=(
            {"chest_pa": "L\\F", "chest_ap": "R\\F", LATERAL: str(rng.choice(["A\\F", "P\\F"]))}[view]
            if rng.random() < 0.4
            else ""
        ),
        InstitutionName=f"Hospital {site.name}",
    )
    return row


def generate_archive(profile: str, studies: int = 1500, seed: int = 0) -> pd.DataFrame:
    """`studies` chest radiograph visits from the sites of `profile` ("A" or "B"): one
    row per image, with ``series_type`` and ``site``."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}, not {profile!r}")
    rng = np.random.default_rng(seed)
    sites = PROFILES[profile]
    rows = []
    for _ in range(studies):
        site = sites[int(rng.integers(len(sites)))]
        study, patient = _uid(rng), f"P{int(rng.integers(10**7)):07d}"
        views = _visit(rng)
        shared_series = _uid(rng)
        for number, view in enumerate(views, start=1):
            row = _image(site, view, rng)
            row.update(
                SOPInstanceUID=_uid(rng),
                SeriesInstanceUID=shared_series if site.one_series else _uid(rng),
                StudyInstanceUID=study,
                PatientID=patient,
                StudyDate="20240101",
                PatientSex=str(rng.choice(["F", "M"])),
                PatientAge=f"{int(rng.integers(18, 90)):03d}Y",
                InstanceNumber=number if site.one_series else 1,
                series_type=view,
                site=site.name,
            )
            rows.append(row)
    frame = pd.DataFrame(rows)
    if all(not s.rich for s in sites):
        frame = frame[[*POOR_FIELDS, "series_type", "site"]]
    return frame


def frontal_or_lateral(types) -> np.ndarray:
    """Series types as "frontal", "lateral" or "other" (other views, unknown)."""
    types = np.asarray(types, dtype=object)
    return np.where(np.isin(types, FRONTAL), "frontal", np.where(types == LATERAL, "lateral", "other"))


def view_position_rule(frame: pd.DataFrame) -> np.ndarray:
    """The one-line rule: lateral where ViewPosition says lateral, else frontal (the
    common view, also where ViewPosition is empty)."""
    views = frame.get("ViewPosition", pd.Series([""] * len(frame), index=frame.index))
    lateral = views.map(
        lambda v: VIEW_SYNONYMS.get(str(v).strip().upper()) == "LATERAL" if isinstance(v, str) else False
    )
    return np.where(lateral.to_numpy(dtype=bool), LATERAL, "chest_pa").astype(object)


def frontal_lateral_accuracy(y_true, y_pred) -> float:
    """Balanced accuracy of frontal against lateral, over the images that are one or the
    other; an answer of another type (or unknown) counts as wrong."""
    truth, answer = frontal_or_lateral(y_true), frontal_or_lateral(y_pred)
    keep = truth != "other"
    recalls = [float(np.mean(answer[keep & (truth == c)] == c)) for c in ("frontal", "lateral") if (truth == c).any()]
    return float(np.mean(recalls))
