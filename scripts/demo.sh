#!/usr/bin/env bash
# Set everything up and run the main job on data the project generates: a PACS-like
# export (headers cloned from real files, fresh UIDs, fake patients, a few broken files)
# scanned into a Parquet index, with a progress bar and a closing summary.
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
echo "The index is $DEMO/index/index.parquet; for example:"
echo "  .venv/bin/python -c \"import pyarrow.parquet as pq; print(pq.read_table('$DEMO/index/index.parquet').group_by('Modality').aggregate([('path', 'count')]))\""
