"""The backend contract (tao_server/backends/base.py): what every backend must do, checked the same way for each.

Each test runs against the Docker backend on the real engine, the Slurm backend on a real
single-node cluster (its jobs run docker on the node), and the in-memory fake.
A new backend joins by adding itself to `Engine` below: its runs must pass every test here.
The programs are the sample toolkit's task script (examples/sample-toolkit/task.sh), which the
test image carries and the fake emulates.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest

from tao_server.backends import Backend, LaunchSpec, Run, RunExit
from tao_server.errors import BackendUnavailable, ImageMissing
from tao_server.testing.engine_proxy import EngineProxy
from tao_server.testing.fake_backend import FakeBackend
from tao_server.testing.fake_engine import FakeEngine

# Arguments a shell would split, glob, expand or choke on: each must arrive exactly as sent.
HOSTILE_ARGS = [
    "plain", "two words", "", " leading and trailing ", "quote'single", 'quote"double', "$HOME", "$(id)", "`id`",
    "*", "?", "[a-z]", "~", "a;b", "a|b", "a&&b", "> out", "\\", "\\n", "new\nline", "tab\there", "-e", "--flag=value",
    "é ü ß 日本語 🙂", "=", "%s%n", "{}", "a" * 4096,
]  # fmt: skip
# Seconds between SIGTERM and SIGKILL. A program that answers SIGTERM gets long enough never to be
# killed first however loaded the machine (cancel returns as soon as it has ended); one that
# ignores it is killed after a short grace, which only bounds how long the test takes.
GRACE = 60.0
SHORT_GRACE = 2.0


class Engine:
    """One backend kind under test: how to make a backend on it (a new one is a restarted daemon),
    how to take it out of reach for a while, how to end a run behind the daemon's back, and how
    to clean up. A kind whose runs can wait in a queue (`queued`), or lose their node
    (`node_failure`), says how; the others leave them None, and those tests are not theirs."""

    def __init__(
        self,
        kind: str,
        image: str,
        make: Callable[[str], Backend],
        clean: Callable[[str], None],
        outage: Callable[[], AbstractContextManager[None]],
        end_outside: Callable[[Run, str], None],
        leftovers: Callable[[str, str], list[str]],
    ) -> None:
        self.kind = kind
        self.image = image
        self._make = make
        self._clean = clean
        self.outage = outage
        self.end_outside = end_outside  # cancel or remove the run as someone else would: scancel, docker rm -f
        self._leftovers = leftovers
        # A backend whose runs wait in its queue, and how to let one run; a node failure around a block.
        self.queued: Queued | None = None
        self.node_failure: Callable[[str], AbstractContextManager[None]] | None = None
        # Random first: the Slurm backend names jobs and containers by the id's first 8 characters.
        self.daemon_id = f"{uuid.uuid4().hex[:12]}-contract"
        self._backends: list[Backend] = []
        self._daemon_ids: set[str] = set()

    def backend(self, daemon_id: str | None = None, make: Callable[[str], Backend] | None = None) -> Backend:
        """A backend as a daemon with this id makes it; a second one with the same id is that daemon restarted."""
        backend = (make or self._make)(daemon_id or self.daemon_id)
        self._backends.append(backend)
        self._daemon_ids.add(daemon_id or self.daemon_id)
        return backend

    def leftovers(self, job_id: str) -> list[str]:
        """What is left of the job's runs on the engine (containers, fake runs), of any daemon of this test."""
        return [left for daemon_id in self._daemon_ids for left in self._leftovers(daemon_id, job_id)]

    def close(self) -> None:
        for backend in self._backends:
            backend.close()
        for daemon_id in self._daemon_ids:  # what any daemon of this test left, released by a last one
            last = self._make(daemon_id)
            for found in last.adopt():
                found.run.release()
            last.close()
            self._clean(daemon_id)


class Queued:
    """A backend that queues its runs, held there until let go: Slurm's with `--hold`, the fake's with its start gate shut."""

    def __init__(self, make: Callable[[str], Backend], let_go: Callable[[Run], None]) -> None:
        self.make = make
        self.let_go = let_go


@pytest.fixture(params=["fake", "docker", "slurm"])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    yield from _engine(request, request.param)


@pytest.fixture(params=["fake", "slurm"])
def queueing(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """The kinds whose runs may wait in the backend's own queue before they run."""
    yield from _engine(request, request.param)


@pytest.fixture(params=["fake", "slurm"])
def node_failing(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """The kinds whose runs live on nodes that can fail under them."""
    yield from _engine(request, request.param)


def _engine(request: pytest.FixtureRequest, kind: str) -> Iterator[Engine]:
    if kind == "slurm":
        yield from _slurm_engine(request)
    elif kind == "fake":
        yield from _fake_engine()
    else:
        yield from _docker_engine(request)


def _fake_engine() -> Iterator[Engine]:
    fake = FakeEngine(images=["tao-test/toolkit:1"])

    def leftovers(daemon_id: str, job_id: str) -> list[str]:
        return [run for run in fake.runs() if run == job_id]

    made = Engine("fake", "tao-test/toolkit:1", lambda daemon_id: FakeBackend(fake, daemon_id), lambda _: None, fake.outage,
                  lambda run, job_id: fake.cancel_outside(job_id), leftovers)  # fmt: skip

    def held(daemon_id: str) -> Backend:
        fake.start_gate.clear()
        return FakeBackend(fake, daemon_id, places=frozenset({"queue"}))

    made.queued = Queued(held, lambda run: fake.start_gate.set())
    made.node_failure = lambda job_id: _fake_node_failure(fake, job_id)
    yield made
    fake.start_gate.set()
    made.close()


@contextmanager
def _fake_node_failure(fake: FakeEngine, job_id: str) -> Iterator[None]:
    fake.fail_node(job_id)
    try:
        yield
    finally:
        fake.node_back()


def _docker_engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    image = request.getfixturevalue("toolkit_image")
    docker_client = request.getfixturevalue("docker_client")
    from tao_server.backends.docker.docker_backend import LABEL_DAEMON, DockerBackend

    def clean(daemon_id: str) -> None:
        for container in docker_client.containers.list(all=True, filters={"label": f"{LABEL_DAEMON}={daemon_id}"}):
            container.remove(force=True)

    # The backend reaches the engine through a relay the test can cut: an outage on demand.
    proxy = EngineProxy(Path(tempfile.mkdtemp(prefix="tao-engine-")) / "docker.sock")
    made = Engine(
        "docker",
        image,
        lambda daemon_id: DockerBackend(daemon_id, proxy.address, gpu_mode="env"),
        clean,
        proxy.outage,
        lambda run, job_id: docker_client.containers.get(run.run_id).remove(force=True),  # `docker rm -f` by someone else
        lambda daemon_id, job_id: _containers(docker_client, daemon_id, job_id),
    )
    yield made
    made.close()
    proxy.close()


def _containers(docker_client: Any, daemon_id: str, job_id: str) -> list[str]:
    from tao_server.backends.container import LABEL_DAEMON, LABEL_JOB

    labels = [f"{LABEL_DAEMON}={daemon_id}", f"{LABEL_JOB}={job_id}"]
    return [container.id for container in docker_client.containers.list(all=True, filters={"label": labels})]


def _slurm_engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """Batch jobs on the session's real Slurm cluster, each running its container with docker on the node."""
    image = request.getfixturevalue("toolkit_image")
    cluster = request.getfixturevalue("slurm_cluster")
    docker_client = request.getfixturevalue("docker_client")
    from tao_server.backends.slurm.slurm_backend import SlurmBackend, SlurmConfig

    shared = Path(tempfile.mkdtemp(prefix="tao-shared-"))
    shared.chmod(0o755)
    config = SlurmConfig(shared_dir=shared, partition=cluster.partition, env=cluster.env(), gpu_mode="env", stop_timeout=GRACE)
    made = Engine(
        "slurm",
        image,
        lambda daemon_id: SlurmBackend(daemon_id, config),
        lambda _: None,
        cluster.controller_outage,
        lambda run, job_id: cluster.command("scancel", run.run_id),  # by someone else: not the daemon's `scancel --batch --signal=TERM`
        lambda daemon_id, job_id: _containers(docker_client, daemon_id, job_id),
    )
    held = dataclasses.replace(config, sbatch_args=("--hold",))
    made.queued = Queued(lambda daemon_id: SlurmBackend(daemon_id, held), lambda run: cluster.command("scontrol", "release", run.run_id))
    made.node_failure = lambda job_id: cluster.node_failure()
    yield made
    made.close()
    cluster.cancel_all_jobs()
    shutil.rmtree(shared, ignore_errors=True)


def _spec(engine: Engine, *command: str, job_id: str | None = None, **extra: Any) -> LaunchSpec:
    return LaunchSpec(job_id=job_id or uuid.uuid4().hex[:10], image=engine.image, command=list(command), **extra)


def _started(backend: Backend, spec: LaunchSpec) -> Run:
    run = backend.prepare(spec)
    run.start()
    return run


def _all_output(run: Run, offset: int = 0) -> bytes:
    return b"".join(run.output(offset))


def _read_until(run: Run, wanted: bytes) -> tuple[bytes, Iterator[bytes]]:
    """Output up to and including the chunk that holds `wanted`, and the rest of the stream to read on."""
    chunks = iter(run.output(0))
    seen = b""
    for chunk in chunks:
        seen += chunk
        if wanted in seen:
            return seen, chunks
    raise AssertionError(f"the run ended without printing {wanted!r}: {seen!r}")


# -- argv and exit codes ------------------------------------------------------------------------------


def test_argv_reaches_the_program_as_a_list_byte_for_byte(engine: Engine) -> None:
    run = _started(engine.backend(), _spec(engine, "detectnet_v2", "argv", *HOSTILE_ARGS))
    output = _all_output(run)
    assert run.wait().exit_code == 0
    assert output == b"".join(arg.encode() + b"\0" for arg in HOSTILE_ARGS)


@pytest.mark.parametrize("code", [0, 1, 3, 42, 255])
def test_the_exit_code_is_the_programs_own(engine: Engine, code: int) -> None:
    run = _started(engine.backend(), _spec(engine, "detectnet_v2", "exit", str(code)))
    assert _all_output(run) == f"exiting with {code}\n".encode()
    end = run.wait()
    assert (end.exit_code, end.failure) == (code, None)


def test_a_missing_entrypoint_is_127_and_says_so(engine: Engine) -> None:
    run = _started(engine.backend(), _spec(engine, "missing"))
    _all_output(run)
    end = run.wait()
    assert end.exit_code == 127
    assert end.failure is not None and "'missing' does not exist in the image" in end.failure


def test_the_failed_entrypoint_is_named_also_when_nobody_read_the_output(engine: Engine) -> None:
    end = _started(engine.backend(), _spec(engine, "missing")).wait()
    assert end.exit_code == 127
    assert end.failure is not None and "'missing' does not exist in the image" in end.failure


def test_the_failed_entrypoint_is_named_after_partial_and_repeated_reads(engine: Engine) -> None:
    run = _started(engine.backend(), _spec(engine, "not_executable"))
    whole = _all_output(run)
    assert _all_output(run, len(whole) // 2) == whole[len(whole) // 2 :]
    assert _all_output(run) == whole
    end = run.wait()
    assert end.exit_code == 126
    assert end.failure is not None and "'not_executable' cannot be executed" in end.failure


def test_an_entrypoint_that_cannot_run_is_126_and_says_so(engine: Engine) -> None:
    run = _started(engine.backend(), _spec(engine, "not_executable"))
    _all_output(run)
    end = run.wait()
    assert end.exit_code == 126
    assert end.failure is not None and "'not_executable' cannot be executed" in end.failure


def test_a_missing_image_is_image_missing(engine: Engine) -> None:
    # On a registry that refuses at once (nothing leaves the machine).
    spec = LaunchSpec(job_id=uuid.uuid4().hex[:10], image="127.0.0.1:1/tao-test/absent:never", command=["detectnet_v2", "exit", "0"])
    backend = engine.backend()
    if backend.images is None:  # the nodes fetch images themselves: the run fails as `docker run` does, 125
        run = _started(backend, spec)
        output = _all_output(run)
        assert run.wait().exit_code == 125
        assert b"Unable to find image '127.0.0.1:1/tao-test/absent:never' locally" in output
        return
    with pytest.raises(ImageMissing):
        backend.prepare(spec)


def test_the_environment_and_user_reach_the_program(engine: Engine) -> None:
    envs = {"TAO_ONE": "1", "TAO_SPACES": "a b  c", "TAO_EMPTY": ""}
    env_run = _started(engine.backend(), _spec(engine, "detectnet_v2", "env", *envs, envs=envs))
    assert _all_output(env_run) == b"TAO_ONE=1\nTAO_SPACES=a b  c\nTAO_EMPTY=\n"
    id_run = _started(engine.backend(), _spec(engine, "detectnet_v2", "id", options={"user": "1234:5678"}))
    assert _all_output(id_run) == b"uid=1234 gid=5678\n"


# -- output ---------------------------------------------------------------------------------------------


def test_output_is_complete_and_in_order(engine: Engine) -> None:
    count = 50_000
    run = _started(engine.backend(), _spec(engine, "detectnet_v2", "lines", str(count)))
    output = _all_output(run)
    assert run.wait().exit_code == 0
    expected = "".join(f"{n} the quick brown fox jumps over the lazy dog\n" for n in range(1, count + 1)).encode()
    assert len(output) == len(expected)
    assert output == expected


def test_stdout_and_stderr_arrive_merged_in_one_output(engine: Engine) -> None:
    # Each stream keeps its own order; across the two none is promised: Docker reads the
    # container's stdout and stderr pipes apart, as `docker run` does.
    run = _started(engine.backend(), _spec(engine, "detectnet_v2", "stderr"))
    assert sorted(_all_output(run).splitlines(keepends=True)) == [b"to stderr\n", b"to stdout\n"]


def test_output_can_be_read_again_from_any_offset(engine: Engine) -> None:
    run = _started(engine.backend(), _spec(engine, "detectnet_v2", "lines", "100"))
    whole = _all_output(run)
    assert run.wait().exit_code == 0
    for offset in (0, 1, 45, len(whole) - 1, len(whole)):
        assert _all_output(run, offset) == whole[offset:]


# -- cancel -----------------------------------------------------------------------------------------------


def test_cancel_sends_sigterm_and_the_program_answers_it(engine: Engine) -> None:
    run = _started(engine.backend(), _spec(engine, "detectnet_v2", "sleep", "600"))
    seen, rest = _read_until(run, b"sleeping 600\n")
    run.cancel(GRACE)
    seen += b"".join(rest)
    end = run.wait()
    assert end.exit_code == 143
    assert seen == b"sleeping 600\ngot SIGTERM\n"


def test_cancel_kills_a_program_that_ignores_sigterm_after_the_grace_period(engine: Engine) -> None:
    run = _started(engine.backend(), _spec(engine, "detectnet_v2", "stubborn", "600"))
    _read_until(run, b"ignoring SIGTERM\n")
    run.cancel(SHORT_GRACE)
    assert run.wait().exit_code == 137


def test_release_kills_a_run_that_still_runs(engine: Engine) -> None:
    backend = engine.backend()
    run = _started(backend, _spec(engine, "detectnet_v2", "stubborn", "600", job_id="job-released"))
    _read_until(run, b"ignoring SIGTERM\n")
    run.release()
    run.release()  # idempotent
    assert [found.job_id for found in backend.adopt()] == []


def test_a_run_prepared_but_never_started_stays_unstarted_until_released(engine: Engine) -> None:
    backend = engine.backend()
    run = backend.prepare(_spec(engine, "detectnet_v2", "exit", "0", job_id="job-prepared"))
    run.cancel(GRACE)  # nothing to stop
    [found] = backend.adopt()
    assert (found.job_id, found.state, found.exit_code) == ("job-prepared", "prepared", None)
    run.release()
    run.release()  # idempotent
    assert backend.adopt() == []


# -- adoption after a daemon restart -------------------------------------------------------------------


def test_a_restarted_daemon_adopts_its_runs_running_and_ended(engine: Engine) -> None:
    before = engine.backend()
    sleeping = _started(before, _spec(engine, "detectnet_v2", "sleep", "600", job_id="job-sleeping"))
    _read_until(sleeping, b"sleeping 600\n")
    ended = _started(before, _spec(engine, "detectnet_v2", "exit", "4", job_id="job-ended"))
    _all_output(ended)
    assert ended.wait().exit_code == 4
    created = before.prepare(_spec(engine, "detectnet_v2", "exit", "0", job_id="job-created"))
    before.close()  # the daemon goes away; its runs do not

    after = engine.backend()
    found = {each.job_id: each for each in after.adopt()}
    assert set(found) == {"job-sleeping", "job-ended", "job-created"}
    assert (found["job-sleeping"].state, found["job-sleeping"].exit_code) == ("active", None)
    assert (found["job-ended"].state, found["job-ended"].exit_code) == ("exited", 4)
    assert (found["job-created"].state, found["job-created"].exit_code) == ("prepared", None)
    assert found["job-created"].run.run_id == created.run_id

    # The adopted run's output goes on from where the old daemon's copy stopped, and ends with it.
    adopted = found["job-sleeping"].run
    rest: list[bytes] = []
    reader = threading.Thread(target=lambda: rest.extend(adopted.output(len(b"sleeping 600\n"))))
    reader.start()
    adopted.cancel(GRACE)
    reader.join(timeout=60)
    assert not reader.is_alive()
    assert b"".join(rest) == b"got SIGTERM\n"
    assert adopted.wait().exit_code == 143
    assert found["job-ended"].run.wait().exit_code == 4

    for each in found.values():
        each.run.release()
    assert after.adopt() == []


def test_a_daemon_adopts_only_its_own_runs(engine: Engine) -> None:
    mine = engine.backend()
    run = _started(mine, _spec(engine, "detectnet_v2", "exit", "0", job_id="job-mine"))
    _all_output(run)
    run.wait()
    other = engine.backend(daemon_id=f"{engine.daemon_id}-other")
    assert other.adopt() == []
    assert [found.job_id for found in mine.adopt()] == ["job-mine"]


# -- an outage ------------------------------------------------------------------------------------------


def test_an_outage_breaks_what_was_in_flight_and_the_run_found_again_goes_on_with_nothing_lost(engine: Engine) -> None:
    backend = engine.backend()
    run = _started(backend, _spec(engine, "detectnet_v2", "ticks", "100000", "0.02", job_id="job-outage"))
    seen, chunks = _read_until(run, b"tick 2\n")
    with engine.outage():
        seen += _until_unavailable(chunks)  # a stream being read breaks: it never just ends early
        with pytest.raises(BackendUnavailable):
            backend.ping()
        with pytest.raises(BackendUnavailable):
            backend.find("job-outage")
    backend.ping()
    found = backend.find("job-outage")
    assert found is not None and (found.job_id, found.state) == ("job-outage", "active")  # the run went on
    rest: list[bytes] = []
    reader = threading.Thread(target=lambda: rest.extend(found.run.output(len(seen))))
    reader.start()
    found.run.cancel(GRACE)
    reader.join(timeout=60)
    assert not reader.is_alive()
    lines = (seen + b"".join(rest)).decode().splitlines()
    assert lines[-1] == "got SIGTERM"
    assert lines[:-1] == [f"tick {n}" for n in range(1, len(lines))]  # none lost, none twice
    assert found.run.wait().exit_code == 143


def _until_unavailable(chunks: Iterator[bytes]) -> bytes:
    """What the stream still gives until it raises BackendUnavailable (it must, not just end)."""
    seen = b""
    try:
        for chunk in chunks:
            seen += chunk
    except BackendUnavailable:
        return seen
    raise AssertionError(f"the output ended during the outage instead of raising BackendUnavailable (after {seen[-40:]!r})")


# -- ends that are not the task's own -----------------------------------------------------------------


def test_a_run_ended_outside_the_launcher_never_reads_as_a_success(engine: Engine) -> None:
    backend = engine.backend()
    run = _started(backend, _spec(engine, "detectnet_v2", "sleep", "600", job_id="job-outside"))
    _, rest = _read_until(run, b"sleeping 600\n")
    engine.end_outside(run, "job-outside")  # scancel, docker rm -f: someone else's doing
    b"".join(rest)  # the output ends
    end = run.wait()
    assert end.exit_code != 0
    if end.interrupted is None:  # Docker saw the kill before the removal: the kill's code, which is no success either
        assert engine.kind == "docker" and end.exit_code == 137, end
    else:
        assert end.interrupted.status == "cancelled" and "outside the launcher" in end.interrupted.reason, end
    run.release()
    assert backend.adopt() == []
    _eventually(lambda: engine.leftovers("job-outside") == [], "nothing of the run is left")


def test_a_run_waits_in_its_backends_queue_and_says_why_until_it_runs(queueing: Engine) -> None:
    assert queueing.queued is not None
    backend = queueing.backend(make=queueing.queued.make)
    run = _started(backend, _spec(queueing, "detectnet_v2", "exit", "3"))
    ran: list[bool] = []
    waiting = threading.Thread(target=lambda: ran.append(run.wait_running()))
    waiting.start()
    _eventually(lambda: run.condition() is not None, "the backend says why the run waits")
    assert waiting.is_alive() and ran == []  # held in the queue: it cannot have run
    queueing.queued.let_go(run)
    waiting.join(timeout=120)
    assert ran == [True]
    assert _all_output(run) == b"exiting with 3\n"
    assert run.wait().exit_code == 3 and run.condition() is None


def test_a_run_cancelled_while_it_waits_in_the_queue_leaves_it_and_never_runs(queueing: Engine) -> None:
    assert queueing.queued is not None
    backend = queueing.backend(make=queueing.queued.make)
    run = _started(backend, _spec(queueing, "detectnet_v2", "exit", "0", job_id="job-withdrawn"))
    _eventually(lambda: run.condition() is not None, "the run waits in the queue")
    run.cancel(GRACE)  # no script to signal yet: it only leaves the queue, at once
    assert run.wait_running() is False
    assert run.wait() == RunExit(None)  # the launcher's own cancel: nothing to explain, no code of the task's
    assert _all_output(run) == b""
    run.release()
    assert backend.adopt() == []


def test_a_run_cancelled_outside_while_it_waits_in_the_queue_ends_cancelled_having_never_run(queueing: Engine) -> None:
    assert queueing.queued is not None
    backend = queueing.backend(make=queueing.queued.make)
    run = _started(backend, _spec(queueing, "detectnet_v2", "exit", "0", job_id="job-queued"))
    _eventually(lambda: run.condition() is not None, "the run waits in the queue")
    queueing.end_outside(run, "job-queued")
    assert run.wait_running() is False
    assert _all_output(run) == b""
    end = run.wait()
    assert end.exit_code is None  # it never ran: no code of the task's, and never the 0 Slurm reports for it
    assert end.interrupted is not None and end.interrupted.status == "cancelled", end
    assert "outside the launcher" in end.interrupted.reason
    run.release()
    assert backend.adopt() == []


def test_a_failed_node_ends_the_run_as_an_error_its_output_goes_on_and_nothing_is_left_once_it_is_back(node_failing: Engine) -> None:
    assert node_failing.node_failure is not None
    backend = node_failing.backend()
    run = _started(backend, _spec(node_failing, "detectnet_v2", "ticks", "100000", "0.05", job_id="job-node"))
    seen, chunks = _read_until(run, b"tick 2\n")
    with node_failing.node_failure("job-node"):
        seen += b"".join(chunks)  # the output ends with the run
        end = run.wait()
        assert end.exit_code == 125 and end.cut, end
        assert end.interrupted is not None and end.interrupted.status == "error" and "node failed" in end.interrupted.reason
        # Cut off, the task runs on, and what it prints still comes, read after the end.
        late = iter(run.output(len(seen)))
        seen += next(late)
    seen += b"".join(late)  # until the node is back and the task is gone
    lines = seen.decode().splitlines()
    ticks = lines[:-1] if lines[-1] == "got SIGTERM" else lines
    assert ticks == [f"tick {n}" for n in range(1, len(ticks) + 1)]  # none lost, none twice
    run.release()
    _eventually(lambda: backend.adopt() == [], "the run is released once its node is back")
    _eventually(lambda: node_failing.leftovers("job-node") == [], "nothing of the run is left on the node")


def _eventually(check: Callable[[], bool], what: str, timeout: float = 120) -> None:
    """Wait for `check` (a safety timeout only: each case waits for an event, never for a pace)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.05)
