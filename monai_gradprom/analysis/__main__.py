"""``python -m monai_gradprom.analysis <tool> --help``."""

import sys

from monai_gradprom.analysis.cli import main

if __name__ == "__main__":
    sys.exit(main())
