"""Settings: the backend and its Google settings, checked at start with the setting's name."""

from __future__ import annotations

from pathlib import Path

import pytest
from cfp.app import build
from cfp.cli import app
from cfp.errors import SettingsError
from cfp.settings import Settings
from typer.testing import CliRunner

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "orders"
GCP = {
    "CFP_BACKEND": "gcp",
    "CFP_GCP_PROJECT": "acme-flows-prod",
    "CFP_REGION": "europe-west4",
    "CFP_BUCKET": "acme-flows-eu",
    "CFP_KMS_KEYRING": "cfp",
}


def test_local_is_the_default_and_needs_no_google_setting() -> None:
    settings = Settings.load({})
    assert settings.backend == "local"


def test_gcp_names_every_missing_setting() -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.load({"CFP_BACKEND": "gcp", "CFP_REGION": "europe-west4"})
    message = raised.value.message
    for name in ("CFP_GCP_PROJECT", "CFP_BUCKET", "CFP_KMS_KEYRING"):
        assert name in message
    assert "CFP_REGION" not in message


def test_gcp_with_everything_set_derives_the_regional_database() -> None:
    settings = Settings.load(GCP)
    assert (settings.google_project, settings.google_region) == ("acme-flows-prod", "europe-west4")
    assert settings.database == "cfp-europe-west4"  # one named database per region
    assert Settings.load({**GCP, "CFP_FIRESTORE_DATABASE": "flows"}).database == "flows"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"CFP_GCP_PROJECT": "acme-flows-prod"}, "CFP_GCP_PROJECT"),  # backend local
        ({**GCP, "PUBSUB_EMULATOR_HOST": "127.0.0.1:8085"}, "PUBSUB_EMULATOR_HOST"),
        ({**GCP, "CFP_REGION": "Europe West"}, "CFP_REGION"),
        ({**GCP, "CFP_GCP_PROJECT": "x"}, "CFP_GCP_PROJECT"),
        ({**GCP, "CFP_BUCKET": "No_Such Bucket"}, "CFP_BUCKET"),
        ({"CFP_BACKEND": "cloud"}, "CFP_BACKEND"),
        ({"CFP_BACKEND": "emulators", "CFP_PAYLOAD_INLINE_LIMIT": "0"}, "CFP_PAYLOAD_INLINE_LIMIT"),
    ],
)
def test_inconsistent_or_malformed_settings_fail_naming_the_setting(
    env: dict[str, str], named: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.load(env)
    assert named in raised.value.message


def test_the_emulators_backend_without_emulators_names_what_is_missing(tmp_path: Path) -> None:
    settings = Settings.load(
        {"CFP_BACKEND": "emulators", "PUBSUB_EMULATOR_HOST": "127.0.0.1:1"},
        project_dir=EXAMPLE,
        data_dir=tmp_path,
    )
    with pytest.raises(SettingsError) as raised:
        build(settings)
    assert "FIRESTORE_EMULATOR_HOST" in raised.value.message
    assert "STORAGE_EMULATOR_HOST" in raised.value.message
    assert "PUBSUB_EMULATOR_HOST" not in raised.value.message


def test_cfp_start_refuses_an_incomplete_gcp_backend(tmp_path: Path, monkeypatch) -> None:
    for name in ("CFP_GCP_PROJECT", "CFP_REGION", "CFP_BUCKET", "CFP_KMS_KEYRING"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(
        app, ["start", "--backend", "gcp", "--project", str(EXAMPLE), "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 1
    assert "CFP_GCP_PROJECT" in result.output and "CFP_KMS_KEYRING" in result.output


def test_cfp_start_on_gcp_without_credentials_says_how_to_get_them(
    tmp_path: Path, monkeypatch
) -> None:
    for name, value in GCP.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))  # no gcloud login here
    monkeypatch.setenv("NO_GCE_CHECK", "True")  # not on Google Cloud: no metadata server

    result = CliRunner().invoke(
        app, ["start", "--project", str(EXAMPLE), "--data-dir", str(tmp_path / "data")]
    )

    assert result.exit_code == 1
    assert "no Google credentials" in result.output
    assert "gcloud auth application-default login" in result.output


def test_audit_anchors_live_beside_the_data_dir_and_never_inside_it(tmp_path: Path) -> None:
    settings = Settings.load({}, data_dir=tmp_path / "data")
    assert settings.anchor_dir == tmp_path / "data-audit-anchors"
    chosen = Settings.load({"CFP_AUDIT_ANCHOR_DIR": str(tmp_path / "elsewhere")})
    assert chosen.anchor_dir == tmp_path / "elsewhere"
    with pytest.raises(SettingsError, match="CFP_AUDIT_ANCHOR_DIR"):
        Settings.load(
            {"CFP_AUDIT_ANCHOR_DIR": str(tmp_path / "data" / "anchors")}, data_dir=tmp_path / "data"
        )
    with pytest.raises(SettingsError, match="CFP_AUDIT_ANCHOR_BUCKET"):
        Settings.load({"CFP_AUDIT_ANCHOR_BUCKET": "anchors-bucket"})  # a Google setting
    with pytest.raises(SettingsError, match="CFP_TSA_URL"):
        Settings.load({"CFP_TSA_URL": "ftp://tsa.example"})
    with pytest.raises(SettingsError, match="CFP_AUDIT_CHECKPOINT_RECORDS"):
        Settings.load({"CFP_AUDIT_CHECKPOINT_RECORDS": "0"})
