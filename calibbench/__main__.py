"""`python -m calibbench` runs the CLI."""

from calibbench.cli import main

raise SystemExit(main())
