"""`make demo` runs recipes/demo.py: it trains, predicts, exports and reloads on real mnist_tiny."""
import importlib.util
from pathlib import Path


def test_demo_trains_and_export_roundtrip_is_identical(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PIPEKIT_PLOTS", str(tmp_path))
    spec = importlib.util.spec_from_file_location("demo", Path(__file__).resolve().parents[1] / "recipes" / "demo.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.main()
    out = capsys.readouterr().out
    result = [ln for ln in out.splitlines() if ln.startswith("result:")]
    assert len(result) == 1 and "export_roundtrip=identical" in result[0]
    acc = float(result[0].split("accuracy=")[1].split()[0])
    assert acc > 0.95, result[0]
    assert "Collecting items: 1428 rows" in out and (tmp_path / "demo_batch.png").stat().st_size > 5000
