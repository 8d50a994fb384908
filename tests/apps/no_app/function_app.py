"""No FunctionApp at all: the worker refuses this."""

import azure.functions as func

blueprint = func.Blueprint()
