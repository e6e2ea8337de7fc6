"""The notification service: each user's default URLs and secret (what the routes call), and the URLs a
new job notifies, checked at its submission.

A URL is checked whole before anything is kept: http or https, and every address its host
resolves to public, or opened by the policy's `notify_to` for the caller (addresses.py). A
refused address is a DestinationRefused (403, exit 125 in `tao`), naming the address and the rule.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from tao_server.access.caller import Caller
from tao_server.access.policy import Policy, Rules
from tao_server.access.tokens import TokenStore
from tao_server.errors import DestinationRefused, InvalidRequest
from tao_server.notify.addresses import AddressCheck, Destination, Refused, Unresolvable
from tao_server.notify.notify_models import NotifySecret, NotifyUrlPublic, NotifyUrls
from tao_server.notify.outbox import Outbox
from tao_server.notify.preferences import Preferences
from tao_server.notify.urls import masked, parse

MAX_URLS = 16  # per job, and a user's defaults


class NotifyService:
    def __init__(self, preferences: Preferences, policy: Policy, check: AddressCheck, tokens: TokenStore, outbox: Outbox) -> None:
        self._preferences = preferences
        self._outbox = outbox
        self._policy = policy
        self._check = check
        self._tokens = tokens

    # -- a user's defaults and secret ------------------------------------------------------------

    def urls(self, caller: Caller) -> NotifyUrls:
        return NotifyUrls(urls=[NotifyUrlPublic(url=masked(url)) for url in self._preferences.urls(uid_of(caller))])

    def add(self, caller: Caller, url: str) -> NotifyUrlPublic:
        """Add a default URL for the caller's new jobs, checked as a job's; adding one twice is harmless."""
        self.check(caller, url, "url")
        uid = uid_of(caller)
        have = self._preferences.urls(uid)
        if url not in have and len(have) >= MAX_URLS:
            raise InvalidRequest(f"url: you have {len(have)} default URLs, the most one may have; remove one first", field="url")
        self._preferences.add_url(uid, url)
        return NotifyUrlPublic(url=masked(url))

    def remove(self, caller: Caller, url: str) -> NotifyUrlPublic:
        """Remove a default URL, given whole or as `tao notify list` shows it (masked)."""
        uid = uid_of(caller)
        have = self._preferences.urls(uid)
        matching = [kept for kept in have if kept == url] or [kept for kept in have if masked(kept) == url]
        if len(matching) > 1:
            raise InvalidRequest(f"url: {url} stands for {len(matching)} of your URLs; give the one to remove whole", field="url")
        if not matching or not self._preferences.remove_url(uid, matching[0]):
            listed = ", ".join(masked(kept) for kept in have) or "none"
            raise InvalidRequest(f"url: {masked(url)} is not one of your default URLs (yours: {listed})", field="url")
        return NotifyUrlPublic(url=masked(matching[0]))

    def secret(self, caller: Caller) -> NotifySecret:
        """The caller's signing secret, made on first use; never another user's."""
        return NotifySecret(secret=self._preferences.secret(uid_of(caller)))

    def pending(self, job_id: str) -> bool:
        """Whether a notification of the job is still to be delivered or tried again (the caller may see the job)."""
        return self._outbox.pending(job_id)

    # -- a job's URLs ------------------------------------------------------------------------------

    def for_job(self, caller: Caller, requested: Iterable[str], defaults: bool = True) -> list[str]:
        """The URLs a new job of `caller` notifies: those it asks for, then the caller's defaults; each checked."""
        urls = list(dict.fromkeys([*requested, *(self._preferences.urls(uid_of(caller)) if defaults else [])]))
        if len(urls) > MAX_URLS:
            raise InvalidRequest(f"notify: {len(urls)} URLs with your defaults; a job notifies at most {MAX_URLS}", field="notify")
        for index, url in enumerate(urls):
            self.check(caller, url, f"notify[{index}]")
        return urls

    def check(self, caller: Caller, url: str, field: str) -> None:
        """Refuse a URL that is not one, or whose addresses the caller's notifications may not reach."""
        parsed = parse(url, field)
        allowed, rules = self.allowed(caller)
        try:
            self._check.addresses(parsed.host, parsed.port, allowed, rules)
        except Refused as exc:
            raise DestinationRefused(f"{field}: {masked(url)}: {exc.message}", field=field) from None
        except Unresolvable as exc:
            raise InvalidRequest(f"{field}: {masked(url)}: {exc}; give a host this daemon can resolve", field=field) from None

    def allowed(self, caller: Caller) -> tuple[tuple[Destination, ...], str]:
        """The caller's notify_to patterns, and where they come from (for messages)."""
        rules = self._policy.rules_for(caller)
        return rules.notify_to, _where(self._policy, rules)

    def allowed_for_uid(self, uid: int) -> tuple[tuple[Destination, ...], str]:
        """allowed() for a job's owner at delivery time: the policy as it is now, for the owner as the host
        (or, for a user without a local account, their token) names them."""
        return self.allowed(self._owner(uid))

    def _owner(self, uid: int) -> Caller:
        import pwd

        try:
            account = pwd.getpwuid(uid)
        except KeyError:
            return self._tokens.named(uid) or Caller(uid=uid, gid=None, admin=False)
        return Caller(uid=uid, gid=account.pw_gid, admin=False, groups=tuple(os.getgrouplist(account.pw_name, account.pw_gid)))


def uid_of(caller: Caller) -> int:
    """Whose defaults and secret a caller's are: the daemon's own user for the daemon itself."""
    return caller.uid if caller.uid is not None else os.getuid()


def _where(policy: Policy, rules: Rules) -> str:
    return f"{policy.name} {', '.join(rules.sources)}" if policy.path is not None else policy.name
