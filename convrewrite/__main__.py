"""`python -m convrewrite` runs the CLI."""

from .cli import main

if __name__ == "__main__":
    main(prog_name="convrewrite")
