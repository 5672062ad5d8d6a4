"""``python -m mnistcnn``: the same as the ``mnistcnn`` console script."""

from mnistcnn.cli import main

if __name__ == "__main__":
    main()
