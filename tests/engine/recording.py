"""A test double of the ``Tracker`` protocol that records every call."""

from __future__ import annotations

from pathlib import Path


class RecordingTracker:
    """Records params, tags, (step, metrics), artifact paths and end statuses."""

    def __init__(self, run_id: str | None = "rec") -> None:
        self.run_id = run_id
        self.params: dict = {}
        self.tags: dict = {}
        self.metrics: list[tuple[int | None, dict]] = []
        self.artifacts: list[tuple[str, str | None]] = []
        self.ended: list[str] = []
        self.inputs: list[dict] = []

    def log_params(self, params):
        self.params.update(params)

    def set_tags(self, tags):
        self.tags.update(tags)

    def log_metrics(self, metrics, step=None):
        self.metrics.append((step, dict(metrics)))

    def log_artifact(self, path, artifact_path=None):
        assert Path(path).is_file()
        self.artifacts.append((Path(path).name, artifact_path))

    def log_input(self, *, name, digest, source, profile=None, context="train"):
        self.inputs.append({"name": name, "digest": digest, "source": source, "profile": profile, "context": context})

    def end(self, status="FINISHED"):
        self.ended.append(status)

    def history(self, key: str) -> list[float]:
        return [m[key] for _, m in self.metrics if key in m]
