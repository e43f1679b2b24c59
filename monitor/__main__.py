"""``python -m monitor`` is ``cckm-monitor``."""

import sys

from monitor.cli import main

sys.exit(main())
