import sys

from phasegrpo.cli import main

sys.exit(main())
