"""Every command, every option given a bad value, and a misspelt key in a spec and in the toml:
exit 2, one ``error:`` line on stderr naming what the user wrote, no traceback. Every bad value
fails before any model is built (the whole walk takes seconds), and an option added later without
a bad value here fails ``test_every_option_has_a_bad_value``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import ValidationError
from typer.main import get_command
from typer.testing import CliRunner

from service.cli import app

URL = "http://127.0.0.1:9"
# what each command needs besides the bad option, so that the bad option is what fails
BASE: dict[str, list[str]] = {
    "export": ["resnet18"],
    "profile": ["resnet18"],
    "compare": ["resnet18", "resnet18"],
    "gate": ["--baseline", "resnet18", "--candidate", "resnet18"],
    "predict": ["resnet18"],
    "predictor fit": ["--device", "cpu"],
    "upload": ["resnet18", "--server", URL],
    "accuracy set": ["resnet18", "--top1", "70", "--source", "paper"],
    "parc-forms": ["parcnet_xs"],
    "runner": ["--server", URL, "--device-class", "cpu"],
    "runners add": ["bench-box"],
}
# (command, option) -> bad values; the word the error line must name is the option itself
BAD: dict[tuple[str, str], tuple[str, ...]] = {
    ("export", "--format"): ("onnxx", "coreml,tflite"),
    ("export", "--precision"): ("fp8",),
    ("export", "--device"): ("cpux",),
    ("profile", "--device"): ("cpux", "iphone13-class"),
    ("profile", "--runner"): ("ort-cpux",),
    ("profile", "--precision"): ("fp8",),
    ("profile", "--threads"): ("abc", "0"),
    ("profile", "--target"): ("abc", "0"),
    ("profile", "--max-seconds"): ("abc", "-1"),
    ("profile", "--sustained"): ("abc", "0"),
    ("profile", "--server"): ("lab-server",),
    ("compare", "--server"): ("lab-server",),
    ("compare", "--device"): ("gpux",),
    ("compare", "--runner"): ("nope",),
    ("compare", "--precision"): ("fp8",),
    ("compare", "--threads"): ("abc", "0"),
    ("compare", "--reloads"): ("abc", "5", "0"),
    ("compare", "--blocks"): ("abc", "0"),
    ("gate", "--baseline"): ("resnet1800",),
    ("gate", "--candidate"): ("resnet1800",),
    ("gate", "--device"): ("cpux",),
    ("gate", "--threshold"): ("5x", "20"),
    ("gate", "--metric"): ("bogus", "cpuu"),
    ("gate", "--config"): ("no-such-latbench.toml",),
    ("gate", "--budget-reloads"): ("abc", "1"),
    ("gate", "--server"): ("lab-server:8000",),
    ("gate", "--label"): ("novalue",),
    ("gate", "--dashboard"): ("dash.example",),
    ("gate", "--markdown"): ("/dev/null/comment.md",),
    ("report", "--device"): ("cpux",),
    ("report", "--server"): ("lab-server",),
    ("report", "--out"): ("/dev/null/report.html",),
    ("predict", "--device"): ("iphone-12",),
    ("predictor fit", "--device"): ("cpux",),
    ("upload", "--server"): ("lab-server:8000",),
    ("accuracy set", "--top1"): ("abc",),
    ("accuracy set", "--resolution"): ("abc",),
    ("accuracy set", "--server"): ("lab-server",),
    ("parc-forms", "--device"): ("cpux",),
    ("parc-forms", "--runner"): ("nope",),
    ("parc-forms", "--threads"): ("abc",),
    ("parc-forms", "--reloads"): ("abc",),
    ("parc-forms", "--blocks"): ("abc",),
    ("serve", "--port"): ("abc",),
    ("serve", "--export-workers"): ("abc",),
    ("serve", "--workers"): ("abc",),
    ("runner", "--server"): ("lab-server",),
    ("runner", "--device-class"): ("cpux",),
    ("runner", "--token-file"): ("no-such-token-file",),
    ("runner", "--cache-bytes"): ("abc",),
    ("profile", "--calibration"): ("no-such-set.npy",),
    ("compare", "--precision-b"): ("fp8",),
    ("compare", "--calibration"): ("no-such-set.npy",),
    ("gc", "--limit-bytes"): ("abc",),
    ("worker", "--export-workers"): ("abc",),
    ("runners add", "--device-class"): ("cpux",),
}
# options that take any text (labels, tokens, paths to create) or are switches
FREE = {"--help", "--json", "--token", "--repository", "--branch", "--commit", "--pr", "--name",
        "--source", "--dataset", "--note", "--host", "--dispatcher", "--broker", "--cache", "--lock",
        "--baseline-ref"}  # fmt: skip


def _commands(group=None, prefix: str = "") -> Iterator[tuple[str, object]]:
    group = group or get_command(app)
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        if hasattr(command, "commands"):
            yield from _commands(command, f"{path} ")
        else:
            yield path, command


def _options(command) -> Iterator[str]:
    for param in command.params:
        if param.param_type_name == "option" and not param.is_flag:
            yield max(param.opts, key=len)


def _run(args: list[str], tmp_path, monkeypatch):
    monkeypatch.setenv("LATBENCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LATBENCH_DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite'}")
    monkeypatch.delenv("LATBENCH_SERVER", raising=False)
    monkeypatch.chdir(tmp_path)
    return CliRunner().invoke(app, args)


def _assert_usage_error(result, word: str) -> None:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.output + result.stderr, result.stderr
    assert result.exit_code == 2, (result.exit_code, result.stderr, result.stdout)
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert word in lines[0], (word, lines[0])


def test_every_option_has_a_bad_value():
    missing = [
        (path, option)
        for path, command in _commands()
        for option in _options(command)
        if option not in FREE and (path, option) not in BAD
    ]
    assert not missing, f"give these options a bad value in BAD (or list them in FREE): {missing}"


@pytest.mark.parametrize(
    ("path", "option", "value"),
    [(path, option, value) for (path, option), values in BAD.items() for value in values],
)
def test_a_bad_value_is_one_line_naming_the_flag_and_exit_2(
    path, option, value, tmp_path, monkeypatch
):
    args = [*path.split(), *BASE.get(path, []), option, value]
    result = _run(args, tmp_path, monkeypatch)
    word = (
        "candidate" if option == "--candidate" else "baseline" if option == "--baseline" else option
    )
    _assert_usage_error(result, word)


@pytest.mark.parametrize(
    "args",
    [
        ["profile", "resnet18", "--thredas", "2"],
        ["gate", "--metrc", "cpu"],
        ["compare", "resnet18"],
        ["models", "x", "y"],
        ["nosuchcommand"],
    ],
)
def test_click_usage_errors_are_one_line_too(args, tmp_path, monkeypatch):
    result = _run(args, tmp_path, monkeypatch)
    _assert_usage_error(result, "")


def test_compare_names_the_side_before_building_the_other(tmp_path, monkeypatch):
    result = _run(["compare", "resnet18", "resnet1800"], tmp_path, monkeypatch)
    _assert_usage_error(result, "b: ")
    assert "'resnet1800'" in result.stderr and "resnet18" in result.stderr
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").rglob("*.onnx"))


@pytest.mark.parametrize(
    ("document", "word"),
    [
        ("model: resnet18\ninput: {heigth: 224, width: 224}\n", "did you mean 'height'"),
        ("model: resnet18\noverride: {num_classes: 10}\n", "did you mean 'overrides'"),
        ("model: resnet18\noverrides: {num_clases: 10}\n", "did you mean 'num_classes'"),
        ("model: resnet18\nprecision: fp8\n", "precision"),
    ],
)
@pytest.mark.parametrize("command", ["export", "profile", "predict"])
def test_a_misspelt_spec_key_is_named_as_written(command, document, word, tmp_path, monkeypatch):
    spec = tmp_path / "spec.yaml"
    spec.write_text(document)
    result = _run([command, str(spec)], tmp_path, monkeypatch)
    _assert_usage_error(result, word)


@pytest.mark.parametrize(
    ("table", "word"),
    [
        ('metrc = "cpu"\n', "'metrc' (did you mean 'metric'?)"),
        ('devices = ["cpux"]\n', "'cpux' (did you mean 'cpu'?)"),
        ('threshold = "5x"\n', "'5x'"),
        (
            '[[gate.models]]\nname = "m"\nref = "resnet18"\nbaselin = "resnet18"\n',
            "'baselin' (did you mean 'baseline'?)",
        ),
    ],
)
def test_a_misspelt_toml_key_is_named_as_written(table, word, tmp_path, monkeypatch):
    models = '[[gate.models]]\nname = "m"\nref = "resnet18"\nbaseline = "resnet18"\n'
    toml = "[gate]\n" + (table if table.startswith("[[") else table + models)
    (tmp_path / "latbench.toml").write_text(toml)
    result = _run(["gate", "--config", str(tmp_path / "latbench.toml")], tmp_path, monkeypatch)
    _assert_usage_error(result, word)


def test_cpu_means_this_hosts_cpu_class_everywhere():
    from exporters.formats import DeviceClass, parse_device_class
    from service.api.schemas import ProfileCreate
    from service.gate.config import GateConfig

    here = DeviceClass.of_this_cpu()
    assert parse_device_class("cpu") is here
    assert ProfileCreate(model="resnet18", devices=["cpu", "gpu"]).devices == [
        here,
        DeviceClass.GPU_CUDA,
    ]
    config = GateConfig(models=[{"name": "m", "ref": "resnet18"}], devices=["cpu"])
    assert config.devices == [here]
    with pytest.raises(ValidationError, match=r"'cpux' \(did you mean 'cpu'\?\)"):
        ProfileCreate(model="resnet18", devices=["cpux"])


def test_a_gate_on_a_class_with_no_runner_here_stops_before_building(tmp_path, monkeypatch):
    args = ["gate", *BASE["gate"], "--device", "iphone12-class"]
    result = _run(args, tmp_path, monkeypatch)
    _assert_usage_error(result, "cannot run on this host")
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").rglob("*.onnx"))
