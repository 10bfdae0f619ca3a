"""Built-in drift tests, one module each; importing this package registers them."""

from driftline.detectors.stattests import chisquare, ks  # noqa: F401
