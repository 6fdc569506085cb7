"""A minimal aiinfra project (``conf/``) that :mod:`aiinfra.testing` copies into temporary projects.

Component files list only what differs from the component's schema defaults, so the template
stays valid when a schema gains a field. Small on purpose: a stage run in a test finishes fast.
"""

from pathlib import Path

CONF_DIR = Path(__file__).parent / "conf"
