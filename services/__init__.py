"""The rules: accounts, catalogue, streaming grants, the job queue and its job types, mail, admin.

Services raise domain errors (core.errors) and know nothing of HTTP; `services.container` builds them.
"""
