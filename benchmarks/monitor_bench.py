"""What the monitors cost the champion: drift, the request log, a shadow, and all three at once.

Trains the tutorial's forest as ``iris`` version 1 and a 50-tree challenger as version 2
in a repository, then starts ``flaskserve serve`` (``--workers``, compiled runtime) seven
times on free loopback ports. The tutorial's forest answers in every configuration: those
without a shadow serve a copy of the repository without version 2, which would otherwise
answer as the highest version.

- everything off (``FLASKSERVE_DRIFT=0``, no log, no shadow): the baseline, twice: the
  second server differs from the first only by chance, which shows the run's noise;
- drift counting on (the default);
- the request log at a 10% sample, and at 100%;
- a shadow challenger (version 2) scoring 100% of the requests;
- all three (drift, the log at 100%, the shadow at 100%).

Each is loaded with wrk at 16 connections with the tutorial's row, ``--rounds`` times in
turn (so the machine's drift falls on all of them; each round starts one configuration
later, so none always follows another). Two figures set each beside the baseline, the
geometric mean of the two all-off servers: the ratio of the medians over the rounds
(requests/s and p99, each median taken on its own), and the median of each round's ratio
to the same round's baseline, with the interval that holds that median with at least 95%
confidence (a sign test's: no assumption on the rounds' distribution). The two all-off
servers' own intervals show what the run can tell apart. A second table gives the CPU per request over all rounds (``/proc``): the workers'
request threads, their other threads (drift's, the sender's) and their monitor processes
(the log's and the shadow's work), which shows where a monitor's cost lands, and how long
the request threads waited for a core. A third gives, from each server's ``/metrics``,
what the monitors kept and dropped over the whole run.

With ``--think-ms N`` each connection waits N ms before each request, so the same load
stays below what the server can answer: the figures then compare latency at equal load,
where the monitors' work fits in the CPU the answers leave.

    python benchmarks/monitor_bench.py [--duration 3] [--rounds 15] [--workers 2] [--think-ms 0]

Traffic goes to 127.0.0.1 only, and every load run is bounded in time.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import requests
from serve_bench import BIN, ROW, _free_port, _wait_ready, _wrk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=3, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--think-ms",
        type=int,
        default=0,
        help="each connection waits this long before each request: the same load below capacity",
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="run only the configurations whose name starts with NAME (repeatable);"
        " 'all off' always runs",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flaskserve-monitors-") as tmp:
        work = Path(tmp)
        champion, with_challenger = _repositories(work)
        servers = _configurations(work, args.only)
        running = [
            _start(with_challenger if "--shadow" in extra else champion, extra, env, args.workers)
            for extra, env in servers.values()
        ]
        try:
            for url, _ in running:
                _wait_ready(url, ROW)
                _wrk(url, 2, 4, work, ROW)
            runs: dict[str, list[tuple[float, float, float, int]]] = {name: [] for name in servers}
            ticks: dict[str, list[tuple[int, ...]]] = {name: [] for name in servers}
            pairs = list(zip(servers, running, strict=True))
            for round_number in range(args.rounds):
                # each round starts one configuration later, so none always follows another
                # (whose monitor process may still be finishing) or always opens a round
                turn = round_number % len(pairs)
                for name, (url, process) in pairs[turn:] + pairs[:turn]:
                    before = _thread_ticks(process.pid)
                    runs[name].append(
                        _wrk(url, args.duration, 16, work, ROW, think_ms=args.think_ms)
                    )
                    after = _thread_ticks(process.pid)
                    ticks[name].append(tuple(a - b for a, b in zip(after, before, strict=True)))
                print(f"round {round_number + 1} of {args.rounds} done", file=sys.stderr)
            kept = {name: _kept(url) for name, (url, _) in zip(servers, running, strict=True)}
        finally:
            for _, process in running:
                os.killpg(process.pid, signal.SIGTERM)
            for _, process in running:
                process.wait(timeout=30)
    _print(runs, args)
    _print_ticks(runs, ticks, args.duration)
    _print_kept(kept)


def _thread_ticks(server: int) -> tuple[int, int, int, int, int, int]:
    """CPU ticks of the workers' request threads (user, system), of their other threads
    and of their monitor processes; the request threads' context switches (each wait
    for the interpreter is one) and their nanoseconds spent runnable but waiting for a
    core (``schedstat``).

    A worker of the compiled runtime answers on its main thread (its id is the worker's
    pid); the drift, metrics and native-build threads are the others; the request log
    and shadows run in a child of each worker.
    """
    user = system = other = monitors = switches = waited = 0
    for pid in _children(server):
        for task in Path(f"/proc/{pid}/task").glob("*"):
            stat = _stat(task)
            if task.name == str(pid):
                user, system = user + stat[11], system + stat[12]
            else:
                other += stat[11] + stat[12]
        switches += _context_switches(Path(f"/proc/{pid}/task/{pid}/status"))
        waited += _run_queue_wait(Path(f"/proc/{pid}/task/{pid}/schedstat"))
        for child in _children(pid):
            for task in Path(f"/proc/{child}/task").glob("*"):
                stat = _stat(task)
                monitors += stat[11] + stat[12]
    return user, system, other, monitors, switches, waited


def _run_queue_wait(schedstat: Path) -> int:
    try:
        return int(schedstat.read_text().split()[1])
    except OSError:  # the worker ended meanwhile
        return 0


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(p) for p in found.stdout.split()]


def _stat(task: Path) -> list[int]:
    """The numeric fields of a thread's ``stat`` after its name (``[11]`` user ticks,
    ``[12]`` system ticks); zeros for a thread that ended."""
    try:
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # the thread ended meanwhile
        return [0] * 13
    return [int(f) if f.lstrip("-").isdigit() else 0 for f in fields[:13]]


def _context_switches(status: Path) -> int:
    try:
        lines = status.read_text().splitlines()
    except OSError:  # the worker ended meanwhile
        return 0
    return sum(int(line.split()[1]) for line in lines if "ctxt_switches:" in line)


def _print_ticks(
    runs: dict[str, list[tuple[float, float, float, int]]],
    ticks: dict[str, list[tuple[int, ...]]],
    seconds: int,
) -> None:
    """Per request, over every round: where each configuration's CPU went."""
    hertz = os.sysconf("SC_CLK_TCK")
    print(
        "\n| monitors | request threads, µs CPU a request (user + system) | other threads |"
        " monitor processes | request threads' context switches a request |"
        " request threads' wait for a core, µs a request |\n|---|---|---|---|---|---|"
    )
    for name, measured in ticks.items():
        answered = sum(run[0] for run in runs[name]) * seconds
        cpu = [sum(m[i] for m in measured) / hertz / answered * 1e6 for i in range(4)]
        switches = sum(m[4] for m in measured) / answered
        waited = sum(m[5] for m in measured) / answered / 1e3
        print(
            f"| {name} | {cpu[0] + cpu[1]:.0f} ({cpu[0]:.0f} + {cpu[1]:.0f}) | {cpu[2]:.1f} |"
            f" {cpu[3]:.1f} | {switches:.2f} | {waited:.0f} |"
        )


def _kept(url: str) -> dict[str, float]:
    """What the monitors took and dropped over the whole run, from ``/metrics``."""
    text = requests.get(f"{url}/metrics", timeout=10).text
    totals: dict[str, float] = {}
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in _KEPT and not line.startswith("#"):
            label = (
                name
                if name != "flaskserve_shadow_rows_total"
                else f"{name} {line.split('outcome=')[1][:6]}"
            )
            totals[label] = totals.get(label, 0.0) + float(line.rsplit(" ", 1)[1])
    return totals


_KEPT = (
    "flaskserve_requests_total",
    "flaskserve_log_dropped_total",
    "flaskserve_shadow_rows_total",
    "flaskserve_shadow_dropped_total",
)


def _print_kept(kept: dict[str, dict[str, float]]) -> None:
    print(
        "\n| monitors | requests answered | log rows dropped | shadow rows compared | shadow requests dropped |\n|---|---|---|---|---|"
    )
    for name, totals in kept.items():
        compared = sum(v for k, v in totals.items() if k.startswith("flaskserve_shadow_rows_total"))
        print(
            f"| {name} | {totals.get('flaskserve_requests_total', 0):,.0f} |"
            f" {totals.get('flaskserve_log_dropped_total', 0):,.0f} | {compared:,.0f} |"
            f" {totals.get('flaskserve_shadow_dropped_total', 0):,.0f} |"
        )


def _repositories(work: Path) -> tuple[Path, Path]:
    """A repository of the tutorial's forest alone, and one with the challenger beside it."""
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    from flaskserve import save_model

    root = work / "models"
    subprocess.run(
        [str(BIN / "flaskserve"), "train", "--out", str(root / "iris" / "1")],
        check=True,
        capture_output=True,
    )
    x, y = load_iris(return_X_y=True)
    challenger = RandomForestClassifier(n_estimators=50, random_state=7).fit(x, y)
    names = list(ROW)
    save_model(
        challenger, root / "iris" / "2", sample=x, feature_names=names, name="iris", version=2
    )
    alone = work / "champion"
    shutil.copytree(root / "iris" / "1", alone / "iris" / "1")
    return alone, root


def _configurations(
    work: Path, only: list[str] | None = None
) -> dict[str, tuple[list[str], dict[str, str]]]:
    off = {"FLASKSERVE_DRIFT": "0"}
    shadow = ["--shadow", "iris=2@1"]
    every = {
        "all off": (shadow[:0], off),
        "all off, again": (shadow[:0], off),  # a second server alike: the run's own noise
        "drift": ([], {}),
        "request log, 10%": (["--log-dir", str(work / "log10"), "--log-sample", "0.1"], off),
        "request log, 100%": (["--log-dir", str(work / "log100")], off),
        "shadow, 100%": (shadow, off),
        "all three (log 100%)": ([*shadow, "--log-dir", str(work / "log-all")], {}),
    }
    wanted = ["all off", *(only or every)]
    return {name: how for name, how in every.items() if any(map(name.startswith, wanted))}


def _start(
    repository: Path, extra: list[str], env: dict[str, str], workers: int
) -> tuple[str, subprocess.Popen[bytes]]:
    port = _free_port()
    command = [str(BIN / "flaskserve"), "serve", str(repository), "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--workers", str(workers), *extra],
        env={**os.environ, "FLASKSERVE_POLL_SECONDS": "0", **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    return f"http://127.0.0.1:{port}", process


def _print(
    runs: dict[str, list[tuple[float, float, float, int]]], args: argparse.Namespace
) -> None:
    """Each figure's median over the rounds, taken on its own (the round with the median
    req/s need not be the one with the median p99), against the all-off servers'; then the
    median of each round's ratio to the same round's all-off servers, with the interval
    that holds it with at least 95% confidence, whatever the rounds' distribution.

    The reference is the geometric mean of the two all-off servers (of the one, with
    ``--only``): one server's luck (a slow first round, its workers' placement) would
    otherwise move every ratio at once.
    """
    medians = {
        name: [_median([run[i] for run in values]) for i in range(3)]
        for name, values in runs.items()
    }
    offs = [name for name in runs if name.startswith("all off")]
    base_rps, base_p99 = (math.prod(medians[n][i] for n in offs) ** (1 / len(offs)) for i in (0, 2))
    base = [
        tuple(math.prod(runs[n][r][i] for n in offs) ** (1 / len(offs)) for i in (0, 2))
        for r in range(args.rounds)
    ]
    print(
        f"\n{os.cpu_count()} cores, {args.workers} workers, wrk c=16"
        + (f" each waiting {args.think_ms} ms a request" if args.think_ms else "")
        + f", {args.duration} s runs, median of {args.rounds} rounds; ÷ all off: against"
        f" the geometric mean of the {len(offs)} all-off servers\n\n"
        "| monitors | req/s | ÷ all off | p50 / p99 ms | p99 ÷ all off |"
        " req/s ÷ all off, by round | p99 ÷ all off, by round | errors |\n"
        "|---|---|---|---|---|---|---|---|"
    )
    for name, (rps, p50, p99) in medians.items():
        paired = [
            _interval([run[i] / ref[j] for run, ref in zip(runs[name], base, strict=True)])
            for j, i in enumerate((0, 2))
        ]
        errors = sum(run[3] for run in runs[name])
        print(
            f"| {name} | {rps:,.0f} | {rps / base_rps:.1%} | {p50:.2f} / {p99:.2f} |"
            f" {p99 / base_p99:.1%} | {paired[0]} | {paired[1]} | {errors} |"
        )
    print("\n| monitors | rounds (req/s) | rounds (p99 ms) |\n|---|---|---|")
    for name, values in runs.items():
        rounds = " / ".join(f"{run[0]:,.0f}" for run in values)
        print(f"| {name} | {rounds} | {' / '.join(f'{run[2]:.2f}' for run in values)} |")


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _interval(ratios: list[float]) -> str:
    """The median ratio, and the order statistics that bound the true median with at least
    95% confidence (the sign test's interval); too few rounds give the median alone."""
    ordered, n = sorted(ratios), len(ratios)
    # the largest k with P(Binomial(n, 1/2) < k) <= 2.5%: [x_k, x_(n+1-k)] holds the median
    below, k = 0.0, 0
    while below + math.comb(n, k) / 2**n <= 0.025:
        below += math.comb(n, k) / 2**n
        k += 1
    median = f"{_median(ratios):.1%}"
    return f"{median} [{ordered[k - 1]:.1%}, {ordered[n - k]:.1%}]" if k else median


if __name__ == "__main__":
    main()
