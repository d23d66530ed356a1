"""Figures drawn by the grader, from the small numbers in :mod:`autograder.engine.evidence`.

matplotlib is imported here and only here, on the first figure: grading runs that show
no figure (``grade --json``, ``pytest autograder``) never load it. Figures are built on
:class:`matplotlib.figure.Figure` with the Agg/SVG canvas (no pyplot, no display, no
global state) and returned as ``data:image/svg+xml;base64,...`` URIs, so a page that
embeds them works offline, from a file, and can run nothing from them.

Each function takes plain data and returns ``(alt_text, data_uri)``; the alt text is
plain (the caller escapes it). Every label is passed through :func:`_plain` so that a
``$`` never turns on matplotlib's math mode.
"""

from __future__ import annotations

import base64
import io
import math

__all__ = ["weights_figure", "uniform_figure", "layers_figure", "normalize_figure",
           "gradients_figure", "speed_figure", "training_figure", "confusion_figure", "overflow_figure",
           "score_histogram", "pass_rate_figure"]

YOURS, EXPECTED, OTHER, BAD = "#1f6fb4", "#d4572a", "#8c8c8c", "#b8322a"
_RC = {"svg.fonttype": "none", "svg.hashsalt": "foundations-autograder", "font.size": 8.5,
       "axes.titlesize": 9, "axes.spines.top": False, "axes.spines.right": False,
       "legend.fontsize": 7.5, "legend.frameon": False, "text.usetex": False}


def _plain(text) -> str:
    return str(text).replace("$", r"\$")


def _figure(width: float, height: float, ncols: int = 1):
    import matplotlib
    from matplotlib.figure import Figure
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(width, height), layout="constrained")
        axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def _uri(fig) -> str:
    import matplotlib
    buf = io.BytesIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _styled(fn):
    """Run a figure function with the kit's style (fonts, spines) in force."""
    def wrapped(*args, **kwargs):
        import matplotlib
        with matplotlib.rc_context(_RC):
            return fn(*args, **kwargs)
    wrapped.__name__, wrapped.__doc__ = fn.__name__, fn.__doc__
    return wrapped


@_styled
def weights_figure(panels: list[dict], experiment: dict | None = None) -> tuple[str, str]:
    """Histograms of the student's weights over the expected normal density, target std
    marked; with ``experiment``, the activation RMS through 8 layers beside them."""
    ncols = len(panels) + (1 if experiment else 0)
    fig, axes = _figure(3.3 * ncols, 2.7, ncols)
    for ax, p in zip(axes, panels):
        lo, hi, counts, sigma = p["lo"], p["hi"], p["counts"], p["sigma"]
        width = (hi - lo) / len(counts)
        total = max(sum(counts), 1)
        lefts = [lo + k * width for k in range(len(counts))]
        ax.bar(lefts, [c / (total * width) for c in counts], width=width, align="edge",
               color=YOURS, alpha=0.55, label=_plain(f"yours: std {_fmt(p.get('std'))}"))
        xs = [lo + (hi - lo) * k / 200 for k in range(201)]
        ax.plot(xs, [math.exp(-x * x / (2 * sigma * sigma)) / (sigma * math.sqrt(2 * math.pi)) for x in xs],
                color=EXPECTED, lw=1.6, label=_plain(f"expected N(0, {sigma:.4g}²)"))
        for s in (-sigma, sigma):
            ax.axvline(s, color=EXPECTED, ls="--", lw=1)
        ax.plot([], [], color=EXPECTED, ls="--", lw=1, label=_plain(f"target std ±{sigma:.4g} = {p['formula']}"))
        if p.get("outside"):
            ax.annotate(f"{p['outside']} beyond ±4σ", (1, 0.02), xycoords="axes fraction", ha="right",
                        fontsize=7, color=EXPECTED)
        ax.set_title(_plain(p["title"]), loc="left")
        ax.set_xlim(lo, hi)
        ax.set_ylim(0, ax.get_ylim()[1] * 1.55)          # room for the legend above the bell
        ax.set_yticks([])
        ax.set_xlabel("weight value")
        ax.legend(loc="upper left")
    if experiment:
        ax = axes[-1]
        layers = list(range(1, len(experiment["yours"]) + 1))
        for label, values in sorted(experiment["references"].items(), key=lambda kv: "Kaiming" in kv[0]):
            color = EXPECTED if "Kaiming" in label else OTHER     # the curve that keeps the signal
            ax.plot(layers, values, marker="o", ms=3, color=color, lw=1.2, label=_plain(label))
        yours = [v if v is not None and v > 0 else float("nan") for v in experiment["yours"]]
        ax.plot(layers, yours, marker="o", ms=4, color=YOURS, lw=2.2, label="your init")
        ax.set_yscale("log")
        ax.axhline(1.0, color="#cccccc", lw=0.8, zorder=0)
        ax.set_xticks(layers)
        ax.set_xlabel("layer (linear + ReLU)")
        ax.set_ylabel("RMS of activations")
        ax.set_title("Does the signal survive 8 layers?", loc="left")
        ax.legend(loc="best")
    names = ", ".join(p["title"] for p in panels)
    alt = f"Histogram of your weights ({names}) over the expected normal density"
    if experiment:
        alt += "; activation RMS after each of 8 linear+ReLU layers"
    return alt, _uri(fig)


@_styled
def uniform_figure(panels: list[dict]) -> tuple[str, str]:
    """Histograms of the student's weights over the target U(-b, b), with ±b (the bound)
    and ±b/√3 (the std it gives) marked."""
    fig, axes = _figure(max(4.2 * len(panels), 5.0), 3.0, len(panels))
    for ax, p in zip(axes, panels):
        lo, hi, counts, b = p["lo"], p["hi"], p["counts"], p["bound"]
        width = (hi - lo) / len(counts)
        total = max(p.get("n", 0) - p.get("not_finite", 0), 1)
        lefts = [lo + k * width for k in range(len(counts))]
        ax.bar(lefts, [c / (total * width) for c in counts], width=width, align="edge",
               color=YOURS, alpha=0.55, label=_plain(f"yours: std {_fmt(p.get('std'))}"))
        ax.plot([lo, -b, -b, b, b, hi], [0, 0, 1 / (2 * b), 1 / (2 * b), 0, 0], color=EXPECTED, lw=1.6,
                label=_plain(f"target U(-b, b), b = {b:.4g}"))
        top = max([c / (total * width) for c in counts] + [1 / (2 * b)]) * 1.15    # the marks stop here
        ax.vlines([-b, b], 0, top, color=EXPECTED, ls="--", lw=1)
        ax.vlines([-b / math.sqrt(3), b / math.sqrt(3)], 0, top, color=OTHER, ls=":", lw=1.2)
        ax.plot([], [], color=EXPECTED, ls="--", lw=1, label=_plain(f"±b = {p['formula']}"))
        ax.plot([], [], color=OTHER, ls=":", lw=1.2, label=_plain(f"±b/√3 = ±{b / math.sqrt(3):.4g}, the target std"))
        notes = []
        if p.get("outside"):
            notes.append(f"{p['outside']} beyond ±1.5b")
        if p.get("not_finite"):
            notes.append(f"{p['not_finite']} not finite")
        if notes:
            ax.annotate(", ".join(notes), (1, 0.02), xycoords="axes fraction", ha="right", fontsize=7,
                        color=EXPECTED)
        ax.set_title(_plain(_wrap(p["title"], 56)), loc="left")
        ax.set_xlim(lo, hi)
        ax.set_ylim(0, top * 1.75)                          # room for the legend above the marks
        ax.set_yticks([])
        ax.set_xlabel("weight value")
        ax.legend(loc="upper left", frameon=True, framealpha=0.9, edgecolor="none")
    fig.suptitle("Your weights should fill the box from -b to b, evenly", x=0.01, ha="left",
                 fontsize=9.5, fontweight="bold")
    names = "; ".join(p["title"] for p in panels)
    return (f"Histogram of your weights ({names}) over the target uniform U(-b, b), with ±b and ±b/√3 marked",
            _uri(fig))


LAYER_KINDS = {"default": "PyTorch's default init", "kaiming": "re-initialised (Kaiming)",
               "other": "stacks not built by conv_stack()", "mixed": "partly re-initialised stacks"}


@_styled
def layers_figure(layers: dict, fraction: dict | None = None) -> tuple[str, str]:
    """The std after each conv+ReLU layer, PyTorch's default against Kaiming's: the
    student's stacks (or the student's measurements) against the grader's."""
    fig, (ax,) = _figure(7.6, 3.2)
    mine = layers.get("of") == "layer_stats"
    start = layers.get("input")

    def curve(values):
        xs = list(range(0, len(values) + 1)) if start is not None else list(range(1, len(values) + 1))
        ys = ([start] if start is not None else []) + list(values)
        return xs, [v if isinstance(v, (int, float)) and v > 0 else float("nan") for v in ys]

    for kind, values in layers.get("grader", {}).items():
        color = EXPECTED if kind == "kaiming" else OTHER
        ax.plot(*curve(values), color=color, lw=3.5, alpha=0.35, marker="o", ms=6,
                label=_plain(f"grader: {LAYER_KINDS.get(kind, kind)}"))
    counts = layers.get("counts", {})
    for kind, values in layers.get("yours", {}).items():
        style = "-" if kind == "kaiming" else "--" if kind == "default" else ":"
        what = "your layer_stats" if mine else "your stacks"
        n = f", {counts[kind]} measured" if kind in counts else ""
        ax.plot(*curve(values), color=YOURS if kind != "other" else BAD, ls=style, lw=1.6, marker="o", ms=3,
                label=_plain(f"{what}: {LAYER_KINDS.get(kind, kind)}{n}"))
    if not mine and "kaiming" not in layers.get("yours", {}) and layers.get("yours"):
        ax.plot([], [], color=YOURS, ls="-", lw=1.6, label="your stacks: none re-initialised by kaiming_uniform_")
    ax.axhline(1.0, color="#bbbbbb", lw=0.8, zorder=0)
    ax.set_yscale("log")
    from matplotlib.ticker import FuncFormatter, LogLocator
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    n_layers = max([len(v) for v in (*layers.get("grader", {}).values(), *layers.get("yours", {}).values())] or [3])
    ax.set_xticks(range(0 if start is not None else 1, n_layers + 1),
                  (["input"] if start is not None else []) + [f"layer {k}" for k in range(1, n_layers + 1)])
    ax.set_ylabel("std of the activations")
    if mine:
        title = "Std after each conv+ReLU: your layer_stats should lie on the grader's"
    else:
        title = "Std after each conv+ReLU: the default shrinks it, Kaiming keeps it near 1"
    ax.set_title(title, loc="left")
    if fraction:
        lo, hi, n = fraction["lo"], fraction["hi"], fraction["n"]
        ax.annotate(_plain(f"your fraction_better(n_samples={n}) returned {fraction['got']:.3g};\n"
                           f"the grader expects {lo / n:.2f} to {hi / n:.2f}"),
                    (1.02, 0.02), xycoords="axes fraction", fontsize=7.5,
                    color=BAD if not lo <= round(fraction["got"] * n) <= hi else "#333333")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5))
    if mine:
        alt = "Std after each layer as your layer_stats measures it, against the grader's, default and Kaiming"
    else:
        alt = ("Std after each layer of the stacks your fraction_better measures, against the grader's: "
               "PyTorch's default against Kaiming")
    return alt, _uri(fig)


@_styled
def normalize_figure(stats: dict) -> tuple[str, str]:
    """Mean and std of x_train and x_valid: before, yours after, and the targets."""
    fig, (ax_mean, ax_std) = _figure(6.4, 2.9, 2)
    groups = ["x_train", "x_valid"]
    series = [("before", stats["before"], OTHER), ("yours after", stats.get("yours"), YOURS),
              ("target after", stats["target"], EXPECTED)]
    for k, (ax, what) in enumerate(((ax_mean, "mean"), (ax_std, "std"))):
        for j, (label, values, color) in enumerate(series):
            if not values:
                continue
            xs = [g + (j - 1) * 0.26 for g in range(len(groups))]
            heights = [values[name][k] if values[name][k] is not None else 0.0 for name in groups]
            bars = ax.bar(xs, heights, width=0.25, color=color, label=label)
            for bar, h in zip(bars, heights):
                ax.annotate(f"{h:.3f}", (bar.get_x() + bar.get_width() / 2, h), ha="center",
                            va="bottom" if h >= 0 else "top", fontsize=6.5)
        ax.axhline(0, color="#999999", lw=0.8)
        ax.set_xticks(range(len(groups)), groups)
        ax.set_title(f"{what}: yours should match the target", loc="left")
        ax.margins(y=0.18)
    handles, labels = ax_std.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels))
    return "Mean and standard deviation of x_train and x_valid before and after normalising", _uri(fig)


@_styled
def gradients_figure(grads: dict, tolerance: float | None = None) -> tuple[str, str]:
    """The relative error of each gradient against autograd, as bars on a log scale."""
    names = list(grads)
    fig, (ax,) = _figure(max(4.0, 0.9 * len(names) + 1.8), 2.6)
    floor = 1e-9
    values, colors, notes = [], [], []
    for name in names:
        v = grads[name]
        if v is None:
            values.append(floor), colors.append("#dddddd"), notes.append("not set")
        elif v == "inf" or not isinstance(v, (int, float)) or not math.isfinite(v):
            values.append(10.0), colors.append(BAD), notes.append("wrong shape")
        else:
            ok = tolerance is None or v <= tolerance
            values.append(max(v, floor)), colors.append(YOURS if ok else BAD), notes.append(f"{v:.1e}")
    bars = ax.bar(range(len(names)), values, color=colors)
    for bar, note in zip(bars, notes):
        ax.annotate(note, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center",
                    va="bottom", fontsize=7)
    if tolerance:
        ax.axhline(tolerance, color=EXPECTED, ls="--", lw=1, label=_plain(f"tolerance {tolerance:g}"))
        ax.legend(loc="upper left")
    ax.set_yscale("log")
    ax.set_ylim(floor / 2, 100)
    ax.set_xticks(range(len(names)), [_plain(n) for n in names])
    ax.set_ylabel("relative error vs autograd")
    ax.set_title("Gradients vs autograd (lower is better)", loc="left")
    return "Relative error of each gradient against autograd: " + ", ".join(
        f"{n} {t}" for n, t in zip(names, notes)), _uri(fig)


SPEED_LABELS = {"matmul_loops": "three loops", "matmul_elementwise": "elementwise (2 loops)",
                "matmul_broadcast": "broadcast (1 loop)", "matmul_einsum": "einsum", "@": "PyTorch @"}


@_styled
def speed_figure(speed: dict) -> tuple[str, str]:
    """The speed ladder: each version's time for the same product, log scale."""
    times = speed["seconds"]
    order = [k for k in SPEED_LABELS if k in times]
    fig, (ax,) = _figure(5.6, 0.42 * len(order) + 1.0)
    ys = list(range(len(order)))[::-1]
    ax.barh(ys, [times[k] for k in order], color=[EXPECTED if k == "@" else YOURS for k in order])
    for y, k in zip(ys, order):
        ax.annotate(_duration(times[k]), (times[k], y), xytext=(3, 0), textcoords="offset points",
                    va="center", fontsize=7)
    ax.set_yticks(ys, [SPEED_LABELS[k] for k in order])
    ax.set_xscale("log")
    ax.set_xlim(min(times.values()) / 3, max(times.values()) * 12)
    (n, k), (_, m) = speed["shapes"]
    ax.set_xlabel(f"seconds for a ({n}, {k}) @ ({k}, {m}) product, best of several runs")
    ax.set_title("The speed ladder: each step hands a loop to PyTorch", loc="left")
    return "Time of each matmul version against PyTorch's @ (log scale): " + ", ".join(
        f"{SPEED_LABELS[k]} {_duration(times[k])}" for k in order), _uri(fig)


@_styled
def training_figure(training: dict) -> tuple[str, str]:
    """The training loss over the steps of the student's epoch, against the grader's own
    epoch from the same start; the accuracies and the threshold in the title."""
    fig, (ax,) = _figure(5.6, 2.8)
    every = max(1, int(training.get("every") or 1))
    for key, label, color, lw, ls in (("yours", "your fit", YOURS, 2.2, "-"),
                                      ("grader", "grader's fit", EXPECTED, 1.1, "--")):
        values = [v if isinstance(v, (int, float)) and math.isfinite(v) else float("nan")
                  for v in training.get(key) or []]
        ax.plot([every * (k + 0.5) for k in range(len(values))], values, color=color, lw=lw, ls=ls,
                label=label)
    ax.axhline(math.log(10), color="#cccccc", lw=0.8, zorder=0)
    ax.annotate("log 10: a uniform guess", (0, math.log(10)), xytext=(2, 2), textcoords="offset points",
                fontsize=6.5, color=OTHER)
    ax.set_xlabel(_plain(f"step (batches of {training.get('bs')}, lr {training.get('lr')}, "
                         f"{training.get('images')} images; running mean over {every} steps)"))
    ax.set_ylabel("cross-entropy")
    ax.set_ylim(bottom=0)
    acc, ref, thr = training.get("accuracy"), training.get("grader_accuracy"), training.get("threshold")
    ax.set_title(_plain(f"Training loss: validation accuracy {_fmt(acc)} (grader's {_fmt(ref)}; "
                        f"needed {_fmt(thr)})"), loc="left")
    ax.legend(loc="upper right")
    return (f"Training loss over the steps of your fit against the grader's; validation accuracy "
            f"{_fmt(acc)}, the grader's {_fmt(ref)}, threshold {_fmt(thr)}"), _uri(fig)


@_styled
def confusion_figure(confusion: dict) -> tuple[str, str]:
    """The confusion matrix of the trained model on the validation digits, and a few of
    the digits it got wrong with what it read."""
    digits = confusion.get("digits") or []
    import matplotlib
    from matplotlib.figure import Figure
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(6.4, 3.2), layout="constrained")
        grid = fig.add_gridspec(2, 6, width_ratios=[1.1, 1.1, 1.1, 0.5, 0.5, 0.5])
        ax = fig.add_subplot(grid[:, :3])
        small = [fig.add_subplot(grid[k // 3, 3 + k % 3]) for k in range(min(6, len(digits)))]
    matrix = confusion["matrix"]
    ax.imshow([[math.log1p(v) for v in row] for row in matrix], cmap="Blues")
    for i, row in enumerate(matrix):
        for j, v in enumerate(row):
            if v and i != j:
                ax.annotate(str(v), (j, i), ha="center", va="center", fontsize=5.5, color=BAD)
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    ax.set_xlabel("predicted")
    ax.set_ylabel("label")
    ax.set_title(_plain(f"Validation digits: accuracy {_fmt(confusion.get('accuracy'))}"), loc="left")
    for a, d in zip(small, digits):
        a.imshow(d["pixels"], cmap="gray_r")
        a.set_xticks([])
        a.set_yticks([])
        a.set_title(_plain(f"{d['label']} read as {d['pred']}"), fontsize=7, color=BAD)
    wrong = ", ".join(f"{d['label']} read as {d['pred']}" for d in digits)
    return (f"Confusion matrix of your trained model on the validation digits (off-diagonal counts "
            f"in red); some digits it got wrong: {wrong}"), _uri(fig)


@_styled
def overflow_figure(overflow: dict) -> tuple[str, str]:
    """logsumexp of rows whose largest logit grows: the naive formula in float32 overflows
    to inf; the max trick, and the student's version, stay on the line."""
    fig, (ax,) = _figure(5.4, 2.8)
    xs = overflow["largest"]
    top = max(xs) * 1.15 + 10

    def finite(values):
        return [v if isinstance(v, (int, float)) else float("nan") for v in values]
    ax.plot(xs, finite(overflow["stable"]), color=EXPECTED, lw=1.4, label="stable (max trick)")
    naive = finite(overflow["naive"])
    ax.plot(xs, naive, color=OTHER, lw=1.2, ls="--", label="naive log(sum(exp(x))), float32")
    lost = [x for x, v in zip(xs, overflow["naive"]) if not isinstance(v, (int, float))]
    if lost:
        ax.scatter(lost, [top] * len(lost), marker="^", color=OTHER, s=14, label="naive: inf")
    ax.plot(xs, finite(overflow["yours"]), marker="o", ms=3.5, lw=0, color=YOURS, label="yours")
    bad = [x for x, v in zip(xs, overflow["yours"]) if not isinstance(v, (int, float))]
    if bad:
        ax.scatter(bad, [top] * len(bad), marker="x", color=BAD, s=24, label="yours: inf or nan")
    ax.axvline(88.72, color="#cccccc", lw=0.8, zorder=0)
    ax.annotate("e^88.7: float32's largest", (88.72, 0), xytext=(3, 3), textcoords="offset points",
                fontsize=6.5, color=OTHER)
    ax.set_xlabel("largest logit of the row")
    ax.set_ylabel("logsumexp of the row")
    ax.set_title("Where exp overflows: the max trick keeps logsumexp finite", loc="left")
    ax.legend(loc="upper left")
    return ("logsumexp of rows whose largest logit grows from 0 to " + f"{max(xs):g}: the naive formula "
            f"overflows beyond 88.7; yours " + ("gives inf or nan at " + ", ".join(f"{x:g}" for x in bad)
                                                 if bad else "stays finite")), _uri(fig)


@_styled
def score_histogram(percentages: list[float]) -> tuple[str, str]:
    """The class's score distribution, in percent of each notebook's points."""
    fig, (ax,) = _figure(5.0, 2.6)
    edges = [10 * k for k in range(11)]
    counts = [0] * 10
    for p in percentages:
        counts[min(int(p // 10), 9)] += 1
    ax.bar(edges[:-1], counts, width=9.2, align="edge", color=YOURS)
    for x, c in zip(edges[:-1], counts):
        if c:
            ax.annotate(str(c), (x + 4.6, c), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(edges, [f"{e}%" for e in edges])
    ax.set_xlim(0, 100)
    ax.set_ylabel("notebooks")
    ax.set_title(f"Score distribution ({len(percentages)} graded notebooks)", loc="left")
    ax.margins(y=0.15)
    return f"Histogram of scores over {len(percentages)} graded notebooks", _uri(fig)


@_styled
def pass_rate_figure(rows: list[tuple[str, int, int]]) -> tuple[str, str]:
    """Per exercise, the share of graded notebooks that passed it."""
    fig, (ax,) = _figure(5.0, 0.19 * len(rows) + 0.9)
    ys = list(range(len(rows)))[::-1]
    rates = [100 * p / g if g else 0.0 for _, p, g in rows]
    ax.barh(ys, rates, color=[YOURS if r >= 50 else BAD for r in rates])
    for y, (_, p, g), r in zip(ys, rows, rates):
        ax.annotate(f"{p}/{g}", (r, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=6.5)
    ax.set_yticks(ys, [_plain(name) for name, _, _ in rows], fontsize=6.5)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_xlim(0, 112)
    ax.set_xticks([0, 25, 50, 75, 100], ["0%", "25%", "50%", "75%", "100%"])
    ax.set_title("Pass rate per exercise (red: under half passed)", loc="left")
    return "Pass rate per exercise: " + ", ".join(f"{n} {p}/{g}" for n, p, g in rows), _uri(fig)


def _wrap(text: str, width: int) -> str:
    import textwrap
    return "\n".join(textwrap.wrap(str(text), width)) or str(text)


def _fmt(v) -> str:
    return "?" if v is None else f"{v:.4g}"


def _duration(seconds: float) -> str:
    for unit, scale in (("s", 1), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns"
