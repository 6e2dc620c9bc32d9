"""The root of contrail-ha's own exceptions.

Every error the package raises on purpose (a topology that does not validate, a cluster that
does not come up, a namespace that cannot be plumbed, a failed CLI command, a bad analytics
query...) derives from :class:`ContrailHaError`, so that:

* a caller embedding contrail-ha (a test harness, a script, the UI) can tell "contrail-ha said
  no, with a reason" from a bug or a library failure with one ``except ContrailHaError``,
  without knowing every module's exception;
* a new error class cannot silently escape such a handler by deriving from ``Exception`` alone.

Classes keep their other built-in base (``ValueError``, ``RuntimeError``, ``LookupError``)
where code catches them by that base. The config API's exceptions map to HTTP statuses of the
original contrail-api and live in ``contrail_ha.services.config_api``.
"""

from __future__ import annotations


class ContrailHaError(Exception):
    """Base class of every exception contrail-ha defines."""
