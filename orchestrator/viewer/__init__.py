"""`envfarm view`: a read-only web app over the trajectory store.

Public face: `create_app(ViewerConfig(...))` (an ASGI app), `ViewerConfig`,
`readonly_engine` and `StoreNotFoundError`. Pages are rendered on the server (Jinja2);
the few scripts and styles are files in this package, so it works with no internet.
"""

from orchestrator.viewer.app import ViewerConfig, create_app
from orchestrator.viewer.source import StoreNotFoundError, readonly_engine

__all__ = ["StoreNotFoundError", "ViewerConfig", "create_app", "readonly_engine"]
