/**
 * Measuring one reader in its own process, from the outside: idle RSS
 * after start-up and the first request, peak RSS while streaming (the
 * kernel's high-water mark, reset when streaming starts, and a VmRSS
 * sample every 50 ms), the RSS timeline, and the rate the reader reports.
 * bench/contestant.ts for our readers; kubectl for kubectl.
 *
 * @module
 */

import { Child, denoRunArgs } from "./_child.ts";
import { mib, readProcMemory, resetPeakRss, type RssSample, RssSampler } from "./_rss.ts";
import { fmt, pause, type ProgressLine } from "./_report.ts";
import type { BenchServer } from "./_server.ts";
import type { ContestantOptions, Figures } from "./contestants/types.ts";

/** How long a process is left alone after start-up before its idle RSS is read. */
const SETTLE_MS = 500;
/** How often VmRSS is sampled while streaming. */
const SAMPLE_MS = 50;

/** What one run of one reader measured. */
export interface Measurement {
  name: string;
  events: number;
  seconds: number;
  eventsPerSecond: number;
  /** RSS after start-up and the first request, before streaming (bytes). */
  idleRss: number;
  /** Peak RSS while streaming (bytes). */
  peakRss: number;
  /** Whether the peak is the kernel's high-water mark (reset at the start) or only sampled. */
  peakFromKernel: boolean;
  /** The reader's own view of its memory at ready (Deno.memoryUsage), when it has one. */
  readyMemory?: Record<string, number>;
  /** RSS over time, from the start of streaming. */
  timeline: RssSample[];
  /** What else the reader reported. */
  figures: Figures;
}

interface ReadyLine {
  memory: Record<string, number>;
}

interface DoneLine {
  events: number;
  goalReached: boolean;
  seconds: number;
  eventsPerSecond: number;
  memory: Record<string, number>;
  [key: string]: unknown;
}

/** Runs one bench/contestant.ts kind to its goal and measures it. */
export async function measureContestant(
  kind: string,
  options: ContestantOptions,
  o: {
    name?: string;
    timeoutMs: number;
    progress: ProgressLine;
    /** Deno options of the reader's process (kevents' flags for the pump; default none). */
    denoFlags?: readonly string[];
  },
): Promise<Measurement> {
  const name = o.name ?? kind;
  const goal = options.caughtUpRv === undefined ? fmt(options.events) : "caught up";
  await using child = new Child(
    Deno.execPath(),
    denoRunArgs("contestant.ts", [kind, JSON.stringify(options)], o.denoFlags),
    {
      name,
      onProgress: (n) => o.progress.update(`  ${name}: ${fmt(n)} events (goal ${goal})`),
    },
  );
  const ready = await child.expectJson<ReadyLine>("ready", 60_000);
  await pause(SETTLE_MS);
  const idle = readProcMemory(child.pid);
  if (idle === undefined) throw new Error(`${name} exited before it streamed`);
  const fromKernel = resetPeakRss(child.pid);
  const sampler = new RssSampler(child.pid, SAMPLE_MS);
  try {
    await child.send("go");
    const done = await child.expectJson<DoneLine>("done", o.timeoutMs);
    const end = readProcMemory(child.pid);
    sampler.sample();
    sampler.stop();
    const status = await child.finish();
    if (!status.success) throw new Error(`${name} exited with code ${status.code}`);
    const { events, seconds, eventsPerSecond, goalReached, memory: _memory, ...figures } = done;
    if (!goalReached) {
      throw new Error(
        `${name} stopped before its goal, after ${events} events in ${
          fmt(seconds, 1)
        } s (its log is above)`,
      );
    }
    const peakRss = Math.max(sampler.max, fromKernel && end !== undefined ? end.hwm : 0);
    o.progress.done(
      `  ${name}: ${fmt(events)} events in ${fmt(seconds, 2)} s = ${fmt(eventsPerSecond)}/s; ` +
        `RSS idle ${mib(idle.rss)} MiB, peak ${mib(peakRss)} MiB`,
    );
    return {
      name,
      events,
      seconds,
      eventsPerSecond,
      idleRss: idle.rss,
      peakRss,
      peakFromKernel: fromKernel,
      readyMemory: ready.memory,
      timeline: sampler.samples,
      figures: figures as Figures,
    };
  } finally {
    sampler.stop();
  }
}

/**
 * Counts the events `kubectl get -o json` prints, by their `"kind": "Event"`
 * line: it prints watched events one indented document each, and the
 * initial list one page at a time as a List of items. An involved object is
 * never an Event, so the line occurs once per event.
 */
export class KubectlEventCounter {
  /** Events printed so far. */
  count = 0;
  static readonly #pattern = new TextEncoder().encode('"kind": "Event"');
  /** The end of the previous chunk, where a match may have started. */
  #carry = new Uint8Array(0);

  /** Counts the events a chunk of output completes. */
  add(chunk: Uint8Array): void {
    const p = KubectlEventCounter.#pattern;
    const data = this.#carry.length === 0
      ? chunk
      : new Uint8Array(this.#carry.length + chunk.length);
    if (data !== chunk) {
      data.set(this.#carry);
      data.set(chunk, this.#carry.length);
    }
    // "E" is rare in this output: find it, then check the bytes around it.
    const e = p.indexOf(0x45);
    let i = e - 1;
    let lastEnd = 0;
    while ((i = data.indexOf(0x45, i + 1)) >= 0) {
      const start = i - e;
      if (start < 0 || start + p.length > data.length) continue;
      let match = true;
      for (let k = 0; k < p.length; k++) {
        if (data[start + k] !== p[k]) {
          match = false;
          break;
        }
      }
      if (match) {
        this.count++;
        lastEnd = start + p.length;
      }
    }
    // Keep what could begin a match, but never the bytes of one already counted.
    const keep = Math.max(lastEnd, data.length - (p.length - 1));
    this.#carry = data.slice(keep);
  }
}

/** Options for {@linkcode measureKubectl}. */
export interface KubectlOptions {
  server: BenchServer;
  events: number;
  /**
   * "watch": the server is empty when kubectl starts; once it watches, the
   * server loads `events` changes, which kubectl receives on its watch.
   * "list": the server already holds them; kubectl lists them first.
   */
  mode: "watch" | "list";
  timeoutMs: number;
  progress: ProgressLine;
}

/**
 * Runs `kubectl get events -A --watch -o json` until it has printed
 * `events` objects. Its rate counts from the first object printed ("watch")
 * or from its start ("list": kubectl gathers every page before printing).
 */
export async function measureKubectl(o: KubectlOptions): Promise<Measurement> {
  const name = `kubectl (${o.mode})`;
  const counter = new KubectlEventCounter();
  const goal = Promise.withResolvers<void>();
  let firstAt: number | undefined;
  let goalAt: number | undefined;
  let bytes = 0;
  const ticker = setInterval(
    () => o.progress.update(`  ${name}: ${fmt(counter.count)} events (goal ${fmt(o.events)})`),
    1000,
  );
  const startedAt = performance.now();
  await using child = new Child(
    "kubectl",
    ["get", "events", "-A", "--watch", "-o", "json"],
    {
      name,
      env: { KUBECONFIG: o.server.info.kubeconfig },
      onStdout: (chunk) => {
        bytes += chunk.length;
        counter.add(chunk);
        if (counter.count > 0) firstAt ??= performance.now();
        if (counter.count >= o.events && goalAt === undefined) {
          goalAt = performance.now();
          goal.resolve();
        }
      },
    },
  );
  const sampler = new RssSampler(child.pid, SAMPLE_MS);
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const failed = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${name} printed ${counter.count} objects in ${o.timeoutMs} ms`)),
        o.timeoutMs,
      );
      child.done.then((s) => reject(new Error(`${name} exited with code ${s.code}`)));
    });
    failed.catch(() => {});
    let idleRss: number | undefined;
    let fromKernel = false;
    let t0 = startedAt;
    if (o.mode === "watch") {
      // Connected and watching, with nothing to print: idle.
      while ((await Promise.race([o.server.watches(), failed])) < 1) await pause(100);
      await pause(SETTLE_MS);
      idleRss = readProcMemory(child.pid)?.rss;
      fromKernel = resetPeakRss(child.pid);
      sampler.restartMax();
      o.progress.update(`  ${name}: the server loads ${fmt(o.events)} events`);
      await Promise.race([o.server.load(o.events), failed]);
    }
    await Promise.race([goal.promise, failed]);
    const end = readProcMemory(child.pid);
    sampler.sample();
    if (o.mode === "watch") t0 = firstAt!;
    const seconds = (goalAt! - t0) / 1000;
    const peakRss = Math.max(sampler.max, end?.hwm ?? 0);
    o.progress.done(
      `  ${name}: ${fmt(counter.count)} events in ${fmt(seconds, 2)} s = ${
        fmt(counter.count / seconds)
      }/s; RSS idle ${idleRss === undefined ? "n/a" : mib(idleRss)} MiB, peak ${mib(peakRss)} MiB`,
    );
    return {
      name,
      events: counter.count,
      seconds,
      eventsPerSecond: counter.count / seconds,
      idleRss: idleRss ?? 0,
      peakRss,
      peakFromKernel: o.mode === "list" || fromKernel,
      timeline: sampler.samples,
      figures: { bytes, bytesPerEvent: Math.round(bytes / counter.count) },
    };
  } finally {
    clearTimeout(timer);
    clearInterval(ticker);
    sampler.stop();
  }
}
