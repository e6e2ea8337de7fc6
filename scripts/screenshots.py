#!/usr/bin/env python3
"""Take the dashboard's screenshots for the docs from a realistic session, not from the tests' fixtures.

Usage: python scripts/screenshots.py [--out docs/dashboard]

A daemon (the installed `tao-server`, on a socket of its own, four placeholder GPUs in env mode)
runs the sample toolkit image (scripts/build_sample_image.py) for what a TAO user does: training
runs with a spec and a results dir under ~/tao-try mounted at /workspace/tao-experiments, as the
quick start has them (a sweep of the learning rate and batch size from ~/tao-try/specs/sweep.yaml,
two finished, one failed on a missing spec, one training for a while, one waiting for GPUs). Chromium (Playwright, /usr/bin/chromium) signs in with the
one-time link `tao ui` would open and takes each page once the long training is some epochs in.
Everything started is stopped and removed at the end; ~/tao-try keeps what the jobs wrote.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "tao-sample/toolkit:1"
CHROMIUM = "/usr/bin/chromium"
WORKSPACE = "/workspace/tao-experiments"
PATIENCE = 120.0  # seconds: a safety net for each wait, never a bet on how fast something is


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboard", help="where the PNGs go (default docs/dashboard)")
    parser.add_argument("--experiments", type=Path, default=Path.home() / "tao-try", help="the host dir mounted at " + WORKSPACE)
    args = parser.parse_args()
    import subprocess

    subprocess.run([sys.executable, str(ROOT / "scripts" / "build_sample_image.py"), IMAGE], check=True, stdout=subprocess.DEVNULL)
    from tao_server.testing.daemon import Daemon

    experiments = prepared_experiments(args.experiments)
    daemon = Daemon(
        Path(tempfile.mkdtemp(prefix="tao-screenshots-")),
        ROOT / "examples" / "sample-toolkit" / "manifest.json",
        *("--gpus", "0,1,2,3", "--gpu-mode", "env", "--log-level", "warning"),
    ).start()
    try:
        running, sweep = submit_session(daemon, experiments)
        take(daemon, running, sweep, args.out)
    finally:
        daemon.stop()
        daemon.remove_containers()
        daemon.discard()
    print(f"screenshots in {args.out}")
    return 0


def prepared_experiments(root: Path) -> Path:
    """~/tao-try as the quick start leaves it: a spec per task, and a results dir the jobs write into."""
    (root / "specs").mkdir(parents=True, exist_ok=True)
    (root / "results").mkdir(exist_ok=True)
    for task in ("detectnet_v2", "ssd", "yolo_v4", "unet"):
        (root / "specs" / f"{task}_train.txt").write_text(f'model_config {{ arch: "resnet" num_layers: 18 }}  # {task}\n')
    (root / "specs" / "sweep.yaml").write_text(SWEEP)
    return root


# The sweep a user tunes detectnet_v2 with (docs/user/sweeps.md): the stand-in training's mAP is a known
# function of train.lr and train.batch, best 0.9 at lr 0.01, batch 32 (examples/sample-toolkit/task.sh).
SWEEP = f"""\
step:
  task: detectnet_v2
  subtask: train
  args: [-e, {WORKSPACE}/specs/detectnet_v2_train.txt, -r, "${{trial.dir}}"]
  gpus: 1
trial_dir: {WORKSPACE}/sweeps/lr-batch
params:
  lr: {{type: float, low: 1.0e-4, high: 1.0e-1, log: true, override: train.lr}}
  batch: {{type: int, low: 8, high: 64, step: 8, override: train.batch}}
objective: {{kpi: mAP, direction: maximize}}
trials: 16
parallel: 2
sampler: {{name: tpe, seed: 7}}
pruner: median
"""


def submit_session(daemon: Any, experiments: Path) -> tuple[str, str]:
    """The session's jobs and sweep, each as `tao` would submit it; the ids of the job still training and of the sweep."""
    from tao_client import Client

    mounts = [{"source": str(experiments), "destination": WORKSPACE}]

    def config(epochs: int, seconds: float) -> dict[str, Any]:
        envs = [{"variable": "TAO_SAMPLE_EPOCHS", "value": str(epochs)}, {"variable": "TAO_SAMPLE_EPOCH_SECONDS", "value": str(seconds)}]
        return {"Mounts": mounts, "Envs": envs, "DockerOptions": {"shm_size": "16G"}}

    def train(client: Client, task: str, epochs: int, seconds: float, gpus: str, spec: str | None = None) -> str:
        arguments = ["-e", f"{WORKSPACE}/specs/{spec or task + '_train.txt'}", "-r", f"{WORKSPACE}/results/{task}"]
        return client.submit(task, "train", arguments, launch_config=config(epochs, seconds), gpus=gpus).id

    with Client(daemon.address, autostart=False) as client:
        # First the morning's sweep (`tao sweep run`): its trials are the oldest jobs of the list.
        sweep = client.sweeps.run(experiments / "specs" / "sweep.yaml", launch_config=config(10, 0.2))
        wait(lambda: sweep.refresh().done, "the sweep's trials have all ended")
        finished = train(client, "detectnet_v2", 12, 0.1, "1")
        wait(lambda: client.job(finished).status == "succeeded", "the first training finishes")
        train(client, "classification", 10, 0.1, "1", spec="classification_train.txt")  # no such spec: it fails
        second = train(client, "ssd", 8, 0.1, "1")
        wait(lambda: client.job(second).done, "the second training ends")
        running = train(client, "yolo_v4", 80, 2.0, "2")
        train(client, "unet", 40, 2.0, "4")  # waits in the GPU line behind the running one
        wait(lambda: ((client.job(running).progress or {}).get("epoch") or 0) >= 12, "the long training is twelve epochs in")
    return running, sweep.id


def take(daemon: Any, running: str, sweep: str, out: Path) -> None:
    """Each page in chromium, signed in with a one-time link as `tao ui` opens it."""
    import playwright.sync_api as playwright_api

    from tao_client import Client

    out.mkdir(parents=True, exist_ok=True)
    with Client(daemon.address, autostart=False) as client:
        link = client.dashboard_link()
    with playwright_api.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_context(viewport={"width": 1600, "height": 800}).new_page()
            page.goto(link)
            page.wait_for_url("**/ui/")
            page.wait_for_selector("tr >> text=yolo_v4")
            page.screenshot(path=str(out / "jobs.png"))
            page.locator("table").first.screenshot(path=str(out / "jobs-progress.png"))
            page.goto(link.split("/ui/")[0] + f"/ui/jobs/{running}")
            page.wait_for_selector("#charts canvas")
            page.wait_for_selector("#log >> text=Epoch")
            page.screenshot(path=str(out / "job-running.png"), full_page=True)
            page.locator("#training").screenshot(path=str(out / "training.png"))
            page.goto(link.split("/ui/")[0] + f"/ui/sweeps/{sweep}")
            page.wait_for_selector("#sweep-history canvas")
            page.wait_for_selector("#sweep-parallel svg")
            page.wait_for_selector("#sweep-trials >> text=pruned")
            page.screenshot(path=str(out / "sweep.png"), full_page=True)
            for name, path, ready in (("gpus", "/ui/gpus", "text=GPU"), ("images", "/ui/images", "text=tao-sample")):
                page.goto(link.split("/ui/")[0] + path)
                page.wait_for_selector(ready)
                page.screenshot(path=str(out / f"{name}.png"))
            # A browser elsewhere: no session, a token to give.
            signin = browser.new_context(viewport={"width": 1600, "height": 800}).new_page()
            signin.goto(link.split("/ui/")[0] + "/ui/login")
            signin.screenshot(path=str(out / "signin.png"))
        finally:
            browser.close()


def wait(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        if time.monotonic() > deadline:
            sys.exit(f"screenshots: never: {what}")
        time.sleep(0.2)


if __name__ == "__main__":
    sys.exit(main())
