"""inference.ipynb runs end to end (tiny model + tiny scorer, a real shared clip) and shows its pictures."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_inference_notebook_executes(shared, monkeypatch, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    video = shared("videos/car_accident.mp4")
    monkeypatch.setenv("HOLMESVAU_SHARED", str(video.parents[1]))
    for var in ("HOLMESVAU_MODEL", "HOLMESVAU_SCORER", "HOLMESVAU_VIDEO"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PYTHONWARNINGS", "ignore")
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the notebook's tiny model and outputs go here
    nb = nbformat.read(REPO / "inference.ipynb", as_version=4)
    nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}
    ).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    assert "HolmesVAU:" in text and "sampling: ats" in text  # 120 frames > 8 x 4: ATS ran on the real clip
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 2  # the preview strip and the anomaly curve
