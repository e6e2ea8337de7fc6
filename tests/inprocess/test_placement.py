"""GPUs, nodes and time limits: the daemon's own line on one host, or what a cluster backend places itself."""

from __future__ import annotations

from pathlib import Path

CLUSTER = frozenset({"gpus", "nodes", "time"})


def test_a_single_host_refuses_nodes_naming_why_and_keeps_time_limits_itself(daemon) -> None:
    refused = daemon.alice.submit("detectnet_v2", "argv", expect=422, nodes=2)["error"]
    assert refused["field"] == "nodes"
    assert "tao-server --backend slurm" in refused["message"]
    job = daemon.alice.submit("detectnet_v2", "argv", "x", time="10")
    assert daemon.alice.wait_for(job["id"], "succeeded")["time_limit"] == 600  # tests/inprocess/test_gpu_line.py stops one at it


def test_one_node_is_what_every_backend_gives(daemon) -> None:
    job = daemon.alice.submit("detectnet_v2", "argv", "x", nodes=1)
    assert daemon.alice.wait_for(job["id"], "succeeded")["nodes"] == 1


def test_a_cluster_backend_gets_the_gpu_count_nodes_and_limit_without_the_daemon_s_gpu_line(start_daemon) -> None:
    daemon = start_daemon(places=CLUSTER)  # the daemon's own host has no GPUs (gpus="none")
    job = daemon.alice.submit("detectnet_v2", "argv", "x", gpus="2", nodes=3, time="1-12")
    daemon.alice.wait_for(job["id"], "succeeded")
    [spec] = daemon.backend.specs
    assert (spec.gpu_count, spec.devices, spec.nodes, spec.time_limit) == (2, [], 3, 129600)
    shown = daemon.alice.job(job["id"])
    assert (shown["gpu_request"], shown["nodes"], shown["time_limit"]) == ("count:2", 3, 129600)


def test_a_cluster_backend_takes_counts_not_one_host_s_indices(start_daemon) -> None:
    daemon = start_daemon(places=CLUSTER)
    assert daemon.alice.submit("detectnet_v2", "argv", expect=422, gpu_indices=["0"])["error"]["field"] == "gpu_indices"
    assert "ask for a count" in daemon.alice.submit("detectnet_v2", "argv", expect=422, gpus="all")["error"]["message"]
    job = daemon.alice.submit("detectnet_v2", "argv", "x")  # "auto": no GPUs, on a cluster the daemon cannot see
    daemon.alice.wait_for(job["id"], "succeeded")
    assert daemon.backend.specs[-1].gpu_count == 0


def test_a_bad_time_limit_is_refused_naming_the_forms(start_daemon) -> None:
    daemon = start_daemon(places=CLUSTER)
    refused = daemon.alice.submit("detectnet_v2", "argv", expect=422, time="2h")["error"]
    assert refused["field"] == "time"
    assert "D-HH:MM:SS" in refused["message"]


def test_the_policy_caps_nodes_and_time_per_user(start_daemon, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[default]\nmax_nodes = 1\nmax_time = "1:00:00"\n\n[user.alice]\nmax_nodes = 4\n')
    daemon = start_daemon(places=CLUSTER, policy=policy)
    refused = daemon.bob.submit("detectnet_v2", "argv", expect=403, nodes=2, time="10")["error"]
    assert refused["field"] == "nodes"
    refused = daemon.alice.submit("detectnet_v2", "argv", expect=403, nodes=4)["error"]
    assert refused["field"] == "time"
    assert "no time limit" in refused["message"] and "--time 1:00:00 or less" in refused["message"]
    assert daemon.alice.submit("detectnet_v2", "argv", expect=403, nodes=4, time="2:00:00")["error"]["field"] == "time"
    job = daemon.alice.submit("detectnet_v2", "argv", "x", nodes=4, time="30")
    daemon.alice.wait_for(job["id"], "succeeded")
