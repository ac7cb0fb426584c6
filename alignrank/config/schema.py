"""The params schema: one frozen dataclass per ``params.yaml`` section.

Defaults here equal ``params.yaml``'s; the YAML is the source of truth for runs, and every key
there must exist here (unknown keys are rejected). Ranges and choices are validated on load.

Examples:
    >>> p = Params()
    >>> p.loss.temperature > 0
    True
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal, Mapping, Optional

from alignrank.config.choices import ASSIGNER_NAMES, IOU_LOSS_NAMES
from alignrank.config.fields import MAX_SEED, ParamsError, param, shown
from alignrank.variants import VARIANTS

SCALES = ("n", "s", "m", "l", "x")


DATA_SOURCE_KEYS: dict[str, tuple[str, ...]] = {  # the data params that change what a source builds
    "synthetic": ("seed", "num_train", "num_val", "imgsz", "num_classes", "max_objects", "empty_fraction", "clutter"),
    "coco2017": ("url", "subset"),
    "coco_dir": ("coco_dir", "train_json", "train_images", "val_json", "val_images", "subset"),
}


@dataclass(frozen=True)
class DataParams:
    source: Literal["synthetic", "coco2017", "coco_dir"] = param(
        "synthetic", help="synthetic (embedded default) | coco2017 (download) | coco_dir (COCO-format folders on disk)"
    )
    root: str = param("data/{source}-{hash}", help="dataset folder (relative to the project root); {source} and {hash} "
                      "(8 hex of the source's settings) keep datasets side by side")
    seed: int = param(0, ge=0, le=MAX_SEED, help="seed of the synthetic generator")
    num_train: int = param(600, ge=1, help="synthetic: number of training images")
    num_val: int = param(300, ge=1, help="synthetic: number of validation images")
    imgsz: int = param(128, ge=32, le=4096, help="synthetic: image side in pixels")
    num_classes: int = param(4, ge=1, le=8, help="synthetic: number of shape classes (max 8)")
    max_objects: int = param(6, ge=1, help="synthetic: most objects in one image")
    empty_fraction: float = param(0.05, ge=0.0, le=1.0, help="synthetic: fraction of images with no object")
    clutter: int = param(2, ge=0, help="synthetic: number of distractor strokes per image")
    url: str = param("http://images.cocodataset.org", help="coco2017: base URL of the official zips")
    subset: int = param(0, ge=0, help="coco2017/coco_dir: keep the first N images of each split by id (0 = all)")
    retries: int = param(3, ge=0, help="coco2017: download retries per file on error or corruption")
    timeout: float = param(60.0, gt=0, help="coco2017: network timeout per request, seconds")
    downloads: str = param("downloads", help="coco2017: folder of the verified zips (outside data.root: DVC clears a stage's outputs)")
    coco_dir: str = param("", help="coco_dir: folder in the official layout (train2017/, val2017/, annotations/instances_{train,val}2017.json)")
    train_json: str = param("", help="coco_dir: train instances JSON (relative to data.coco_dir when set; overrides its layout)")
    train_images: str = param("", help="coco_dir: folder of the train images (file_name in the JSON is relative to it)")
    val_json: str = param("", help="coco_dir: val instances JSON")
    val_images: str = param("", help="coco_dir: folder of the val images")

    def __post_init__(self) -> None:
        if "{" in self.root:  # the per-source folder: switching source never rebuilds another source's dataset
            object.__setattr__(self, "root", self.expand_root(self.root))

    def source_settings(self) -> dict:
        """``{"source", <the keys of DATA_SOURCE_KEYS[source]>}``: what decides the source's content."""
        return {"source": self.source, **{k: getattr(self, k) for k in DATA_SOURCE_KEYS[self.source]}}

    def expand_root(self, template: str) -> str:
        """``template`` with ``{source}`` and ``{hash}`` (8 hex of :meth:`source_settings`) filled in.

        >>> r = DataParams(source="coco2017").root
        >>> r.startswith("data/coco2017-"), len(r) == len("data/coco2017-") + 8
        (True, True)
        """
        import hashlib
        import json

        digest = hashlib.sha256(json.dumps(self.source_settings(), sort_keys=True).encode()).hexdigest()[:8]
        try:
            return template.format(source=self.source, hash=digest)
        except (KeyError, IndexError, ValueError):
            raise ParamsError(f"data.root: {shown(template)} may use only {{source}} and {{hash}} in braces") from None

    def check(self, prefix: str) -> None:
        if self.source == "coco_dir" and not self.coco_dir:
            missing = [k for k in ("train_json", "train_images", "val_json", "val_images") if not getattr(self, k)]
            if missing:
                raise ParamsError(f"{prefix}.source=coco_dir needs {prefix}.coco_dir (official layout) or all of "
                                  f"{prefix}.train_json/train_images/val_json/val_images (missing: {', '.join(missing)})")


@dataclass(frozen=True)
class ModelParams:
    scale: Literal["n", "s", "m", "l", "x"] = param("n", help="YOLOv8 width/depth scale")
    csd_points: int = param(4, ge=1, le=16, help="CSD: K sampling points per neighbouring level")
    csd_offset_range: float = param(4.0, gt=0, help="CSD: max offset magnitude, in the sampled level's pixels")
    bcdm_reduction: int = param(4, ge=1, help="BCDM: channel reduction of the phi 1x1 convs")
    dyn_kernels: int = param(4, ge=1, le=16, help="dynamic conv: M base kernels blended by alpha(q)")
    dyn_hidden: int = param(16, ge=1, help="dynamic conv: hidden width of the quality MLP")
    csd_width: int = param(0, ge=0, help="CSD: width of the sampled side stream (0 = auto: max(32, P3 channels / 4))")
    csd_light_cls: bool = param(False, help="CSD: slim class branch (middle conv depthwise-separable; control variant: baseline_slim)")
    csd_side_stream: bool = param(True, help="CSD: sampler (eq. 1) + BCDM (eq. 2) side stream; false = dynamic prediction convs only")
    csd_biased: bool = param(False, help="CSD diagnostic: biases on the re-entry 1x1, router MLP and offset predictor (the head before the warm-up fix)")
    csd_side_detach: bool = param(False, help="CSD diagnostic: the side stream reads the levels detached (its gradient does not reach the neck)")
    bcdm_mode: Literal["two_pass", "one_pass"] = param(
        "two_pass", help="BCDM: eq. 2 reading: two_pass (top-down then bottom-up, recursive) | one_pass (parallel)"
    )
    dyn_init: Literal["shared", "independent"] = param(
        "shared", help="dynamic conv: base kernels start equal (shared) or independently drawn (independent, CondConv)"
    )
    end2end: bool = param(False, help="NMS-free form of every variant: YOLOv10's one-to-one branch beside the one-to-many "
                          "one (dual assignment); inference by top-k without NMS (variants *_e2e force it on)")


@dataclass(frozen=True)
class LossParams:
    iou_loss: str = param("ciou", choices=IOU_LOSS_NAMES, help="box IoU loss: ciou (YOLOv8) | diou | siou")
    assigner: str = param("tal", choices=ASSIGNER_NAMES, help="label assigner: tal (YOLOv8) | simota | atss")
    box: float = param(7.5, ge=0, help="gain of the IoU box loss (YOLOv8 default)")
    cls: float = param(0.5, ge=0, help="gain of the classification loss (YOLOv8 default; scales RCQ too)")
    dfl: float = param(1.5, ge=0, help="gain of the DFL loss (YOLOv8 default)")
    alpha: float = param(1.0, ge=0, help="quality q = IoU^alpha * centerness^beta: IoU exponent")
    beta: float = param(0.0, ge=0, help="quality centerness exponent (0 = IoU only)")
    alpha0: float = param(1.0, gt=0, help="L_cal target exponent: target = q^alpha0")
    gamma: float = param(2.0, ge=0, help="L_cal focal modulation exponent |sigmoid(s) - t|^gamma")
    cal_norm: Literal["quality", "positives", "assigner"] = param(
        "quality", help="L_cal divisor: quality (sum of targets) | positives (GFL's QFL) | assigner (YOLOv8's target-score sum)"
    )
    temperature: float = param(0.5, gt=0, help="L_list softmax temperature T")
    list_scale: Literal["literal", "logit"] = param(
        "literal", help="L_list target: literal softmax(q/T) (paper) | logit softmax(logit(q)/T) (same scale as s)"
    )
    margin: float = param(0.1, ge=0, help="L_rank hinge margin m")
    eps: float = param(0.02, ge=0, help="L_rank pair threshold: pairs with q_i > q_j + eps")
    lambda_cal: float = param(1.0, ge=0, help="weight of L_cal")
    lambda_list: float = param(0.5, ge=0, help="weight of L_list")
    lambda_rank: float = param(1.0, ge=0, help="weight of L_rank")
    rcq_assigner: str = param(
        "same", choices=lambda: ("same", *ASSIGNER_NAMES), help="assigner of the RCQ losses: same (= loss.assigner) | tal | simota | atss"
    )
    tal_topk: int = param(10, ge=1, help="TAL: top-k candidates per GT (YOLOv8 default)")
    simota_radius: float = param(2.5, gt=0, help="SimOTA: centre-region radius in strides")
    atss_topk: int = param(9, ge=1, help="ATSS: closest anchors per level per GT")
    pair_budget: int = param(4_000_000, ge=1024, help="L_rank: max G*Kmax^2 pair elements per chunk (memory bound)")
    o2o_topk: int = param(1, ge=1, help="NMS-free models: TAL top-k of the one-to-one assignment (YOLOv10: 1, same metric as the one-to-many)")
    o2o_loss: Literal["same", "v8"] = param(
        "same", help="NMS-free models: one-to-one branch's loss: same (the variant's, RCQ included) | v8 (YOLOv8's stock loss)"
    )
    o2m_weight: float = param(1.0, ge=0, help="NMS-free models: weight of the one-to-many branch's loss (YOLOv10: 1)")
    o2o_weight: float = param(1.0, ge=0, help="NMS-free models: weight of the one-to-one branch's loss (YOLOv10: 1)")


@dataclass(frozen=True)
class TrainParams:
    variant: str = param("full", choices=VARIANTS, help="variant for `alignrank train`")
    seed: int = param(0, ge=0, le=MAX_SEED, help="seed for `alignrank train`")
    epochs: int = param(15, ge=1, help="training epochs")
    batch: int = param(16, ge=1, help="batch size per optimizer step unless train.nbs says otherwise")
    imgsz: int = param(128, ge=32, help="training/validation image size (multiple of 32)")
    device: str = param("cpu", help="torch device: cpu | cuda | cuda:0 | 0,1 ...")
    workers: int = param(0, ge=0, help="dataloader workers per run (0 = main process)")
    optimizer: Literal["SGD", "AdamW", "Adam", "auto"] = param("AdamW", help="optimizer (ultralytics names)")
    lr0: float = param(0.002, gt=0, le=1, help="initial learning rate")
    warmup_epochs: float = param(1.0, ge=0, help="warm-up epochs")
    mosaic: float = param(0.0, ge=0, le=1, help="mosaic augmentation probability")
    # the rest of the ultralytics recipe: ultralytics' names, ranges as its cfg checks; defaults = ultralytics'
    # except nbs, close_mosaic and patience (0 = one step per batch, mosaic kept, no early stop)
    lrf: float = param(0.01, ge=0, le=1, help="final learning rate fraction: the schedule ends at lr0 * lrf")
    cos_lr: bool = param(False, help="cosine learning-rate schedule (false = linear)")
    momentum: float = param(0.937, ge=0, le=1, help="SGD momentum / Adam beta1")
    weight_decay: float = param(0.0005, ge=0, le=1, help="weight decay (scaled by batch * accumulation / nbs)")
    warmup_momentum: float = param(0.8, ge=0, le=1, help="momentum at the start of the warm-up")
    warmup_bias_lr: float = param(0.1, ge=0, le=1, help="bias learning rate at the start of the warm-up")
    nbs: int = param(0, ge=0, help="nominal batch size: gradients accumulate over round(nbs / batch) batches (0 = train.batch)")
    close_mosaic: int = param(0, ge=0, help="turn mosaic off for the last N epochs (0 = never)")
    patience: int = param(0, ge=0, help="stop after N epochs without val fitness improvement (0 = never)")
    hsv_h: float = param(0.015, ge=0, le=1, help="HSV hue augmentation (fraction)")
    hsv_s: float = param(0.7, ge=0, le=1, help="HSV saturation augmentation (fraction)")
    hsv_v: float = param(0.4, ge=0, le=1, help="HSV value augmentation (fraction)")
    degrees: float = param(0.0, ge=0, le=180, help="random rotation (+/- degrees)")
    translate: float = param(0.1, ge=0, le=1, help="random translation (+/- fraction of the image)")
    scale: float = param(0.5, ge=0, le=1, help="random resize gain (+/-): sizes in [1 - scale, 1 + scale]")
    shear: float = param(0.0, ge=0, lt=90, help="random shear (+/- degrees)")
    perspective: float = param(0.0, ge=0, le=1, help="random perspective (fraction; 0-0.001 typical)")
    flipud: float = param(0.0, ge=0, le=1, help="vertical flip probability")
    fliplr: float = param(0.5, ge=0, le=1, help="horizontal flip probability")
    bgr: float = param(0.0, ge=0, le=1, help="RGB<->BGR channel swap probability")
    mixup: float = param(0.0, ge=0, le=1, help="MixUp augmentation probability")
    cutmix: float = param(0.0, ge=0, le=1, help="CutMix augmentation probability")
    copy_paste: float = param(0.0, ge=0, le=1, help="copy-paste probability (needs segment masks: no effect on box-only datasets)")
    copy_paste_mode: Literal["flip", "mixup"] = param("flip", help="copy-paste strategy: flip | mixup")
    multi_scale: float = param(0.0, ge=0, le=1, help="random train size per batch in imgsz * (1 +/- multi_scale) (0 = off)")
    rect: bool = param(False, help="rectangular training batches (no shuffle; ultralytics then drops mosaic)")
    fraction: float = param(1.0, gt=0, le=1, help="train on this fraction of the train images (the first ones)")
    cache: Literal[False, "ram"] = param(False, help="cache decoded train images: false | ram ('disk' would write .npy files into the dataset)")
    amp: bool = param(False, help="mixed precision (CUDA only; ignored on CPU)")
    deterministic: bool = param(True, help="deterministic algorithms (bit-exact on CPU)")
    threads: int = param(1, ge=1, help="torch CPU threads per run")
    out_dir: str = param("outputs/runs", help="root of the per-run output folders (keyed by hash)")
    save_period: int = param(-1, ge=-1, help="extra epochN.pt checkpoint every N epochs (-1 = only last.pt/best.pt, saved every epoch)")
    val_period: int = param(0, ge=0, help="validate every N epochs; 0 = only after the last epoch (best.pt = last.pt: no model selection on the validation set)")
    lock_wait: float = param(0.0, ge=-1, help="seconds to wait for a run folder or dataset another job holds (0 = fail with a 'busy' line, -1 = no limit)")

    def check(self, prefix: str) -> None:
        if self.imgsz % 32:
            raise ParamsError(f"{prefix}.imgsz: must be a multiple of 32, got {self.imgsz}")


@dataclass(frozen=True)
class SweepParams:
    variants: tuple[str, ...] = param(("baseline", "csd", "rcq", "full"), choices=VARIANTS, help="variants to train")
    seeds: tuple[int, ...] = param((0, 1, 2), ge=0, le=MAX_SEED, help="seeds per variant")
    max_retries: int = param(2, ge=0, help="retries of a run whose worker died or failed")


@dataclass(frozen=True)
class EvalParams:
    conf: float = param(0.001, ge=0, le=1, help="score threshold of predictions kept for COCO eval")
    iou: float = param(0.7, gt=0, le=1, help="NMS IoU threshold")
    max_det: int = param(300, ge=1, help="max detections per image")
    match_iou: float = param(0.5, gt=0, le=1, help="rank/calibration: IoU for a candidate to match a GT")
    ece_bins: int = param(15, ge=2, help="calibration: bins of detection ECE (equal-mass) and of D-ECE (equal-width over [0, 1], netcal's)")
    nms_free_topk: int = param(100, ge=1, help="NMS-free decoding: top-k by score per image")
    max_candidates: int = param(1000, ge=1, help="pre-NMS candidates kept per image (top scores) for rank/NMS-free metrics")


@dataclass(frozen=True)
class ProfileParams:
    variants: tuple[str, ...] = param(("baseline", "csd", "rcq", "full"), choices=VARIANTS, help="variants profiled")
    scale: Literal["n", "s", "m", "l", "x"] = param("s", help="model scale profiled (paper: s)")
    imgsz: int = param(640, ge=32, help="input side for FLOPs/latency (paper: 640)")
    nc: int = param(80, ge=1, help="number of classes for profiling (COCO: 80)")
    repeats: int = param(20, ge=1, help="timed repeats per model (alternating models)")
    warmup: int = param(3, ge=0, help="untimed warm-up runs per model")
    onnx: bool = param(True, help="also time ONNX Runtime on CPU")
    train_batch: int = param(4, ge=1, help="batch of the training-throughput measurement")
    train_imgsz: int = param(256, ge=32, help="image size of the training-throughput measurement")
    train_steps: int = param(3, ge=1, help="timed training steps per variant")
    threads: int = param(1, ge=1, help="CPU threads of the latency measurements (torch and ONNX Runtime)")
    conf: float = param(0.001, ge=0, le=1, help="end-to-end latency: score threshold of the post-processing (as eval.conf)")
    iou: float = param(0.7, gt=0, le=1, help="end-to-end latency: NMS IoU threshold of one-to-many models (as eval.iou)")
    max_det: int = param(300, ge=1, help="end-to-end latency: detections kept per image (NMS; top-k of NMS-free models)")


@dataclass(frozen=True)
class ReportParams:
    out_dir: str = param("results", help="folder of tables and plots")
    bootstrap: int = param(1000, ge=0, help="resamples of the per-image bootstrap of AP (one image draw for all runs); 0 = off")
    ci: float = param(0.95, gt=0, lt=1, help="confidence level of the intervals (tests at alpha = 1 - ci)")
    min_seeds: int = param(3, ge=2, help="fewest seeds for a paired difference to be called significant")
    power: float = param(0.8, gt=0, lt=1, help="target power of the seeds/images-needed statement")
    power_delta: float = param(1.0, gt=0, help="AP difference (points, %) the seeds/images-needed statement is for")


@dataclass(frozen=True)
class SpaceParam:
    type: Literal["uniform", "loguniform", "choice", "int"] = param(help="distribution")
    low: Optional[float] = param(None, help="lower bound (uniform/loguniform/int)")
    high: Optional[float] = param(None, help="upper bound (uniform/loguniform/int)")
    values: Optional[tuple[float, ...]] = param(None, help="choices (choice)")

    def check(self, prefix: str) -> None:
        if self.type == "choice":
            if not self.values:
                raise ParamsError(f"{prefix}.values: 'choice' needs a non-empty list of values")
            return
        if self.low is None or self.high is None:
            raise ParamsError(f"{prefix}: '{self.type}' needs both low and high")
        if self.low > self.high:
            raise ParamsError(f"{prefix}: low ({self.low}) must be <= high ({self.high})")
        if self.type == "loguniform" and self.low <= 0:
            raise ParamsError(f"{prefix}.low: loguniform bounds must be > 0, got {self.low}")


def _default_space() -> dict:
    return {
        "loss.lambda_cal": {"type": "loguniform", "low": 0.25, "high": 4.0},
        "loss.lambda_list": {"type": "loguniform", "low": 0.05, "high": 2.0},
        "loss.lambda_rank": {"type": "loguniform", "low": 0.05, "high": 4.0},
        "loss.temperature": {"type": "loguniform", "low": 0.1, "high": 2.0},
        "loss.margin": {"type": "uniform", "low": 0.0, "high": 0.5},
        "loss.eps": {"type": "uniform", "low": 0.0, "high": 0.1},
    }


@dataclass(frozen=True)
class TuneParams:
    variant: str = param("full", choices=VARIANTS, help="variant tuned")
    num_samples: int = param(8, ge=1, help="number of trials")
    search: Literal["optuna", "random"] = param("optuna", help="search algorithm: optuna (TPE) | random")
    scheduler: Literal["asha", "none"] = param("asha", help="trial scheduler: asha early stopping | none")
    metric: str = param("map50_95", help="metric reported each epoch and optimised")
    mode: Literal["max", "min"] = param("max", help="optimise direction")
    grace_period: int = param(1, ge=1, help="ASHA: epochs before a trial may be stopped")
    reduction_factor: float = param(2.0, gt=1, help="ASHA: reduction factor")
    epochs: int = param(6, ge=1, help="max epochs per trial")
    max_concurrent: int = param(2, ge=1, help="max concurrent trials")
    seeds: tuple[int, ...] = param((0,), ge=0, le=MAX_SEED, help="each configuration is run per seed, scored by the mean")
    max_failures: int = param(1, ge=0, help="retries of a crashed trial")
    out_dir: str = param("results/tune", help="output folder (best.yaml, tables, plots)")
    storage_dir: str = param("outputs/tune", help="Ray Tune storage (trials, checkpoints); a shared filesystem on a cluster")
    search_seed: int = param(0, ge=0, le=MAX_SEED, help="seed of the search algorithm (Optuna TPE sampler / random search)")
    space: Mapping[str, SpaceParam] = param(factory=_default_space, help="search space: dotted key -> distribution")


@dataclass(frozen=True)
class RayParams:
    address: Optional[str] = param(None, help="null = start a local Ray; 'auto' or ray://host:port = a cluster")
    num_cpus: Optional[int] = param(None, ge=1, help="local Ray: CPUs to use (null = all)")
    cpus_per_run: float = param(1.0, gt=0, help="CPUs reserved per run/trial")
    gpus_per_run: float = param(0.0, ge=0, help="GPUs reserved per run/trial")
    max_concurrent: int = param(2, ge=1, help="max runs at once")


@dataclass(frozen=True)
class MlflowParams:
    tracking_uri: Optional[str] = param(None, help="null = local SQLite under outputs/mlflow; else a server URI (env MLFLOW_TRACKING_URI wins)")
    experiment: str = param("alignrank", help="MLflow experiment name")

    def check(self, prefix: str) -> None:
        import re

        if self.tracking_uri and re.match(r"^[a-z][a-z0-9+.-]*://[^/@]*@", self.tracking_uri, re.I):
            raise ParamsError(f"{prefix}.tracking_uri: must not contain credentials (user:password@); give them in "
                              f"the environment (MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD / MLFLOW_TRACKING_TOKEN)")


@dataclass(frozen=True)
class Params:
    data: DataParams = param(factory=DataParams, help="data stage")
    model: ModelParams = param(factory=ModelParams, help="model architecture")
    loss: LossParams = param(factory=LossParams, help="loss and assignment")
    train: TrainParams = param(factory=TrainParams, help="training")
    sweep: SweepParams = param(factory=SweepParams, help="sweep of variants x seeds")
    eval: EvalParams = param(factory=EvalParams, help="evaluation")
    profile: ProfileParams = param(factory=ProfileParams, help="profiling")
    report: ReportParams = param(factory=ReportParams, help="result tables")
    tune: TuneParams = param(factory=TuneParams, help="hyper-parameter search")
    ray: RayParams = param(factory=RayParams, help="Ray resources")
    mlflow: MlflowParams = param(factory=MlflowParams, help="experiment tracking")

    def check(self, prefix: str) -> None:
        gpus = self.ray.gpus_per_run
        if gpus > 1:  # one run on several GPUs of one node: DDP over the GPUs Ray hands it (renumbered from 0)
            want = ",".join(str(i) for i in range(int(gpus)))
            if gpus != int(gpus):
                raise ParamsError(f"ray.gpus_per_run: above 1 it must be a whole number of GPUs, got {gpus}")
            if self.train.device.replace(" ", "") != want:
                raise ParamsError(f"ray.gpus_per_run={int(gpus)}: each run trains with DDP on the {int(gpus)} GPUs Ray "
                                  f"gives it; set train.device={want} (got {shown(self.train.device)})")
        for key in self.tune.space:
            section, _, name = key.partition(".")
            sub = getattr(self, section, None)
            if sub is None or not dataclasses.is_dataclass(sub) or name not in {f.name for f in dataclasses.fields(sub)}:
                raise ParamsError(f"tune.space: unknown key {shown(key)} (use a dotted params key such as loss.margin)")
            current = getattr(sub, name)
            if isinstance(current, bool) or not isinstance(current, (int, float)):
                raise ParamsError(f"tune.space.{key}: '{key}' is not a numeric param and cannot be searched")
            if section in ("tune", "ray", "mlflow", "sweep", "report", "profile", "data"):
                raise ParamsError(f"tune.space: '{key}' is not a training setting; search model/loss/train keys only")
