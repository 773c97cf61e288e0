#!/usr/bin/env bash
# Set everything up and run the main job on data the project generates: a PACS-like
# export (headers cloned from real files, fresh UIDs, fake patients, a few broken files)
# scanned into a Parquet index, then the population and quality report (logged to a
# local MLflow store), scanned films imported as DICOM and scanned beside it, a query
# over the index, series types from a classifier that adapts
# to the archive, and a versioned, de-identified dataset of adult chest radiographs by
# the view it found, split by patient.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
python -m pip install --quiet "pydicom-data>=1.0"   # real chest X-ray and enhanced MR templates
DEMO="${DEMO_DIR:-demo}"
if [ ! -d "$DEMO/dicom" ]; then
    # 256 x 256 images that decode (noise, with real headers), so the dataset loads in PyTorch.
    python benchmarks/make_corpus.py "$DEMO/dicom" --count "${DEMO_COUNT:-2000}" --pixel-bytes 131072 --decodable
    python scripts/plant_problems.py "$DEMO/dicom"
fi
if [ ! -d "$DEMO/film-scans" ]; then
    # Scanned films with the patient's name, ID and film date on their label, and a manifest.
    python - "$DEMO/film-scans" <<'PY'
import sys
import numpy as np
from PIL import Image
from curate.deid.sandbox import Burned, burn
from curate.digitize.sandbox import generate_films
films = generate_films(sys.argv[1], count=12, rows=1000, columns=800)
for row in films.rows:
    path = films.source / row["file"]
    scan = np.asarray(Image.open(path))
    label = [Burned(row["patient_name"].upper(), 40, 40, 32), Burned(row["patient_id"], 40, 90, 28), Burned(row["study_date"], 40, 140, 28)]
    Image.fromarray(burn(scan, label)[0]).save(path)
PY
fi
curate digitize source="$DEMO/film-scans/scans" manifest="$DEMO/film-scans/manifest.csv" output="$DEMO/films" digitizer.manufacturer=DEMO
echo
curate scan source="[$DEMO/dicom,$DEMO/films]" index="$DEMO/index"
echo
curate report index="$DEMO/index" out="$DEMO/report"
echo "(The unreadable and non-DICOM files in the quality table were planted on purpose.)"
echo
curate query "SELECT Modality, body_part, view, count(*) AS images FROM idx WHERE status = 'ok' GROUP BY ALL ORDER BY images DESC LIMIT 8" index="$DEMO/index"
echo
# A demo key for de-identification, kept beside the demo data. For real data, keep
# yours elsewhere and set CURATE_DEID_KEY (a key never goes in a config value).
if [ -z "${CURATE_DEID_KEY:-}" ] && [ ! -f "$DEMO/deid.key" ]; then
    (umask 077 && python -c "import secrets; print(secrets.token_hex(32))" > "$DEMO/deid.key")
fi
chmod 600 "$DEMO/deid.key" 2>/dev/null || true  # curate refuses a key others can read
KEY_ARG=()
[ -z "${CURATE_DEID_KEY:-}" ] && KEY_ARG=("key_file=$DEMO/deid.key")
# Series types: the classifier adapts to this archive first (no labels, no model to give).
curate classify index="$DEMO/index"
echo
curate build dataset=chest_views index="$DEMO/index" out="$DEMO/datasets" "${KEY_ARG[@]}"
echo
if command -v tesseract >/dev/null 2>&1; then
    # The films carry their label in their pixels: redacted, verified, then written.
    curate deid source="$DEMO/films" output="$DEMO/films-deid" pixels=redact "${KEY_ARG[@]}"
    echo
    # Every run above left an entry in its store's hash-chained run log: check one, store too.
    curate audit verify "$DEMO/films-deid" contents=true
else
    echo "pixel redaction skipped: install Tesseract (apt-get install tesseract-ocr) to see curate deid pixels=redact"
fi
echo
VERSION_DIR=$(ls -d "$DEMO"/datasets/chest_views/*/ | head -n 1)
if python -c "import torch" 2>/dev/null; then
    python - "$VERSION_DIR" <<'PY'
import sys
import torch
from torch.utils.data import DataLoader
from curate.torch import CuratedDataset

data = CuratedDataset(sys.argv[1], split="train", size=64)
loader = DataLoader(data, batch_size=8, num_workers=2,
                    collate_fn=lambda b: (torch.stack([torch.nn.functional.pad(x, (0, 64 - x.shape[-1], 0, 64 - x.shape[-2])) for x, _ in b]), torch.tensor([y for _, y in b])))
images, labels = next(iter(loader))
print(f"PyTorch: a batch of {tuple(images.shape)} images, labels {labels.tolist()} (classes {data.classes})")
PY
else
    echo "PyTorch is not installed: CURATE_EXTRAS=torch bash scripts/setup.sh, then curate.torch.CuratedDataset(\"$VERSION_DIR\")"
fi
echo
# A PACS pull: a local Orthanc with a generated archive, its metadata over DICOMweb
# (no pixel moves), then the chest radiographs' images over DIMSE.
if command -v Orthanc >/dev/null 2>&1 && [ -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ]; then
    rm -rf "$DEMO/pacs" && mkdir -p "$DEMO/pacs"
    python - "$DEMO/pacs" <<'PY'
import subprocess, sys
from pathlib import Path
from curate.pull.sandbox import LocalOrthanc, generate_archive

work = Path(sys.argv[1])
archive = generate_archive(work / "generated", studies=60, seed=1)
with LocalOrthanc(work / "orthanc", find_limit=25) as pacs:
    pacs.upload(archive.files)
    print(f"Orthanc on loopback holds {archive.studies} studies, {archive.instances} instances (its answers capped at 25)")
    common = ["curate", "pull", f"index={work / 'index'}", "find_limit=25", "progress=false"]
    subprocess.run([*common, "source=dicomweb", f"url={pacs.dicomweb_url}"], check=True)
    subprocess.run([*common, "source=dimse", "host=127.0.0.1", f"port={pacs.dicom_port}", f"called_aet={pacs.aet}",
                    "level=images", f"store={work / 'store'}", "select.modalities=[CR,DX]"], check=True)
PY
    curate query "SELECT status, Modality, count(*) AS instances FROM idx GROUP BY ALL ORDER BY ALL" index="$DEMO/pacs/index"
else
    echo "PACS pull skipped: install Orthanc (apt-get install orthanc orthanc-dicomweb) to see curate pull"
fi
echo
echo "index    $DEMO/index   (curate query \"SELECT ... FROM idx\" index=$DEMO/index; curate audit verify $DEMO/index)"
echo "report   $DEMO/report/report.html"
echo "datasets $DEMO/datasets   (curate datasets list root=$DEMO/datasets)"
echo "MLflow   .venv/bin/mlflow ui --backend-store-uri sqlite:///.curate/mlflow.db"
