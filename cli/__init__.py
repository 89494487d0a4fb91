"""``certus-assurance``: the command-line client. It talks to the API over HTTP and WebSockets only
(requests + websocket-client) and never imports the service's own packages."""
