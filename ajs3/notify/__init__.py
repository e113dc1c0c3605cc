"""Notifications: events of a logical host, kept in the journal's outbox in the same
commit as the change that causes them, and delivered to the routes of its settings
(``notify:`` in ``ajs3.yaml``) by a sender thread that never blocks scheduling.

- :mod:`ajs3.notify.events`: what an event carries (its kinds: ajs3.model.EventKind);
- :mod:`ajs3.notify_routes`: the routes and their filters (read with the settings);
- :mod:`ajs3.notify.outbox`: writing events and reading what is still to deliver;
- :mod:`ajs3.notify.deliver`: the three ways of delivering (command, syslog, mail);
- :mod:`ajs3.notify.sender`: the thread that delivers, retries with back-off, reports.
"""
