"""Builds the notification parts once, for create_app: the service the routes call, the runner's observer, the sender."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from urllib.parse import quote

from tao_server.access.paths import is_loopback
from tao_server.access.policy import Policy
from tao_server.access.tokens import TokenStore
from tao_server.jobs.events import EventLog
from tao_server.jobs.store import JobStore
from tao_server.models import Job
from tao_server.notify.addresses import AddressCheck, CachedResolver, OwnAddresses
from tao_server.notify.notify_service import NotifyService
from tao_server.notify.outbox import Outbox
from tao_server.notify.outbox_observer import JobNotifier
from tao_server.notify.preferences import Preferences
from tao_server.notify.sender import Backoff, Sender
from tao_server.notify.transport import Poster
from tao_server.settings import Settings


@dataclass(frozen=True)
class Notifications:
    service: NotifyService
    observer: JobNotifier
    sender: Sender
    dashboard: str | None  # where the dashboard is reached over TCP, for links in messages; None: nowhere

    def pipeline_link(self, pipeline_id: str) -> str | None:
        return f"{self.dashboard}/ui/pipelines/{quote(pipeline_id)}" if self.dashboard else None


def build(settings: Settings, policy: Policy, store: JobStore, events: EventLog, tokens: TokenStore, addresses: list[str]) -> Notifications:
    """`addresses`: the daemon's listeners (unix://, http://, https://), for its own addresses and the dashboard's links."""
    own = OwnAddresses(_hosts(addresses))
    preferences = Preferences(store)
    outbox = Outbox(store)
    service = NotifyService(preferences, policy, AddressCheck(own, CachedResolver()), tokens, outbox)
    poster = Poster(AddressCheck(own), service.allowed_for_uid, settings.notify_timeout)
    backoff = Backoff(settings.notify_retry_first, settings.notify_retry_longest, settings.notify_retry_for)
    sender = Sender(outbox, preferences, poster, events, backoff, settings.notify_senders)
    base = settings.public_url.rstrip("/") if settings.public_url else dashboard_base(addresses)
    observer = JobNotifier(outbox, sender, lambda job_id: f"{base}/ui/jobs/{quote(job_id)}" if base else None, _owner_uid)
    return Notifications(service, observer, sender, base)


def dashboard_base(addresses: list[str]) -> str | None:
    """Where the dashboard is reached over TCP: a listener off loopback first (others can follow the link), else on it."""
    tcp = [address for address in addresses if address.startswith(("http://", "https://"))]
    tcp.sort(key=lambda address: is_loopback(_host(address)))
    if not tcp:
        return None
    scheme, _, rest = tcp[0].partition("://")
    host, _, port = rest.rpartition(":")
    if host.strip("[]") in ("0.0.0.0", "::"):  # every address: the host's name is the one to link to
        host = socket.getfqdn()
    return f"{scheme}://{host}:{port}"


def _hosts(addresses: list[str]) -> list[str]:
    return [_host(address) for address in addresses if address.startswith(("http://", "https://"))]


def _host(address: str) -> str:
    return address.partition("://")[2].rpartition(":")[0].strip("[]")


def _owner_uid(job: Job) -> int:
    """Whose secret signs a job's notifications: its owner's; the daemon's own user's for a job of the daemon's."""
    return job.owner_uid if job.owner_uid is not None else os.getuid()
