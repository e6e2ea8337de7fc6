"""Jobs and pulls as HTML for Jupyter: every value escaped, pull events folded as `tao` folds them."""

from __future__ import annotations

import subprocess
import sys

from tao_client._display import PullProgress, job_table, jobs_table

JOB = {
    "id": "j1",
    "task": "<b>ssd</b>",
    "subtask": None,
    "status": "failed",
    "exit_code": 2,
    "error": 'quote " & ampersand',
    "args": ["-e", "<spec>"],
    "image": "img:1",
}


def test_a_job_table_escapes_every_value_and_leaves_missing_ones_empty() -> None:
    page = job_table(JOB)
    assert "<b>" not in page and "&lt;b&gt;ssd&lt;/b&gt;" in page
    assert "<td>-e &lt;spec&gt;</td>" in page
    assert "quote &quot; &amp; ampersand" in page
    assert "<tr><th>subtask</th><td></td></tr>" in page
    assert "<tr><th>condition</th><td></td></tr>" in page  # absent from the data: an empty cell, not an error


def test_a_job_list_is_one_row_a_job_under_one_header() -> None:
    table = jobs_table([JOB, {**JOB, "id": "j2"}])
    assert table.count("<tr>") == 3
    assert "<td>j1</td>" in table and "<td>j2</td>" in table and "<b>" not in table


def test_pull_events_fold_into_layers_bytes_and_an_end() -> None:
    progress = PullProgress()
    progress.update({"image": "reg/<img>:1", "layer": "1", "status": "Pulling from reg/img"})  # the engine's id: the tag
    progress.update({"image": "reg/<img>:1", "layer": "aaa", "status": "Downloading", "current": 5_000_000, "total": 10_000_000})
    progress.update({"image": "reg/<img>:1", "layer": "bbb", "status": "Already exists"})
    assert (progress.bytes_done, progress.bytes_total, progress.done, progress.finished) == (5_000_000, 10_000_000, {"bbb"}, False)
    page = progress.html()
    assert "reg/&lt;img&gt;:1: Pulling from reg/img, 1/2 layers, 5.0 MB/10.0 MB" in page
    assert '<progress value="5000000" max="10000000">' in page and "<img>" not in page
    progress.update({"image": "reg/<img>:1", "layer": "aaa", "status": "Pull complete"})
    progress.update({"image": "reg/<img>:1", "layer": "", "status": "pulled"})
    assert progress.finished and progress.bytes_done == 10_000_000
    assert "pulled, 2/2 layers" in progress.html()


def test_a_job_table_shows_its_pull_once_one_has_layers() -> None:
    progress = PullProgress()
    assert "tao-pull" not in job_table(JOB, progress)
    progress.update({"image": "img:1", "layer": "aaa", "status": "Downloading", "current": 1, "total": 2})
    assert 'class="tao-pull"' in job_table(JOB, progress)


def test_importing_the_package_and_the_sync_client_loads_neither_httpx_nor_the_async_sdk() -> None:
    probe = (
        "import sys\n"
        "import tao_client\n"
        "from tao_client import Client, ApiError\n"
        "from tao_client.cli import main\n"
        "heavy = ('httpx', 'ssl', 'html', 'asyncio', 'tao_client._async', 'tao_client._display', 'pandas', 'IPython')\n"
        "print(sorted(name for name in heavy if name in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout == "[]\n"


def test_async_client_is_there_when_asked_for() -> None:
    probe = "import tao_client\nprint(tao_client.AsyncClient.__module__, tao_client.JobList.__name__)\n"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout == "tao_client._async JobList\n"


def test_the_sync_clients_job_shows_the_same_table() -> None:
    from tao_client.client import Job

    assert Job(None, JOB)._repr_html_() == job_table(JOB)  # type: ignore[arg-type]


def test_without_pandas_to_pandas_says_what_to_install() -> None:
    probe = (
        "import sys\n"
        "sys.modules['pandas'] = None  # as if not installed\n"
        "from tao_client import JobList\n"
        "try:\n"
        "    JobList().to_pandas()\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout == "to_pandas() needs pandas: pip install pandas, or 'tao-launcher[notebook]'\n"
