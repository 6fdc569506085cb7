"""The monitor on a private prediction log (server.log_privacy): encrypted parts read transparently
(plaintext ones beside them too), protected columns skipped with a note, one clear error without
the keys. In process, on logs written by the real PredictionLog."""

from __future__ import annotations

import base64
import os

import numpy as np
import pytest

import drift_scenarios
from aiinfra.errors import AiinfraError
from aiinfra.monitoring import drift_monitor, windows
from aiinfra.serving.predlog import PredictionLog
from aiinfra.serving.privacy import LogPrivacy

HMAC = "monitor-hmac-key-0123456789"
MASTER_KEYS = "footer:" + base64.b64encode(os.urandom(32)).decode()
PRIVACY = [
    "server.log_privacy.columns={f00:hash,f01:drop,f02:redact}",
    "server.log_privacy.encrypt=true",
    "monitor.report=false",
]


def _write(mon, privacy: LogPrivacy, rows: int, seed: int) -> None:
    cols = drift_scenarios.make("no_drift", rows, seed=seed)
    names = list(cols)
    x = np.column_stack([cols[n] for n in names]).astype(np.float32)
    log = PredictionLog(mon.logs, names, flush_rows=10**6, privacy=privacy)
    for i in range(0, rows, 100):
        chunk = x[i : i + 100]
        log.append(f"r{seed}-{i}", "model", "1", chunk, (chunk[:, 3] > 0).astype(np.int64), np.full(len(chunk), 0.7))
    log.close()


@pytest.fixture
def private_log(mon, monkeypatch):
    monkeypatch.setenv("AIINFRA_LOG_HMAC_KEY", HMAC)
    monkeypatch.setenv("AIINFRA_LOG_MASTER_KEYS", MASTER_KEYS)
    mon.reference(rows=2000)
    cfg = mon.cfg(f"server.log_dir={mon.logs}", *PRIVACY)
    names = drift_scenarios.feature_names()
    encrypted = LogPrivacy.from_config(cfg.server, names)
    plaintext = LogPrivacy(encrypted.columns, encrypted.default, encrypted.key, crypto=None)
    _write(mon, plaintext, 1000, seed=2)  # written before encryption was switched on
    _write(mon, encrypted, 1500, seed=3)
    return cfg


def test_the_monitor_reads_an_encrypted_log_and_skips_protected_columns(mon, private_log):
    parts = sorted(mon.logs.rglob("part-*.parquet"))
    assert len(parts) == 2 and sum(p.read_bytes().endswith(b"PARE") for p in parts) == 1
    verdict = drift_monitor.run_once(private_log)
    assert verdict["rows"]["current"] == 2500
    assert verdict["columns_total"] == 13 and not verdict["drift_detected"]
    notes = verdict["skipped_columns"]
    assert set(notes) == {"f00", "f01", "f02"} and "drop" in notes["f01"] and "hash" in notes["f00"]
    assert verdict["columns"]["f03"]["method"] != "skipped"


def test_without_the_master_keys_the_monitor_says_which_variable(mon, private_log, monkeypatch):
    monkeypatch.delenv("AIINFRA_LOG_MASTER_KEYS")
    with pytest.raises(AiinfraError) as err:
        windows.open_current(private_log)
    assert "AIINFRA_LOG_MASTER_KEYS" in str(err.value) and MASTER_KEYS[8:] not in str(err.value)
    # a config without encryption (another machine's monitor) meets an encrypted part: named too
    plain_cfg = mon.cfg(f"server.log_dir={mon.logs}", "monitor.report=false")
    with pytest.raises(AiinfraError, match="is encrypted") as err:
        windows.open_current(plain_cfg)
    assert "AIINFRA_LOG_MASTER_KEYS" in str(err.value.hint)


def test_a_log_whose_every_feature_is_protected_is_one_clear_error(mon, private_log):
    cfg = mon.cfg(f"server.log_dir={mon.logs}", *PRIVACY, "server.log_privacy.default=hash")
    with pytest.raises(AiinfraError, match="every monitored feature is protected"):
        drift_monitor.run_once(cfg)
