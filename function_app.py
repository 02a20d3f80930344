"""The Azure Functions app: one FunctionApp, the triggers registered from the package."""

import azure.functions as func

from remediation.entrypoints.functions import blueprint, check_settings_at_start

# A bad app setting fails indexing (one log line naming it): no listener starts, and messages
# wait in their queues until the setting is fixed instead of being burnt one by one.
check_settings_at_start()

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(blueprint)
