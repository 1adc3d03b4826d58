"""Put BlazeFace full-range (the `detect` extra's model) into gazelab's weight cache from the package registry.

mediapipe >= 0.10.30 wheels no longer ship face-detection models, and machines that reach only the package
registry cannot download the file from its home. The 0.10.21 wheel on PyPI still carries the very same bytes
(`mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite`), so this script downloads that
wheel without installing it, extracts the one file and checks its sha256 against gazelab's zoo entry.
`make install` runs it; it does nothing when the file is already cached.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from gazelab.infer.heads import FACE_DETECTOR
from gazelab.models.checkpoints import cached_path

WHEEL = "mediapipe==0.10.21"
MEMBER = "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite"


def main() -> int:
    dest = cached_path(FACE_DETECTOR)
    if dest.is_file() and hashlib.sha256(dest.read_bytes()).hexdigest() == FACE_DETECTOR.sha256:
        print(f"face detector already cached: {dest}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
               "--python-version", "3.11", "--platform", "manylinux_2_28_x86_64", "--dest", tmp, WHEEL]  # fmt: skip
        if subprocess.run(cmd, check=False).returncode != 0:
            print(f"could not download {WHEEL}; head detection will look for {dest}", file=sys.stderr)
            return 1
        wheel = next(Path(tmp).glob("mediapipe-*.whl"))
        data = zipfile.ZipFile(wheel).read(MEMBER)
    if hashlib.sha256(data).hexdigest() != FACE_DETECTOR.sha256:
        print(f"{wheel.name}: {MEMBER} has an unexpected checksum; not installed", file=sys.stderr)
        return 1
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp_dest = dest.with_name(dest.name + ".tmp")
    tmp_dest.write_bytes(data)
    tmp_dest.replace(dest)
    print(f"face detector cached: {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
