"""``python -m app`` runs the same command line as the ``interviewer`` script."""

from app.cli import main

raise SystemExit(main())
