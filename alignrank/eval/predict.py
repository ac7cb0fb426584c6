"""Predictions of a trained checkpoint on the val split: pre-NMS candidates and post-NMS detections.

The model is run by hand (not through ultralytics' predictor) to keep the raw ``(B, 4 + nc, A)``
head output: images are letterboxed to the training size as ultralytics' validator does (long
side resized to ``imgsz``, centred padding with 114), boxes are mapped back to original pixels, and
every (anchor, class) pair with score >= ``eval.conf`` is a candidate (multi-label, as the
validator). Standard predictions are torchvision's class-wise ``batched_nms`` at ``eval.iou`` on the
unclipped input-space boxes (as the validator), capped at ``eval.max_det`` per image; candidates keep the top ``eval.max_candidates`` per image.
YOLO class indices become the dataset's own category ids (``dataset.yaml: category_ids``), and
image ids come from the val instances JSON, matched by file name.

An NMS-free model (one-to-one branch, :mod:`alignrank.nn.e2e`) also yields its one-to-one detections from
the same forward pass: the top-``eval.max_det`` (anchor, class) pairs by score with score >= ``eval.conf``
(:func:`decode_one2one_batch`), never NMS. :func:`predict_all` with ``nms=False`` decodes only those.

Examples:
    >>> import torch
    >>> y = torch.zeros(1, 6, 2); y[0, :4, 0] = torch.tensor([64., 64., 20., 10.]); y[0, 4, 0] = 0.9
    >>> p, c = decode_batch(y, (128, 128), [(64, 128)], conf=0.5, iou=0.7, max_det=10, max_candidates=10)
    >>> [round(v, 1) for v in p[0]["boxes"][0].tolist()], p[0]["classes"].tolist()
    ([54.0, 27.0, 74.0, 37.0], [0])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from alignrank.config.schema import EvalParams
from alignrank.errors import DataError
from alignrank.eval.boxes import Detections

IMG_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
MAX_NMS = 30000  # ultralytics' cap on boxes entering NMS


@dataclass
class PredictResult:
    """Output of :func:`predict_split`.

    Attributes:
        preds: Post-NMS detections of the one-to-many branch (dataset ids, original pixels).
        candidates: Pre-NMS candidates of the one-to-many branch.
        meta: ``variant``, ``scale``, ``imgsz``, ``nc``, ``num_images``, ``weights``, ``end2end``.
        one2one: NMS-free detections of the one-to-one branch (None: the model has none).
    """

    preds: Detections
    candidates: Detections
    meta: dict = field(default_factory=dict)
    one2one: Detections | None = None


@dataclass
class Predictions:
    """Output of :func:`predict_all`: each None when not decoded (``nms=False``; no one-to-one branch)."""

    preds: Detections | None
    candidates: Detections | None
    one2one: Detections | None


def decode_batch(
    y: torch.Tensor,
    input_hw: tuple[int, int],
    orig_hw: Sequence[tuple[int, int]],
    *,
    conf: float,
    iou: float,
    max_det: int,
    max_candidates: int,
) -> tuple[list[dict], list[dict]]:
    """Decode a raw head output into per-image NMS predictions and candidates (original pixels, xyxy).

    Args:
        y: (B, 4 + nc, A) decoded head output: ``xywh`` boxes in input pixels, class scores in [0, 1].
        input_hw: Letterboxed input (h, w).
        orig_hw: Original (h, w) of each image.
        conf: Score threshold of candidates.
        iou: NMS IoU threshold (class-wise).
        max_det: Detections kept per image after NMS.
        max_candidates: Candidates kept per image (top scores).

    Returns:
        ``(preds, candidates)``: per image ``{"boxes": (N, 4) xyxy, "scores": (N,), "classes": (N,)}``.
    """
    from torchvision.ops import batched_nms
    from ultralytics.utils.ops import scale_boxes, xywh2xyxy

    preds, cands = [], []
    for b in range(y.shape[0]):
        boxes = xywh2xyxy(y[b, :4].T.float())  # (A, 4)
        scores = y[b, 4:].T.float()  # (A, nc)
        a_idx, c_idx = torch.nonzero(scores >= conf, as_tuple=True)  # multi-label (anchor, class) pairs
        s = scores[a_idx, c_idx]
        if len(s) > MAX_NMS:
            top = s.topk(MAX_NMS).indices
            a_idx, c_idx, s = a_idx[top], c_idx[top], s[top]
        bx = boxes[a_idx]  # (N, 4) input pixels, unclipped: NMS here, as ultralytics' validator does
        keep = batched_nms(bx, s, c_idx, iou)[:max_det]  # sorted by score
        top = s.argsort(descending=True, stable=True)[:max_candidates]
        for out, idx in ((preds, keep), (cands, top)):
            out.append({"boxes": scale_boxes(input_hw, bx[idx].clone(), orig_hw[b]),  # original pixels, clipped
                        "scores": s[idx], "classes": c_idx[idx]})
    return preds, cands


def decode_one2one_batch(
    y: torch.Tensor, input_hw: tuple[int, int], orig_hw: Sequence[tuple[int, int]], *, conf: float
) -> list[dict]:
    """Per-image NMS-free detections from the one-to-one branch's top-k output (original pixels, xyxy).

    Args:
        y: (B, k, 6) ``x1, y1, x2, y2`` (input pixels), score, class (:func:`alignrank.nn.e2e.decode_one2one`).
        input_hw: Letterboxed input (h, w).
        orig_hw: Original (h, w) of each image.
        conf: Score threshold.

    Returns:
        Per image ``{"boxes": (N, 4) xyxy, "scores": (N,), "classes": (N,)}``, sorted by score.

    Examples:
        >>> y = torch.tensor([[[10., 10., 30., 20., 0.9, 1.], [0., 0., 5., 5., 0.0005, 0.]]])
        >>> d = decode_one2one_batch(y, (64, 64), [(32, 64)], conf=0.001)[0]
        >>> d["boxes"].tolist(), d["classes"].tolist()
        ([[10.0, 0.0, 30.0, 4.0]], [1])
    """
    from ultralytics.utils.ops import scale_boxes

    out = []
    for b in range(y.shape[0]):
        keep = y[b, :, 4] >= conf  # (k,)
        det = y[b][keep].float()  # (N, 6), still sorted by score
        out.append({"boxes": scale_boxes(input_hw, det[:, :4].clone(), orig_hw[b]),  # original pixels, clipped
                    "scores": det[:, 4], "classes": det[:, 5].long()})
    return out


def _to_detections(items: list[dict], image_ids: list[int], category_ids: np.ndarray) -> Detections:
    if not items:
        return Detections.empty()
    boxes = torch.cat([d["boxes"] for d in items]).cpu().numpy().astype(np.float64).reshape(-1, 4)  # (N, 4) xyxy
    xywh = np.c_[boxes[:, :2], boxes[:, 2:] - boxes[:, :2]]  # (N, 4)
    cls = torch.cat([d["classes"] for d in items]).cpu().numpy()
    img = np.repeat(image_ids, [len(d["scores"]) for d in items])
    return Detections(img, category_ids[cls], xywh, torch.cat([d["scores"] for d in items]).cpu().numpy())


def read_dataset_yaml(data_root: str | Path) -> dict:
    """The data stage's ``dataset.yaml`` with its val images folder and val JSON resolved."""
    import yaml

    root = Path(data_root)
    path = root / "dataset.yaml"
    if not path.is_file():
        raise DataError(f"{path}: not found; run `alignrank data` (or `dvc repro data`) first")
    d = yaml.safe_load(path.read_text()) or {}
    base = Path(d.get("path") or root)
    base = base if base.is_absolute() else (root / base)
    for key in ("val", "val_json"):
        if not d.get(key):
            raise DataError(f"{path}: missing '{key}'; re-run the data stage")
    d["_val_dir"] = base / d["val"]
    d["_val_json"] = base / d["val_json"] if not Path(d["val_json"]).is_absolute() else Path(d["val_json"])
    names = d.get("names") or {}
    nc = int(d.get("nc") or len(names))
    ids = d.get("category_ids")
    d["_category_ids"] = np.asarray(ids if ids else list(range(nc)), dtype=np.int64)
    if len(d["_category_ids"]) != nc:
        raise DataError(f"{path}: category_ids has {len(d['_category_ids'])} ids but nc={nc}; re-run the data stage")
    return d


def val_images(val_dir: Path, gt: dict) -> list[tuple[Path, int]]:
    """(image path, image id) of the val images, ids from the instances JSON matched by file name."""
    by_name = {Path(im.get("file_name", "")).name: int(im["id"]) for im in gt["images"]}
    files = sorted(p for p in Path(val_dir).iterdir() if p.suffix.lower() in IMG_SUFFIXES) if Path(val_dir).is_dir() else []
    if not files:
        raise DataError(f"{val_dir}: no val images; re-run the data stage")
    missing = [p.name for p in files if p.name not in by_name]
    if missing:
        raise DataError(f"{val_dir}/{missing[0]}: not in the val instances JSON ({len(missing)} image(s) unmatched by file name); "
                        "re-run the data stage")
    return [(p, by_name[p.name]) for p in files]


def load_model(weights: str | Path, device: str = "cpu"):
    """Load a checkpoint (our models pickle with their head and settings) as an FP32 eval model.

    Returns:
        ``(model, train_args)``.

    Raises:
        CheckpointRefused: It lies in a run folder whose record does not list its sha256
            (:mod:`alignrank.engine.checkpoints`; ``alignrank evaluate`` also refuses one without a record).
    """
    from ultralytics.nn.tasks import load_checkpoint

    from alignrank.engine.checkpoints import verify

    weights = Path(weights)
    if not weights.is_file():
        raise DataError(f"{weights}: checkpoint not found; train the run first (alignrank sweep)")
    verify(weights, required=False)  # a pickle: one beside a run's record must be a file that run wrote
    try:
        model, ckpt = load_checkpoint(str(weights), device=torch.device(device))
    except Exception as e:  # noqa: BLE001  (truncated or foreign pickle)
        raise DataError(f"{weights}: unreadable checkpoint ({type(e).__name__}: {e}); re-train or restore it") from None
    return model.float().eval(), dict(ckpt.get("train_args") or {})


def read_image(path: Path, *, stored_frame: bool = False) -> np.ndarray:
    """BGR pixels as OpenCV loads them (turned by an EXIF orientation), or as stored (``stored_frame``)."""
    import cv2

    flags = cv2.IMREAD_COLOR | (cv2.IMREAD_IGNORE_ORIENTATION if stored_frame else 0)
    im = cv2.imread(str(path), flags)
    if im is None:
        raise DataError(f"{path}: unreadable image; re-run the data stage")
    return im


def _letterboxed(images: Sequence[tuple[Path, int]], size: int, batch: int, device: str, stored_frame: frozenset[str]):
    """Yield ``(x (B, 3, S, S) RGB in [0, 1], original (h, w) per image, image ids)`` per chunk of ``batch`` images."""
    from ultralytics.data.augment import LetterBox

    letterbox = LetterBox(new_shape=(size, size), auto=False, scaleup=True, center=True)
    for i in range(0, len(images), batch):
        chunk = images[i : i + batch]
        arrs, shapes = [], []
        for path, _ in chunk:
            im = read_image(path, stored_frame=path.name in stored_frame)
            shapes.append(im.shape[:2])
            arrs.append(letterbox(image=im))
        x = torch.from_numpy(np.stack(arrs)[..., ::-1].transpose(0, 3, 1, 2).copy())  # (B, 3, S, S) RGB
        yield x.to(device).float() / 255.0, shapes, [im_id for _, im_id in chunk]


@torch.inference_mode()
def predict_all(
    model: torch.nn.Module,
    images: Sequence[tuple[Path, int]],
    category_ids: np.ndarray,
    params: EvalParams,
    *,
    size: int,
    batch: int = 8,
    device: str = "cpu",
    stored_frame: frozenset[str] = frozenset(),
    nms: bool = True,
) -> Predictions:
    """Run ``model`` on ``images``: the one-to-many branch with NMS and, for NMS-free models, the one-to-one branch.

    One forward pass per batch serves both: the model's inference output is the one-to-many branch's
    (B, 4 + nc, A) (decoded with NMS by :func:`decode_batch`), its raw outputs carry the one-to-one branch's,
    decoded by top-k without NMS.

    Args:
        model: FP32 eval model (:func:`load_model`).
        images: ``(path, image id)`` pairs.
        category_ids: (nc,) dataset category id of each YOLO class index; a class mapped to a negative id has
            no category in the ground truth and its boxes are dropped (held-out data with fewer classes).
        params: ``eval`` params (conf, iou, max_det, max_candidates).
        size: Input side.
        batch: Images per forward pass.
        device: Torch device.
        stored_frame: File names loaded as stored, ignoring their EXIF orientation (their boxes describe the
            stored pixels).
        nms: Decode the one-to-many branch (NMS predictions and candidates); False: only the one-to-one
            branch's NMS-free detections (no NMS runs).
    """
    from alignrank.nn.e2e import decode_one2one, has_one2one, head_of

    e2e = has_one2one(model)
    if not nms and not e2e:
        raise ValueError("predict_all: nms=False needs an NMS-free model (one-to-one branch)")
    preds, cands, o2o, ids = [], [], [], []
    for x, shapes, chunk_ids in _letterboxed(images, size, batch, device, stored_frame):
        out = model(x)
        if nms:
            y = out[0] if isinstance(out, (tuple, list)) else out  # (B, 4 + nc, A)
            pr, ca = decode_batch(y, (size, size), shapes, conf=params.conf, iou=params.iou, max_det=params.max_det,
                                  max_candidates=params.max_candidates)
            preds += pr
            cands += ca
        if e2e:
            top = decode_one2one(head_of(model), out[1]["one2one"], params.max_det)  # (B, k, 6)
            o2o += decode_one2one_batch(top, (size, size), shapes, conf=params.conf)
        ids += chunk_ids

    def dets(items: list[dict]) -> Detections:
        d = _to_detections(items, ids, category_ids)
        return d.select(d.category_id >= 0)

    return Predictions(dets(preds) if nms else None, dets(cands) if nms else None, dets(o2o) if e2e else None)


def predict_split(
    weights: str | Path,
    data_root: str | Path,
    gt: dict,
    params: EvalParams | None = None,
    *,
    imgsz: int | None = None,
    batch: int = 8,
    device: str = "cpu",
) -> PredictResult:
    """Run a checkpoint on the val images of ``data_root/dataset.yaml``.

    Args:
        weights: Checkpoint (``best.pt``).
        data_root: Data stage output folder (holds ``dataset.yaml``).
        gt: The val instances dict (for image ids by file name).
        params: ``eval`` params (conf, iou, max_det, max_candidates).
        imgsz: Input size; default the checkpoint's training ``imgsz``.
        batch: Images per forward pass.
        device: Torch device.

    Returns:
        :class:`PredictResult` (``one2one`` set for an NMS-free model).
    """
    p = params or EvalParams()
    ds = read_dataset_yaml(data_root)
    model, train_args = load_model(weights, device)
    size = int(imgsz or train_args.get("imgsz") or 640)
    nc = model_classes(model)
    cat_ids = ds["_category_ids"]
    if nc != len(cat_ids):
        raise DataError(f"{weights}: model has {nc} classes but {data_root}/dataset.yaml has {len(cat_ids)}; "
                        "evaluate on the data the run was trained on")
    images = val_images(ds["_val_dir"], gt)
    r = predict_all(model, images, cat_ids, p, size=size, batch=batch, device=device)
    meta = {"variant": getattr(model, "variant", None), "scale": getattr(getattr(model, "model_params", None), "scale", None),
            "imgsz": size, "nc": nc, "num_images": len(images), "weights": str(weights), "end2end": r.one2one is not None}
    return PredictResult(r.preds, r.candidates, meta, r.one2one)


def model_classes(model: torch.nn.Module) -> int:
    """Number of classes of a loaded detection model."""
    return int(getattr(model, "nc", None) or model.model[-1].nc)
