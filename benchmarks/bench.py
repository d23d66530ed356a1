"""Speed and memory of grading, side by side with baselines run in the same session.

    python benchmarks/bench.py                 # one student, and a class of 12
    python benchmarks/bench.py --class-size 200 --skip-baselines   # memory of a big class

Measures, each as the median of --repeat runs of a fresh process:

* one student: the notebook's own code as a plain script (baseline), against
  ``python -m autograder grade one.ipynb`` and ``pytest autograder --notebook one.ipynb``;
* a class: ``jupyter nbconvert --execute`` over the same notebooks one after another,
  and the plain scripts one after another (baselines), against
  ``python -m autograder grade *.ipynb --jobs 2 --json out.json`` and
  ``nbgrader autograde`` through the kit's configuration (``SandboxGrade.workers`` = the
  cores; with ``--nbgrader-sequential`` also one notebook at a time);
* memory: the peak proportional set size (PSS: shared pages split among the processes
  sharing them, so forked workers are not charged for the zygote's torch twice) of
  each worker and of the whole grading process tree, sampled from /proc.

It prints ratios; the goals are in the README. Nothing here is asserted: a benchmark
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
        return "autograder.worker" in self.cmd.get(pid, "") or (
            "autograder.zygote" in self.cmd.get(pid, "")
            and "autograder.zygote" in self.cmd.get(self.parent.get(pid, 0), ""))

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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--class-size", type=int, default=12)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--skip-baselines", action="store_true", help="only grade the class (memory runs)")
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

        if not args.skip_baselines:
            print(f"One student (median of {args.repeat}):")
            plain = median(lambda: [PY, str(script)], args.repeat, cwd=tmp, env=env)
            row("plain script of the notebook's code (baseline)", plain)
            cli = median(lambda: [PY, "-m", "autograder", "grade", str(one)], args.repeat, cwd=ROOT, env=env)
            row("python -m autograder grade one.ipynb", cli, plain, "goal <= 1.5x (aim 1.2x)")
            pyt = median(lambda: [PY, "-m", "pytest", "autograder", "-q", "-p", "no:cacheprovider",
                                  "--notebook", str(one)], args.repeat, cwd=ROOT, env=env)
            row("pytest autograder --notebook one.ipynb", pyt, plain, "goal <= 1.5x (aim 1.2x)")

        folder = tmp / "class"
        folder.mkdir()
        paths = make_class(folder, args.class_size)
        print(f"\nA class of {args.class_size} (one run each):")
        grade, mem = timed([PY, "-m", "autograder", "grade", *map(str, paths), "--jobs", str(args.jobs),
                            "--json", str(tmp / "out.json"), "--quiet"], cwd=ROOT, env=env, memory=True)
        if not args.skip_baselines:
            scripts = []
            for p in paths:
                s = p.with_suffix(".py")
                s.write_text(plain_script(p))
                scripts.append(s)
            plain_all = sum(timed([PY, str(s)], cwd=tmp, env=env)[0] for s in scripts)
            row("plain scripts, one after another (baseline)", plain_all)
            nbconv = sum(timed([PY, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
                                "--allow-errors", "--output-dir", str(tmp / "executed"), str(p)],
                               cwd=tmp, env=env)[0] for p in paths)
            row("jupyter nbconvert --execute, one after another (baseline)", nbconv)
            row(f"autograder grade --jobs {args.jobs}  vs nbconvert", grade, nbconv, "goal <= 0.25x")
            row(f"autograder grade --jobs {args.jobs}  vs plain scripts", grade, plain_all, "goal <= 0.5x")
        else:
            row(f"autograder grade --jobs {args.jobs}", grade)
        print(f"  peak memory (PSS): one worker {mem.worker_peak() / 2**20:.0f} MiB; whole grading tree "
              f"{mem.peak_total / 2**20:.0f} MiB (goal for 200 with --jobs 2: < 4096 MiB)")

        if not args.skip_nbgrader and not args.skip_baselines:
            course = tmp / "course"
            course.mkdir()
            shutil.copy(ROOT / "nbgrader_config.py", course)
            shutil.copytree(ROOT / "assignments", course / "assignments")
            subprocess.run(["nbgrader", "generate_assignment", "lesson8", "--force"], cwd=course, env=env,
                           capture_output=True, check=True)
            for i, p in enumerate(paths):
                target = course / "submitted" / f"s{i:03d}" / "lesson8"
                target.mkdir(parents=True)
                shutil.copy(p, target / "02_fully_connected.ipynb")
            runs = [("workers = cores", 0)] + ([("workers = 1", 1)] if args.nbgrader_sequential else [])
            for label, workers in runs:
                shutil.rmtree(course / "autograded", ignore_errors=True)
                (course / "gradebook.db").unlink(missing_ok=True)
                subprocess.run(["nbgrader", "generate_assignment", "lesson8", "--force"], cwd=course,
                               env=env, capture_output=True, check=True)
                nbg, _ = timed(["nbgrader", "autograde", "lesson8", f"--SandboxGrade.workers={workers}"],
                               cwd=course, env=env)
                row(f"nbgrader autograde ({label})  vs nbconvert", nbg, nbconv)
                row(f"nbgrader autograde ({label})  vs plain scripts", nbg, plain_all,
                    "goal <= 0.35x" if workers == 0 else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
