import sys

from ._cli._entry import main

sys.exit(main())
