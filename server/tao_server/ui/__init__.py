"""The dashboard: server-rendered pages under /ui/, their one script and stylesheet, and browser sessions.

Pages are rendered here from the same services the JSON API uses, with the same caller, so a
user sees exactly what the API lets them see. The script (static/dashboard.js) only fetches
fragments and the JSON API to keep pages live; there is no build step and nothing from a CDN.

May import: tao_server.api.deps and api.routing, access, jobs, images, models, errors. Nothing imports it but app.py.
"""
