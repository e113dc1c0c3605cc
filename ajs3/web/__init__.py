"""`ajs3 web`: the console, REST API and Prometheus metrics of one logical host
(docs/web.md, ADR 0024).

It is a separate process that talks to the daemon only through the control socket
(:class:`ajs3.service.client.Client`), so its failure never stops scheduling, and
every change it asks for goes through the daemon's permission check and audit. Its
modules: :mod:`~ajs3.web.auth` (who is asking), :mod:`~ajs3.web.backend` (the control
requests it sends), :mod:`~ajs3.web.api` (the routes), :mod:`~ajs3.web.metrics`
(``/metrics``), :mod:`~ajs3.web.events` (server-sent events),
:mod:`~ajs3.web.server` (HTTP, TLS) and ``openapi.json`` (the API's contract).
"""
