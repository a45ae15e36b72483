"""Regenerate the committed Python code for the chatroom protos.

Run from anywhere: ``python protos/generate.py`` writes next to the .proto
files; ``--out DIR`` writes elsewhere (the staleness test compares the two).
Besides the Python modules it writes ``chatroom/descriptors.binpb``, the
descriptors with their source comments, which the servers hand to server
reflection so that ``grpcurl describe`` shows the documentation.
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

PROTO_ROOT = Path(__file__).resolve().parent
PROTO_FILES = sorted(PROTO_ROOT.glob("chatroom/**/*.proto"))
DESCRIPTORS = Path("chatroom") / "descriptors.binpb"


def generate(out_dir: Path) -> None:
    well_known = resources.files("grpc_tools") / "_proto"
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--descriptor_set_out={out_dir / DESCRIPTORS}",
        "--include_source_info",
        "--include_imports",
        *(str(path.relative_to(PROTO_ROOT)) for path in PROTO_FILES),
    ]
    (out_dir / DESCRIPTORS).parent.mkdir(parents=True, exist_ok=True)
    if protoc.main(args) != 0:
        sys.exit("protoc failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=PROTO_ROOT)
    generate(parser.parse_args().out)


if __name__ == "__main__":
    main()
