#!/usr/bin/env bash
# Set everything up and run the main job on data the project generates: a PACS-like
# export (headers cloned from real files, fresh UIDs, fake patients, a few broken files)
# scanned into a Parquet index, then the population and quality report (logged to a
# local MLflow store), a query over the index, series types from a classifier that adapts
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
curate scan source="$DEMO/dicom" index="$DEMO/index"
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
echo "index    $DEMO/index   (curate query \"SELECT ... FROM idx\" index=$DEMO/index)"
echo "report   $DEMO/report/report.html"
echo "datasets $DEMO/datasets   (curate datasets list root=$DEMO/datasets)"
echo "MLflow   .venv/bin/mlflow ui --backend-store-uri sqlite:///.curate/mlflow.db"
