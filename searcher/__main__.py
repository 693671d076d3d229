"""`python -m searcher` is the `searcher` command."""

from searcher.cli import main

main()
