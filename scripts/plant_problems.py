"""Add the problems every real archive has to a demo tree: a truncated file, a file that
is not DICOM, an empty file. The scan must report each one and carry on."""

import sys
from pathlib import Path


def main(root: str) -> None:
    tree = Path(root)
    first = next(p for p in sorted(tree.rglob("*.dcm")))
    broken = tree / "problems"
    broken.mkdir(exist_ok=True)
    data = first.read_bytes()
    (broken / "truncated.dcm").write_bytes(data[: len(data) // 20 or 200])
    (broken / "notes.txt").write_text("exported by the PACS gateway\n")
    (broken / "empty.dcm").write_bytes(b"")
    print(f"planted 3 problem files in {broken}")


if __name__ == "__main__":
    main(sys.argv[1])
