import sys

from monai_gradprom.experiments.cli import main

if __name__ == "__main__":
    sys.exit(main())
