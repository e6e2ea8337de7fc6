"""HTTP routes: thin handlers that parse, call a service, and shape the response."""
