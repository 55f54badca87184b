"""The package installs offline with the documented command and finds the library in the
documented order (ANOMALYDINO_LIB, the package folder, the system's search)."""
import os
import shutil
import subprocess

import anomalydino as ad
from conftest import PKG_ROOT, TINY

SYSTEM_PYTHON = "/usr/bin/python3"


def _clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PIP_") and k not in ("PYTHONPATH", "ANOMALYDINO_LIB")}
    # a fresh machine's pip, and any download attempt fails at once: the index is a closed
    # loopback port, no extra wheel folders, no retries
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_INDEX_URL="http://127.0.0.1:9/simple",
               PIP_RETRIES="0", PIP_TIMEOUT="2", PIP_NO_CACHE_DIR="1",
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.update(extra)
    return env


def _run(cmd, env, cwd):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=300)
    assert p.returncode == 0, f"{' '.join(cmd)}: exit {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p


def test_offline_venv_install(tmp_path):
    src = tmp_path / "python"
    shutil.copytree(PKG_ROOT, src, ignore=shutil.ignore_patterns(
        "tests", "build", "*.egg-info", "__pycache__", "libanomalydino.so*"))
    env = _clean_env()
    env.pop("LD_PRELOAD", None)  # (sanitizer build) venv and pip do not load the library
    _run([SYSTEM_PYTHON, "-m", "venv", "--system-site-packages", str(tmp_path / ".venv")], env,
         tmp_path)
    p = _run([str(tmp_path / ".venv" / "bin" / "pip"), "install", "./python"], env, tmp_path)
    print(p.stdout.strip().splitlines()[-1])
    assert "Successfully installed anomalydino-" in p.stdout
    py = str(tmp_path / ".venv" / "bin" / "python")
    code = ("import anomalydino as ad, numpy as np, sys\n"
            "m = ad.Model(sys.argv[1], threads=1)\n"
            "p, c = m.features(np.zeros((28, 42, 3), np.uint8), resolution=0)\n"
            "print(ad.__file__, ad.library_path(), p.shape, sep='|')\n")
    lib = ad.library_path()
    out = _run([py, "-c", code, TINY], _clean_env(ANOMALYDINO_LIB=lib), tmp_path).stdout.strip()
    pkg_file, used, shape = out.split("|")
    assert pkg_file.startswith(str(tmp_path / ".venv")), pkg_file
    assert used == lib and shape == "(2, 3, 128)"
    # without the variable and nothing in the package folder: the system's search
    # (LD_LIBRARY_PATH here) for libanomalydino.so.0
    sys_env = _clean_env(LD_LIBRARY_PATH=os.path.dirname(lib))
    out = _run([py, "-c", code, TINY], sys_env, tmp_path).stdout.strip()
    assert out.split("|")[1] == "libanomalydino.so.0", out
    # ... and with nothing found anywhere, one error listing the places tried (unless this
    # machine has a system-wide copy: then that one must be the one found)
    miss = ("import anomalydino as ad\ntry:\n print(ad.library_path())\n"
            "except ad.AnomalyDinoError as e:\n print(e)")
    out = _run([py, "-c", miss], _clean_env(), tmp_path).stdout.strip()
    print(out)
    probe = "import ctypes\ntry:\n ctypes.CDLL('libanomalydino.so.0'); print(1)\nexcept OSError: print(0)"
    if _run([SYSTEM_PYTHON, "-c", probe], _clean_env(), tmp_path).stdout.strip() == "1":
        assert out == "libanomalydino.so.0"
    else:
        assert out.startswith("AD_E_IO: libanomalydino not found; set ANOMALYDINO_LIB") and \
            "libanomalydino.so.0 (" in out
    # a library copied into the installed package folder comes before the system's
    pkg_dir = os.path.dirname(pkg_file)
    shutil.copy(lib, os.path.join(pkg_dir, "libanomalydino.so.0"))
    out = _run([py, "-c", code, TINY], sys_env, tmp_path).stdout.strip()
    assert out.split("|")[1] == os.path.join(pkg_dir, "libanomalydino.so.0")
