"""The lab: a panel to tune a worker pool by hand and watch the queue answer (E3 and friends).

Live, in JupyterLab, Notebook or VS Code: a backend switch (the virtual-time twin by default,
so a run answers at once; or the real queue on embedded fakeredis), sliders for workers,
arrival rate, service time, failure probability, retries, backoff policy, lease length,
worker crashes and job count;
the theory's prediction updates as the sliders move, but nothing runs until **Run** is
pressed; a progress bar follows the run; the charts (throughput, waits against Erlang C,
attempts against the retry law) are replaced in place; a table puts measured beside theory
and the checker's lost / duplicated / dead-lettered counts.

Headless (nbclient, nbval, a script) or without ipywidgets: :meth:`Lab.show` runs once with
its settings and shows the same charts and table as static output. ``JOBSIM_LAB=live`` or
``static`` (or ``show(live=...)``) overrides the detection.

Needs the ``notebook`` extra for the live panel: ``pip install 'jobsim[notebook]'``.

Example:
    >>> lab = Lab(LabSettings(workers=4, rate_per_s=3.0))   # doctest: +SKIP
    >>> lab.show()                                           # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Literal

from jobsim import theory
from jobsim.retry import RetryPolicy
from jobsim.sim.faults import FaultPlan
from jobsim.sim.lab_report import figure, formatted, png, summary_table, theory_note, verdict
from jobsim.sim.predict import Prediction, predictions
from jobsim.sim.result import RunResult
from jobsim.sim.runner import run
from jobsim.sim.setup import Setup
from jobsim.sim.virtual import unsupported
from jobsim.sim.workload import Exponential, Poisson, Workload

if TYPE_CHECKING:
    pass

Backoff = Literal["immediate", "fixed", "exponential", "full", "equal", "decorrelated"]
BACKOFFS: tuple[Backoff, ...] = ("immediate", "fixed", "exponential", "full", "equal",
                                 "decorrelated")  # fmt: skip
LabBackend = Literal["virtual", "embedded"]
BACKENDS: tuple[LabBackend, ...] = ("virtual", "embedded")
"""``virtual``: the discrete-event twin (exact per seed, instant); ``embedded``: the real
queue on an in-process fakeredis, run on the wall clock ``time_scale`` faster."""
LIVE_MARKERS = ("JPY_SESSION_NAME", "VSCODE_PID", "COLAB_RELEASE_TAG")
"""Environment variables a kernel started by a live frontend has: Jupyter Server (Lab,
Notebook 7, nbclassic) sets ``JPY_SESSION_NAME``; VS Code and Colab set the others."""


@dataclass(frozen=True, kw_only=True)
class LabSettings:
    """What the lab's controls set. Times are model seconds, run ``time_scale`` faster.

    Args:
        backend: ``virtual`` (the twin, default) or ``embedded`` (the real queue).
        workers: worker threads.
        rate_per_s: Poisson arrival rate, jobs per model second.
        mean_service_s: mean of the exponential service time.
        fail_probability: chance that an attempt fails.
        max_retries: retries per job.
        backoff: retry delay policy (``immediate``: no delay).
        lease_s: lease length (heartbeats renew it every third).
        crashes: worker threads that die mid-job during the run (the queueing formulas
            step aside then: crashes break their assumptions).
        jobs: jobs to submit.
        time_scale: wall seconds per model second.
        seed: seeds the workload and the crash times.
    """

    backend: LabBackend = "virtual"
    workers: int = 4
    rate_per_s: float = 2.5
    mean_service_s: float = 1.0
    fail_probability: float = 0.1
    max_retries: int = 3
    backoff: Backoff = "full"
    lease_s: float = 10.0
    crashes: int = 0
    jobs: int = 2000
    time_scale: float = 0.02
    seed: int = 1

    def workload(self) -> Workload:
        """The seeded workload these settings describe."""
        return Workload(
            jobs=self.jobs,
            arrival=Poisson(rate_per_s=self.rate_per_s),
            service=Exponential(mean_s=self.mean_service_s),
            fail_probability=self.fail_probability,
            max_retries=self.max_retries,
            time_scale=self.time_scale,
            seed=self.seed,
        )

    def faults(self) -> FaultPlan:
        """The worker crashes, seeded like the workload."""
        return FaultPlan(worker_crashes=self.crashes, seed=self.seed)

    def retry(self) -> RetryPolicy:
        """The backoff, model seconds: base a quarter of the mean service, cap 4 services."""
        if self.backoff == "immediate":
            return RetryPolicy.immediate()
        base = 0.25 * self.mean_service_s
        return RetryPolicy(kind=self.backoff, base_s=base, cap_s=16 * base)

    def setup(self) -> Setup:
        """Backend, workers, retry policy and lease (model seconds, as every setup's)."""
        return Setup(workers=self.workers, backend=self.backend, retry=self.retry(),
                     lease_s=self.lease_s)  # fmt: skip

    def utilisation(self) -> float:
        """``rho = lambda * E[A] * E[S] / c``: retries add to the load."""
        attempts = theory.expected_attempts(self.fail_probability, self.max_retries)
        return self.rate_per_s * attempts * self.mean_service_s / self.workers

    def predictions(self) -> Prediction:
        """What the theory predicts for these settings (see :mod:`jobsim.sim.predict`)."""
        return predictions(self.workload(), self.setup(), self.faults())

    def wall_s(self) -> float:
        """Roughly how long the arrivals take in wall seconds on the real queue."""
        return self.jobs / self.rate_per_s * self.time_scale

    def unsupported(self) -> list[str]:
        """What these settings ask of the virtual backend that it does not model (yet)."""
        return unsupported(self.faults(), self.setup()) if self.backend == "virtual" else []


def preview(settings: LabSettings) -> str:
    """One line of theory for the settings, shown before anything runs."""
    rho = settings.utilisation()
    text = f"utilisation rho = rate * E[A] * E[S] / c = {rho:.2f}"
    if rho >= 1:  # whatever else the settings say: no steady state to predict
        return f"{text}; no wait formula: {theory.unstable_reason(rho)}"
    predicted = settings.predictions()
    if predicted.applies:
        text += f"; Erlang C mean wait {predicted.wait_s:.3g} s"
    else:
        text += f"; {predicted.reason}"
    if predicted.attempts_per_job is not None and predicted.dead_letter_rate is not None:
        text += f"; attempts/job {predicted.attempts_per_job:.3f}"
        text += f"; dead letters {predicted.dead_letter_rate:.2%}"
    missing = settings.unsupported()
    if missing:
        return text + (f"; the virtual backend does not model {', '.join(missing)} yet: "
                       "switch the backend to embedded")  # fmt: skip
    if settings.backend == "virtual":
        return text + "; virtual backend: the run is exact and instant"
    return text + f"; about {settings.wall_s():.1f} wall s of arrivals on the real queue"


def is_live_frontend(environ: Mapping[str, str] | None = None) -> bool:
    """Whether widgets will render: ``JOBSIM_LAB`` if set (``live`` or ``static``), else
    whether a live frontend started this kernel (see :data:`LIVE_MARKERS`)."""
    env = os.environ if environ is None else environ
    forced = env.get("JOBSIM_LAB", "").strip().lower()
    if forced in ("live", "static"):
        return forced == "live"
    return _in_kernel() and any(env.get(key) for key in LIVE_MARKERS)


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def _widgets_available() -> bool:
    try:
        _untyped("ipywidgets")
    except ImportError:
        return False
    return True


def _untyped(module: str) -> Any:
    """Import a module that ships no type information (ipywidgets, IPython.display)."""
    return importlib.import_module(module)


class Lab:
    """The lab panel, or its static stand-in.

    Args:
        settings: where the controls start, and what a headless run uses.
    """

    def __init__(self, settings: LabSettings | None = None) -> None:
        self.settings = settings or LabSettings()
        self.result: RunResult | None = None

    def run(
        self,
        settings: LabSettings | None = None,
        *,
        progress: Callable[[int, int], None] | None = None,
    ) -> RunResult:
        """Run the queue with ``settings`` (default: the lab's) and keep the result."""
        chosen = settings or self.settings
        self.result = run(chosen.workload(), chosen.faults(), chosen.setup(),
                          progress=progress or False)  # fmt: skip
        return self.result

    def show(self, *, live: bool | None = None) -> None:
        """Show the live panel, or run once and show static output (see the module doc)."""
        live = is_live_frontend() if live is None else live
        if live and _widgets_available():
            _untyped("IPython.display").display(self.panel())
        else:
            self.show_static()

    def show_static(self) -> None:
        """Run once with the lab's settings; show the charts and print the summary."""
        print(preview(self.settings))
        result = self.run()
        if _in_kernel():
            shown = _untyped("IPython.display")
            shown.display(shown.Image(data=png(figure(result))))
        print(formatted(summary_table(result)).to_string())
        if theory_note(result):
            print(theory_note(result))
        print("(static output: in JupyterLab or Notebook, Lab().show() gives the live panel)")

    def panel(self) -> Any:
        """The ipywidgets panel (an ``ipywidgets.VBox``)."""
        return _Panel(self).box


class _Panel:
    """The widgets of a live lab, and what its Run button does."""

    def __init__(self, lab: Lab) -> None:
        w = _untyped("ipywidgets")
        self.lab = lab
        s = lab.settings
        style = {"description_width": "150px"}
        layout = w.Layout(width="420px")

        def slider(kind: Any, description: str, value: Any, **limits: Any) -> Any:
            return kind(value=value, description=description, style=style, layout=layout,
                        continuous_update=False, **limits)  # fmt: skip

        self.controls: dict[str, Any] = {
            "backend": w.Dropdown(options=BACKENDS, value=s.backend, description="backend",
                                  style=style, layout=layout),
            "workers": slider(w.IntSlider, "workers", s.workers, min=1, max=16),
            "rate_per_s": slider(w.FloatSlider, "arrivals (jobs/s)", s.rate_per_s,
                                 min=0.5, max=15.0, step=0.1),
            "mean_service_s": slider(w.FloatSlider, "mean service (s)", s.mean_service_s,
                                     min=0.2, max=3.0, step=0.05),
            "fail_probability": slider(w.FloatSlider, "failure probability",
                                       s.fail_probability, min=0.0, max=0.8, step=0.05),
            "max_retries": slider(w.IntSlider, "retries", s.max_retries, min=0, max=8),
            "backoff": w.Dropdown(options=BACKOFFS, value=s.backoff, description="backoff",
                                  style=style, layout=layout),
            "lease_s": slider(w.FloatLogSlider, "lease (s)", s.lease_s, base=10, min=0,
                              max=2, step=0.1),
            "crashes": slider(w.IntSlider, "worker crashes", s.crashes, min=0, max=5),
            "jobs": slider(w.IntSlider, "jobs", s.jobs, min=50, max=20_000, step=50),
        }  # fmt: skip
        self.theory = w.HTML()
        self.button = w.Button(description="Run", button_style="primary", icon="play")
        self.progress = w.IntProgress(value=0, min=0, max=s.jobs, description="finished")
        self.status = w.Label(value="Set the sliders, then press Run.")
        self.chart = w.Image(format="png")
        self.summary = w.HTML()
        for control in self.controls.values():
            control.observe(self._preview, names="value")
        self.button.on_click(self._run)
        self._preview()
        grid = w.GridBox(list(self.controls.values()),
                         layout=w.Layout(grid_template_columns="repeat(3, 430px)"))  # fmt: skip
        note = w.HTML(
            f"<small>Times are model seconds (on the embedded backend run {1 / s.time_scale:g} "
            "times faster; keep the job count low there). The theory updates as you move the "
            "sliders; the queue runs only when you press Run.</small>"
        )
        self.box = w.VBox([
            grid, self.theory, w.HBox([self.button, self.progress, self.status]),
            self.chart, self.summary, note,
        ])  # fmt: skip

    def settings(self) -> LabSettings:
        """The settings the controls show now."""
        values = {name: control.value for name, control in self.controls.items()}
        kept = {f.name: getattr(self.lab.settings, f.name) for f in fields(LabSettings)}
        return LabSettings(**{**kept, **values})

    def _preview(self, change: object = None) -> None:
        self.theory.value = f"<b>Theory:</b> {preview(self.settings())}"

    def _report(self, done: int, total: int) -> None:
        self.progress.max = max(total, 1)
        self.progress.value = done

    def _run(self, button: object = None) -> None:
        settings = self.settings()
        self.button.disabled = True
        self.status.value = "running..."
        self.progress.value = 0
        try:
            result = self.lab.run(settings, progress=self._report)
            self.chart.value = png(figure(result))
            table = summary_table(result)
            self.summary.value = formatted(table).to_html()
            self.status.value = f"done in {result.summary.wall_s:.1f} s. {verdict(result)}"
        except Exception as exc:  # shown in the panel: a callback's traceback would be lost
            self.status.value = f"run failed: {type(exc).__name__}: {exc}"
        finally:
            self.button.disabled = False
