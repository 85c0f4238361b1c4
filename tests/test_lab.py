"""The lab panel: its settings map onto the simulator, the theory preview needs no run, the
Run button runs once and updates progress, charts and summary in place, and headless it
degrades to a static run."""

from __future__ import annotations

from dataclasses import replace

import matplotlib
import pytest

from jobsim.retry import RetryPolicy
from jobsim.sim.lab import Lab, LabSettings, is_live_frontend, preview
from jobsim.sim.lab_report import figure, formatted, png, summary_table, verdict

matplotlib.use("Agg")

TINY = LabSettings(jobs=60, rate_per_s=2.0, time_scale=0.002, seed=4)


@pytest.fixture(scope="module")
def tiny_lab() -> Lab:
    lab = Lab(TINY)
    lab.run()
    return lab


def test_settings_map_onto_workload_faults_and_setup_in_model_seconds() -> None:
    settings = replace(TINY, workers=3, lease_s=10.0, crashes=2, backoff="full")
    workload, setup = settings.workload(), settings.setup()
    assert (workload.jobs, workload.arrival.rate_per_s, workload.seed) == (60, 2.0, 4)
    assert workload.service.mean_s == 1.0 and workload.max_retries == 3
    assert setup.workers == 3 and setup.lease_s == 10.0
    assert settings.faults().worker_crashes == 2
    assert setup.retry == RetryPolicy(kind="full", base_s=0.25, cap_s=4.0)
    assert replace(TINY, backoff="immediate").retry() == RetryPolicy.immediate()


def test_the_preview_states_the_load_and_warns_when_unstable() -> None:
    """rho = lambda * E[A] * E[S] / c, retries included; above 1 the theory says unstable."""
    settings = replace(TINY, rate_per_s=3.0, workers=4, fail_probability=0.0)
    assert settings.utilisation() == pytest.approx(0.75)
    assert "0.75" in preview(settings) and "Erlang C mean wait" in preview(settings)
    assert "unstable" in preview(replace(settings, workers=2))
    assert "left out" in preview(replace(settings, crashes=1))  # crashes break M/M/c


def test_the_lab_runs_the_twin_by_default_and_the_real_queue_on_request() -> None:
    """The backend switch: virtual by default (exact per seed), embedded on request; what
    the twin does not model yet is said in the preview, before anything runs."""
    assert TINY.backend == "virtual" and TINY.setup().backend == "virtual"
    first, second = Lab(TINY).run(), Lab(TINY).run()
    assert first.jobs.equals(second.jobs)  # bit-identical per seed
    real = replace(TINY, backend="embedded")
    assert real.setup().backend == "embedded" and "wall s" in preview(real)
    assert replace(TINY, crashes=1, backend="embedded").unsupported() == []


def test_the_preview_names_what_the_twin_does_not_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Should the twin refuse a setting, the preview says so before anything runs."""
    import jobsim.sim.lab as lab_module

    monkeypatch.setattr(lab_module, "unsupported", lambda faults, setup: ["worker_crashes"])
    text = preview(replace(TINY, crashes=1))
    assert "does not model worker_crashes" in text and "embedded" in text


def test_the_summary_puts_measured_beside_theory_and_the_checker_counts(tiny_lab: Lab) -> None:
    assert tiny_lab.result is not None
    table = summary_table(tiny_lab.result)
    for metric in ("mean wait (model s)", "attempts per job", "lost", "duplicated (fenced)",
                   "dead-lettered"):  # fmt: skip
        assert metric in table.index
    assert table.loc["lost", "measured"] == 0
    text = formatted(table)
    assert text.loc["lost", "measured"] == "0" and list(table.columns) == ["measured", "theory"]
    assert table.loc["queue cost per attempt (wall ms)", "measured"] == 0  # the twin has none
    assert verdict(tiny_lab.result).startswith("valid: True, lost: 0")


def test_the_figure_has_three_titled_labelled_charts(tiny_lab: Lab) -> None:
    assert tiny_lab.result is not None
    fig = figure(tiny_lab.result)
    assert len(fig.axes) == 3
    for ax in fig.axes:
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert png(fig).startswith(b"\x89PNG")


def test_live_or_static_follows_the_override_then_the_frontend() -> None:
    """JOBSIM_LAB forces either; otherwise live only inside a kernel a frontend started."""
    assert is_live_frontend({"JOBSIM_LAB": "live"})
    assert not is_live_frontend({"JOBSIM_LAB": "static", "JPY_SESSION_NAME": "x.ipynb"})
    assert not is_live_frontend({"JPY_SESSION_NAME": "x.ipynb"})  # pytest is not a kernel
    assert not is_live_frontend({})


def test_headless_show_runs_once_and_prints_a_static_summary(
    capsys: pytest.CaptureFixture[str],
) -> None:
    lab = Lab(TINY)
    lab.show(live=False)
    out = capsys.readouterr().out
    assert lab.result is not None and lab.result.summary.submitted == 60
    assert "utilisation rho" in out and "lost" in out and "static output" in out


def test_moving_a_slider_updates_the_theory_without_running() -> None:
    from jobsim.sim.lab import _Panel

    lab = Lab(TINY)
    panel = _Panel(lab)
    panel.controls["workers"].value = 1
    assert "unstable" in panel.theory.value
    assert panel.settings().workers == 1 and panel.settings().time_scale == TINY.time_scale
    assert lab.result is None


def test_the_run_button_runs_once_and_updates_progress_charts_and_summary() -> None:
    from jobsim.sim.lab import _Panel

    lab = Lab(TINY)
    panel = _Panel(lab)
    panel.controls["fail_probability"].value = 0.3
    panel.button.click()
    assert lab.result is not None and lab.result.workload.fail_probability == 0.3
    assert panel.progress.value == panel.progress.max == 60
    assert bytes(panel.chart.value).startswith(b"\x89PNG")
    assert "lost" in panel.summary.value and panel.status.value.startswith("done")
    assert not panel.button.disabled


def test_a_failed_run_is_reported_in_the_panel(monkeypatch: pytest.MonkeyPatch) -> None:
    from jobsim.sim.lab import _Panel

    lab = Lab(TINY)
    panel = _Panel(lab)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("redis went away")

    monkeypatch.setattr(lab, "run", broken)
    panel.button.click()
    assert panel.status.value == "run failed: RuntimeError: redis went away"
    assert not panel.button.disabled


@pytest.mark.parametrize("workers", [2, 1])  # rho = 1.39 and 2.78 with the default settings
def test_an_unstable_run_on_the_twin_says_why_there_is_no_wait_formula(
    workers: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """rho >= 1: the preview, the verdict and the static output print the theory's reason
    where the wait formula would be, and the summary's theory cell is blank, not an error."""
    settings = replace(LabSettings(seed=1), workers=workers, jobs=400)
    rho = settings.utilisation()
    assert rho >= 1
    reason = f"unstable: rho = {rho:.2f} >= 1, the queue grows without bound"
    assert preview(settings).endswith(f"no wait formula: {reason}")
    lab = Lab(settings)
    lab.show(live=False)
    assert lab.result is not None and lab.result.summary.valid
    assert verdict(lab.result).endswith(f"; no wait formula: {reason}")
    assert f"no wait formula: {reason}" in capsys.readouterr().out
    table = formatted(summary_table(lab.result))
    assert table.loc["mean wait (model s)", "theory"] == ""
    assert table.loc["mean wait (model s)", "measured"] != ""
