"""The `propetl` console script: the method's commands plus the product's."""

from __future__ import annotations

from propetl.cli import cli


def main() -> None:
    cli(prog_name="propetl")


if __name__ == "__main__":
    main()
