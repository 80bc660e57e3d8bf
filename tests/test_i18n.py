# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Messages carry their identifier and the French catalogue covers every one of them."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hygie.analysis.service import FAILED, QUEUED, REFUSED, RUNNING, SUCCEEDED
from hygie.audit.alerts import AlertStatus
from hygie.governance.policy import Role
from hygie.governance.projects import Status
from hygie.i18n import N_, Message, message_from_json, message_to_json, placeholders, translate
from hygie.portal.pages.messages import said
from hygie.vocabulary import ALERT_STATUS, INCIDENT_STATUS, JOB_STATUS, PROJECT_STATUS, ROLE, WORDS, labels, word

ROOT = Path(__file__).resolve().parents[1]


def run_check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(root / "scripts" / "messages"), "check"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )


def test_every_message_is_translated_and_the_catalogue_is_in_step_with_the_code() -> None:
    """Extracts N_ and term calls as pybabel would and compares with the French catalogue: a message added or
    reworded without its French, a stale entry, a lost placeholder, a fuzzy entry or a non-literal msgid fails."""
    check = run_check(ROOT)
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_reworded_message_fails_the_check(tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "hygie", copy / "hygie", ignore=shutil.ignore_patterns("__pycache__", "reference"))
    (copy / "scripts").mkdir()
    shutil.copy2(ROOT / "scripts" / "messages", copy / "scripts" / "messages")
    probe = copy / "hygie" / "probe_module.py"
    probe.write_text('from hygie.i18n import N_\n\nM = N_("a sentence nobody translated, {count} times", count=1)\n')
    check = run_check(copy)
    assert check.returncode == 1
    assert "a sentence nobody translated" in check.stdout
    probe.write_text('from hygie.i18n import N_\n\nM = N_(f"not a literal {1}")\n')
    check = run_check(copy)
    assert check.returncode == 1
    assert "needs literal text" in check.stdout


def test_a_message_reads_as_its_english_sentence_and_keeps_its_identifier() -> None:
    message = N_("project {project} is {status}, not active", project=3, status=word(PROJECT_STATUS, "suspended"))
    assert message == "project 3 is suspended, not active"
    assert isinstance(message, str)
    assert message.msgid == "project {project} is {status}, not active"
    assert json.dumps({"detail": message}) == '{"detail": "project 3 is suspended, not active"}'


def test_a_message_and_its_state_are_said_in_french() -> None:
    message = N_(
        "incident {incident} is {status}: notices were already made",
        incident=2,
        status=word(INCIDENT_STATUS, "notified"),
    )
    french = translate(message, "fr")
    assert french == "La violation n° 2 est notifiée : les avis ont déjà été faits."
    shown = said(409, message)
    assert (shown.text, shown.lang, shown.original) == (
        french,
        "fr",
        "incident 2 is notified: notices were already made",
    )


def test_a_plain_string_is_never_guessed() -> None:
    assert translate("project 3 is suspended, not active", "fr") is None
    shown = said(500, "some engine's own words")
    assert (shown.text, shown.lang) == ("some engine's own words", "en")


def test_an_unknown_message_is_shown_in_english_not_invented() -> None:
    assert translate(N_("a sentence nobody translated"), "fr") is None
    assert translate(N_("no project {project}", project=1), "de") is None


@given(project=st.integers(0, 10**9), status=st.sampled_from([w.msgid for w in WORDS if w.context == PROJECT_STATUS]))
def test_stored_and_pickled_messages_say_the_same(project: int, status: str) -> None:
    message = N_("project {project} is {status}, not active", project=project, status=word(PROJECT_STATUS, status))
    for again in (
        message_from_json(json.loads(json.dumps(message_to_json(message)))),
        pickle.loads(pickle.dumps(message)),
    ):
        assert again == message
        assert isinstance(again, Message)
        assert translate(again, "fr") == translate(message, "fr")


@pytest.mark.parametrize(
    ("vocabulary", "values"),
    [
        (PROJECT_STATUS, [s.value for s in Status]),
        (ROLE, [r.value for r in Role]),
        (ALERT_STATUS, [s.value for s in AlertStatus]),
        (JOB_STATUS, [QUEUED, RUNNING, SUCCEEDED, FAILED, REFUSED]),
    ],
)
def test_every_stored_state_has_its_word(vocabulary: str, values: list[str]) -> None:
    french = labels(vocabulary, "fr")
    for value in values:
        assert value in french, f"{vocabulary} {value!r}: add it to hygie.vocabulary.WORDS"
        assert french[value] != "" and isinstance(word(vocabulary, value), Message)


def test_a_translation_keeps_its_placeholders() -> None:
    for entry in json.loads(json.dumps([w.msgid for w in WORDS])):
        assert placeholders(entry) == set()
    assert placeholders("project {project} is {status}") == {"project", "status"}
    assert placeholders("{amount:.2f} euros") == {"amount"}


def test_a_refused_analysis_keeps_its_message_identifier() -> None:
    from hygie.analysis.models import AnalysisJob

    job = AnalysisJob()
    job.error = N_(
        "incident {incident} is {status}: notices were already made",
        incident=4,
        status=word(INCIDENT_STATUS, "notified"),
    )
    assert job.error_message is not None and job.error_message["msgid"].startswith("incident {incident}")
    again = job.error_said
    assert isinstance(again, Message) and translate(again, "fr") == translate(job.error, "fr") is not None
    job.error = "Binder Error: an engine's own words"
    assert job.error_message is None and job.error_said == "Binder Error: an engine's own words"


def test_a_stored_message_with_a_non_finite_number_is_json_any_database_takes() -> None:
    """PostgreSQL refuses JSON's missing Infinity and NaN: a message keeps such a number as its text."""
    import json

    from hygie.i18n import message_from_json, message_to_json

    for value in (float("inf"), float("-inf"), float("nan")):
        stored = message_to_json(N_("an interval of width {width}", width=value))
        json.dumps(stored, allow_nan=False)  # raises on a non-finite number
        assert str(message_from_json(stored)) == f"an interval of width {value}"
