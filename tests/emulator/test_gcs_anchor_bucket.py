"""The anchor bucket's retention check against fake-gcs-server: a bucket without a locked
retention policy is refused as an audit anchor sink on Google Cloud, naming the setting."""

from __future__ import annotations

import uuid

import pytest
from cfp.adapters.gcp.emulators import Emulators
from cfp.adapters.gcp.storage import GcsBlobStore
from cfp.app import require_locked_retention
from cfp.errors import SettingsError
from cfp.settings import Settings

pytestmark = pytest.mark.emulator


class Locked:
    """A bucket as Terraform leaves it (fake-gcs-server cannot lock a policy)."""

    async def retention(self) -> tuple[int | None, bool]:
        return 10 * 365 * 86400, True


async def test_a_bucket_without_a_locked_retention_policy_is_refused(emulators: Emulators) -> None:
    name = f"anchors-{uuid.uuid4().hex[:10]}"
    bucket = GcsBlobStore(name, project="cfp-local", endpoint=emulators.gcs_url)
    await bucket.ensure_bucket(location="us-central1")
    assert await bucket.retention() == (None, False)
    settings = Settings(backend="emulators", audit_anchor_bucket=name)
    with pytest.raises(SettingsError, match=r"CFP_AUDIT_ANCHOR_BUCKET.*no retention policy"):
        await require_locked_retention(bucket, settings)
    await require_locked_retention(Locked(), settings)  # what a locked bucket passes
