"""The one table of CipherTrust Manager job families (see cckm-api.md).

Source name (ours) -> list/start base path under ``/api``, the scope field of the start
body and of the job object, the list filter name for that scope, and the ``cloud`` label
the manager puts in each job. Everything else (poller, client, simulator, config
validation) reads this table; nothing else spells a path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

API_PREFIX = "/api"


@dataclass(frozen=True, slots=True)
class Family:
    source: str
    base_path: str  # under /api, e.g. /v1/cckm/aws/synchronization-jobs
    scope_field: str  # list field naming the scopes in the start body and the job
    filter_field: str  # list query filter for that scope
    cloud: str  # the ``cloud`` value in the manager's job objects
    scope_kind: str  # what one detailed_status key is: region, key ring, domain, ...
    extra_fields: tuple[str, ...] = ()  # further optional list fields in job objects

    @property
    def path(self) -> str:
        """The full path, ``/api/v1/...``."""
        return API_PREFIX + self.base_path


# ``cloud`` values marked *unconfirmed* in cckm-api.md are our best reading; the monitor
# never relies on them (it labels by source name), the simulator emits them.
FAMILIES: dict[str, Family] = {
    f.source: f
    for f in (
        Family(
            "aws", "/v1/cckm/aws/synchronization-jobs", "kms", "kms", "aws", "region", ("regions",)
        ),
        Family(
            "aws_custom_key_stores",
            "/v1/cckm/aws/custom-key-stores/synchronization-jobs",
            "kms",
            "kms",
            "aws",
            "region",
            ("regions",),
        ),
        Family(
            "azure",
            "/v1/cckm/azure/synchronization-jobs",
            "key_vaults",
            "key_vaults",
            "AzureCloud",
            "key vault",
        ),
        Family(
            "azure_certificates",
            "/v1/cckm/azure/certificates/synchronization-jobs",
            "key_vaults",
            "key_vaults",
            "AzureCloud",
            "key vault",
        ),
        Family(
            "azure_secrets",
            "/v1/cckm/azure/secrets/synchronization-jobs",
            "key_vaults",
            "key_vaults",
            "AzureCloud",
            "key vault",
        ),
        Family(
            "gcp",
            "/v1/cckm/google/synchronization-jobs",
            "key_rings",
            "key_rings",
            "gcp",
            "key ring",
        ),
        Family("oci", "/v1/cckm/oci/synchronization-jobs", "oci_vaults", "vaults", "oci", "vault"),
        Family("sap", "/v1/cckm/sap/synchronization-jobs", "groups", "groups", "sap", "group"),
        Family(
            "salesforce_secrets",
            "/v1/cckm/sfdc/keys/synchronization-jobs",
            "organization_ids",
            "organizations",
            "salesforce",
            "organization",
        ),
        Family(
            "salesforce_certificates",
            "/v1/cckm/sfdc/certificates/synchronization-jobs",
            "organization_ids",
            "organizations",
            "salesforce",
            "organization",
        ),
        Family(
            "luna_refresh",
            "/v1/cckm/hsm/luna/refresh",
            "partitions",
            "partitions",
            "luna",
            "partition",
        ),
        Family(
            "luna_synchronize",
            "/v1/cckm/hsm/luna/synchronize",
            "partitions",
            "partitions",
            "luna",
            "partition",
        ),
        Family("dsm", "/v1/cckm/dsm/refresh", "domains", "domains", "dsm", "domain"),
        Family(
            "external_cm",
            "/v1/cckm/external-cm/refresh",
            "domains",
            "domains",
            "externalCM",
            "domain",
        ),
    )
}

SOURCE_NAMES: tuple[str, ...] = tuple(FAMILIES)


@dataclass(frozen=True, slots=True)
class CloudSource:
    source: str  # our source name (monitor/families.py)
    scope_field: str  # the job_config_params field naming the scopes


# cloud_name -> source and scope field (cckm-api.md). *Unconfirmed* there: AzureCloud,
# sfdc, sap, dsm, hsm-luna. The one place this mapping is spelled.
CLOUD_SOURCES: Mapping[str, CloudSource] = {
    "aws": CloudSource("aws", "kms"),
    "AzureCloud": CloudSource("azure", "key_vaults"),
    "gcp": CloudSource("gcp", "key_rings"),
    "oci": CloudSource("oci", "oci_vaults"),
    "sfdc": CloudSource("salesforce_secrets", "organizations"),
    "sap": CloudSource("sap", "groups"),
    "dsm": CloudSource("dsm", "domains"),
    "hsm-luna": CloudSource("luna_synchronize", "partitions"),
}
