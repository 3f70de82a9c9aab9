/**
 * Memory of another process, read from /proc (Linux): its resident set
 * (VmRSS), its peak resident set (VmHWM), and a way to reset that peak so
 * that it covers one phase only. A sampler polls VmRSS as well, for a
 * timeline and for systems where the peak cannot be reset.
 *
 * @module
 */

/** One process's memory, in bytes. */
export interface ProcMemory {
  /** Resident set now (VmRSS). */
  rss: number;
  /** Peak resident set since start or since {@linkcode resetPeakRss} (VmHWM). */
  hwm: number;
}

function kib(status: string, field: string): number | undefined {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, "m").exec(status);
  return m === null ? undefined : Number(m[1]) * 1024;
}

/** Reads /proc/<pid>/status; undefined once the process is gone. */
export function readProcMemory(pid: number): ProcMemory | undefined {
  let status: string;
  try {
    status = Deno.readTextFileSync(`/proc/${pid}/status`);
  } catch {
    return undefined;
  }
  const rss = kib(status, "VmRSS");
  const hwm = kib(status, "VmHWM");
  // A zombie has no memory lines left.
  if (rss === undefined || hwm === undefined) return undefined;
  return { rss, hwm };
}

/**
 * Resets the peak resident set of a process to its current one (writing 5
 * to /proc/<pid>/clear_refs, Linux 4.0 and later). Returns false where that
 * is not allowed; the sampled maximum is then the only peak.
 */
export function resetPeakRss(pid: number): boolean {
  try {
    Deno.writeTextFileSync(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}

/** One RSS sample. */
export interface RssSample {
  /** ms since the sampler started. */
  atMs: number;
  /** bytes */
  rss: number;
}

/** Polls a process's VmRSS every `intervalMs` until stopped or the process is gone. */
export class RssSampler {
  /** Samples so far, oldest first. */
  readonly samples: RssSample[] = [];
  #pid: number;
  #timer: ReturnType<typeof setInterval> | undefined;
  #t0 = performance.now();
  #max = 0;

  constructor(pid: number, intervalMs: number) {
    this.#pid = pid;
    this.sample();
    this.#timer = setInterval(() => this.sample(), intervalMs);
  }

  /** Takes one sample now; returns the RSS, or undefined when the process is gone. */
  sample(): number | undefined {
    const m = readProcMemory(this.#pid);
    if (m === undefined) return undefined;
    this.samples.push({ atMs: performance.now() - this.#t0, rss: m.rss });
    if (m.rss > this.#max) this.#max = m.rss;
    return m.rss;
  }

  /** The largest RSS sampled since start or the last {@linkcode restartMax}. */
  get max(): number {
    return this.#max;
  }

  /** Forgets the maximum so far (a new phase starts). */
  restartMax(): void {
    this.#max = 0;
    this.sample();
  }

  /** Stops polling. */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

/** bytes as MiB with one decimal. */
export function mib(bytes: number): number {
  return Math.round((bytes / 2 ** 20) * 10) / 10;
}
