"""The web console at /console: deployments, their figures and logs, executions and traces."""

from fastapi import APIRouter

from agentform_runtime.host.api.console import routes, signin

router = APIRouter()
router.include_router(signin.router)
router.include_router(routes.router)

__all__ = ["router"]
