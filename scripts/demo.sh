#!/usr/bin/env bash
# Set everything up and run the main job on data the project generates: a PACS-like
# export (headers cloned from real files, fresh UIDs, fake patients, a few broken files)
# scanned into a Parquet index, then the population and quality report (logged to a
# local MLflow store), a query over the index, and a versioned, de-identified dataset
# of adult frontal chest radiographs split by patient.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
python -m pip install --quiet "pydicom-data>=1.0"   # real chest X-ray and enhanced MR templates
DEMO="${DEMO_DIR:-demo}"
if [ ! -d "$DEMO/dicom" ]; then
    python benchmarks/make_corpus.py "$DEMO/dicom" --count "${DEMO_COUNT:-2000}" --pixel-bytes 16384
    python scripts/plant_problems.py "$DEMO/dicom"
fi
curate scan source="$DEMO/dicom" index="$DEMO/index"
echo
curate report index="$DEMO/index" out="$DEMO/report"
echo "(The generated files carry small filler pixel data, shorter than their headers declare:"
echo " the pixel_data_vs_transfer_syntax check is right to flag them. The broken files it"
echo " reports as unreadable and not DICOM were planted on purpose.)"
echo
curate query "SELECT Modality, body_part, view, count(*) AS images FROM idx WHERE status = 'ok' GROUP BY ALL ORDER BY images DESC LIMIT 8" index="$DEMO/index"
echo
# A demo key for de-identification, kept beside the demo data. For real data, keep
# yours elsewhere and set CURATE_DEID_KEY (a key never goes in a config value).
if [ -z "${CURATE_DEID_KEY:-}" ] && [ ! -f "$DEMO/deid.key" ]; then
    python -c "import secrets; print(secrets.token_hex(32))" > "$DEMO/deid.key"
fi
KEY_ARG=()
[ -z "${CURATE_DEID_KEY:-}" ] && KEY_ARG=("key_file=$DEMO/deid.key")
curate build dataset=chest_frontal index="$DEMO/index" out="$DEMO/datasets" "${KEY_ARG[@]}"
echo
echo "index    $DEMO/index/index.parquet   (curate query \"SELECT ... FROM idx\" index=$DEMO/index)"
echo "report   $DEMO/report/report.html"
echo "datasets $DEMO/datasets   (curate datasets list root=$DEMO/datasets)"
echo "MLflow   .venv/bin/mlflow ui --backend-store-uri sqlite:///.curate/mlflow.db"
