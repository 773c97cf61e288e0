"""Text burned into pixels: found with the real Tesseract, filled, and read again.

The proof does not rest on OCR alone: names, IDs and dates are burned into generated
images where their true boxes are known (their ink), at several sizes, fonts, turns,
positions and polarities; after redaction every true box must be covered, the filled
area at most 1.5 times the true boxes', every other pixel unchanged, and OCR must read
none of the words it could read in the source.
"""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np
import pydicom
import pytest
from conftest import need_tesseract
from pydicom.data import get_testdata_file

from curate.deid.display import displayed, frame_views, stored_frames, stretched
from curate.deid.ocr import page_words, region_readings
from curate.deid.redact import FixedRegion, FrameText, redact
from curate.deid.sandbox import Burned, burn, flat, image_dataset
from curate.deid.text_regions import candidate_boxes
from curate.digitize.sandbox import film_pixels


@pytest.fixture(autouse=True, scope="module")
def tesseract():
    need_tesseract()


FILM_WORDS = [
    Burned("DOE^JANE", 60, 60, 40),
    Burned("4711-0815", 60, 130, 28, "LiberationMono-Regular.ttf"),
    Burned("1998-03-04", 600, 1150, 30, "DejaVuSans-Bold.ttf"),
    Burned("MRN99887766", 920, 400, 34, "LiberationSans-Regular.ttf", turn=1),
    Burned("SMITH", 20, 700, 26, turn=3),
]
SCREEN_WORDS = [
    Burned("ROE^RICHARD", 20, 20, 24, brightness=0.05),
    Burned("1961-07-14", 20, 70, 20, "LiberationSans-Regular.ttf", brightness=0.1),
    Burned("ACC99001", 500, 540, 22, "DejaVuSans-Bold.ttf", brightness=0.0),
    Burned("ST.MARY", 640, 20, 18, "LiberationMono-Regular.ttf", brightness=0.0),
]


def film(seed: int = 0) -> np.ndarray:
    return film_pixels(1250, 1000, 16, np.random.default_rng(seed))


def readable_words(ds) -> set[str]:
    """What OCR reads in every view of every frame, each over its own range: the
    confident words on the whole frame and what it reads in each candidate region
    (letters and digits only)."""
    found = set()
    for frame in stored_frames(ds):
        for values in frame_views(ds, frame).values():
            grey = stretched(values, (float(values.min()), float(values.max())))
            found |= {w.text for w in page_words(grey)}
            # Each region read on its own, not stacked with the others as redaction reads them.
            for box in candidate_boxes(grey):
                found |= {text for text, _ in region_readings(grey, [box])[0]}
    return {"".join(c for c in text if c.isalnum()) for text in found} - {""}


def check_redaction(ds, truth: list[list[tuple[int, int, int, int]]], source_pixels: np.ndarray) -> None:
    """`truth[frame]`: the true boxes burned into that frame."""
    before = readable_words(ds)
    result = redact(ds)
    assert result.clean, result.remaining
    mask = np.zeros(source_pixels.shape[:3], bool)
    for frame, x0, y0, x1, y1 in result.boxes:
        mask[frame, y0:y1, x0:x1] = True
    true_area = 0
    for frame, boxes in enumerate(truth):
        for x0, y0, x1, y1 in boxes:
            assert mask[frame, y0:y1, x0:x1].all(), (frame, (x0, y0, x1, y1))
            true_area += (x1 - x0) * (y1 - y0)
    assert mask.sum() <= 1.5 * true_area, mask.sum() / true_area
    assert np.array_equal(result.pixels[~mask], source_pixels[~mask])  # nothing else changed
    ds.PixelData = np.ascontiguousarray(result.pixels).tobytes()
    after = readable_words(ds)
    read_in_source = {w for w in before if len(w) >= 3}
    assert read_in_source, "OCR read nothing in the source: the test image is not a test"
    assert not (read_in_source & after), read_in_source & after


def test_a_film_label_turned_and_upright_is_covered_and_nothing_else_changes():
    image, truth = burn(film(), FILM_WORDS)
    ds = image_dataset(image)
    check_redaction(ds, [truth], image[np.newaxis])


def test_dark_text_on_a_light_screen_capture():
    image, truth = burn(flat(600, 800, 230), SCREEN_WORDS)
    ds = image_dataset(image)
    check_redaction(ds, [truth], image[np.newaxis])


def test_monochrome1_is_read_as_it_is_displayed():
    # Stored inverted: the label's light text is stored dark, and displays light.
    image, truth = burn(film(1), FILM_WORDS[:3])
    stored = np.iinfo(np.uint16).max - image
    ds = image_dataset(stored, "MONOCHROME1")
    check_redaction(ds, [truth], stored[np.newaxis])


def test_a_window_decides_what_is_seen():
    # 12-bit values with a black and a white bar: over the stored range the text (100
    # values above its background) would show 6 grey levels apart; in its window it
    # shows white on black.
    rng = np.random.default_rng(2)
    base = (1000 + rng.normal(0, 3, (500, 600))).astype(np.uint16)
    base[:, :20], base[:, -20:] = 0, 4095
    image, truth = burn(base, [Burned("DOE^JANE", 60, 60, 40, brightness=1100 / 65535)])
    image[truth[0][1] : truth[0][3], truth[0][0] : truth[0][2]] = np.maximum(
        image[truth[0][1] : truth[0][3], truth[0][0] : truth[0][2]], 1000
    )
    ds = image_dataset(image, RescaleSlope=1, RescaleIntercept=-1024, WindowCenter=26, WindowWidth=200)
    ds.BitsStored, ds.HighBit = 12, 11
    check_redaction(ds, [truth], image[np.newaxis])


def test_every_frame_of_a_multiframe_image():
    first, truth_first = burn(flat(400, 500, 20), [Burned("DOE^JANE", 30, 30, 30)])
    second, truth_second = burn(flat(400, 500, 20), [Burned("4711-0815", 200, 300, 28)])
    pixels = np.stack([first, second])
    check_redaction(image_dataset(pixels), [truth_first, truth_second], pixels)


def test_a_colour_image():
    grey, truth = burn(flat(400, 600, 40), [Burned("DOE^JANE", 40, 40, 32), Burned("20240105", 300, 320, 26)])
    rgb = np.stack([grey, grey // 2 + 60, grey], axis=-1).astype(np.uint8)
    check_redaction(image_dataset(rgb, "RGB"), [truth], rgb[np.newaxis])


def test_a_real_ultrasound_loses_every_word_ocr_could_read():
    ds = pydicom.dcmread(get_testdata_file("US1_UNCR.dcm"))
    before = readable_words(ds)
    assert {"MED", "CTR", "LYMPH", "NODE"} <= before
    result = redact(ds)
    assert result.clean and result.boxes
    # Most of the image is the scan, not its annotation.
    assert result.area < 0.15 * ds.Rows * ds.Columns
    ds.PixelData = np.ascontiguousarray(result.pixels[0]).tobytes()
    ds.PhotometricInterpretation = "RGB"
    assert not ({w for w in before if len(w) >= 3} & readable_words(ds))


def test_text_still_read_in_the_last_reading_is_reported_not_hidden():
    # This ultrasound's annotations show more of themselves as their neighbours are
    # filled: two readings are not enough for it, and the result says so.
    ds = pydicom.dcmread(get_testdata_file("US1_UNCR.dcm"))
    result = redact(ds, rounds=2)
    assert not result.clean and result.remaining
    with pytest.raises(ValueError, match="at least twice"):
        redact(ds, rounds=1)


def test_a_real_secondary_capture_without_text_goes_through_unchanged():
    ds = pydicom.dcmread(get_testdata_file("SC_rgb.dcm"))
    result = redact(ds)
    assert result.clean and result.boxes == []
    assert np.array_equal(result.pixels, stored_frames(ds))


def test_a_clean_film_has_no_text():
    grey = next(displayed(image_dataset(film(3)), film(3)[np.newaxis]))
    text = FrameText.of(grey)
    assert text.regions == [] and text.words == []


def test_fixed_regions_of_a_device_are_blanked_without_ocr():
    image = flat(300, 400, 100)
    image[10:30, 300:390] = np.arange(90, dtype=np.uint8)  # a logo: no text to read
    ds = image_dataset(image, Manufacturer="Acme", ManufacturerModelName="Scope 1")
    region = FixedRegion.from_dict(
        {"manufacturer": "ACME", "model": "scope 1", "rows": 300, "columns": 400, "boxes": [[300, 10, 390, 30]]}
    )
    result = redact(ds, [region])
    assert result.fixed == 1 and result.boxes == [(0, 300, 10, 390, 30)]
    assert (result.pixels[0, 10:30, 300:390] == result.pixels[0, 10:30, 300:390].min()).all()
    outside = np.ones(image.shape, bool)
    outside[10:30, 300:390] = False
    assert np.array_equal(result.pixels[0][outside], image[outside])
    other = image_dataset(image, Manufacturer="Acme", ManufacturerModelName="Scope 2")
    assert redact(other, [region]).boxes == []
    with pytest.raises(ValueError, match="x0 < x1"):
        FixedRegion.from_dict({"rows": 1, "columns": 1, "boxes": [[5, 5, 1, 1]]})


def test_the_audit_record_holds_boxes_and_counts_never_text():
    image, _ = burn(flat(300, 400, 20), [Burned("DOE^JANE", 30, 30, 30)])
    record = redact(image_dataset(image)).record()
    assert record["boxes"] >= 1 and record["area_px"] > 0 and record["frames"] == 1
    assert "DOE" not in repr(record) and "JANE" not in repr(record)


# --- what a leak hunter tried ------------------------------------------------------------


def filled(result, shape: tuple[int, int]) -> np.ndarray:
    """Where the redaction filled the (single) frame."""
    mask = np.zeros(shape, bool)
    for _, x0, y0, x1, y1 in result.boxes:
        mask[y0:y1, x0:x1] = True
    return mask


def names_layer(rows: int, columns: int) -> tuple[np.ndarray, list]:
    """Where the name and ID's ink is (0-1), and their true boxes."""
    ink, truth = burn(flat(rows, columns, 0), [Burned("DOE^JANE", 30, 30, 28), Burned("4711-0815", 30, 90, 28)])
    return ink.astype(np.float32) / 255, truth


def test_faint_text_beside_bright_text_is_found_once_the_bright_is_gone():
    image, bright = burn(flat(512, 512, 20), [Burned("CHEST PA ERECT", 30, 300, 30)])
    ink, truth = names_layer(512, 512)
    image = (image * (1 - ink) + 40 * ink).astype(np.uint8)
    check_redaction(image_dataset(image), [truth + bright], image[np.newaxis])


def test_text_above_a_bright_rule_is_found():
    image, truth = burn(flat(512, 512, 20), [Burned("DOE^JANE", 30, 30, 26, brightness=0.42)])
    image[60:63, 20:300] = 255  # a white rule just under the line
    image[150:480, 100:420] = 200
    ds = image_dataset(image)
    result = redact(ds)
    assert result.clean
    mask = filled(result, image.shape)
    x0, y0, x1, y1 = truth[0]
    assert mask[y0:y1, x0:x1].all()


@pytest.mark.parametrize(
    "text, ground", [((255, 0, 0), (0, 130, 0)), ((0, 0, 160), (0, 0, 0))], ids=["red-on-green", "dark-blue-on-black"]
)
def test_colour_text_that_differs_in_hue_not_brightness(text, ground):
    ink, truth = names_layer(512, 512)
    rgb = np.zeros((512, 512, 3), np.uint8)
    rgb[:] = ground
    rgb[250:480, 100:420] = 200
    for channel in range(3):
        rgb[..., channel] = (rgb[..., channel] * (1 - ink) + text[channel] * ink).astype(np.uint8)
    ds = image_dataset(rgb, "RGB")
    result = redact(ds)
    assert result.clean
    mask = filled(result, (512, 512))
    assert all(mask[y0:y1, x0:x1].all() for x0, y0, x1, y1 in truth)


def test_text_a_window_hides_is_found_in_the_stored_values():
    # The text (3000) on a bright region (2000): under the window (-160 to 240 HU) both
    # show white; re-windowed, the name shows.
    image = np.full((512, 512), 100, np.uint16)
    image[10:160, 10:400] = 2000
    ink, truth = names_layer(512, 512)
    image[ink > 0.08] = 3000
    ds = image_dataset(image, WindowCenter=40, WindowWidth=400, RescaleSlope=1, RescaleIntercept=-1024)
    result = redact(ds)
    assert result.clean
    mask = filled(result, (512, 512))
    assert all(mask[y0:y1, x0:x1].all() for x0, y0, x1, y1 in truth)


def test_tesseracts_files_stay_in_a_private_folder():
    import tempfile

    from curate.deid import ocr

    before = tempfile.gettempdir()
    image, _ = burn(flat(200, 400, 20), [Burned("PATIENT", 20, 20, 30)])
    assert ocr._read(image, 11)
    folder = Path(ocr._FOLDER)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700 and folder.parent == Path(before)
    assert list(folder.iterdir()) == []  # pytesseract removed what it wrote there
    assert tempfile.gettempdir() == before
