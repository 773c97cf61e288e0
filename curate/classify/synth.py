"""Realistic synthetic index rows for training and testing the series-type classifier.

Each site has a vendor, a language and habits: how it writes series descriptions and
body parts, how often it leaves ViewPosition empty or wrong, how its detectors are
oriented, which exposure it uses per view. Rows look like the scanner's index (one row
per instance, keyword columns) plus ``series_type`` (the truth) and ``site``. The same
seed gives the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

VENDORS = {
    "GE": ("GE MEDICAL SYSTEMS", ["Definium 8000", "Optima XR240", "Discovery MR750", "Revolution CT"]),
    "SIEMENS": ("SIEMENS", ["Ysio Max", "MOBILETT Mira", "Skyra", "SOMATOM Force"]),
    "PHILIPS": ("Philips Medical Systems", ["DigitalDiagnost", "MobileDiagnost", "Ingenia", "Brilliance 64"]),
    "FUJI": ("FUJIFILM Corporation", ["FDR D-EVO II", "FDR Go", "ECHELON", "FCT Speedia"]),
    "CARESTREAM": ("Carestream Health", ["DRX-Evolution", "DRX-Revolution", "DRX-1", "DRX-2"]),
    "CANON": ("CANON_MEC", ["CXDI-710C", "Aquilion ONE", "Vantage Orian", "RADREX-i"]),
}

# Words per language: (frontal PA, frontal AP, lateral, chest, portable, left, right)
LANGUAGES = {
    "en": ("PA", "AP", "LAT", "CHEST", "PORTABLE", "LEFT", "RIGHT"),
    "es": ("PA", "AP", "LATERAL", "TORAX", "PORTATIL", "IZQ", "DER"),
    "de": ("p.a.", "a.p.", "seitlich", "THORAX", "Bett", "li", "re"),
    "fr": ("PA", "AP", "PROFIL", "THORAX", "LIT", "G", "D"),
    "pt": ("PA", "AP", "PERFIL", "TORAX", "LEITO", "E", "D"),
}

CHEST_TYPES = ["chest_pa", "chest_ap", "chest_lateral", "chest_other", "not_chest"]
MR_TYPES = [
    "mr_localizer",
    "mr_t1",
    "mr_t1_contrast",
    "mr_t2",
    "mr_flair",
    "mr_dwi",
    "mr_adc",
    "mr_swi",
    "mr_pd",
    "mr_perfusion",
]
CT_TYPES = ["ct_axial", "ct_reformat", "ct_scout", "ct_dose_report"]


@dataclass
class Site:
    name: str
    vendor: str
    language: str
    missing_view: float  # share of radiographs without ViewPosition
    wrong_view: float  # share with the wrong one
    missing_description: float
    portrait_detector: bool  # how the site's detectors are mounted for chest PA
    body_part_style: str  # "standard", "local", "blank"
    mr_naming: str  # "plain", "vendor", "cryptic"
    fills_orientation: float  # share of radiographs with PatientOrientation filled in


def make_sites(count: int, rng: np.random.Generator) -> list[Site]:
    vendors, languages = list(VENDORS), list(LANGUAGES)
    return [
        Site(
            name=f"site{i:02d}",
            vendor=vendors[i % len(vendors)],
            language=languages[(i * 3) % len(languages)],
            missing_view=float(rng.uniform(0.0, 0.5)),
            wrong_view=float(rng.uniform(0.0, 0.05)),
            missing_description=float(rng.uniform(0.0, 0.3)),
            portrait_detector=bool(rng.random() < 0.6),
            body_part_style=["standard", "local", "blank"][int(rng.integers(3))],
            mr_naming=["plain", "vendor", "cryptic"][int(rng.integers(3))],
            fills_orientation=float(rng.choice([0.0, 0.3, 0.9])),
        )
        for i in range(count)
    ]


def _uid(rng: np.random.Generator) -> str:
    return "2.25." + str(int(rng.integers(1, 2**62)) * 1_000_003 + int(rng.integers(1, 10**6)))


def _chest_series(site: Site, kind: str, rng: np.random.Generator) -> dict:
    pa, ap, lat, chest, portable, left, right = LANGUAGES[site.language]
    view = {
        "chest_pa": "PA",
        "chest_ap": "AP",
        "chest_lateral": rng.choice(["LL", "RL", "LATERAL"]),
        "chest_other": rng.choice(["LLD", "RLD", "RAO", "LAO", "AP"]),
        "not_chest": rng.choice(["AP", "PA", "LAT", ""]),
    }[kind]
    part_truth = "CHEST" if kind != "not_chest" else rng.choice(["KNEE", "HAND", "PELVIS", "LSPINE", "SKULL", "FOOT"])
    if site.body_part_style == "blank" and rng.random() < 0.7:
        part = ""
    elif site.body_part_style == "local" and part_truth == "CHEST":
        part = chest
    else:
        part = part_truth
    words = {
        "chest_pa": [f"{chest} {pa}", pa, f"{chest} 1 view {pa}", f"{chest} {pa} standing"],
        "chest_ap": [f"{chest} {ap} {portable}", f"{ap} {portable}", f"{chest} {ap}", f"{portable} {chest}"],
        "chest_lateral": [f"{chest} {lat}", lat, f"{chest} {lat} {left}", f"{lat} {right}"],
        "chest_other": [f"{chest} decubitus", f"{chest} oblique", f"{chest} lordotic", f"{chest} {view}"],
        "not_chest": [f"{part_truth} {ap}", f"{part_truth} {lat}", f"{part_truth}", f"{part_truth} 2 views"],
    }[kind]
    description = "" if rng.random() < site.missing_description else str(rng.choice(words))
    shown_view = str(view)
    if rng.random() < site.missing_view:
        shown_view = ""
    elif rng.random() < site.wrong_view:
        shown_view = str(rng.choice(["PA", "AP", "LL"]))
    # Detector geometry: lateral and portable views come out landscape or on smaller plates.
    portrait = site.portrait_detector if kind in ("chest_pa", "chest_lateral") else bool(rng.random() < 0.3)
    long_side, short_side = int(rng.integers(2800, 3100)), int(rng.integers(2300, 2600))
    if kind == "chest_ap":
        long_side, short_side = int(rng.integers(2300, 2600)), int(rng.integers(1900, 2200))
    rows, cols = (long_side, short_side) if portrait else (short_side, long_side)
    kvp = {"chest_pa": 120, "chest_ap": 90, "chest_lateral": 125, "chest_other": 110, "not_chest": 65}[kind]
    mas = {"chest_pa": 2.0, "chest_ap": 2.5, "chest_lateral": 6.0, "chest_other": 3.0, "not_chest": 5.0}[kind]
    orientation = {"chest_pa": "L\\F", "chest_ap": "R\\F", "chest_lateral": "P\\F", "chest_other": "R\\F"}.get(
        kind, str(rng.choice(["L\\F", "R\\F", "A\\F", ""]))
    )
    return {
        "Modality": str(rng.choice(["CR", "DX"])),
        "BodyPartExamined": part,
        "ViewPosition": shown_view,
        "SeriesDescription": description,
        "ProtocolName": str(rng.choice(words)) if rng.random() < 0.5 else "",
        "StudyDescription": f"{chest} X-ray" if kind != "not_chest" else f"{part_truth} X-ray",
        # Many sites never fill it; those that do get it wrong now and then.
        "PatientOrientation": (
            ""
            if rng.random() >= site.fills_orientation
            else (str(rng.choice(["L\\F", "R\\F", "P\\F"])) if rng.random() < 0.05 else orientation)
        ),
        "Rows": rows,
        "Columns": cols,
        "KVP": float(kvp + rng.normal(0, 4)),
        "Exposure": float(max(0.5, mas + rng.normal(0, 0.5))),
        "ExposureIndex": float(rng.normal({"chest_lateral": 500, "chest_ap": 250}.get(kind, 350), 40)),
        "PhotometricInterpretation": "MONOCHROME1" if site.vendor in ("FUJI", "CANON") else "MONOCHROME2",
        "ImageType": "ORIGINAL\\PRIMARY",
        "images": 1,
    }


MR_PARAMS = {
    # TR, TE, TI, flip, sequence, description words, image type, images per series
    "mr_localizer": (
        8,
        4,
        None,
        20,
        "GR",
        ["3-plane loc", "localizer", "survey", "scout"],
        "ORIGINAL\\PRIMARY\\LOCALIZER",
        9,
    ),
    "mr_t1": (550, 12, None, 90, "SE", ["T1 AX", "t1_se_sag", "T1W SE", "ax t1"], "ORIGINAL\\PRIMARY\\M", 24),
    "mr_t1_contrast": (
        550,
        12,
        None,
        90,
        "SE",
        ["T1 AX +C", "t1_se_post", "T1W GD", "ax t1 post"],
        "ORIGINAL\\PRIMARY\\M",
        24,
    ),
    "mr_t2": (4000, 100, None, 90, "SE", ["T2 AX", "t2_tse_tra", "T2W TSE", "ax t2"], "ORIGINAL\\PRIMARY\\M", 24),
    "mr_flair": (
        9000,
        120,
        2500,
        90,
        "IR",
        ["FLAIR AX", "t2_tirm_tra_dark-fluid", "T2W FLAIR", "ax flair"],
        "ORIGINAL\\PRIMARY\\M",
        24,
    ),
    "mr_dwi": (
        5000,
        80,
        None,
        90,
        "EP",
        ["DWI", "ep2d_diff_b1000", "DWI SENSE", "diffusion"],
        "ORIGINAL\\PRIMARY\\DIFFUSION",
        48,
    ),
    "mr_adc": (
        5000,
        80,
        None,
        90,
        "EP",
        ["ADC", "ep2d_diff_ADC", "dADC", "apparent diffusion"],
        "DERIVED\\PRIMARY\\ADC",
        24,
    ),
    "mr_swi": (40, 25, None, 15, "GR", ["SWI", "swi_tra", "SWIp", "susceptibility"], "ORIGINAL\\PRIMARY\\M", 72),
    "mr_pd": (2500, 25, None, 90, "SE", ["PD AX", "pd_tse", "PDW", "proton density"], "ORIGINAL\\PRIMARY\\M", 24),
    "mr_perfusion": (
        1500,
        30,
        None,
        90,
        "EP",
        ["PERFUSION", "ep2d_perf", "DSC perf", "perf"],
        "ORIGINAL\\PRIMARY\\PERFUSION",
        120,
    ),
}


def _mr_series(site: Site, kind: str, rng: np.random.Generator) -> dict:
    tr, te, ti, flip, sequence, words, image_type, images = MR_PARAMS[kind]
    jitter = lambda x: None if x is None else float(x * rng.uniform(0.85, 1.15))  # noqa: E731
    if site.mr_naming == "cryptic":
        description = f"Series {int(rng.integers(1, 40))}"
    elif site.mr_naming == "vendor":
        description = words[1]
    else:
        description = str(rng.choice(words))
    if rng.random() < site.missing_description:
        description = ""
    return {
        "Modality": "MR",
        "BodyPartExamined": "" if site.body_part_style == "blank" else "BRAIN",
        "SeriesDescription": description,
        "ProtocolName": words[int(rng.integers(len(words)))] if rng.random() < 0.6 else "",
        "StudyDescription": "MR BRAIN",
        "RepetitionTime": jitter(tr),
        "EchoTime": jitter(te),
        "InversionTime": jitter(ti),
        "FlipAngle": float(flip),
        "ScanningSequence": sequence,
        "ContrastBolusAgent": "GADOLINIUM" if kind == "mr_t1_contrast" and rng.random() < 0.8 else "",
        "ImageType": image_type,
        "Rows": 256 if kind != "mr_localizer" else 512,
        "Columns": 256 if kind != "mr_localizer" else 512,
        "SliceThickness": float(rng.choice([3.0, 4.0, 5.0])) if kind != "mr_localizer" else 8.0,
        "PhotometricInterpretation": "MONOCHROME2",
        "images": images,
    }


def _ct_series(site: Site, kind: str, rng: np.random.Generator) -> dict:
    words = {
        "ct_axial": ["AXIAL 5mm", "Thorax 1.0 B70f", "STND AX", "axial"],
        "ct_reformat": ["COR MPR", "SAG reformat", "Coronal 3mm", "MPR"],
        "ct_scout": ["Scout", "Topogram 0.6 T20s", "SURVIEW", "localizer"],
        "ct_dose_report": ["Dose Report", "Patient Protocol", "Dose Info", "dose"],
    }[kind]
    image_type = {
        "ct_axial": "ORIGINAL\\PRIMARY\\AXIAL",
        "ct_reformat": "DERIVED\\SECONDARY\\REFORMATTED",
        "ct_scout": "ORIGINAL\\PRIMARY\\LOCALIZER",
        "ct_dose_report": "DERIVED\\SECONDARY\\OTHER",
    }[kind]
    description = "" if rng.random() < site.missing_description else str(rng.choice(words))
    return {
        "Modality": "CT" if kind != "ct_dose_report" or rng.random() < 0.5 else "SR",
        "BodyPartExamined": "" if site.body_part_style == "blank" else "CHEST",
        "SeriesDescription": description,
        "ProtocolName": "CHEST ROUTINE" if rng.random() < 0.6 else "",
        "StudyDescription": "CT CHEST",
        "ImageType": image_type,
        "Rows": 512 if kind != "ct_dose_report" else int(rng.choice([512, 1024])),
        "Columns": 512 if kind != "ct_scout" else int(rng.choice([512, 1024])),
        "SliceThickness": float(rng.choice([0.625, 1.0, 2.5, 5.0])) if kind in ("ct_axial", "ct_reformat") else None,
        "KVP": float(rng.choice([100, 120])) if kind != "ct_dose_report" else None,
        "PhotometricInterpretation": "MONOCHROME2" if kind != "ct_dose_report" else "RGB",
        "images": {"ct_axial": 120, "ct_reformat": 60, "ct_scout": 1, "ct_dose_report": 1}[kind],
    }


def generate(series: int = 2000, sites: int = 8, seed: int = 0, instances: bool = True) -> pd.DataFrame:
    """`series` synthetic series from `sites` sites: one row per instance (capped at 12 a
    series to keep tables small) with ``series_type`` and ``site``."""
    rng = np.random.default_rng(seed)
    site_list = make_sites(sites, rng)
    rows = []
    for _ in range(series):
        site = site_list[int(rng.integers(len(site_list)))]
        family = rng.choice(["chest", "mr", "ct"], p=[0.6, 0.25, 0.15])
        if family == "chest":
            kind = str(rng.choice(CHEST_TYPES, p=[0.35, 0.2, 0.25, 0.05, 0.15]))
            attrs = _chest_series(site, kind, rng)
        elif family == "mr":
            kind = str(rng.choice(MR_TYPES))
            attrs = _mr_series(site, kind, rng)
        else:
            kind = str(rng.choice(CT_TYPES, p=[0.5, 0.25, 0.15, 0.1]))
            attrs = _ct_series(site, kind, rng)
        manufacturer, models = VENDORS[site.vendor]
        attrs.update(
            Manufacturer=manufacturer,
            ManufacturerModelName=models[int(rng.integers(len(models)))],
            InstitutionName=f"Hospital {site.name}",
            SeriesInstanceUID=_uid(rng),
            StudyInstanceUID=_uid(rng),
            PatientID=f"P{int(rng.integers(10**7)):07d}",
            series_type=kind,
            site=site.name,
        )
        # Series sizes are kept in proportion but capped, to keep tables small.
        count = min(int(attrs.pop("images")), 12) if instances else 1
        for i in range(count):
            row = dict(attrs, SOPInstanceUID=_uid(rng), InstanceNumber=i + 1)
            rows.append(row)
    return pd.DataFrame(rows)
