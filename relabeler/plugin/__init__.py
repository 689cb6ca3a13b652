"""Label Studio: labeling config, task building, push, pull, ML backend, local server.

Modules: ``labeling`` (the config), ``tasks`` (pure task building and validation), ``client``
(the only module that calls Label Studio), ``push``, ``pull`` (with ``reconcile``: the server
and the webhook event log; ``votes``: answers to corrections), ``events`` (webhook event log),
``backend`` (the ML backend), ``server`` (a local Label Studio), ``connect`` (URL and token from
config). Nothing here imports Ray, torch or the jobs.
"""
