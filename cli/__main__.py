"""``python -m cli`` runs ``bfa``."""

from cli._app import main

main()
