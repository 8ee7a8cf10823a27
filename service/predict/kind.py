"""The ``predict`` job kind: the latency a device class's predictor gives for the job's exported
ONNX graph. It runs on the server, in the job's export step (``on_server``): the prediction needs
the predictor's training data and the artifact the step has just written, and no runner of the
class is there to take it (that is why the service predicts). The job's ``settings`` carry the
spec and its family (the domain check needs both). Registered by the job core
(``service.jobs.steps`` imports this module): a device host never runs it."""

from __future__ import annotations

from pathlib import Path

from devices.jobs.kinds import register_kind
from devices.jobs.port import MODEL, Host, JobTask
from devices.results import PredictionRecord
from exporters.errors import SpecError


@register_kind("predict", result=PredictionRecord, on_server=True)
def predict(task: JobTask, artifacts: dict[str, Path], host: Host) -> PredictionRecord:
    if host.data_dir is None:
        raise SpecError("a predict job runs on the server only", field="kind")
    from service.predict.job import predict_artifact  # the predictor loads only when one runs

    return predict_artifact(
        artifacts[MODEL],
        device_class=task.device_class,
        spec=task.settings["spec"],
        family=task.settings["family"],
        data_dir=host.data_dir,
        allow_out_of_domain=task.settings.get("allow_out_of_domain", False),
    )
