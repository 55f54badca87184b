"""The notebook-style example runs to the end (it is documentation that must not rot)."""
import os
import subprocess
import sys

from conftest import PKG_ROOT


def test_quickstart_runs(tmp_path):
    script = os.path.join(PKG_ROOT, "examples", "quickstart.py")
    env = dict(os.environ, TMPDIR=str(tmp_path))
    env.pop("ANOMALYDINO_WEIGHTS", None)
    p = subprocess.run([sys.executable, script], capture_output=True, text=True, env=env,
                       cwd=tmp_path, timeout=600)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    print(out)
    for line in ("patch (32, 32, 128) float32", "stain.png", "ImageMetrics(auroc=",
                 "zero-shot score", "pred_label", "same scores from 2 threads: True"):
        assert line in out, line
    assert (tmp_path / "washer.adbank").stat().st_size > 0
