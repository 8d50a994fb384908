"""Imports a module that is not installed."""

import azure.functions as func
import servefn_no_such_module  # noqa: F401

app = func.FunctionApp()
