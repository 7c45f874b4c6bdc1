"""``python -m hybridpg``: the same command line as the ``hybridpg`` script."""

from hybridpg.cli import main

if __name__ == "__main__":
    main()
