"""The dashboard: server-rendered pages under /ui/, their one script and stylesheet, and browser sessions.

    routes.py     the pages (empty shells), the fragments and actions that fill them, sign-in
    views.py      what the pages show of a job, a GPU or an image: plain values a template prints (and escapes)
    pipeline_graph.py  a pipeline's steps laid out in layers, for the SVG its page draws on the server
    guard.py      the Content-Security-Policy, and refusing a browser's state change from another site
    sign_in.py    `tao ui`'s one-time links and the short-lived sessions they open
    templates/    Jinja2 pages and fragments, autoescaped
    static/       dashboard.js, dashboard.css, uPlot (vendored) for the charts

Pages are rendered here from the same services the JSON API uses, with the same caller, so a
user sees exactly what the API lets them see. The script (static/dashboard.js) only fetches
fragments and the JSON API to keep pages live; there is no build step and nothing from a CDN.

May import: tao_server.api.deps and api.routing, access, jobs, images, workflows, models, errors, tao_common.
Nothing imports it but app.py.
"""
