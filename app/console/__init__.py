"""The web console for nurses and staff: server-rendered pages over the same services as the API.

deps: who is asking and what they may do; forms: reading and checking what was posted;
render: templates and error pages; pages/: one module per area of the console.
"""

from app.console.pages import router
from app.console.render import install

__all__ = ["install", "router"]
