"""What tests of the daemon, and of code built on it, need. Imported by tests and benchmarks only: never by the daemon.

fake_backend.py   FakeBackend: an in-memory backend for `create_app(settings, backend=...)` and the contract suite
fake_engine.py    FakeEngine: the runs that outlive a fake daemon, their programs, and the knobs tests turn
daemon.py         a real `tao-server` process and the `tao` CLI against it (integration tests and benchmarks)
registry.py       a real registry on 127.0.0.1, and relays that hold or pace a download
engine_proxy.py   a relay to the Docker engine that a test cuts: an engine outage on demand
relay.py          the byte copying the relays share
slurm.py          a real single-node Slurm cluster with gres GPUs, for the Slurm backend
receiver.py       a webhook receiver on loopback that records what it gets and answers as the test says
"""
