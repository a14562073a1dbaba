"""The break workflow (assign, resolve, approve, reopen: ``control.break`` entries and the
``wf_*`` working tables) and the trail of a record across the three domains (``trace``).

Internal to ``reconcile``: other packages use what ``reconcile/__init__`` exports."""
