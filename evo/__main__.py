"""``python -m evo`` runs the CLI."""

from evo.cli.app import main

main()
