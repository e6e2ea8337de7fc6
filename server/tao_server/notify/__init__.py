"""Notifications of a job's start and end: signed JSON POSTs to its owner's URLs, from an outbox.

    notify_models.py    the outbox, default-URL and secret tables, and the API's views of them
    urls.py             URLs checked when given, and masked wherever they are shown back
    addresses.py        the address classes refused, the daemon's own addresses, the policy's `notify_to` patterns
    preferences.py      each user's default URLs and signing secret
    notify_service.py   NotifyService: what the routes call, and each new job's URLs checked at submission
    outbox_observer.py  the runner's observer: a start or end puts deliveries in the outbox
    outbox.py           the deliveries, kept until delivered or given up
    payload.py          the JSON body and its chat line
    signing.py          the X-Tao-Signature-256 HMAC and the other headers
    transport.py        one try: a POST to the checked address
    sender.py           threads that try due deliveries, with backoff
    wiring.py           builds them for create_app

Modules here import `tao_server.access`, `tao_server.jobs` (the store, events, the observer
protocol), `errors`, `models` and `settings`; nothing here imports a backend.
"""
