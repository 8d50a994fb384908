"""The Open Inference Protocol (KServe V2, also Triton's and MLServer's) over REST.

``add_inference_routes(app)`` serves an app's ``serve_http`` models (or any
:class:`ModelResolver`'s) at ``v2/health/*``, ``v2``, ``v2/models/{name}[/versions/{v}]``,
``.../ready`` and ``.../infer``, in the JSON form and with the binary tensor data extension, so
``tritonclient`` and KServe clients work unchanged. Requests meet the same validation as
servefn's own JSON (the input schema, float32 range, missing values, vocabularies) and the same
body and batch limits; errors are the protocol's ``{"error": "..."}``.

Modules, one job each: ``_tensors`` (datatypes, decoded tensors, the request, its error),
``_request`` (the JSON header and its data), ``_binary`` (the binary extension),
``_inputs`` (tensors -> validated features), ``_response`` (outputs -> tensors, JSON or
binary), ``_metadata``, ``_resolver`` (``ModelResolver``, ``ProvidedModels``), ``_service``
(the framework-neutral handlers) and ``_routes`` (the Azure Functions routes). This layer sits
beside ``servefn.azure`` and may import it, ``servefn.http`` and everything below; only
``servefn.devhost`` and ``servefn.cli`` import it.
"""

from servefn.oip._resolver import ModelNotFound, ModelResolver, ModelUnavailable, ProvidedModels
from servefn.oip._routes import add_inference_routes, inference_functions, inference_service
from servefn.oip._service import InferenceService

__all__ = [
    "InferenceService",
    "ModelNotFound",
    "ModelResolver",
    "ModelUnavailable",
    "ProvidedModels",
    "add_inference_routes",
    "inference_functions",
    "inference_service",
]
