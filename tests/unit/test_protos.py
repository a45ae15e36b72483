"""The committed generated code matches protos/, and the protos pass buf lint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTOS = ROOT / "protos"


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(PROTOS / "generate.py"), "--out", str(tmp_path)], check=True)
    fresh = {str(p.relative_to(tmp_path)): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    committed = {name: (PROTOS / name).read_bytes() for name in fresh if (PROTOS / name).exists()}
    assert sorted(fresh) == sorted(committed), "generated files are missing: run python protos/generate.py"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"stale generated code {stale}: run python protos/generate.py"


def test_buf_lint_is_clean() -> None:
    buf = Path(sys.executable).parent / "buf"
    result = subprocess.run(
        [str(buf), "lint"], cwd=ROOT / "protos", capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
