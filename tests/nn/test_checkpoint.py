"""CSD checkpoints: a 1-epoch training run, YOLO('best.pt') val/predict, resume and fine-tune keep the head."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from alignrank.config import load_params, with_overrides
from alignrank.nn.csd_head import CSDDetect
from alignrank.nn.model import build_model
from tests.conftest import REPO, tiny_overrides, train_tiny


def _float_state(model) -> dict[str, torch.Tensor]:
    return {k: v.float() for k, v in model.state_dict().items() if v.is_floating_point()}


def _assert_same_weights(model, ckpt_model) -> None:
    got, want = _float_state(model), _float_state(ckpt_model)
    assert got.keys() == want.keys()
    for k in want:
        assert torch.equal(got[k], want[k]), k


def test_ultralytics_checkpoint_round_trip(tmp_path):
    """Fast: a model saved in ultralytics' checkpoint format loads with YOLO() and predicts with the CSD head."""
    from ultralytics import YOLO

    m = build_model("csd", scale="n", nc=3)
    m.names = {0: "a", 1: "b", 2: "c"}
    torch.save({"model": copy.deepcopy(m).half(), "train_args": {"imgsz": 64}}, tmp_path / "m.pt")
    yolo = YOLO(str(tmp_path / "m.pt"))
    assert type(yolo.model.model[-1]) is CSDDetect
    res = yolo.predict(np.zeros((64, 64, 3), np.uint8), imgsz=64, conf=0.0, verbose=False, save=False)
    assert len(res) == 1 and res[0].boxes is not None


@pytest.fixture(scope="module")
def csd_run(tiny_data, tmp_path_factory):
    """One epoch of ``csd`` on the tiny synthetic data; returns (params, data yaml, run dir)."""
    p, data, run, trainer = train_tiny(tiny_data, tmp_path_factory.mktemp("csd_run"), "csd")
    assert type(trainer.model.model[-1]) is CSDDetect
    return p, data, run


def test_one_epoch_checkpoints_val_predict(csd_run, tmp_path):
    from ultralytics import YOLO

    p, data, run = csd_run
    best, last = run / "weights" / "best.pt", run / "weights" / "last.pt"
    assert best.is_file() and last.is_file()
    yolo = YOLO(str(best))
    assert type(yolo.model.model[-1]) is CSDDetect and yolo.model.variant == "csd"
    img = next((data.parent / "images" / "val").glob("*.jpg"))
    res = yolo.predict(str(img), imgsz=p.train.imgsz, conf=0.001, verbose=False, save=False)
    assert len(res) == 1 and res[0].boxes.data.shape[-1] == 6
    metrics = YOLO(str(best)).val(data=str(data), imgsz=p.train.imgsz, batch=8, plots=False, verbose=False,
                                  project=str(tmp_path), name="val", device="cpu")
    assert 0.0 <= metrics.box.map <= 1.0


def test_resume_and_fine_tune_keep_csd_head_and_weights(csd_run, tmp_path):
    """The model a resumed / fine-tuned trainer builds is CSDDetect with exactly the checkpoint's weights."""
    from ultralytics.nn.tasks import load_checkpoint

    from alignrank.engine.trainer import AlignRankTrainer, ultralytics_overrides

    p, data, run = csd_run
    for path, extra in ((run / "weights" / "last.pt", {"resume": True}), (run / "weights" / "best.pt", {"fine_tune": True})):
        ckpt_model, _ = load_checkpoint(path)
        if "resume" in extra:
            over = ultralytics_overrides(p, data=data, save_dir=tmp_path / "resumed", resume=path)
        else:
            over = {**ultralytics_overrides(p, data=data, save_dir=tmp_path / "tuned"), "model": str(path),
                    "pretrained": str(path)}
        tr = AlignRankTrainer(p, over)
        tr.setup_model()  # what _setup_train does first: the resume / fine-tune model-building path
        assert type(tr.model.model[-1]) is CSDDetect, path.name
        _assert_same_weights(tr.model, ckpt_model)


@pytest.mark.parametrize("variant, head, criterion", [
    ("csd", CSDDetect, "v8DetectionLoss"),
    ("csd_e2e", CSDDetect, "DualAssignmentLoss"),  # NMS-free: ultralytics' resume re-creates the criterion, calls update()
])
def test_resume_training_continues_with_csd_head(tiny_data, tmp_path, variant, head, criterion):
    """Full resume: stop after epoch 1 of 2 (keep the unfinished last.pt), resume, finish with the CSD head."""
    from alignrank.engine.trainer import AlignRankTrainer, ultralytics_overrides
    from alignrank.nn.e2e import has_one2one
    from tests.conftest import train_first_epoch_only

    p = load_params(REPO / "params.yaml", {**tiny_overrides(tiny_data, tmp_path), "train.variant": variant,
                                           "train.epochs": 2})
    data = tiny_data / "dataset.yaml"
    keep = tmp_path / "unfinished.pt"
    train_first_epoch_only(p, data, tmp_path / "a", keep)
    seen = {}
    resumed = AlignRankTrainer(with_overrides(p, {}), ultralytics_overrides(p, data=data, save_dir=tmp_path / "a",
                                                                            resume=keep))
    resumed.add_callback("on_train_start", lambda tr: seen.update(
        head=type(tr.model.model[-1]), start=tr.start_epoch, e2e=has_one2one(tr.model),
        criterion=type(getattr(tr.model, "criterion", None)).__name__))
    resumed.train()
    assert seen["head"] is head and seen["start"] == 1 and seen["e2e"] == variant.endswith("_e2e")
    if seen["e2e"]:  # (a plain resume builds its criterion lazily, at the first batch)
        assert seen["criterion"] == criterion


def test_fine_tune_remaps_class_rows_of_every_base_kernel():
    """Ultralytics' load() remaps class rows by name; the dynamic convs keep the class axis first for it."""
    src = build_model("csd", scale="n", nc=3)
    src.names = {0: "cat", 1: "dog", 2: "cow"}
    dst = build_model("csd", scale="n", nc=3)
    dst.names = {0: "cow", 1: "cat", 2: "dog"}
    dst.load(src, verbose=False)
    for a, b in zip(src.model[-1].cv3, dst.model[-1].cv3):
        torch.testing.assert_close(b[-1].weight, a[-1].weight[[2, 0, 1]])
        torch.testing.assert_close(b[-1].bias, a[-1].bias[[2, 0, 1]])


def test_resume_with_changed_head_settings_is_refused(csd_run, tmp_path):
    """A checkpoint whose CSD settings differ from params is refused, never silently half-loaded."""
    from alignrank.engine.trainer import AlignRankTrainer, ultralytics_overrides
    from alignrank.errors import UsageError

    p, data, run = csd_run
    last = run / "weights" / "last.pt"
    for change in ({"model.csd_points": p.model.csd_points + 1}, {"train.variant": "baseline"}):
        q = with_overrides(p, change)
        tr = AlignRankTrainer(q, {**ultralytics_overrides(q, data=data, save_dir=tmp_path / "x"), "model": str(last),
                                  "pretrained": str(last)})
        with pytest.raises(UsageError, match="model.csd_points|variant"):
            tr.setup_model()
