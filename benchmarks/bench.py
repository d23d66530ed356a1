"""Speed and memory of grading, side by side with baselines run in the same session.

    python benchmarks/bench.py                 # one student, and a class of 12
    python benchmarks/bench.py --class-size 200 --skip-baselines   # memory of a big class

Measures, each as the median of several runs of a fresh process (--repeat for one
student, --class-repeat for a class), the commands alternated round after round so
that a slow moment of the machine falls on all of them alike:

* one student: the notebook's own code as a plain script (baseline), against
  ``python -m autograder grade one.ipynb`` and ``pytest autograder --notebook one.ipynb``;
* a class: ``jupyter nbconvert --execute`` over the same notebooks one after another,
  and the plain scripts one after another (baselines), against
  ``python -m autograder grade *.ipynb --jobs 2 --json out.json`` and
  ``nbgrader autograde`` through the kit's configuration (``SandboxGrade.workers`` = the
  cores; with ``--nbgrader-sequential`` also one notebook at a time), and nbgrader's own
  work alone (the same configuration with nothing graded: a floor for autograde);
* memory: the peak proportional set size (PSS: shared pages split among the processes
  sharing them, so forked workers are not charged for the zygote's torch twice) of
  each worker and of the whole grading process tree, sampled from /proc.

It prints ratios; the goals are in docs/speed.md. Nothing here is asserted: a benchmark
reports, the test suite checks behaviour.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
SOLUTION = ROOT / "solutions" / "lesson8" / "02_fully_connected.ipynb"
# The notebook that trains: its checks run one epoch of the student's training loop.
TRAINING = ROOT / "solutions" / "lesson8" / "05_cross_entropy.ipynb"


def plain_script(notebook: Path) -> str:
    """The student's code of a notebook (test cells left out), as one script."""
    cells = json.loads(notebook.read_text())["cells"]
    code = []
    for cell in cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell["cell_type"] != "code" or (meta.get("grade") and not meta.get("solution")):
            continue
        code.append("".join(cell["source"]))
    return "\n\n".join(code) + "\n"


class TreeMemory:
    """Samples the memory (PSS) of a process tree: total, and the peak of each process."""

    def __init__(self, root_pid: int, interval: float = 0.25) -> None:
        self.root, self.interval = root_pid, interval
        self.peak_total, self.peak_by_pid, self.cmd, self.parent = 0, {}, {}, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _children(self) -> dict[int, list[int]]:
        tree: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                    tree.setdefault(ppid, []).append(int(entry))
                except (OSError, ValueError, IndexError):
                    pass
        return tree

    def _run(self) -> None:
        while not self._stop.is_set():
            tree, todo, total = self._children(), [self.root], 0
            while todo:
                pid = todo.pop()
                for child in tree.get(pid, []):
                    self.parent.setdefault(child, pid)
                    todo.append(child)
                try:
                    with open(f"/proc/{pid}/smaps_rollup") as f:
                        rss = next((int(line.split()[1]) * 1024 for line in f if line.startswith("Pss:")), 0)
                    if pid not in self.cmd:
                        with open(f"/proc/{pid}/cmdline", "rb") as f:
                            self.cmd[pid] = f.read().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    continue
                total += rss
                self.peak_by_pid[pid] = max(rss, self.peak_by_pid.get(pid, 0))
            self.peak_total = max(self.peak_total, total)
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def is_worker(self, pid: int) -> bool:
        """A spawned worker, or a process forked by a zygote (the zygote itself excluded)."""
        return "autograder.engine.worker" in self.cmd.get(pid, "") or (
            "autograder.engine.zygote" in self.cmd.get(pid, "")
            and "autograder.engine.zygote" in self.cmd.get(self.parent.get(pid, 0), ""))

    def worker_peak(self) -> int:
        return max((rss for pid, rss in self.peak_by_pid.items() if self.is_worker(pid)), default=0)


def timed(cmd: list[str], *, cwd: Path, env: dict | None = None, memory: bool = False):
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    mem = TreeMemory(proc.pid) if memory else None
    _, err = proc.communicate()
    elapsed = time.perf_counter() - start
    if mem:
        mem.stop()
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(map(str, cmd[:4]))} failed ({proc.returncode}):\n{err.decode()[-2000:]}")
    return elapsed, mem


def median(cmd_factory, repeat: int, **kwargs) -> float:
    return statistics.median(timed(cmd_factory(), **kwargs)[0] for _ in range(repeat))


def make_class(folder: Path, size: int) -> list[Path]:
    """A class of ``size`` correct submissions in several styles, cycled (buggy ones would
    flatter the baselines: a (N,1)-(N,) mse over 50,000 rows allocates 10 GB in a script)."""
    sources = [SOLUTION, *sorted((ROOT / "tests" / "submissions").glob("02_fully_connected-pass-*.ipynb"))]
    paths = []
    for i in range(size):
        path = folder / f"student{i:03d}.ipynb"
        shutil.copy(sources[i % len(sources)], path)
        paths.append(path)
    return paths


def row(name: str, seconds: float, base: float | None = None, goal: str = "") -> None:
    ratio = f"{seconds / base:6.2f}x" if base else "       "
    print(f"  {name:<52} {seconds:8.2f} s  {ratio}  {goal}")


NBGRADER_ALONE = """
# The benchmark's "nbgrader's own work": the kit's configuration with nothing graded
# (nbgrader's exporter, no SandboxGrade): reading, sanitizing, the gradebook, writing.
c.Autograde.exporter_class = "nbconvert.exporters.NotebookExporter"
c.Autograde.autograde_preprocessors = [p for p in c.Autograde.autograde_preprocessors
                                       if not p.endswith("SandboxGrade")]
"""


def course_for(tmp: Path, paths: list[Path], env: dict, *, alone: bool = False) -> Path:
    """A course with the kit's configuration and the class submitted (``alone``: grading off)."""
    course = tmp / ("course-alone" if alone else "course")
    course.mkdir()
    config = (ROOT / "nbgrader_config.py").read_text()
    (course / "nbgrader_config.py").write_text(config + (NBGRADER_ALONE if alone else ""))
    shutil.copytree(ROOT / "assignments", course / "assignments")
    for i, p in enumerate(paths):
        target = course / "submitted" / f"s{i:03d}" / "lesson8"
        target.mkdir(parents=True)
        shutil.copy(p, target / "02_fully_connected.ipynb")
    return course


def autograde(course: Path, env: dict, *extra: str) -> float:
    """One fresh ``nbgrader autograde`` of the whole class (gradebook and output reset)."""
    shutil.rmtree(course / "autograded", ignore_errors=True)
    (course / "gradebook.db").unlink(missing_ok=True)
    subprocess.run(["nbgrader", "generate_assignment", "lesson8", "--force"], cwd=course, env=env,
                   capture_output=True, check=True)
    return timed(["nbgrader", "autograde", "lesson8", *extra], cwd=course, env=env)[0]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each one-student command")
    parser.add_argument("--class-repeat", type=int, default=3, help="runs of each class command")
    parser.add_argument("--class-size", type=int, default=12)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--skip-baselines", action="store_true", help="only grade the class (memory runs)")
    parser.add_argument("--skip-nbconvert", action="store_true", help="leave out the slowest baseline")
    parser.add_argument("--skip-nbgrader", action="store_true")
    parser.add_argument("--nbgrader-sequential", action="store_true",
                        help="also time nbgrader autograde with SandboxGrade.workers = 1")
    args = parser.parse_args(argv)
    env = {**os.environ, "PATH": str(Path(PY).parent) + os.pathsep + os.environ.get("PATH", "")}

    with tempfile.TemporaryDirectory(prefix="autograder-bench-") as tmp:
        tmp = Path(tmp)
        one = tmp / "one.ipynb"
        shutil.copy(SOLUTION, one)
        script = tmp / "one.py"
        script.write_text(plain_script(one))
        trains = tmp / "trains.ipynb"
        shutil.copy(TRAINING, trains)
        trains_script = tmp / "trains.py"
        trains_script.write_text(plain_script(trains))

        if not args.skip_baselines:
            # Alternated, round after round, so that a slow moment of the machine falls on
            # every command alike; each figure is a median.
            commands = {
                "plain": [PY, str(script)],
                "cli": [PY, "-m", "autograder", "grade", str(one)],
                "pytest": [PY, "-m", "pytest", "autograder", "-q", "-p", "no:cacheprovider",
                           "--notebook", str(one)],
                "plain05": [PY, str(trains_script)],
                "cli05": [PY, "-m", "autograder", "grade", str(trains)],
            }
            # The training notebook's baseline runs with one thread, as the grader's worker does:
            # two threads on a busy 2-core machine slow its epoch several times over.
            one_thread = {**env, "OMP_NUM_THREADS": "1"}
            times = {name: [] for name in commands}
            for _ in range(args.repeat):
                for name, cmd in commands.items():
                    times[name].append(timed(cmd, cwd=tmp if name.startswith("plain") else ROOT,
                                             env=one_thread if name == "plain05" else env)[0])
            med = {name: statistics.median(t) for name, t in times.items()}
            print(f"One student (median of {args.repeat}, alternated):")
            row("plain script of the notebook's code (baseline)", med["plain"])
            row("python -m autograder grade one.ipynb", med["cli"], med["plain"], "goal <= 1.5x (aim 1.2x)")
            row("pytest autograder --notebook one.ipynb", med["pytest"], med["plain"], "goal <= 1.5x (aim 1.2x)")
            row("plain script of 05_cross_entropy's code, 1 thread (baseline)", med["plain05"])
            row("python -m autograder grade 05_cross_entropy.ipynb", med["cli05"], med["plain05"],
                f"adds {med['cli05'] - med['plain05']:.2f} s (goal: about 2 s, one epoch included)")

        folder = tmp / "class"
        folder.mkdir()
        paths = make_class(folder, args.class_size)
        grade_cmd = [PY, "-m", "autograder", "grade", *map(str, paths), "--jobs", str(args.jobs),
                     "--json", str(tmp / "out.json"), "--quiet"]
        if args.skip_baselines:
            print(f"\nA class of {args.class_size}:")
            grade, mem = timed(grade_cmd, cwd=ROOT, env=env, memory=True)
            row(f"autograder grade --jobs {args.jobs}", grade)
            print_memory(mem)
            return 0

        scripts = []
        for p in paths:
            s = p.with_suffix(".py")
            s.write_text(plain_script(p))
            scripts.append(s)
        nbgrader = not args.skip_nbgrader
        if nbgrader:
            course, alone = course_for(tmp, paths, env), course_for(tmp, paths, env, alone=True)
        runs: dict[str, list[float]] = {}
        mem = None
        for _ in range(args.class_repeat):
            runs.setdefault("plain", []).append(sum(timed([PY, str(s)], cwd=tmp, env=env)[0] for s in scripts))
            seconds, sampled = timed(grade_cmd, cwd=ROOT, env=env, memory=mem is None)
            mem = mem or sampled
            runs.setdefault("grade", []).append(seconds)
            if nbgrader:
                runs.setdefault("nbgrader", []).append(autograde(course, env, "--SandboxGrade.workers=0"))
                runs.setdefault("alone", []).append(autograde(alone, env))
                if args.nbgrader_sequential:
                    runs.setdefault("sequential", []).append(autograde(course, env, "--SandboxGrade.workers=1"))
        med = {name: statistics.median(t) for name, t in runs.items()}
        plain_all = med["plain"]
        print(f"\nA class of {args.class_size} (median of {args.class_repeat}, alternated):")
        row("plain scripts, one after another (baseline)", plain_all)
        nbconv = None
        if not args.skip_nbconvert:
            nbconv = sum(timed([PY, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
                                "--allow-errors", "--output-dir", str(tmp / "executed"), str(p)],
                               cwd=tmp, env=env)[0] for p in paths)
            row("jupyter nbconvert --execute, one after another (baseline, one run)", nbconv)
            row(f"autograder grade --jobs {args.jobs}  vs nbconvert", med["grade"], nbconv, "goal <= 0.25x")
        row(f"autograder grade --jobs {args.jobs}  vs plain scripts", med["grade"], plain_all, "goal <= 0.5x")
        if nbgrader:
            row("nbgrader autograde (workers = cores)  vs plain scripts", med["nbgrader"], plain_all,
                "goal <= 0.35x")
            if nbconv:
                row("nbgrader autograde (workers = cores)  vs nbconvert", med["nbgrader"], nbconv)
            if args.nbgrader_sequential:
                row("nbgrader autograde (workers = 1)  vs plain scripts", med["sequential"], plain_all)
            row("nbgrader's own work, nothing graded  vs plain scripts", med["alone"], plain_all)
        timing = {name: [round(t, 2) for t in ts] for name, ts in runs.items()}
        print(f"  every run, in seconds: {json.dumps(timing)}")
        print_memory(mem)
    return 0


def print_memory(mem) -> None:
    print(f"  peak memory (PSS): one worker {mem.worker_peak() / 2**20:.0f} MiB; whole grading tree "
          f"{mem.peak_total / 2**20:.0f} MiB (goal for 200 with --jobs 2: < 4096 MiB)")


if __name__ == "__main__":
    sys.exit(main())
