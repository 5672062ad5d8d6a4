"""`mnistcnn serve --ensemble CKPT --tta`: the app answers with the ensemble; /v1/model lists it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from digits_synth import digit
from mnistcnn.predict.ensemble import EnsemblePredictor
from mnistcnn.predict.tta import DEFAULT_VIEWS
from mnistcnn.serve import ModelSource, build_app
from test_predict_inputs import encoded
from test_predict_predictor import make_checkpoint


def test_serve_two_checkpoints_answers_and_lists_them(tmp_path: Path) -> None:
    a, b = make_checkpoint(tmp_path / "a.pt", seed=0), make_checkpoint(tmp_path / "b.pt", seed=1)
    source = ModelSource(str(a), ensemble=[str(b)], tta=True)  # type: ignore[arg-type]
    assert source.ensemble == (str(b),)
    again = ModelSource(**json.loads(json.dumps(dataclasses.asdict(source))))  # worker processes
    assert again == source
    png = encoded(digit("3"))
    with TestClient(build_app(source)) as client:
        r = client.post("/v1/predict", content=png, headers={"Content-Type": "image/png"})
        assert r.status_code == 200, r.text
        (pred,) = r.json()["predictions"]
        info = client.get("/v1/model").json()
    want = EnsemblePredictor.from_checkpoints([a, b], tta=True).predict([png])[0]
    assert pred["label"] == want.label
    assert pred["probability"] == pytest.approx(want.probability, abs=1e-7)
    assert [m["checkpoint"] for m in info["members"]] == ["a.pt", "b.pt"]  # file names only
    assert info["members"][1]["name"] == "tutorial" and info["members"][1]["parameters"] > 0
    assert info["members"][0]["temperature"] == 1.0 and not info["members"][0]["calibrated"]
    assert info["tta"] == [v.name for v in DEFAULT_VIEWS]
    assert info["checkpoint"] == "a.pt"  # the top level stays the first member's


def test_serve_one_checkpoint_has_no_members_key(tmp_path: Path) -> None:
    a = make_checkpoint(tmp_path / "a.pt")
    with TestClient(build_app(ModelSource(str(a)))) as client:
        info = client.get("/v1/model").json()
    assert "members" not in info and "tta" not in info
