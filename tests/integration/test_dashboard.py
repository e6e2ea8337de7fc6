"""The dashboard in a real browser (Debian's chromium, driven by Playwright) against a real daemon and engine.

Every daemon here is the one a user's first `tao` command starts by itself (StartedByTao: no
TAO_HOST, no --port): it serves the dashboard on a loopback listener of its own. Each test signs
in as a real caller: `tao ui --no-browser` over the Unix socket gives the one-time link, or a
bearer token is typed into the sign-in form. A link made for a second account is opened in that
account's own browser (chromium run as it), since a code opens a session only for the account it
was made for. Screenshots of each page land in the test's temp dir (and in $TAO_UI_SHOTS when
set), to be looked at.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import playwright.sync_api as playwright_api
import pytest

from tao_server.testing.daemon import Daemon, StartedByTao, executable
from tao_server.testing.registry import remove_local
from tests.integration.conftest import Gates, containers_gone, job_id_of, local_account, tao_as, write_mounts
from tests.integration.test_images import _login, _manifest

pytestmark = pytest.mark.integration
CHROMIUM = "/usr/bin/chromium"
NVML_SHIM = Path(__file__).resolve().parents[1] / "fixtures" / "nvml_shim"
SECOND = 1000  # ms: what "within a second" allows


@pytest.fixture(scope="module")
def playwright_driver() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.fail("chromium is not installed at /usr/bin/chromium: scripts/prepare installs it (these tests never skip)")
    with playwright_api.sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright_driver: Any) -> Iterator[Any]:
    launched = playwright_driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
    yield launched
    launched.close()


@pytest.fixture(scope="module")
def browser_as(playwright_driver: Any) -> Iterator[Callable[[tuple[str, int, int]], Any]]:
    """Chromium run as another account (setpriv), for the links made for it: its network connections are that account's."""
    root = Path(tempfile.mkdtemp(prefix="tao-browser-"))
    root.chmod(0o755)
    launched: list[Any] = []

    def launch(user: tuple[str, int, int]) -> Any:
        _, uid, gid = user
        home = root / f"home-{uid}"
        home.mkdir(exist_ok=True)
        os.chown(home, uid, gid)
        wrapper = root / f"chromium-as-{uid}"
        # Playwright makes the profile directory as this process's user: it is handed to the account first.
        wrapper.write_text(
            "#!/bin/sh\n"
            f'for arg in "$@"; do case "$arg" in --user-data-dir=*) chown -R {uid}:{gid} "${{arg#--user-data-dir=}}";; esac; done\n'
            f'HOME={home} exec setpriv --reuid={uid} --regid={gid} --clear-groups {CHROMIUM} "$@"\n'
        )
        wrapper.chmod(0o755)
        launched.append(playwright_driver.chromium.launch(executable_path=str(wrapper), args=["--no-sandbox"]))
        return launched[-1]

    yield launch
    for each in launched:
        each.close()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def tao_started(manifest_file: Path, docker_client: Any) -> Iterator[Callable[..., StartedByTao]]:
    """A factory of daemons started by `tao` itself, for a user with a fresh HOME and no TAO_HOST, under a
    directory every local user may enter; `shared=True` opens its socket to every local user."""
    made: list[StartedByTao] = []

    def make(manifest: Path | None = None, shared: bool = False, env: dict[str, str] | None = None) -> StartedByTao:
        root = Path(tempfile.mkdtemp(prefix="tao-ui-"))  # pytest's tmp_path is closed to other users
        root.chmod(0o755)
        env = {"TAO_HEARTBEAT_INTERVAL": "0.5", **({"TAO_SOCKET_MODE": "0666"} if shared else {}), **(env or {})}
        daemon = StartedByTao(root / "daemon", manifest or manifest_file, env=env).start()
        daemon.home.chmod(0o755)
        if shared:  # as a shared daemon's socket directory is: open to every account
            for directory in (daemon.runtime, daemon.socket.parent):
                directory.chmod(0o755)
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        daemon.stop()
        daemon.remove_containers()
        shutil.rmtree(daemon.root.parent, ignore_errors=True)


@pytest.fixture
def ui_daemon(tao_started: Callable[..., StartedByTao]) -> StartedByTao:
    """A daemon `tao` started by itself, with no --port, that every local user may reach."""
    return tao_started(shared=True)


def tcp_base(daemon: Daemon) -> str:
    dashboard: str = daemon.request("GET", "/v1/daemon")["dashboard"]
    assert dashboard.startswith("http://127.0.0.1:") and dashboard.endswith("/ui/")
    return dashboard.removesuffix("/ui/")


def ui_link(daemon: Daemon, user: tuple[str, int, int] | None = None) -> str:
    made = tao_as(daemon, user, "ui", "--no-browser") if user is not None else daemon.tao("ui", "--no-browser")
    assert made.returncode == 0, made.stderr.decode()
    link = made.stdout.decode().strip()
    assert link.startswith(tcp_base(daemon) + "/ui/login#")
    return link


def shot(page: Any, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if target := os.environ.get("TAO_UI_SHOTS"):
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)


def signed_in(browser: Any, link: str) -> Any:
    page = browser.new_context().new_page()
    page.goto(link)
    page.wait_for_url("**/ui/")
    assert "#" not in page.url
    return page


def test_a_job_from_the_cli_appears_within_a_second_and_its_log_follows_live(
    ui_daemon: Daemon, browser: Any, gates: Gates, tmp_path: Path
) -> None:
    expect = playwright_api.expect
    page = signed_in(browser, ui_link(ui_daemon))
    expect(page.locator("#jobs-rows")).to_contain_text("No jobs.")
    script = f"echo first line; {gates.wait('more')}; echo second line; {gates.wait('end')}; echo last line"
    job_id = job_id_of(ui_daemon.tao("--mounts", str(gates.mounts), "-d", "unet", "run", "sh", "-c", script))
    row = page.locator(f"tr[data-job='{job_id}']")
    expect(row).to_be_visible(timeout=SECOND)
    expect(row.locator(".status")).to_contain_text("running")
    shot(page, tmp_path, "jobs")

    row.get_by_role("link", name=job_id).click()
    log = page.locator("#log")
    expect(log).to_contain_text("first line")
    gates.open("more")
    expect(log).to_contain_text("second line")  # no reload: the page follows the output
    expect(page.locator("#log-state")).to_have_text("following")
    shot(page, tmp_path, "job-running")
    gates.open("end")
    expect(log).to_contain_text("last line")
    expect(page.locator("#job-status")).to_have_text("succeeded")
    expect(page.locator("#log-state")).to_have_text("the job has ended")
    assert log.inner_text().splitlines() == ["first line", "second line", "last line"]
    shot(page, tmp_path, "job-finished")


def test_cancel_from_the_browser_stops_the_container(
    ui_daemon: Daemon, browser: Any, gates: Gates, docker_client: Any, tmp_path: Path
) -> None:
    expect = playwright_api.expect
    page = signed_in(browser, ui_link(ui_daemon))
    job_id = job_id_of(ui_daemon.tao("--mounts", str(gates.mounts), "-d", "unet", "run", "sh", "-c", f"echo up; {gates.wait('never')}"))
    ui_daemon.wait_for_output(job_id, b"up\n")
    page.goto(page.url + f"jobs/{job_id}")
    expect(page.locator("#log")).to_contain_text("up")
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("#job-status")).to_have_text("cancelled", timeout=30_000)
    assert ui_daemon.job(job_id)["status"] == "cancelled"
    assert containers_gone(docker_client, job_id)
    shot(page, tmp_path, "job-cancelled")


def test_a_log_line_with_a_script_tag_is_shown_as_text(ui_daemon: Daemon, browser: Any, tmp_path: Path) -> None:
    expect = playwright_api.expect
    page = signed_in(browser, ui_link(ui_daemon))
    markup = "<script>window.pwned = 1</script><img src=x onerror='window.pwned = 2'>"
    job_id = job_id_of(ui_daemon.tao("-d", "detectnet_v2", "argv", markup))
    ui_daemon.wait_for_status(job_id, ("succeeded",))
    page.goto(page.url + f"jobs/{job_id}")
    expect(page.locator("#log")).to_contain_text(markup)
    expect(page.locator("#job-detail")).to_contain_text("<script>window.pwned = 1</script>")
    assert page.locator("#log script, #log img, #job-detail script, #job-detail img").count() == 0
    assert page.evaluate("window.pwned") is None
    shot(page, tmp_path, "job-markup")


def test_a_second_accounts_session_shows_none_of_the_first_accounts_jobs(
    ui_daemon: Daemon, browser_as: Callable[[tuple[str, int, int]], Any], tmp_path: Path
) -> None:
    expect = playwright_api.expect
    first, second = local_account("tao-test-user"), local_account("tao-test-ui2")
    submitted = tao_as(ui_daemon, first, "-d", "detectnet_v2", "argv", "first's")
    assert submitted.returncode == 0, submitted.stderr.decode()
    theirs = job_id_of(submitted)
    mine = job_id_of(tao_as(ui_daemon, second, "-d", "detectnet_v2", "argv", "second's"))
    page = signed_in(browser_as(second), ui_link(ui_daemon, second))  # the second account's own browser
    expect(page.locator(f"tr[data-job='{mine}']")).to_be_visible()
    assert page.locator(f"tr[data-job='{theirs}']").count() == 0
    page.goto(page.url + f"jobs/{theirs}")
    expect(page.locator("#job-detail")).to_contain_text(f"no job {theirs!r}")
    assert "first's" not in page.content()
    shot(page, tmp_path, "other-users-job")


def test_a_replayed_link_shows_nothing(ui_daemon: Daemon, browser: Any, tmp_path: Path) -> None:
    expect = playwright_api.expect
    link = ui_link(ui_daemon)
    signed_in(browser, link)
    replay = browser.new_context().new_page()
    replay.goto(link)
    expect(replay.locator("#login-message")).to_contain_text("already used or has expired")
    shot(replay, tmp_path, "replayed-link-message")
    replay.goto(link.split("/ui/")[0] + "/ui/")
    expect(replay.locator("#signin")).to_be_visible()
    expect(replay.locator("#jobs-rows")).to_be_empty()
    shot(replay, tmp_path, "replayed-link-then-jobs")


def test_over_tcp_a_token_signs_in_and_a_tokenless_request_is_refused(ui_daemon: Daemon, browser: Any, tmp_path: Path) -> None:
    expect = playwright_api.expect
    base = tcp_base(ui_daemon)
    for path in ("/ui/parts/jobs", "/v1/jobs"):
        assert httpx.get(base + path).status_code == 401
    job_id = job_id_of(ui_daemon.tao("-d", "detectnet_v2", "argv", "by token"))
    page = browser.new_context().new_page()
    page.goto(base + "/ui/")
    expect(page.locator("#signin")).to_be_visible()
    shot(page, tmp_path, "signin")
    token = ui_daemon.token("--user", "root", "--uid", "0", "--gid", "0", "--admin")
    page.fill("#token", token)
    page.click("#token-save")
    expect(page.locator(f"tr[data-job='{job_id}']")).to_be_visible()
    assert token not in page.url
    for name, title in (("gpus", "GPUs and queue"), ("images", "Images")):
        page.goto(f"{base}/ui/{name}")
        expect(page.locator("h1")).to_have_text(title)
        expect(page.locator(f"#{name} table").first).to_be_visible()
        shot(page, tmp_path, name)
    assert token not in page.url


def test_a_cross_site_form_post_is_refused(ui_daemon: Daemon, browser: Any, gates: Gates, tmp_path: Path) -> None:
    expect = playwright_api.expect
    link = ui_link(ui_daemon)
    page = signed_in(browser, link)
    job_id = job_id_of(ui_daemon.tao("--mounts", str(gates.mounts), "-d", "unet", "run", "sh", "-c", f"echo up; {gates.wait('never')}"))
    ui_daemon.wait_for_output(job_id, b"up\n")
    target = f"{tcp_base(ui_daemon)}/v1/jobs/{job_id}/cancel"
    form = f"<form method=post action='{target}'><button id=go>win a prize</button></form>"
    page.context.route("http://evil.test/**", lambda route: route.fulfill(body=form, content_type="text/html"))
    page.goto("http://evil.test/")
    with page.expect_response(target) as answered:
        page.click("#go")
    assert answered.value.status == 403
    expect(page.locator("body")).to_contain_text("cross_site_request")
    assert ui_daemon.job(job_id)["status"] == "running"
    shot(page, tmp_path, "cross-site-refused")
    ui_daemon.request("POST", f"/v1/jobs/{job_id}/cancel")


def test_the_charts_on_a_jobs_page_grow_while_the_task_writes_epochs(ui_daemon: Daemon, browser: Any, gates: Gates, tmp_path: Path) -> None:
    expect = playwright_api.expect
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    config = {
        "Mounts": [{"source": str(workspace), "destination": "/workspace"}, {"source": str(gates.root), "destination": "/gates"}],
        "Envs": [{"variable": "TAO_SAMPLE_GATES", "value": "/gates"}, {"variable": "TAO_SAMPLE_EPOCHS", "value": "5"}],
    }
    mounts = write_mounts(tmp_path / "mounts.json", config)
    job_id = job_id_of(ui_daemon.tao("--mounts", str(mounts), "-d", "detectnet_v2", "train", "-r", "/workspace/results"))
    page = signed_in(browser, ui_link(ui_daemon))
    refused: list[str] = []
    page.on("console", lambda message: refused.append(message.text) if "Content Security Policy" in message.text else None)
    gates.open("epoch-1")
    row = page.locator(f"tr[data-job='{job_id}']")
    expect(row.locator("td.progress")).to_contain_text("1/5 20%", timeout=30_000)
    expect(row.locator("td.progress progress")).to_have_attribute("value", "0.2")
    row.get_by_role("link", name=job_id).click()
    loss = page.locator(".chart[data-series='loss']")
    expect(loss).to_have_attribute("data-points", "1", timeout=30_000)
    expect(page.locator("#job-kpis")).to_contain_text("mAP")
    gates.open("epoch-2")
    expect(loss).to_have_attribute("data-points", "2", timeout=30_000)  # no reload: the chart grows
    expect(page.locator("#job-progress")).to_contain_text("2/5 40%")
    assert loss.locator("canvas").count() == 1
    assert sorted(page.locator(".chart").evaluate_all("charts => charts.map(c => c.dataset.series)")) == [
        "learning_rate", "loss", "mAP", "validation_loss",
    ]  # fmt: skip
    shot(page, tmp_path, "job-training")
    for epoch in (3, 4, 5):
        gates.open(f"epoch-{epoch}")
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=30_000)
    expect(loss).to_have_attribute("data-points", "5", timeout=30_000)
    expect(page.locator("#job-detail .events")).to_contain_text("SUCCESS Training finished successfully.")
    assert refused == []  # uPlot draws within the page's Content-Security-Policy
    shot(page, tmp_path, "job-trained")


def test_a_jobs_page_draws_its_gpu_use_along_time_and_says_when_its_gpu_idles(
    tao_started: Callable[..., StartedByTao], browser: Any, gates: Gates, tmp_path: Path
) -> None:
    expect = playwright_api.expect
    state = tmp_path / "nvml.json"
    gpu = {"uuid": "GPU-5c0b6f0e-0000-4000-8000-000000000000", "bus_id": "00000000:1B:00.0", "utilization": 88, "used_mib": 12000}
    state.write_text(json.dumps({"gpus": [gpu]}))
    state.chmod(0o644)
    env = {
        "PYTHONPATH": str(NVML_SHIM),  # NVML's stand-in, imported by the daemon as nvidia-ml-py would be
        "TAO_TEST_NVML_STATE": str(state),
        "TAO_GPUS": "0",
        "TAO_GPU_MODE": "env",
        "TAO_GPU_SAMPLE_INTERVAL": "0.5",
        "TAO_GPU_IDLE_AFTER": "2",
    }
    daemon = tao_started(env=env)
    job_id = job_id_of(
        daemon.tao("--mounts", str(gates.mounts), "--gpu-index", "0", "-d", "detectnet_v2", "run", "sh", "-c", Gates.wait("end"))
    )
    page = signed_in(browser, ui_link(daemon))
    page.locator(f"tr[data-job='{job_id}']").get_by_role("link", name=job_id).click()
    utilization = page.locator(".chart[data-series='gpu_utilization']")
    expect(utilization).to_have_attribute("data-points", re.compile(r"^[1-9]"), timeout=30_000)
    expect(page.locator(".chart[data-series='gpu_memory_used']")).to_contain_text("gpu_memory_used (MiB)")
    drawn = int(utilization.get_attribute("data-points") or 0)
    # No reload: the chart grows with each sample, though no status file moves.
    expect(utilization).not_to_have_attribute("data-points", str(drawn), timeout=30_000)
    shot(page, tmp_path, "job-gpu")
    state.write_text(json.dumps({"gpus": [{**gpu, "utilization": 0}]}))
    expect(page.locator("#job-status")).to_contain_text("running: GPU 0 idle for", timeout=30_000)
    state.write_text(json.dumps({"gpus": [{**gpu, "utilization": 91}]}))
    expect(page.locator("#job-status")).to_have_text("running", timeout=30_000)
    expect(page.locator("#job-detail .events")).to_contain_text("GPU 0 busy again after", timeout=30_000)
    gates.open("end")
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=30_000)


def test_a_long_log_keeps_a_bounded_page_loads_earlier_output_and_downloads_whole(
    ui_daemon: Daemon, browser: Any, gates: Gates, tmp_path: Path
) -> None:
    expect = playwright_api.expect
    page = signed_in(browser, ui_link(ui_daemon))
    script = f"echo start; {gates.wait('go')}; seq 1 20000"
    job_id = job_id_of(ui_daemon.tao("--mounts", str(gates.mounts), "-d", "unet", "run", "sh", "-c", script))
    page.goto(page.url + f"jobs/{job_id}")
    log = page.locator("#log")
    expect(log).to_contain_text("start")
    gates.open("go")
    expect(page.locator("#job-status")).to_have_text("succeeded")
    expect(log.locator("div").last).to_have_text("20000")
    lines = log.locator("div")
    assert lines.count() == 5000 and lines.first.inner_text() == "15001"  # older lines left the page
    page.get_by_role("button", name="Load earlier output").click()
    expect(log.locator("div").first).not_to_have_text("15001")
    shown = [int(text) for text in log.inner_text().splitlines()]
    assert shown == list(range(shown[0], 20001)) and shown[0] < 15001
    with page.expect_download() as downloaded:
        page.get_by_role("button", name="Download the whole log").click()
    saved = tmp_path / "downloaded.log"
    downloaded.value.save_as(saved)
    assert saved.read_bytes() == (ui_daemon.data_dir / "logs" / f"{job_id}.log").read_bytes()
    shot(page, tmp_path, "job-long-log")

    page.get_by_role("button", name="Run again").click()
    page.wait_for_url(lambda url: "/ui/jobs/" in url and not url.endswith(job_id))
    again = page.url.rsplit("/", 1)[1]
    first, second = ui_daemon.job(job_id), ui_daemon.job(again)
    assert {key: second[key] for key in ("task", "subtask", "args", "mounts")} == {
        key: first[key] for key in ("task", "subtask", "args", "mounts")
    }
    expect(page.locator("#job-status")).to_have_text("succeeded")
    expect(log.locator("div").last).to_have_text("20000")


def test_tao_ui_gives_the_browser_a_page_of_yours_alone_and_never_the_code(ui_daemon: StartedByTao, browser: Any, tmp_path: Path) -> None:
    recorded = tmp_path / "browser"
    fake_browser = tmp_path / "browser.sh"
    # What every local user could read of the browser's process: its argv (/proc/PID/cmdline) and its environment.
    fake_browser.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {recorded}.argv\nenv > {recorded}.env\n')
    fake_browser.chmod(0o755)
    made = subprocess.run(
        [executable("tao"), "ui"],
        env=ui_daemon.user_env(BROWSER=str(fake_browser)),
        capture_output=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert made.returncode == 0, made.stderr.decode()
    [argv] = Path(f"{recorded}.argv").read_text().splitlines()
    assert argv.startswith("file://") and made.stdout.decode().strip() == argv
    page = Path(argv.removeprefix("file://"))
    code = re.search(r"/ui/login#([A-Za-z0-9_-]+)", page.read_text()).group(1)  # type: ignore[union-attr]
    assert code not in argv and code not in Path(f"{recorded}.env").read_text()
    assert stat.S_IMODE(page.stat().st_mode) == 0o600 and page.stat().st_uid == os.getuid()
    assert stat.S_IMODE(page.parent.stat().st_mode) == 0o700
    browsing = browser.new_context().new_page()
    browsing.goto(argv)  # the page sends the browser on to the one-time link
    browsing.wait_for_url("**/ui/")
    playwright_api.expect(browsing.locator("#jobs-rows")).to_contain_text("No jobs.")  # signed in: the table answers

    base = tcp_base(ui_daemon)
    over_tcp = ui_daemon.tao("ui", env=ui_daemon.env(TAO_HOST=base, TAO_TOKEN=ui_daemon.token("--user", "root", "--admin")))
    assert over_tcp.returncode == 125 and f"open {base}/ui/ and give it your token".encode() in over_tcp.stderr


def test_a_daemon_without_a_dashboard_says_so(new_daemon: Any) -> None:
    refused = new_daemon("--no-dashboard").start().tao("ui", "--no-browser")
    assert refused.returncode == 125 and b"serves no dashboard" in refused.stderr and b"--no-dashboard" in refused.stderr


def curl_as(user: tuple[str, int, int], *args: str) -> tuple[int, str]:
    """curl run as another account: (HTTP status, body)."""
    _, uid, gid = user
    ran = subprocess.run(
        ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "curl", "-sS", "-o", "-", "-w", "\n%{http_code}", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    body, _, status = ran.stdout.rpartition("\n")
    assert status.isdigit(), ran.stderr
    return int(status), body


def test_a_second_account_cannot_redeem_the_code_over_the_unix_socket_or_loopback_tcp(ui_daemon: Daemon, browser: Any) -> None:
    other = local_account("tao-test-user")
    link = ui_link(ui_daemon)  # root's
    code = link.rpartition("#")[2]
    redeem = ["-X", "POST", "-H", "Content-Type: application/json", "--data", f'{{"code": "{code}"}}']
    for where in (["--unix-socket", str(ui_daemon.socket), "http://tao/ui/session"], [f"{tcp_base(ui_daemon)}/ui/session"]):
        status, body = curl_as(other, *redeem, *where)
        assert status == 403 and '"link_not_yours"' in body, body
    signed_in(browser, link)  # the code is still good for the account it was made for

    own = ui_link(ui_daemon, other).rpartition("#")[2]
    status, body = curl_as(other, "-X", "POST", "-H", "Content-Type: application/json", "--data", f'{{"code": "{own}"}}',
                           "--unix-socket", str(ui_daemon.socket), "http://tao/ui/session")  # fmt: skip
    assert status == 200, body  # its own code, over the socket the kernel names it on


def test_an_admin_pulls_an_image_from_the_images_page_with_progress(
    tao_started: Callable[..., StartedByTao],
    registry: Any,
    browser: Any,
    tmp_path: Path,
) -> None:
    expect = playwright_api.expect
    reg, reference, _, _ = registry
    remove_local(reference)
    daemon = tao_started(manifest=_manifest(tmp_path / "manifest.json", reg))
    assert _login(daemon, reg.host).returncode == 0
    page = signed_in(browser, ui_link(daemon))
    page.goto(page.url + "images")
    row = page.locator("#images tr", has_text=reference)
    expect(row.locator("td").nth(2)).to_have_text("no")
    row.get_by_role("button", name="Pull").click()
    progress = page.locator("#pull-progress")
    expect(progress).to_contain_text(f"{reference}: done", timeout=60_000)
    expect(row.locator("td").nth(2)).to_have_text("yes")
    shot(page, tmp_path, "images-pulled")


def test_the_command_line_is_shown_and_copied_and_filters_stay_in_the_url(ui_daemon: Daemon, browser: Any, tmp_path: Path) -> None:
    expect = playwright_api.expect
    done = job_id_of(ui_daemon.tao("-d", "detectnet_v2", "argv", "two words", "-r", "/workspace/results"))
    other = job_id_of(ui_daemon.tao("-d", "ssd", "exit", "3"))
    for job_id, status in ((done, "succeeded"), (other, "failed")):
        ui_daemon.wait_for_status(job_id, (status,))
    line = "tao detectnet_v2 argv 'two words' -r /workspace/results"
    link = ui_link(ui_daemon)
    context = browser.new_context()
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=link.split("/ui/")[0])
    page = context.new_page()
    page.goto(link)
    page.wait_for_url("**/ui/")
    expect(page.locator(f"tr[data-job='{done}'] td.command")).to_have_text(line)

    page.select_option("#filter-status", "succeeded")
    page.fill("#filter-task", "detectnet_v2")
    page.press("#filter-task", "Enter")
    page.wait_for_url(lambda url: url.endswith("/ui/?status=succeeded&task=detectnet_v2"))
    expect(page.locator(f"tr[data-job='{other}']")).to_have_count(0)
    page.reload()  # a reload, as a shared link, keeps the filters and what they show
    expect(page.locator("#filter-status")).to_have_value("succeeded")
    expect(page.locator("#filter-task")).to_have_value("detectnet_v2")
    expect(page.locator(f"tr[data-job='{done}']")).to_be_visible()
    expect(page.locator(f"tr[data-job='{other}']")).to_have_count(0)
    shot(page, tmp_path, "jobs-filtered")

    page.locator(f"tr[data-job='{done}']").get_by_role("link", name=done).click()
    expect(page.locator("#job-command")).to_have_text(line)
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == line
    expect(page.locator("#job-detail")).to_contain_text('"shm_size": "64 MiB"')  # sizes in units
    shot(page, tmp_path, "job-command-line")
    page.goto(link.split("/ui/")[0] + "/ui/images")
    expect(page.locator("#images td.size").first).to_have_text(re.compile(r"^\d+(\.\d+)? (B|kB|MB|GB)$"))
