"""Development OpenID Provider simulating BankID / Freja eID Plus test persons.

Never for production: it refuses to start unless ``environment=development``. Build the app
with :func:`eid.app.create_app` and :class:`eid.settings.EidSettings`; the test persons are
in :mod:`eid.persons`. See docs/eid.md.
"""
