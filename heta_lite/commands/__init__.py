"""CLI subcommands: one module each, with add_parser(subparsers)."""
