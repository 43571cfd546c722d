"""``python -m functional_nn ...``: the same as the ``fnn`` command (for environments without its script).

Not part of the core: a shim that Python looks for at the package root, which only hands over to the
application's entry point (the import contracts name it as the one exception; nothing imports it).
"""

import sys

from functional_nn.app.entry import main

if __name__ == "__main__":
    sys.exit(main())
