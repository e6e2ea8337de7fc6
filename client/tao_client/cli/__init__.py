"""The `tao` command line: a presentation layer over `tao_client.Client`."""
