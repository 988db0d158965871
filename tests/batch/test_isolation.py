"""Batch scoring uses the runtime, never the web framework."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_a_batch_run_imports_no_flask(model_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text(
        "sepal_length,sepal_width,petal_length,petal_width\n5.9,3.0,5.1,1.8\n"
    )
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from flaskserve.batch import BatchOptions, run_batch\n"
        f"run_batch(BatchOptions(Path({str(model_dir)!r}), Path('in.csv'), Path('out.csv')))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('flask', 'werkzeug')))\n"
    )

    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )

    assert done.stdout.strip() == "[]"
    assert (tmp_path / "out.csv").read_text() == '"prediction"\n2\n'
