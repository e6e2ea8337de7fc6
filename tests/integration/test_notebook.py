"""examples/notebook.ipynb runs headless (nbclient, ipykernel) against a real daemon, on this venv's python.

The kernel is a kernelspec the test writes: this interpreter, and the daemon's address in its
environment, so the notebook runs as a user's would, with `AsyncClient()` and no arguments.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from tao_server.testing.daemon import Daemon
from tests.conftest import ROOT

pytestmark = pytest.mark.integration

NOTEBOOK = ROOT / "examples" / "notebook.ipynb"
KERNEL = "tao-launcher-test"


def kernelspec(root: Path, env: dict[str, str]) -> Path:
    """A Jupyter data dir holding one kernel: this venv's python with `env`."""
    directory = root / "kernels" / KERNEL
    directory.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": KERNEL,
        "language": "python",
        "env": env,
    }
    (directory / "kernel.json").write_text(json.dumps(spec))
    return root


def outputs(cell: Any) -> tuple[str, str]:
    """(what the cell printed, the HTML it displayed)."""
    printed = "".join(output.get("text", "") for output in cell.outputs if output.output_type == "stream")
    html = "".join(output.get("data", {}).get("text/html", "") for output in cell.outputs if "data" in output)
    return printed, html


def test_the_example_notebook_submits_follows_and_tables_a_job(daemon: Daemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The notebook runs as a user's would: with their ~/.tao_mounts.json, which its `submit` sends as `tao` does."""
    experiments = tmp_path / "experiments"
    (experiments / "specs").mkdir(parents=True)
    (experiments / "specs" / "train.txt").write_text("model_config {}\n")
    mounts = [{"source": str(experiments), "destination": "/workspace/tao-experiments"}]
    (daemon.home / ".tao_mounts.json").write_text(json.dumps({"Mounts": mounts}))
    env = {"TAO_HOST": daemon.address, "TAO_NO_AUTOSTART": "1", "HOME": str(daemon.home), "PYTHONNOUSERSITE": "1"}
    monkeypatch.setenv("JUPYTER_PATH", str(kernelspec(tmp_path / "jupyter", env)))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    notebook.cells.insert(0, nbformat.v4.new_code_cell("import sys\nprint(sys.executable)"))
    try:
        NotebookClient(notebook, kernel_name=KERNEL, timeout=120, resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        (daemon.home / ".tao_mounts.json").unlink()

    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    python, connected, submitted, followed, ended, listed, frame, watched, _ = (outputs(cell) for cell in code)
    assert python[0].strip() == sys.executable
    assert connected[0].startswith("daemon ")
    assert submitted[0] == f"mounts: {[{**mount, 'read_only': False} for mount in mounts]}\n"
    assert "<th>status</th><td>queued</td>" in submitted[1]
    assert "<th>warnings</th>" not in submitted[1]  # its results dir is under a mount: nothing is lost
    spec, results = "/workspace/tao-experiments/specs/train.txt", "/workspace/tao-experiments/results"
    assert followed[0].startswith(f"detectnet_v2 train: spec={spec} results={results}\nEpoch 1/3")
    assert followed[0].endswith(f"saved {results}/model.tlt\ntraining finished\n")
    assert (experiments / "results" / "model.tlt").read_text() == "weights of detectnet_v2\n"  # kept on the host
    assert "<th>status</th><td>succeeded</td>" in ended[1] and "<th>exit_code</th><td>0</td>" in ended[1]
    job_id = submitted[1].split("<th>id</th><td>", 1)[1].split("</td>", 1)[0]
    assert f"<td>{job_id}</td>" in listed[1] and 'class="tao-jobs"' in listed[1]
    assert job_id in frame[1] and "<table" in frame[1]  # pandas' own HTML
    assert daemon.job(job_id)["status"] == "succeeded"
    # The watched job's display was updated in place (nbclient applies the updates): it shows the end.
    assert "<th>status</th><td>succeeded</td>" in watched[1] and "<th>subtask</th><td>exit</td>" in watched[1]
