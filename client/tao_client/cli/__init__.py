"""The `tao` command line: a presentation layer over the SDK (`tao_client.Client`), which alone speaks HTTP.

    main.py           parsing the launcher's options, dispatch, exit codes as `docker run` gives them
    commands.py       the one table of verbs: name, summary, module, parser, handler
    task.py           a task run: submit, then follow it (`tao detectnet_v2 train ...`)
    follow.py         a job's output copied as it runs, reconnecting; its end made an exit code
    terminal.py       an interactive session on your terminal: raw mode, detach keys, signals (over Client.terminal)
    jobs.py           list, stop, logs
    show.py           one job in full
    metrics.py        a job's training series, a row per epoch
    events.py         a job's events, followed
    attach.py         back into a job: its terminal, or its output
    port_forward.py   a job's ports reached from here (over Client.forward_port)
    images.py         pull, images, login, logout
    notify.py         default notification URLs and the signing secret
    info.py           the daemon, its manifest, the engine and GPUs
    daemon.py         `tao daemon start|stop|status|logs`: the daemon `tao` starts for you
    ui.py             the dashboard, signed in with a one-time link
    pull_progress.py  an image pull's progress on stderr
    help.py           `tao --help`, with the daemon's tasks
    notes.py          what is said once per user
    _common.py        output helpers and the client `tao` makes
    _parser.py        argparse, with `docker run`'s exit codes

Verb modules are imported only when their verb runs: `tao --help` pays for none of them.
"""
