"""Every form a credential takes on its way to an output (issue 11, item 4), as test data.

Each secret value below holds :data:`MARK`, so "no secret leaked" is one substring search that
also catches a partial leak, and survives URL quoting (``MARK`` has no character to escape).
:data:`TEXT_FORMS` is each form as a library or a person would write it (a URL, a connection
string, a header line, a dict repr); :data:`SAS_QUERY` is a SAS with every field Azure defines.
"""

from __future__ import annotations

from urllib.parse import quote

MARK = "5ecr3t"
"""In every secret value; never in anything servefn may show."""

SAS_FIELDS = (
    "sv", "ss", "srt", "sp", "se", "st", "spr", "sip", "si", "sr", "sdd", "ses", "skoid",
    "sktid", "skt", "ske", "sks", "skv", "skdutid", "saoid", "suoid", "scid", "sduoid",
    "rscc", "rscd", "rsce", "rscl", "rsct", "sig",
)  # fmt: skip
"""Every SAS query parameter (service, account and user delegation SAS)."""
SAS_QUERY = "&".join(f"{field}={field}-{MARK}-{n}" for n, field in enumerate(SAS_FIELDS))
PASSWORD = f"pw-{MARK}-1"
ACCOUNT_KEY = f"{MARK}AccountKeyAAAAbase64+/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="
FUNCTION_KEY = f"fk-{MARK}-Zm9vYmFyYmF6cXV4"
TOKEN = f"eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJzdG9yYWdlIn0.{MARK}Signature_-"
ENCRYPTION_KEY = f"{MARK}EncryptionKeyBase64AAAAAAAAAAAAAAAAAAAA="
SIGNATURE = f"{MARK}RequestSignatureBase64AAAAAAAAAAAAAAAAAA="
CLIENT_SECRET = f"cs~{MARK}.Abc123"

TEXT_FORMS: dict[str, str] = {
    "url user:password": f"https://reader-{MARK}:{PASSWORD}@acct.blob.core.windows.net/models",
    "url password with / and @": f"http://bob:pw/{MARK}@x@127.0.0.1:10000/devstoreaccount1",
    **{
        f"SAS field {field}": (
            f"https://acct.blob.core.windows.net/models/model.zip?restype=blob&{field}="
            f"{field}-{MARK}"
        )
        for field in SAS_FIELDS
    },
    "SAS query": f"GET https://acct.blob.core.windows.net/models/model.zip?{SAS_QUERY} HTTP/1.1",
    "SAS query, percent-encoded": "copy source "
    + quote(f"https://acct.blob.core.windows.net/c/m.zip?{SAS_QUERY}", safe=""),
    "function key (code=)": f"https://app.azurewebsites.net/api/predict?code={FUNCTION_KEY}",
    "function key (code=) after another parameter": f"/api/predict?x=1&code={FUNCTION_KEY}",
    "AccountKey=": f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={ACCOUNT_KEY};"
    "EndpointSuffix=core.windows.net",
    "AccountKey = (spaced)": f"AccountName=acct ; AccountKey = {ACCOUNT_KEY} ; x=y",
    "SharedAccessSignature=": "BlobEndpoint=https://acct.blob.core.windows.net;"
    f"SharedAccessSignature={SAS_QUERY}",
    "BlobEndpoint with a SAS query": "AccountName=acct;"
    f"BlobEndpoint=https://acct.blob.core.windows.net/?{SAS_QUERY};",
    "BlobEndpoint with user:password@": f"AccountName=acct;AccountKey={ACCOUNT_KEY};"
    f"BlobEndpoint=http://alice:{PASSWORD}@127.0.0.1:10000/devstoreaccount1;",
    "Authorization: Bearer": f"Authorization: Bearer {TOKEN}",
    "Authorization header repr": f"{{'Authorization': 'Bearer {TOKEN}', 'x-ms-version': '2025'}}",
    "bearer token": f"token acquired: Bearer {TOKEN} (expires in 3599s)",
    "x-ms-copy-source-authorization": f"x-ms-copy-source-authorization: Bearer {TOKEN}",
    "x-ms-encryption-key": f"{{'x-ms-encryption-key': '{ENCRYPTION_KEY}'}}",
    "x-functions-key": f"x-functions-key: {FUNCTION_KEY}",
    "SharedKey signature": f"Authorization=SharedKey devstoreaccount1:{SIGNATURE}",
    "SharedKey signature in a message": f"expected SharedKey devstoreaccount1:{SIGNATURE} got",
    "client_secret repr": f"{{'tenant_id': 't', 'client_secret': '{CLIENT_SECRET}'}}",
    "sas_token storage option": f"{{'account_name': 'acct', 'sas_token': '{SAS_QUERY}'}}",
    "JSON with a password": f'{{"user": "u", "password": "{PASSWORD}"}}',
}
"""Form -> a text carrying a secret in that form."""

ORDINARY = (
    "model /srv/models/model.zip version 0123456789ab loaded in 0.120s (cold, from storage; "
    'etag "0x8DC0FFEE", 1,234 bytes)',
    "http://127.0.0.1:10000/devstoreaccount1/models/model.zip?restype=container&comp=list",
    "abfs://models@acct.dfs.core.windows.net/model.zip",
    "the model is not loaded yet; retry later",
    "a bearer token is needed: give the identity the Storage Blob Data Reader role",
    "x-ms-version: 2025-01-05",
    "key_good: [POST] http://127.0.0.1:7071/api/key_good",
    "could not reach http://127.0.0.1:9/devstoreaccount1 (timeout 10s, 2 retries)",
    "Request method: 'GET'",
)
"""Lines without a credential: redaction leaves them as they are."""


class LeakyLoader:
    """A loader (``leaky://N``) whose storage fails with form N of :data:`TEXT_FORMS` in the
    error, as an SDK's message quoting a URL or a header would: registered by a test with
    ``register_loader("leaky", "support.secretforms:LeakyLoader")``."""

    def __init__(self, uri: str, **options: object) -> None:
        from servefn._redact import redact

        self.uri = redact(uri)
        self.text = TEXT_FORMS[sorted(TEXT_FORMS)[int(uri.split("://", 1)[1])]]

    def fetch(self, etag: str | None = None) -> None:
        from servefn.errors import LoaderError

        raise LoaderError(f"storage answered 403 to {self.text}")
