"""Notifications: events of a logical host, kept in the journal's outbox in the same
commit as the change that causes them, and delivered to the routes of its settings
(``notify:`` in ``ajs3.yaml``) by a sender thread that never blocks scheduling.

- :mod:`ajs3.notify.events`: the kinds of event and what one carries;
- :mod:`ajs3.notify.routes`: the routes of the settings and their filters;
- :mod:`ajs3.notify.outbox`: writing events and reading what is still to deliver;
- :mod:`ajs3.notify.deliver`: the three ways of delivering (command, syslog, mail);
- :mod:`ajs3.notify.sender`: the thread that delivers, retries with back-off, reports.
"""
