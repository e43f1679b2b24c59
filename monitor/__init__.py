"""cckm-monitor: watches CipherTrust Manager synchronization and refresh jobs."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cckm-monitor")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"
