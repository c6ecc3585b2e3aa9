"""``python -m deepatlas.cli``: the same as the ``deepatlas`` console script."""

from . import main

if __name__ == "__main__":
    main()
