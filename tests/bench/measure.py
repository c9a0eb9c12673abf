"""What a benchmark run measures, read from the kernel and from h2load.

CPU time comes from /proc/PID/stat (utime + stime of every process of a server's tree, plus what
its exited children left in cutime + cstime): the CPU a server spent, whatever else the machine
did meanwhile, which makes CPU per request the most noise-proof figure on a shared 2-core box.
Memory comes from /proc/PID/status (VmRSS now, VmHWM the peak since clear_refs was reset).
"""

import os
import re
import resource
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

TICK = os.sysconf('SC_CLK_TCK')


# ---------------------------------------------------------------------------------------------
# Processes.


def _stat_fields(pid):
    """/proc/PID/stat split after the command name (which may contain spaces), or None."""
    try:
        text = Path('/proc/%d/stat' % pid).read_text()
    except OSError:
        return None
    return text[text.rindex(')') + 2:].split()


def process_tree(root_pid):
    """root_pid and every live descendant (nginx's master and worker, nghttpx's two processes)."""
    children = {}
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields:
                children.setdefault(int(fields[1]), []).append(int(entry))
    tree, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def cpu_seconds(pids):
    """utime + stime + cutime + cstime of these processes, in seconds."""
    ticks = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields:  # fields[11..14] are utime, stime, cutime, cstime (stat fields 14..17)
            ticks += sum(int(v) for v in fields[11:15])
    return ticks / TICK


def _status_kib(pid, key):
    try:
        for line in Path('/proc/%d/status' % pid).read_text().splitlines():
            if line.startswith(key + ':'):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kib(pids):
    return sum(_status_kib(pid, 'VmRSS') for pid in pids)


def peak_rss_kib(pids):
    """Sum of VmHWM: each process's peak since start or since reset_peak_rss()."""
    return sum(_status_kib(pid, 'VmHWM') for pid in pids)


def reset_peak_rss(pids):
    """Restart VmHWM from the current RSS (echo 5 > clear_refs, Linux >= 4.0)."""
    for pid in pids:
        try:
            Path('/proc/%d/clear_refs' % pid).write_text('5')
        except OSError:
            pass


class TaskClock:
    """CPU time of processes over a window, to the nanosecond: `perf stat -e task-clock -p PIDS`
    (the scheduler's own accounting of the time they ran). /proc/PID/stat counts in ticks of 10 ms,
    too coarse for the low-rate polling runs; without perf, stop() returns None."""

    def __init__(self, pids, out_file):
        self.out_file = Path(out_file)
        self.proc = None
        if shutil.which('perf'):
            self.proc = subprocess.Popen(['perf', 'stat', '-x', ',', '-e', 'task-clock', '-o', str(self.out_file),
                                          '-p', ','.join(map(str, pids))],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self):
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(30)
        try:
            for line in self.out_file.read_text().splitlines():
                cols = line.split(',')
                if len(cols) > 2 and cols[2].startswith('task-clock'):
                    return float(cols[0]) / 1000.0  # msec
        except (OSError, ValueError):
            pass
        return None


def system_busy_seconds():
    """CPU seconds the whole machine spent busy (all CPUs), from /proc/stat."""
    fields = [int(v) for v in Path('/proc/stat').read_text().split('\n', 1)[0].split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / TICK


def self_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ---------------------------------------------------------------------------------------------
# h2load.


@dataclass
class LoadResult:
    ok: bool
    seconds: float = 0.0          # h2load's "finished in"
    requests: int = 0             # succeeded
    failed: int = 0               # non-2xx/3xx, errored or timed out
    status: dict = field(default_factory=dict)
    bytes_total: int = 0          # traffic total: everything received, TLS excluded (frames, headers, data)
    bytes_headers: int = 0
    bytes_data: int = 0
    p50_ms: float = None
    p99_ms: float = None
    mean_ms: float = None         # with a fixed number of requests in flight, = that number / requests per second
    latencies_us: list = field(default_factory=list, repr=False)
    client_cpu: float = 0.0       # h2load's own utime + stime
    wall: float = 0.0
    output: str = ''

    @property
    def rps(self):
        return self.requests / self.seconds if self.seconds else 0.0


FINISHED_RE = re.compile(r'^finished in ([\d.]+)(us|ms|s),')
REQUESTS_RE = re.compile(r'^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, '
                         r'(\d+) failed, (\d+) errored, (\d+) timeout')
STATUS_RE = re.compile(r'^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx')
TRAFFIC_RE = re.compile(r'^traffic: .*?\((\d+)\) total, .*?\((\d+)\) headers .*?\((\d+)\) data')


def set_latency_figures(result, sorted_us):
    """p50, mean and p99 of a run, in ms, from its requests' durations (sorted, in µs)."""
    result.latencies_us = sorted_us
    if sorted_us:
        result.p50_ms = percentile(sorted_us, 50) / 1000.0
        result.mean_ms = sum(sorted_us) / len(sorted_us) / 1000.0
        result.p99_ms = percentile(sorted_us, 99) / 1000.0


def percentile(sorted_values, q):
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), int(round(q / 100.0 * len(sorted_values) + 0.5))))
    return sorted_values[rank - 1]


RUNNING_LOADS = set()  # H2load still running; killed if the driver ends early


class H2load:
    """h2load running in the background: H2load(args, log_file).wait(timeout) -> LoadResult.

    --log-file has one line per request of the measured duration (not the warm-up): start (us
    since epoch), status, duration (us); p50 and p99 are computed from the durations."""

    def __init__(self, args, log_file, cpu_list=None, env=None):
        self.log_file = Path(log_file)
        if self.log_file.exists():
            self.log_file.unlink()
        argv = ['h2load', '--log-file=%s' % self.log_file, *map(str, args)]
        if cpu_list is not None:
            argv = ['taskset', '-c', str(cpu_list), *argv]
        self.argv = argv
        self.out_path = self.log_file.with_suffix('.out')
        self.out = open(self.out_path, 'wb')
        self.started = time.monotonic()
        self.popen = subprocess.Popen(argv, stdout=self.out, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        RUNNING_LOADS.add(self)

    def kill(self):
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()
        except (ProcessLookupError, ChildProcessError):
            pass
        RUNNING_LOADS.discard(self)

    def wait(self, timeout):
        deadline = self.started + timeout
        killed = False
        while True:
            pid, status, usage = os.wait4(self.popen.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                os.killpg(self.popen.pid, signal.SIGKILL)
                pid, status, usage = os.wait4(self.popen.pid, 0)
                killed = True
                break
            time.sleep(0.02)
        RUNNING_LOADS.discard(self)
        self.popen.returncode = os.waitstatus_to_exitcode(status)
        self.out.close()
        text = self.out_path.read_text(errors='replace')
        if killed:
            text += '\n[killed by the benchmark: no result within %ds]\n' % timeout
        result = parse_h2load(text)
        result.client_cpu = usage.ru_utime + usage.ru_stime
        result.wall = time.monotonic() - self.started
        result.output = text
        if self.popen.returncode != 0:
            result.ok = False
        if self.log_file.exists():
            durations = []
            with open(self.log_file) as f:
                for line in f:
                    cols = line.split('\t')
                    if len(cols) >= 3 and cols[1].strip() not in ('', '-1'):
                        durations.append(int(cols[2]))
            set_latency_figures(result, sorted(durations))
        return result


class StaggeredH2load:
    """Tabs that were opened at different moments: `groups` h2load processes, each with its share
    of the connections, started `stagger` seconds apart, each warming up so much longer that all
    of them measure the same window (the last one warms up for `warmup`). One h2load alone starts
    all its clients at once, and at a fixed --rps they then poll in step: a burst of every client's
    request, the same path, every period, which measures how fast the backend drains one burst
    rather than steady polling. wait() merges their results as if one h2load had run."""

    def __init__(self, args, connections, groups, stagger, warmup, duration, log_file, cpu_list=None):
        self.lead = (groups - 1) * stagger  # how much earlier than the last one the first one starts
        self.stagger = stagger
        self.loads = []
        log = Path(log_file)
        for k in range(groups):
            share = connections // groups + (1 if k < connections % groups else 0)
            extra = self.lead - k * stagger
            argv = ['-c', share, *args, '--warm-up-time=%dms' % round((warmup + extra) * 1000),
                    '-D', '%dms' % round(duration * 1000)]
            self.loads.append(H2load(argv, log.with_name('%s.%d%s' % (log.stem, k, log.suffix)), cpu_list=cpu_list))
            if k + 1 < groups:
                time.sleep(stagger)

    def kill(self):
        for load in self.loads:
            load.kill()

    def wait(self, timeout):
        results = [load.wait(timeout) for load in self.loads]
        merged = LoadResult(ok=all(r.ok for r in results))
        for k, r in enumerate(results):
            # Every process's "finished in" counts its own warm-up: count the last one's only.
            merged.seconds = max(merged.seconds, r.seconds - (self.lead - k * self.stagger))
            merged.requests += r.requests
            merged.failed += r.failed
            for key, n in r.status.items():
                merged.status[key] = merged.status.get(key, 0) + n
            merged.bytes_total += r.bytes_total
            merged.bytes_headers += r.bytes_headers
            merged.bytes_data += r.bytes_data
            merged.latencies_us += r.latencies_us
            merged.client_cpu += r.client_cpu
        set_latency_figures(merged, sorted(merged.latencies_us))
        merged.wall = max(r.wall for r in results) - self.lead
        merged.output = '\n'.join('--- h2load %d of %d:\n%s' % (k + 1, len(results), r.output)
                                   for k, r in enumerate(results))
        return merged


def parse_h2load(text):
    result = LoadResult(ok=False)
    for line in text.splitlines():
        line = line.strip()
        m = FINISHED_RE.match(line)
        if m:
            value, unit = float(m.group(1)), m.group(2)
            result.seconds = value / {'us': 1e6, 'ms': 1e3, 's': 1}[unit]
        m = REQUESTS_RE.match(line)
        if m:
            total, started, done, succeeded, failed, errored, timeout = map(int, m.groups())
            result.requests = succeeded
            result.failed = max(failed, errored + timeout)  # errored and timeout are counted in failed
            result.ok = True
        m = STATUS_RE.match(line)
        if m:
            result.status = dict(zip(('2xx', '3xx', '4xx', '5xx'), map(int, m.groups())))
        m = TRAFFIC_RE.match(line)
        if m:
            result.bytes_total, result.bytes_headers, result.bytes_data = map(int, m.groups())
    return result  # h2load's "succeeded" is 2xx/3xx only: a 4xx or 5xx counts as failed
