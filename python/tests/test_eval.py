"""The benchmark protocol from Python (anomalydino.evaluate / merge): the same units, scores and
metrics as `anomalydino eval` on the bundled evaluation data, bit for bit; resume, shards and
merge, progress and cancel callbacks, and refusals as AnomalyDinoError."""
import csv
import os

import pytest

from conftest import BIN, DATA, THREADS, TINY, ad, cli

EVAL_DATA = os.path.join(DATA, "eval", "data")
ARGS = dict(shots=(1, 2), seeds=2, preset="masking_only", resolution=448, segmentation=True)


@pytest.fixture(scope="module")
def model():
    return ad.Model(TINY, threads=THREADS)


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli_eval")
    cli("eval", "-m", TINY, "--dataset", "mvtec", "--data", EVAL_DATA, "--shots", "1,2",
        "--seeds", "2", "--preset", "masking_only", "--resolution", "448", "--segmentation",
        "--threads", THREADS, "--examples", "0", "-o", out)
    return out


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_evaluate_matches_the_cli(model, cli_run, tmp_path):
    res = ad.evaluate(model, "mvtec", EVAL_DATA, report_dir=tmp_path / "report", **ARGS)
    assert res.summary["computed"] == 8 and res.summary["failed"] == 0
    assert res.categories == ["bottle", "screw"]
    rows = {(r["shots"], r["seed"], r["category"]): r for r in read_csv(cli_run / "metrics.csv")}
    worst, n = 0.0, 0
    for u in res.units:
        row = rows[(str(u.shots), str(u.seed), u.category)]
        assert set(u.metrics) == set(ad._eval.METRICS)
        for m, v in u.metrics.items():
            worst = max(worst, abs(v - float(row[m])))
            assert repr(v) == repr(float(row[m])) or float(row[m]) == v, (u, m, v, row[m])
            n += 1
    print(f"{n} metrics compared with the CLI's metrics.csv: largest difference {worst:.3g}")
    scores = {(r["shots"], r["seed"], r["category"], r["image"]): r["score"]
              for r in read_csv(cli_run / "scores.csv")}
    for u in res.units:
        for im in u.images:
            assert f"{im.score:.9g}" == scores[(str(u.shots), str(u.seed), u.category, im.image)]
    # the report Python writes is the CLI's (timing aside)
    for name in ("metrics.csv", "tables.md"):
        assert (tmp_path / "report" / name).read_text() == (cli_run / name).read_text(), name
    assert res.tables_md == (cli_run / "tables.md").read_text()
    mu, sd, seeds = res.cell(1, "mean", "image_auroc")
    assert seeds == 2 and 0 <= mu <= 1 and sd >= 0


def test_resume_shards_and_merge(model, cli_run, tmp_path):
    out = tmp_path / "run"
    first = ad.evaluate(model, "mvtec", EVAL_DATA, out_dir=out, **ARGS)
    again = ad.evaluate(model, "mvtec", EVAL_DATA, out_dir=out, **ARGS)
    assert again.summary["resumed"] == 8 and again.summary["computed"] == 0
    assert [u.metrics for u in again.units] == [u.metrics for u in first.units]
    for i in range(2):
        part = ad.evaluate(model, "mvtec", EVAL_DATA, out_dir=tmp_path / f"s{i}", shard=(i, 2),
                           **ARGS)
        assert part.summary["planned"] > 0 and part.summary["computed"] > 0
    merged = ad.merge([tmp_path / "s0", tmp_path / "s1"], report_dir=tmp_path / "merged")
    assert [u.metrics for u in merged.units] == [u.metrics for u in first.units]
    assert (tmp_path / "merged" / "metrics.csv").read_text() == (cli_run / "metrics.csv").read_text()
    with pytest.raises(ad.AnomalyDinoError) as e:
        ad.merge([tmp_path / "s0"])
    assert e.value.status == "AD_E_ARG" and "shard 1 of 2 missing" in e.value.message


def test_progress_and_cancel(model, tmp_path):
    events = []
    res = ad.evaluate(model, "mvtec", EVAL_DATA, categories=["bottle"], shots=(1,), seeds=1,
                      resolution=112, progress=lambda *a: events.append(a))
    kinds = [e[0] for e in events]
    assert res.summary["computed"] == 1
    assert "line" in kinds and kinds.count("begin") == kinds.count("end") > 0
    seen = []
    res = ad.evaluate(model, "mvtec", EVAL_DATA, shots=(1, 2), seeds=2, resolution=112,
                      out_dir=tmp_path / "c", cancel=lambda: seen.append(1) or len(seen) > 20)
    assert res.cancelled and res.summary["planned"] > 0 and res.summary["failed"] == 0

    def boom(*_):
        raise RuntimeError("from the callback")
    with pytest.raises(RuntimeError, match="from the callback"):
        ad.evaluate(model, "mvtec", EVAL_DATA, shots=(1,), seeds=1, resolution=112, progress=boom)


def test_refusals(model, tmp_path):
    with pytest.raises(ad.AnomalyDinoError) as e:
        ad.evaluate(model, "nosuch", EVAL_DATA)
    assert e.value.status == "AD_E_ARG"
    with pytest.raises(ad.AnomalyDinoError) as e:
        ad.evaluate(model, "mvtec", tmp_path / "missing")
    assert "missing" in e.value.message
    with pytest.raises(ad.AnomalyDinoError) as e:
        ad.evaluate(model, "mvtec", EVAL_DATA, categories=["nosuch"])
    assert "nosuch" in e.value.message
    with pytest.raises(ad.AnomalyDinoError) as e:
        ad.evaluate(model, "mvtec", EVAL_DATA, resolution=10)
    assert "--resolution 10" in e.value.message
    with pytest.raises(ad.AnomalyDinoError) as e:
        ad.evaluate(model, "mvtec", EVAL_DATA, shard=(0, 2))
    assert "output folder" in e.value.message
