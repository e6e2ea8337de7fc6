"""What the dashboard shows of a value (tao_server.ui.views): sizes in units, a job's command line."""

from __future__ import annotations

import pytest

from tao_server.models import JobPublic
from tao_server.ui.views import binary_size, command_line, event_text, options, size


@pytest.mark.parametrize(
    ("count", "shown"),
    [(None, ""), (512, "512 B"), (1_990_000, "1.99 MB"), (812_000, "812 kB"), (14_200_000_000, "14.2 GB"), (3_800_000_000_000, "3.80 TB")],
)
def test_image_sizes_are_in_the_units_docker_images_uses(count: int | None, shown: str) -> None:
    assert size(count) == shown


def test_size_options_are_in_the_units_the_launcher_config_writes() -> None:
    assert options({"shm_size": 64 * 1024**2, "mem_limit": 16 * 1024**3, "user": "1000:1000"}) == {
        "shm_size": "64 MiB",
        "mem_limit": "16 GiB",
        "user": "1000:1000",
    }
    assert binary_size(1536 * 1024**2) == "1.5 GiB"


def test_the_command_line_submits_the_job_again() -> None:
    job = JobPublic(id="j", group="model", task="detectnet_v2", subtask="train", args=["-e", "/w/a b.txt"], image="i")
    assert command_line(job) == "tao model detectnet_v2 train -e '/w/a b.txt'"
    assert command_line(JobPublic(id="j", task="unet", args=["--help"], image="i")) == "tao unet --help"


def test_an_idle_gpu_event_reads_as_its_message_in_the_timeline() -> None:
    event = {
        "seq": 1,
        "time": 0.0,
        "type": "gpu_idle",
        "data": {"gpu": "1", "idle": False, "message": "GPU 1 busy again after 14 min idle"},
    }
    assert event_text(event) == "GPU 1 busy again after 14 min idle"
