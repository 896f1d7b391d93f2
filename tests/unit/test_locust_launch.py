"""lab-locust, the master's launcher: report paths it cannot write are moved, never left to crash the master."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab_locust.launch import locustfile_problems, locustfile_spec, main, with_writable_reports
from tests.support.course import COURSE_LOCUSTFILE


def test_report_paths_in_a_writable_folder_are_kept_and_the_folder_is_created(tmp_path):
    reports = tmp_path / "new" / "reports"
    args = ["-f", "locustfile.py", "--master", "--csv", f"{reports}/run", f"--html={reports}/report.html"]

    kept, warnings = with_writable_reports(args, fallback=tmp_path / "fallback")

    assert kept == args
    assert warnings == []
    assert reports.is_dir()
    assert list(reports.iterdir()) == [], "the write check leaves nothing behind"


def test_report_paths_in_a_folder_that_cannot_be_written_move_to_the_fallback_with_one_warning(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")  # even root cannot create a folder below a file
    locked = blocker / "reports"
    fallback = tmp_path / "fallback"
    args = ["--master", "--csv", f"{locked}/run", f"--html={locked}/report-{{u}}users.html", "--csv-full-history"]

    moved, warnings = with_writable_reports(args, fallback=fallback)

    assert moved == ["--master", "--csv", f"{fallback}/run", f"--html={fallback}/report-{{u}}users.html",
                     "--csv-full-history"]  # fmt: skip
    (warning,) = warnings
    assert f"cannot write reports to {locked}" in warning
    assert f"docker compose cp locust-master:{fallback}" in warning
    assert "LAB_UID" in warning
    assert "chmod a+w reports" in warning


def test_an_option_without_its_value_is_left_for_locust_to_report():
    assert with_writable_reports(["--master", "--csv"], fallback=Path("/unused")) == (["--master", "--csv"], [])


def test_the_locustfiles_come_from_the_option_else_the_environment_else_locusts_default():
    assert locustfile_spec(["-f", "a.py,b.py", "--master"], {}) == "a.py,b.py"
    assert locustfile_spec(["--locustfile=a.py"], {"LOCUST_LOCUSTFILE": "b.py"}) == "a.py"
    assert locustfile_spec(["--master"], {"LOCUST_LOCUSTFILE": "mine/b.py,lab_plugin.py"}) == "mine/b.py,lab_plugin.py"
    assert locustfile_spec([], {}) == "locustfile.py"


def test_a_plain_course_locustfile_and_a_folder_load_without_a_problem(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "course.py").write_text(COURSE_LOCUSTFILE.read_text())
    (tmp_path / "shapes").mkdir()

    assert locustfile_problems("mine/course.py,shapes", tmp_path) == []


def test_a_missing_locustfile_is_named_with_what_the_folder_holds(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "course.py").write_text(COURSE_LOCUSTFILE.read_text())

    (problem,) = locustfile_problems("mine/cours.py", tmp_path)

    assert problem == f"mine/cours.py: no such file (in {tmp_path / 'mine'}: course.py)"


def test_a_locustfile_that_fails_to_import_is_named_with_the_error(tmp_path):
    (tmp_path / "needs.py").write_text("import faker_that_is_not_installed\n")
    (tmp_path / "broken.py").write_text("def task(:\n")

    problems = locustfile_problems("needs.py,broken.py", tmp_path)

    assert problems[0].startswith("needs.py fails to import: ModuleNotFoundError: No module named 'faker_that")
    assert problems[1].startswith("broken.py fails to import: SyntaxError")


def test_the_launcher_stops_with_one_message_that_says_where_the_lab_looks(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)

    with pytest.raises(SystemExit) as stopped:
        main(["--master", "-f", "mine/missing.py,lab_plugin.py"])

    assert stopped.value.code == 2
    message = capsys.readouterr().err
    assert "lab-locust: ERROR: cannot load the locustfile(s) 'mine/missing.py,lab_plugin.py'" in message
    assert "mine/missing.py: no such file" in message
    assert "LOCUST_LOCUSTFILE=mine/<your file>.py" in message
