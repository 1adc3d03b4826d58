"""``python -m gazelab`` runs the command line."""

from gazelab.cli import main

main()
