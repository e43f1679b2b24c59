"""What a job synchronizes: plausible scope names per family, and the texts scopes end with.

A ``ScopeSet`` is the immutable part of a job: the values of the family's scope field
(``kms``, ``key_rings``, ``domains``...), optional extra list fields (AWS ``regions``) and
the keys of ``detailed_status``. History jobs share a small pool of them.
"""

from __future__ import annotations

import random
import uuid
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from monitor.families import Family

AWS_REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-south-1")
_GCP_PROJECTS = ("gemalto-kyloeng", "acme-prod-kms", "acme-dev-kms")
_GCP_LOCATIONS = ("global", "us-east1", "europe-west1")
_GCP_RINGS = ("demo-key-ring", "payments", "backups", "ring-01")
_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"

_FAILURES: dict[str, tuple[str, ...]] = {
    "aws": (
        "AccessDeniedException: User: arn:aws:iam::{account}:user/cckm is not authorized to "
        "perform: kms:ListKeys",
        "UnrecognizedClientException: The security token included in the request is invalid.",
        'RequestError: send request failed caused by: Post "https://kms.{region}.amazonaws.com/":'
        " dial tcp: i/o timeout",
        "ThrottlingException: Rate exceeded",
    ),
    "gcp": (
        "PermissionDenied: Permission 'cloudkms.cryptoKeys.list' denied on resource '{key}' "
        "(or it may not exist).",
        "Unauthenticated: Request had invalid authentication credentials.",
        "rpc error: code = Unavailable desc = connection error: connection timed out",
    ),
    "AzureCloud": (
        "keyvault.BaseClient#GetKeys: Failure responding to request: StatusCode=403 -- Original "
        'Error: autorest/azure: Service returned an error. Status=403 Code="Forbidden" '
        'Message="The user, group or application does not have keys list permission on key '
        "vault '{key}'\"",
        "AADSTS7000215: Invalid client secret provided.",
        "connection timed out",
    ),
    "oci": (
        "NotAuthorizedOrNotFound: Authorization failed or requested resource not found.",
        "connection timed out",
    ),
    "sap": ("401 Unauthorized: invalid client credentials", "connection timed out"),
    "salesforce": ("INVALID_SESSION_ID: Session expired or invalid", "connection timed out"),
    "luna": ("CKR_PIN_INCORRECT", "CKR_TOKEN_NOT_PRESENT", "connection timed out"),
    "dsm": (
        "connection timed out",
        "x509: certificate signed by unknown authority",
        "NCERRUnauthorizedAccess: invalid credentials for the DSM connection",
    ),
    "externalCM": (
        "connection timed out",
        'Post "https://cm2.example.com/api/v1/auth/tokens": dial tcp 10.0.0.5:443: connect: '
        "connection refused",
        "x509: certificate signed by unknown authority",
    ),
}


@dataclass(frozen=True, slots=True)
class ScopeSet:
    values: tuple[str, ...]  # the family's scope field, e.g. kms: ("kms",)
    extras: tuple[tuple[str, tuple[str, ...]], ...]  # e.g. (("regions", ("us-east-1",)),)
    keys: tuple[str, ...]  # detailed_status keys, one per scope


def aws_account(kms: str) -> str:
    """The 12-digit account behind a KMS name; ``kms`` is the docs' 123456789012."""
    if kms == "kms":
        return "123456789012"
    return str(10**11 + zlib.crc32(kms.encode()) * 2654435761 % (9 * 10**11))


def success_text(family: Family) -> str:
    if family.source == "luna_refresh":
        return "partition refreshed successfully"
    return f"{family.scope_kind} synchronized successfully"


def failure_texts(family: Family) -> tuple[str, ...]:
    return _FAILURES.get(family.cloud, ("connection timed out",))


def failure_text(family: Family, key: str, choice: int) -> str:
    """One realistic failure message for scope ``key``; ``choice`` picks among them."""
    texts = failure_texts(family)
    account, _, region = key.partition("/")
    return texts[choice % len(texts)].format(key=key, account=account, region=region or "-")


class Catalog:
    """The scope names one family's simulated cloud offers, drawn once from ``rng``."""

    def __init__(self, family: Family, rng: random.Random) -> None:
        self.family = family
        self.names = self._pool(rng)

    def _pool(self, rng: random.Random) -> tuple[str, ...]:
        field = self.family.scope_field
        if field == "kms":
            return ("kms", "kms-prod", "kms-dev")
        if field == "key_rings":
            return tuple(
                f"projects/{rng.choice(_GCP_PROJECTS)}/locations/{rng.choice(_GCP_LOCATIONS)}"
                f"/keyRings/{ring}"
                for ring in _GCP_RINGS
            )
        if field == "key_vaults":
            return ("kv-payments-prod", "kv-hr-prod", "kv-dev-eastus", "kv-backup-westeu")
        if field == "oci_vaults":
            return tuple(
                f"ocid1.vault.oc1.iad.{''.join(rng.choices(_ALNUM, k=60))}" for _ in range(3)
            )
        if field == "groups":
            return ("finance-keys", "hr-keys", "default")
        if field == "organization_ids":
            return tuple(f"00D5g{''.join(rng.choices(_ALNUM, k=13)).upper()}" for _ in range(3))
        if field == "partitions":
            return tuple(f"{rng.randrange(10**9, 10**10)}" for _ in range(3))
        # domains (dsm, external CM): the manager names them by UUID
        return tuple(str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(4))

    def pick(self, rng: random.Random) -> ScopeSet:
        """A plausible scope for ``synchronize_all`` and self-started jobs."""
        if self.family.scope_field == "kms":
            kms = [rng.choice(self.names)]
            regions = rng.sample(AWS_REGIONS, rng.randint(1, 3)) if rng.random() < 0.6 else None
            return self.build(kms, regions)
        count = rng.randint(1, min(3, len(self.names)))
        return self.build(rng.sample(self.names, count), None)

    def build(self, values: Sequence[str], regions: Sequence[str] | None) -> ScopeSet:
        """Scope values (and AWS regions) -> the ScopeSet with its detailed_status keys."""
        family = self.family
        extras: tuple[tuple[str, tuple[str, ...]], ...] = ()
        if family.scope_field == "kms":
            if regions:
                extras = tuple((name, tuple(regions)) for name in family.extra_fields)
            keys = tuple(
                f"{aws_account(kms)}/{region}"
                for kms in values
                for region in (regions or _default_regions(kms))
            )
        elif family.scope_field == "key_rings":
            keys = tuple(
                v if "/" in v else f"projects/{_GCP_PROJECTS[0]}/locations/global/keyRings/{v}"
                for v in values
            )
        else:
            keys = tuple(values)
        return ScopeSet(tuple(values), extras, tuple(dict.fromkeys(keys)))

    def from_body(
        self, body: Mapping[str, Any], rng: random.Random, scope_field: str | None = None
    ) -> ScopeSet:
        """The scope a start request names; ``ValueError`` (a 400) when it names none.

        Scope lists are arrays of strings, exclusive with ``synchronize_all: true``.
        ``scope_field`` is the body's name for the scope list when it differs from the
        family's (a schedule's ``organizations`` for Salesforce's ``organization_ids``).
        """
        field = scope_field or self.family.scope_field
        values = _string_list(body, field)
        regions = _string_list(body, "regions") if self.family.scope_field == "kms" else []
        sync_all = body.get("synchronize_all", False)
        if not isinstance(sync_all, bool):
            raise ValueError("synchronize_all must be true or false")
        if sync_all and values:
            raise ValueError(f"{field} and synchronize_all: true are mutually exclusive")
        if values:
            return self.build(values, regions or None)
        if sync_all:
            return self.pick(rng)
        raise ValueError(f"either {field} or synchronize_all must be given")

    def from_keys(self, keys: Sequence[str], values: Sequence[str] | None) -> ScopeSet:
        """A scripted job's scope: the detailed_status keys are given verbatim."""
        if self.family.scope_field == "kms":
            regions = tuple(dict.fromkeys(k.partition("/")[2] for k in keys if "/" in k))
            extras = tuple((name, regions) for name in self.family.extra_fields if regions)
            return ScopeSet(tuple(values or ("kms",)), extras, tuple(keys))
        return ScopeSet(tuple(values or keys), (), tuple(keys))


def _default_regions(kms: str) -> tuple[str, ...]:
    start = zlib.crc32(kms.encode()) % len(AWS_REGIONS)
    return AWS_REGIONS[start : start + 2] or AWS_REGIONS[:1]


def _string_list(body: Mapping[str, Any], name: str) -> list[str]:
    value = body.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{name} must be an array of non-empty strings")
    return list(dict.fromkeys(value))
