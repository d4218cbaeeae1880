"""`make demo` runs recipes/demo.py: the book's first model (ImageNet weights fine-tuned on real dogscats
photos), a zero-shot look, a prediction, and an export that loads back and predicts the same."""
import importlib.util
from pathlib import Path


def test_demo_fine_tunes_predicts_and_export_roundtrip_is_identical(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PIPEKIT_PLOTS", str(tmp_path))
    spec = importlib.util.spec_from_file_location("demo", Path(__file__).resolve().parents[1] / "recipes" / "demo.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.main()
    out = capsys.readouterr().out
    result = [ln for ln in out.splitlines() if ln.startswith("result:")]
    assert len(result) == 1 and "export_roundtrip=identical" in result[0]
    acc = float(result[0].split("accuracy=")[1].split()[0])
    assert acc >= 0.95, result[0]
    # the photo predicted is a cat the model never saw; the pretrained weights already saw a cat in it
    assert "predict(cat." in result[0] and "=True" in result[0], result[0]
    assert "before training, the ImageNet weights see in cat." in out
    assert "DataLoaders(train=300 items" in out and (tmp_path / "demo_batch.png").stat().st_size > 5000
