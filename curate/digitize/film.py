"""A scanned film as a DICOM Secondary Capture Image (PS3.3 A.8.1), written with pydicom.

The classic SC IOD, not the multi-frame grey ones: one film is one frame, every viewer
and PACS reads it, and all it needs is here. What says what the file is:

- SC Equipment: Conversion Type ``DF`` (digitised film), the original's modality ``RG``
  (radiographic film), the digitiser's make, model and software;
- SC Image: the digitisation date as Date of Secondary Capture, and Nominal Scanned
  Pixel Spacing from the scan's resolution (Pixel Spacing would claim a calibrated size
  in the patient, which a film scan does not have);
- Burned In Annotation ``YES``: a film's label is in its pixels;
- Lossy Image Compression ``01`` when the scan was a JPEG.

The UIDs are derived from the film (see :func:`film_uids`): one study per patient and
film date, one series per body part, view and laterality, and one instance per image
and row, so that importing the same manifest again writes nothing twice.
"""

from __future__ import annotations

import hashlib
import io
import uuid
from dataclasses import dataclass

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import ExplicitVRLittleEndian

from curate.digitize.image import FilmImage
from curate.digitize.manifest import FilmRow

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
#: PS3.3 C.7.3.1.1.1: radiographic imaging (conventional film/screen).
FILM_MODALITY = "RG"
#: The namespace of the name-based UUIDs (RFC 4122, version 5) films are named by.
FILM_NAMESPACE = uuid.UUID("5c0e7f4a-2b1d-5e8f-9a3c-0c0ae7000000")
#: Series numbers of the usual views; other views get one from their name.
SERIES_NUMBERS = {"PA": 1, "AP": 2, "LATERAL": 3, "LL": 3, "RL": 4}


@dataclass(frozen=True)
class Digitizer:
    """The film digitiser, as the SC Equipment module names it (empty: not written)."""

    manufacturer: str = ""
    model: str = ""
    software: str = ""
    device_id: str = ""


@dataclass(frozen=True)
class FilmUids:
    study: str
    series: str
    instance: str


def film_uids(row: FilmRow, digest: str, root: str = "2.25") -> FilmUids:
    """UIDs under `root` (``2.25``: the UUID arc), each a hash of what it stands for:
    the patient (their ID) and the film's date (study); the study, body part, view and laterality
    (series); the image's bytes and the row's values (instance)."""

    def uid(*parts: str) -> str:
        name = "\x1f".join(parts)  # a separator no value holds: ("ab", "c") is not ("a", "bc")
        if root == "2.25":
            return f"2.25.{uuid.uuid5(FILM_NAMESPACE, name).int}"
        number = str(int(hashlib.sha256(name.encode()).hexdigest(), 16))
        prefix = f"{root.rstrip('.')}."
        return prefix + number[: 64 - len(prefix)]

    # The patient is their ID; by name and birth date only for a film whose label has none.
    patient = ("id", row.patient_id) if row.patient_id else ("name", row.patient_name, row.birth_date)
    study = uid("curate digitize study", *patient, row.study_date)
    series = uid("curate digitize series", study, row.body_part, row.view, row.laterality)
    return FilmUids(study=study, series=series, instance=uid("curate digitize instance", digest, *row.identity()))


def film_dataset(
    row: FilmRow,
    image: FilmImage,
    uids: FilmUids,
    digitizer: Digitizer,
    scanned: tuple[str, str],
    software: str,
) -> Dataset:
    """The DICOM data set of one film; `scanned` is the digitisation (date, time)."""
    ds = Dataset()
    values = [row.patient_name, row.patient_id, row.description, digitizer.manufacturer, digitizer.model]
    if any(not v.isascii() for v in values):
        ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = SECONDARY_CAPTURE
    ds.SOPInstanceUID = uids.instance
    # Patient
    ds.PatientName = row.patient_name
    ds.PatientID = row.patient_id
    ds.PatientBirthDate = row.birth_date
    ds.PatientSex = row.sex
    # General Study
    ds.StudyInstanceUID = uids.study
    ds.StudyDate = row.study_date
    ds.StudyTime = row.study_time
    ds.ReferringPhysicianName = ""
    ds.StudyID = ""
    ds.AccessionNumber = row.accession_number
    if row.description:
        ds.StudyDescription = row.description
    # General Series
    ds.Modality = FILM_MODALITY
    ds.SeriesInstanceUID = uids.series
    ds.SeriesNumber = series_number(row.view)
    if row.laterality:
        ds.Laterality = row.laterality
    if row.body_part:
        ds.BodyPartExamined = row.body_part
    ds.SeriesDescription = " ".join(p for p in ("film", row.view, row.laterality) if p)
    # General Equipment (of the original: unknown for a film) and SC Equipment
    ds.Manufacturer = ""
    ds.ConversionType = "DF"
    for keyword, value in (
        ("SecondaryCaptureDeviceID", digitizer.device_id),
        ("SecondaryCaptureDeviceManufacturer", digitizer.manufacturer),
        ("SecondaryCaptureDeviceManufacturerModelName", digitizer.model),
    ):
        if value:
            setattr(ds, keyword, value)
    ds.SecondaryCaptureDeviceSoftwareVersions = [v for v in (digitizer.software, software) if v]
    # General Image
    ds.InstanceNumber = row.number
    ds.PatientOrientation = ""
    ds.ContentDate = row.study_date
    ds.ContentTime = row.study_time
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.BurnedInAnnotation = "YES"
    if image.lossy:
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionMethod = "ISO_10918_1"
    else:
        ds.LossyImageCompression = "00"
    if row.view:
        ds.ViewPosition = row.view  # not in the SC IOD's modules: read by curate's classifier
    # SC Image
    ds.DateOfSecondaryCapture, ds.TimeOfSecondaryCapture = scanned
    dpi = row.dpi or image.dpi
    if dpi:
        spacing = f"{25.4 / dpi:.6g}"
        ds.NominalScannedPixelSpacing = [spacing, spacing]
    # Image Pixel
    pixels = image.pixels
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated = ds.BitsStored = image.bits
    ds.HighBit = image.bits - 1
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.astype(pixels.dtype.newbyteorder("<"), copy=False).tobytes()
    return ds


def encode(ds: Dataset) -> bytes:
    """The Part 10 file of `ds`, uncompressed (Explicit VR Little Endian)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def series_number(view: str) -> int:
    if view in SERIES_NUMBERS:
        return SERIES_NUMBERS[view]
    return 10 + int(hashlib.sha256(view.encode()).hexdigest()[:6], 16) % 90
