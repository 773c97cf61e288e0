"""Generate a synthetic DICOM corpus for benchmarking header scanners.

Every file is a clone of a real DICOM file from pydicom's test data (CT, MR,
chest CR, enhanced multi-frame CT/MR, JPEG and JPEG 2000, implicit, explicit
and big-endian transfer syntaxes, files with nested sequences), so the headers
have the structure, private tags and quirks of files written by real software.
Each clone gets fresh Study/Series/SOP Instance UIDs, a fake patient, and pixel
data of a chosen size, and lands in a PACS-export-like tree:

    OUT/PAT0000042/ST01_20190311/SE02_CR/IM0001.dcm

The pixel data is opaque filler of --pixel-bytes bytes (encapsulated as
fragments for compressed transfer syntaxes): it gives files a realistic size on
disk, but it does not decode to an image and need not match Rows x Columns.
Header scanners stop before it.

The same --seed and --count give byte-identical files, whatever --jobs is.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import multiprocessing
import os
import random
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import pydicom
from benchlib import DEFAULT_PIXEL_BYTES
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate
from pydicom.tag import Tag
from pydicom.uid import UID

PIXEL_DATA = Tag(0x7FE0, 0x0010)


@dataclass(frozen=True)
class Template:
    """A real file to clone, and how studies made from it are shaped.

    share: the fraction of the corpus's files it should supply (before
        rescaling over the templates that are available).
    series, instances: inclusive ranges for series per study and instances
        per series, so that a CT study has many slices and a chest study one
        or two views.
    """

    name: str
    share: float
    series: tuple[int, int]
    instances: tuple[int, int]

    def mean_files_per_study(self) -> float:
        return (sum(self.series) / 2) * (sum(self.instances) / 2)


# Chest radiographs dominate, as in the archives the scanner is built for.
# RG1_*, RG3_*, emri_small and eCT_Supplemental come from the pydicom-data
# package; the others ship with pydicom itself.
TEMPLATES = [
    Template("RG1_UNCI.dcm", 0.30, (1, 2), (1, 1)),  # CR chest, explicit LE, sequences
    Template("RG1_UNCR.dcm", 0.15, (1, 2), (1, 1)),  # CR chest, explicit LE
    Template("RG1_J2KR.dcm", 0.10, (1, 2), (1, 1)),  # CR chest, JPEG 2000 lossless
    Template("RG3_UNCR.dcm", 0.05, (1, 3), (1, 2)),  # CR extremity
    Template("CT_small.dcm", 0.10, (1, 3), (10, 40)),  # CT, explicit LE, sequence
    Template("693_J2KI.dcm", 0.05, (1, 3), (10, 40)),  # CT, JPEG 2000, sequences
    Template("MR_small.dcm", 0.05, (2, 4), (5, 20)),  # MR, explicit LE
    Template("MR_small_implicit.dcm", 0.05, (2, 4), (5, 20)),  # MR, implicit LE
    Template("MR_small_bigendian.dcm", 0.03, (2, 4), (5, 20)),  # MR, explicit BE
    Template("emri_small.dcm", 0.03, (1, 3), (1, 1)),  # enhanced MR, 10 frames
    Template("eCT_Supplemental.dcm", 0.02, (1, 2), (1, 1)),  # enhanced CT, 2 frames
    Template("JPEG-lossy.dcm", 0.02, (1, 2), (1, 4)),  # NM, JPEG extended, sequences
    Template("liver_1frame.dcm", 0.02, (1, 1), (1, 1)),  # SEG, deep sequences
    Template("rtdose.dcm", 0.01, (1, 1), (1, 1)),  # RT dose, implicit LE, multi-frame
    Template("test-SR.dcm", 0.02, (1, 1), (1, 1)),  # SR, nested sequences, no pixels
]

FAMILY_NAMES = """Banda Mwale Phiri Tembo Silva Santos Nguyen Tran Smith Garcia Kumar
    Singh Okafor Mensah Kowalski Novak Ivanova Haddad Yilmaz Sato Kim Rossi Muller
    Dubois Jensen""".split()
GIVEN_NAMES = """Amina Chikondi Joao Maria Linh Minh John Ana Ravi Priya Chinedu Ama
    Piotr Eva Olga Omar Elif Yuki Jisoo Luca Lena Louis Freja Tomas Grace""".split()


@dataclass(frozen=True)
class Instance:
    """Everything that differs between two files cloned from one template."""

    template: str
    relpath: str
    patient_name: str
    patient_id: str
    birth_date: str
    sex: str
    study_uid: str
    study_date: str
    accession: str
    study_id: str
    series_uid: str
    series_number: int
    frame_of_reference_uid: str
    sop_uid: str
    instance_number: int


def make_uid(seed: int, *parts: object) -> str:
    """A 2.25-rooted UID derived from the seed, so reruns give the same UIDs."""
    digest = hashlib.sha256(repr((seed, *parts)).encode()).digest()
    return "2.25." + str(int.from_bytes(digest[:16], "big"))


def random_date(rng: random.Random, first_year: int, last_year: int) -> str:
    """A DICOM DA value (YYYYMMDD) in the given years."""
    year = rng.randint(first_year, last_year)
    return f"{year}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"


def plan_corpus(count: int, seed: int, templates: dict[Template, str]) -> list[Instance]:
    """Lay out `count` files as patients > studies > series > instances.

    `templates` maps each usable template to its modality, which names the
    series folders. Studies pick their template with probability
    share / files-per-study, so each template supplies about its share of
    files, not of studies.
    """
    rng = random.Random(seed)
    choices = list(templates)
    weights = [t.share / t.mean_files_per_study() for t in choices]
    plan: list[Instance] = []
    patient = 0
    while len(plan) < count:
        patient += 1
        pid = f"PAT{patient:07d}"
        person = dict(
            patient_name=f"{rng.choice(FAMILY_NAMES)}^{rng.choice(GIVEN_NAMES)}",
            patient_id=pid,
            birth_date=random_date(rng, 1930, 2015),
            sex=rng.choice("MFMFO"),
        )
        for study in range(1, rng.randint(1, 3) + 1):
            template = rng.choices(choices, weights)[0]
            plan.extend(_plan_study(rng, seed, template, templates[template], person, study))
            if len(plan) >= count:
                break
    return plan[:count]


def _plan_study(
    rng: random.Random,
    seed: int,
    template: Template,
    modality: str,
    person: dict,
    study: int,
) -> list[Instance]:
    """One study of one template: all its series share the study's UIDs and date."""
    pid = person["patient_id"]
    date = random_date(rng, 2015, 2024)
    accession = f"ACC{rng.randrange(10**8):08d}"
    study_uid = make_uid(seed, "study", pid, study)
    files = []
    for series in range(1, rng.randint(*template.series) + 1):
        series_uid = make_uid(seed, "series", study_uid, series)
        folder = f"{pid}/ST{study:02d}_{date}/SE{series:02d}_{modality}"
        for number in range(1, rng.randint(*template.instances) + 1):
            files.append(
                Instance(
                    template=template.name,
                    relpath=f"{folder}/IM{number:04d}.dcm",
                    study_uid=study_uid,
                    study_date=date,
                    accession=accession,
                    study_id=str(study),
                    series_uid=series_uid,
                    series_number=series,
                    frame_of_reference_uid=make_uid(seed, "for", series_uid),
                    sop_uid=make_uid(seed, "sop", series_uid, number),
                    instance_number=number,
                    **person,
                )
            )
    return files


def filler_bytes(size: int, seed: int) -> bytes:
    """Pixel data filler: pseudo-random (so it does not compress away), even-length."""
    return random.Random(seed).randbytes(size + size % 2)


J2K_SYNTAXES = {f"1.2.840.10008.1.2.4.{n}" for n in (90, 91, 92, 93, 201, 202, 203)}


def codestream(chunk: bytes, syntax: str) -> bytes:
    """`chunk` framed as a codestream of `syntax`, as a real fragment starts: JPEG 2000
    (SOC, one tile-part whose SOT spans the fragment, SOD) or JPEG (SOI, SOS); the
    filler then holds no 0xFF, which coded data would have stuffed. Readers that walk a
    codestream's markers (de-identification does) find it well formed."""
    if syntax == pydicom.uid.RLELossless:
        return chunk
    if syntax in J2K_SYNTAXES:
        tile_part = 12 + 2 + len(chunk)
        sot = b"\xff\x90\x00\x0a\x00\x00" + tile_part.to_bytes(4, "big") + b"\x00\x01"
        return b"\xff\x4f" + sot + b"\xff\x93" + chunk
    return b"\xff\xd8\xff\xda\x00\x02" + chunk.replace(b"\xff", b"\xfe")


def set_pixel_data(ds: pydicom.Dataset, filler: bytes) -> None:
    """Replace the pixel data with `filler`; remove it when `filler` is empty.

    Compressed transfer syntaxes need encapsulated pixel data (an offset table
    and one fragment per frame), as real compressed files have.
    """
    if PIXEL_DATA not in ds:
        return
    if not filler:
        del ds[PIXEL_DATA]
        return
    element = ds[PIXEL_DATA]
    if ds.file_meta.TransferSyntaxUID.is_encapsulated:
        frames = max(1, int(ds.get("NumberOfFrames", 1) or 1))
        step = -(-len(filler) // frames)
        step += step % 2  # fragments must have even length
        syntax = str(ds.file_meta.TransferSyntaxUID)
        chunks = [filler[i : i + step] for i in range(0, len(filler), step)]
        element.value = encapsulate([codestream(chunk, syntax) for chunk in chunks])
        element.is_undefined_length = True
    else:
        element.value = filler
        element.is_undefined_length = False


def make_decodable(ds: pydicom.Dataset, filler: bytes) -> None:
    """Pixel data that decodes: native (a compressed template becomes Explicit VR Little
    Endian) and exactly as large as Rows x Columns x frames say, with Rows and Columns
    set to the square that the filler fills. The image is noise, but a real one."""
    if PIXEL_DATA not in ds or not filler:
        set_pixel_data(ds, filler)
        return
    if ds.file_meta.TransferSyntaxUID.is_encapsulated:
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
        ds.LossyImageCompression = "00"
    frames = max(1, int(ds.get("NumberOfFrames", 1) or 1))
    bits = int(ds.get("BitsAllocated", 16) or 16)
    samples = max(1, int(ds.get("SamplesPerPixel", 1) or 1))
    side = max(1, int((len(filler) * 8 / (frames * bits * samples)) ** 0.5))
    ds.Rows = ds.Columns = side
    size = -(-side * side * frames * bits * samples // 8)  # 1-bit segmentations pack 8 pixels a byte
    element = ds[PIXEL_DATA]
    element.value = filler[:size] + b"\0" * (size % 2)
    element.is_undefined_length = False


def stamp_pixels(ds: pydicom.Dataset, inst: Instance) -> None:
    """Make each file's pixel data its own: the last 16 bytes become a digest of its SOP
    Instance UID (the last bytes of the last fragment, so encapsulation stays valid).
    Without it every clone of a template would carry the same image."""
    value = ds.get("PixelData")
    if value is None or len(value) <= 32:
        return
    stamp = hashlib.sha256(inst.sop_uid.encode()).digest()[:16].replace(b"\xff", b"\xfe")  # no marker
    ds.PixelData = bytes(value[:-16]) + within_stored_bits(ds, stamp)


def within_stored_bits(ds: pydicom.Dataset, data: bytes) -> bytes:
    """Native pixel bytes with nothing in the bits outside Bits Stored, as real images
    have (random filler would set them all, and de-identification clears them)."""
    from curate.deid.unused_bits import BitLayoutError, canonical_pixels

    if ds.file_meta.TransferSyntaxUID.is_encapsulated or ds.file_meta.TransferSyntaxUID.is_deflated:
        return data
    try:
        little = ds.file_meta.TransferSyntaxUID.is_little_endian
        return canonical_pixels(data, ds, little_endian=little) or data
    except BitLayoutError:
        return data


def ds_within_stored_bits(ds: pydicom.Dataset) -> None:
    if PIXEL_DATA in ds and ds[PIXEL_DATA].VR in ("OW", "OB", "OB or OW"):
        ds.PixelData = within_stored_bits(ds, bytes(ds.PixelData))


def apply_instance(ds: pydicom.Dataset, inst: Instance) -> None:
    """Give a template dataset the identity of one generated file.

    Every field is set for every file, so one template dataset can be edited in
    place for file after file without leaking values between them.
    """
    ds.PatientName = inst.patient_name
    ds.PatientID = inst.patient_id
    ds.PatientBirthDate = inst.birth_date
    ds.PatientSex = inst.sex
    ds.StudyInstanceUID = inst.study_uid
    ds.StudyDate = inst.study_date
    ds.SeriesDate = inst.study_date
    ds.AccessionNumber = inst.accession
    ds.StudyID = inst.study_id
    ds.SeriesInstanceUID = inst.series_uid
    ds.SeriesNumber = inst.series_number
    ds.SOPInstanceUID = inst.sop_uid
    ds.InstanceNumber = inst.instance_number
    if "FrameOfReferenceUID" in ds:
        ds.FrameOfReferenceUID = inst.frame_of_reference_uid
    ds.file_meta.MediaStorageSOPInstanceUID = UID(inst.sop_uid)


def _probe_instance(template: str) -> Instance:
    """Placeholder identity used to test that a template survives a re-write."""
    return Instance(
        template=template,
        relpath="",
        patient_name="Probe^Test",
        patient_id="PROBE",
        birth_date="19700101",
        sex="O",
        study_uid="1.2.3",
        study_date="20200101",
        accession="ACC0",
        study_id="1",
        series_uid="1.2.3.4",
        series_number=1,
        frame_of_reference_uid="1.2.3.5",
        sop_uid="1.2.3.6",
        instance_number=1,
    )


def load_template(name: str, filler: bytes, decodable: bool = False) -> pydicom.Dataset | str:
    """Read a template and check that pydicom can re-write it.

    Returns the dataset with its pixel data already replaced, or the reason it
    cannot be used (not installed, unreadable, or fails a write/read round trip).
    """
    path = get_testdata_file(name, download=False)
    if path is None:
        return "not found (the pydicom-data package provides it)"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path)
            if decodable:
                make_decodable(ds, filler)
            else:
                set_pixel_data(ds, filler)
            ds_within_stored_bits(ds)
            probe = _probe_instance(name)
            apply_instance(ds, probe)
            buffer = io.BytesIO()
            ds.save_as(buffer, enforce_file_format=True)
            back = pydicom.dcmread(io.BytesIO(buffer.getvalue()), stop_before_pixels=True)
            if back.SOPInstanceUID != probe.sop_uid:
                return "round trip changed SOPInstanceUID"
    except Exception as exc:  # any failure means: do not use this template
        return f"pydicom cannot re-write it: {type(exc).__name__}: {exc}"
    return ds


# Per worker process: template datasets, loaded once by _init_worker.
_TEMPLATES: dict[str, pydicom.Dataset] = {}


def _init_worker(names: list[str], filler: bytes, decodable: bool) -> None:
    warnings.simplefilter("ignore")
    for name in names:
        _TEMPLATES[name] = load_template(name, filler, decodable)


def _write_chunk(args: tuple[Path, list[Instance]]) -> int:
    """Write a chunk of files (temp name, then rename, so no file is half-written)."""
    out, chunk = args
    for inst in chunk:
        ds = _TEMPLATES[inst.template]
        apply_instance(ds, inst)
        stamp_pixels(ds, inst)
        path = out / inst.relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".part")
        ds.save_as(partial, enforce_file_format=True)
        os.replace(partial, path)
    return len(chunk)


def usable_templates(filler: bytes, decodable: bool = False) -> dict[Template, str]:
    """The templates that load and round-trip, with their modality.

    Each template skipped is reported on stderr with the reason.
    """
    usable = {}
    for template in TEMPLATES:
        result = load_template(template.name, filler, decodable)
        if isinstance(result, str):
            print(f"skipping template {template.name}: {result}", file=sys.stderr)
        else:
            usable[template] = str(result.get("Modality") or "OT")
    if not usable:
        sys.exit("no usable template: is pydicom installed with its test data?")
    return usable


def generate(out: Path, count: int, pixel_bytes: int, seed: int, jobs: int, decodable: bool = False) -> None:
    """Write the corpus with `jobs` processes, printing progress."""
    filler = filler_bytes(pixel_bytes, seed)
    templates = usable_templates(filler, decodable)
    plan = plan_corpus(count, seed, templates)
    chunk_size = max(1, min(500, count // (jobs * 8)))
    chunks = [(out, plan[i : i + chunk_size]) for i in range(0, len(plan), chunk_size)]
    names = [t.name for t in templates]
    start = time.perf_counter()
    done = 0
    next_report = 0.0
    with multiprocessing.Pool(jobs, initializer=_init_worker, initargs=(names, filler, decodable)) as pool:
        for written in pool.imap_unordered(_write_chunk, chunks):
            done += written
            elapsed = time.perf_counter() - start
            if elapsed >= next_report or done == count:
                print(
                    f"\r{done}/{count} files, {done / max(elapsed, 1e-9):,.0f} files/s",
                    end="",
                    file=sys.stderr,
                    flush=True,
                )
                next_report = elapsed + 1.0
    print(file=sys.stderr)
    patients = len({inst.patient_id for inst in plan})
    studies = len({inst.study_uid for inst in plan})
    series = len({inst.series_uid for inst in plan})
    print(
        f"wrote {count} files ({patients} patients, {studies} studies, "
        f"{series} series) to {out} in {time.perf_counter() - start:.1f} s"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="output folder (created if missing)")
    parser.add_argument("--count", type=int, default=2000, help="number of files (default 2000)")
    parser.add_argument(
        "--pixel-bytes",
        type=int,
        default=DEFAULT_PIXEL_BYTES,
        help="bytes of pixel data per file, rounded up to even; 0 writes no pixel data "
        f"(default {DEFAULT_PIXEL_BYTES}, about a compressed chest radiograph)",
    )
    parser.add_argument(
        "--decodable",
        action="store_true",
        help="make pixel data decode: native syntax, and Rows/Columns set to the square the "
        "filler fills (for demos and loaders; header scanners do not need it)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="writer processes (default: all cores); does not change the output",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="write into a non-empty folder, replacing files with the same names",
    )
    args = parser.parse_args(argv)
    if args.count < 1 or args.pixel_bytes < 0 or args.jobs < 1:
        parser.error("--count and --jobs must be positive, --pixel-bytes not negative")
    if args.out.exists() and any(args.out.iterdir()) and not args.overwrite:
        parser.error(f"{args.out} is not empty (use --overwrite to write into it)")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    generate(args.out, args.count, args.pixel_bytes, args.seed, args.jobs, args.decodable)


if __name__ == "__main__":
    main()
