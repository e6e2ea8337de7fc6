"""The `tao` command line: a presentation layer over `tao_client.Client`.

main (parsing, exit codes), commands (the one table of verbs), a module per verb group (jobs:
list, stop, logs; show; info; images; ui; sessions: attach, port-forward), task (a task run),
attach, terminal, progress, help, notes (what is said once per user), _common, _parser.
"""
