"""What tests of the daemon, and of code built on it, need.

fake_backend.py (an in-memory backend for `create_app(settings, backend=...)` and the backend
contract suite), daemon.py (a real `tao-server` process and the `tao` CLI against it, shared by
the integration tests and the benchmarks), registry.py (a real registry on 127.0.0.1, and a relay
that holds a download until the test lets it go), engine_proxy.py (a relay to the Docker engine
that a test cuts: an engine outage on demand), relay.py (the byte copying both relays share),
slurm.py (a real single-node Slurm cluster with gres GPUs, for the Slurm backend), receiver.py
(a webhook receiver on loopback that records what it gets and answers as the test says).
Imported by tests only: never by the daemon.
"""
