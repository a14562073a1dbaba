"""What a run reports: breaks and expected items (``Report``), their renderings (text,
JSON, CSV, HTML) and the nightly run that writes them.

Internal to ``reconcile``: other packages use what ``reconcile/__init__`` exports."""
