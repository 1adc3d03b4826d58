"""CLI command groups; each module registers its commands on :data:`gazelab.cli.app`."""
