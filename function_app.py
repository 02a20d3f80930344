"""The Azure Functions app: one FunctionApp, the triggers registered from the package."""

import azure.functions as func

from remediation.entrypoints.functions import blueprint

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(blueprint)
