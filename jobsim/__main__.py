"""``python -m jobsim`` runs the command line."""

from jobsim.cli import main

raise SystemExit(main())
