"""lab-locust, the master's launcher: report paths it cannot write are moved, never left to crash the master."""

from __future__ import annotations

from pathlib import Path

from lab_locust.launch import with_writable_reports


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
