/**
 * Benchmark 3, failover: how long leadership takes to move after the leader
 * is stopped (SIGTERM: it stops its pump, writes the checkpoint and
 * releases the lock) or killed (SIGKILL: the lease must run out), with the
 * default 60 s lease and a short one, for polling and for watching
 * followers. Three `kevents run` replicas against an in-process fake API
 * server; a takeover is timed from the signal to the new leader's "Pump
 * started" log line (the replica's own timestamp; same machine, same
 * clock). Before each sample the benchmark waits until every follower has
 * read the current lock, then a random part of a retry period, so the
 * signal falls at a random point of the leader's renew cycle.
 *
 * `deno task bench failover` or `deno run -A bench/failover.ts [--smoke]
 * [--followers poll,watch] [--leases 4000,60000] [--no-docs]`.
 *
 * @module
 */

import { EventGenerator, startFakeApiServer } from "../lib/fake_apiserver/mod.ts";
import {
  fmt,
  LINES,
  lineTime,
  machine,
  markdownTable,
  median,
  Replica,
  sleep,
  today,
  withTimeout,
  writeDocBlock,
} from "./_replicas.ts";

/** How followers follow the lock. */
export type FollowerMode = "poll" | "watch";

/** Options for {@linkcode run}; everything but `smoke` narrows a full run (then docs are not written). */
export interface FailoverOptions {
  /** A tiny run for CI: one graceful handover, 2 replicas, 4 s lease. */
  smoke: boolean;
  /** Follower modes to measure (default both). */
  followers?: FollowerMode[];
  /** Lease durations in ms (default 4000 and 60000). */
  leasesMs?: number[];
  /** Write docs/BENCHMARKS.md's "Failover" block (default: on a full, unnarrowed run). */
  writeDocs?: boolean;
}

type StopSignal = "SIGTERM" | "SIGKILL";

/** One handover. */
interface Sample {
  /** Signal to the new leader's "Pump started". */
  takeoverMs: number;
  /** Signal to the new leader's "leads" (the lock is ours; the pump then reads the checkpoint). */
  acquiredMs: number;
  /** Signal to the old leader's "released" (SIGTERM only). */
  releasedMs?: number;
  /** The machine's 1-minute load average at the signal (the machine is shared). */
  load: number;
}

interface Cell {
  followers: FollowerMode;
  leaseMs: number;
  signal: StopSignal;
  samples: Sample[];
}

const DEFAULT_LEASE_MS = 60_000;

function retryPeriodMs(leaseMs: number): number {
  return Math.floor(leaseMs / 4);
}

/** The target a cell is held to, and how it reads. */
function targetOf(cell: Cell): { ms: number; text: string } {
  if (cell.signal === "SIGKILL") {
    return { ms: cell.leaseMs + 1000, text: `lease + 1 s = ${fmt(cell.leaseMs + 1000)} ms` };
  }
  if (cell.followers === "watch") return { ms: 1000, text: "< 1,000 ms" };
  // Polling followers: the reference is what client-go and the Agent need,
  // one retry period (lease / 4 here, +10% jitter) after the release.
  const ms = Math.round(retryPeriodMs(cell.leaseMs) * 1.1) + 1000;
  return { ms, text: `retry period x 1.1 + 1 s = ${fmt(ms)} ms (reference)` };
}

function leaseText(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}

/** One line of figures per cell, the same in smoke and full runs. */
function resultLine(cell: Cell): string {
  const t = cell.samples.map((s) => s.takeoverMs);
  const target = targetOf(cell);
  const max = Math.max(...t);
  return `failover: followers=${cell.followers} lease=${cell.leaseMs}ms stop=${cell.signal} ` +
    `samples=${t.length} takeover median=${Math.round(median(t))}ms min=${
      Math.round(Math.min(...t))
    }ms max=${Math.round(max)}ms target=${target.ms}ms max/target=${(max / target.ms).toFixed(2)} ${
      max <= target.ms ? "met" : "MISSED"
    }`;
}

function table(cells: readonly Cell[]): string {
  return markdownTable(
    [
      "followers",
      "lease",
      "stop",
      "n",
      "takeover median",
      "min",
      "max",
      "lock taken (median)",
      "old leader released (median)",
      "target",
      "max / target",
      "met",
      "samples (ms)",
      "load avg (median)",
    ],
    cells.map((c) => {
      const t = c.samples.map((s) => s.takeoverMs);
      const target = targetOf(c);
      const released = c.samples.flatMap((s) => s.releasedMs === undefined ? [] : [s.releasedMs]);
      return [
        c.followers === "watch" ? "watching" : "polling",
        leaseText(c.leaseMs),
        c.signal,
        String(t.length),
        `${fmt(median(t))} ms`,
        `${fmt(Math.min(...t))} ms`,
        `${fmt(Math.max(...t))} ms`,
        `${fmt(median(c.samples.map((s) => s.acquiredMs)))} ms`,
        released.length === 0 ? "-" : `${fmt(median(released))} ms`,
        target.text,
        (Math.max(...t) / target.ms).toFixed(2),
        Math.max(...t) <= target.ms ? "yes" : "no",
        t.map((x) => fmt(x)).join(", "),
        median(c.samples.map((s) => s.load)).toFixed(1),
      ];
    }),
  );
}

/** The machine-readable figures (the RESULT line). */
function resultJson(cells: readonly Cell[], replicas: number): Record<string, unknown> {
  return {
    replicas,
    cells: cells.map((c) => {
      const t = c.samples.map((s) => Math.round(s.takeoverMs));
      const target = targetOf(c);
      return {
        followers: c.followers,
        leaseMs: c.leaseMs,
        signal: c.signal,
        takeoverMs: t,
        medianMs: median(t),
        maxMs: Math.max(...t),
        targetMs: target.ms,
        maxOverTarget: Math.max(...t) / target.ms,
        met: Math.max(...t) <= target.ms,
        loadAverage: median(c.samples.map((s) => s.load)),
      };
    }),
  };
}

interface GroupOptions {
  followers: FollowerMode;
  leaseMs: number;
  replicas: number;
  plan: StopSignal[];
  progress: (text: string) => void;
}

/** Runs one replica set (one follower mode, one lease) through its plan of handovers. */
async function runGroup(o: GroupOptions): Promise<Map<StopSignal, Sample[]>> {
  const out = new Map<StopSignal, Sample[]>();
  await using server = await startFakeApiServer();
  // A little traffic, so the leader's pump has something to do.
  server.startEventGenerator(new EventGenerator({ seed: 3 }), { ratePerSecond: 10 });
  const dir = await Deno.makeTempDir({ prefix: "kevents-failover-" });
  const kubeconfig = `${dir}/kubeconfig`;
  await Deno.writeTextFile(kubeconfig, server.kubeconfig(), { mode: 0o600 });
  const alive: Replica[] = [];
  const all: Replica[] = [];
  let n = 0;
  const spawn = () => {
    const r = new Replica({
      name: `replica-${++n}`,
      kubeconfig,
      leaseDurationMs: o.leaseMs === DEFAULT_LEASE_MS ? undefined : o.leaseMs,
      followerWatch: o.followers === "watch",
    });
    alive.push(r);
    all.push(r);
    return r;
  };
  const retry = retryPeriodMs(o.leaseMs);
  try {
    for (let i = 0; i < o.replicas; i++) spawn();
    let leader = await withTimeout(
      Promise.race(alive.map((r) => r.waitFor(LINES.pumpStarted, 0).then(() => r))),
      60_000,
      "the first leader",
    );
    for (const [i, signal] of o.plan.entries()) {
      const holder = leader.logs.findLast(LINES.leads)?.properties.identity as string;
      const followers = alive.filter((r) => r !== leader);
      // Every follower has read the lock as the leader holds it now.
      await withTimeout(
        Promise.all(followers.map((f) => f.waitFor(LINES.leaderIs(holder), 0))),
        60_000 + o.leaseMs,
        "every follower to see the leader",
      );
      await sleep(retry * (1 + Math.random()));
      const marks = followers.map((f) => f.logs.length);
      const next = Promise.race(
        followers.map((f, j) =>
          f.waitFor(LINES.pumpStarted, marks[j]).then((line) => ({ f, line }))
        ),
      );
      const load = Deno.loadavg()[0]!;
      const t0 = Date.now();
      leader.kill(signal);
      const { f, line } = await withTimeout(next, o.leaseMs * 2 + 30_000, "a takeover");
      const acquired = await f.waitFor(LINES.leads, marks[followers.indexOf(f)]);
      await withTimeout(leader.done, 30_000, "the old leader to exit");
      const released = leader.logs.find(LINES.released);
      const sample: Sample = {
        takeoverMs: lineTime(line) - t0,
        acquiredMs: lineTime(acquired) - t0,
        releasedMs: released === undefined ? undefined : lineTime(released) - t0,
        load,
      };
      out.set(signal, [...(out.get(signal) ?? []), sample]);
      o.progress(
        `failover: ${o.followers} followers, lease ${leaseText(o.leaseMs)}, ${signal} ` +
          `(${i + 1}/${o.plan.length}): takeover ${Math.round(sample.takeoverMs)} ms`,
      );
      alive.splice(alive.indexOf(leader), 1);
      leader = f;
      if (alive.length < o.replicas) spawn();
    }
  } finally {
    for (const r of all) r.kill("SIGKILL");
    await Promise.all(all.map((r) => r.done.catch(() => undefined)));
    await Deno.remove(dir, { recursive: true });
  }
  return out;
}

/** The order of stops in a group: alternating, so neither kind always comes first. */
function planOf(leaseMs: number, smoke: boolean): StopSignal[] {
  if (smoke) return ["SIGTERM"];
  const each = leaseMs >= 30_000 ? 2 : 10;
  return Array.from({ length: each * 2 }, (_, i) => i % 2 === 0 ? "SIGTERM" : "SIGKILL");
}

/** Runs the failover benchmark and prints its figures (and a markdown table). */
export async function run(options: FailoverOptions): Promise<void> {
  const smoke = options.smoke;
  const followers = options.followers ?? (smoke ? ["watch"] : ["poll", "watch"]);
  const leases = options.leasesMs ?? (smoke ? [4000] : [4000, DEFAULT_LEASE_MS]);
  const replicas = smoke ? 2 : 3;
  const narrowed = options.followers !== undefined || options.leasesMs !== undefined;
  const writeDocs = options.writeDocs ?? (!smoke && !narrowed);
  const started = machine();
  const progress = (text: string) => console.error(text);
  const cells: Cell[] = [];
  for (const f of followers) {
    for (const leaseMs of leases) {
      const plan = planOf(leaseMs, smoke);
      progress(
        `failover: ${replicas} replicas, ${f} followers, lease ${
          leaseText(leaseMs)
        }: ${plan.length} handovers`,
      );
      const samples = await runGroup({ followers: f, leaseMs, replicas, plan, progress });
      for (const signal of ["SIGTERM", "SIGKILL"] as const) {
        const s = samples.get(signal);
        if (s !== undefined) cells.push({ followers: f, leaseMs, signal, samples: s });
      }
    }
  }
  for (const c of cells) console.log(resultLine(c));
  const md = table(cells);
  console.log(`\n${md}\n`);
  console.log(`RESULT failover ${JSON.stringify(resultJson(cells, replicas))}`);
  if (!writeDocs) return;
  await writeDocBlock({
    heading: "## Failover",
    block: "failover",
    content: [
      `Measured ${today()} with \`deno task bench failover\` on ${started}. ${replicas} replicas, ` +
      "an in-process fake API server generating 10 events/s; takeover is the time from the " +
      'signal to the new leader\'s "Pump started" log line (lock taken, checkpoint read).',
      "",
      md,
    ].join("\n"),
  });
  console.error("failover: docs/BENCHMARKS.md updated");
}

function parseList(args: string[], flag: string): string[] | undefined {
  const i = args.indexOf(flag);
  if (i < 0) return undefined;
  const value = args[i + 1];
  if (value === undefined) throw new Error(`Cannot parse ${flag}: a value is required`);
  return value.split(",").map((s) => s.trim()).filter((s) => s !== "");
}

if (import.meta.main) {
  const args = Deno.args;
  const followers = parseList(args, "--followers")?.map((f) => {
    if (f !== "poll" && f !== "watch") {
      throw new Error(`Cannot parse --followers "${f}": must be poll or watch`);
    }
    return f as FollowerMode;
  });
  const leasesMs = parseList(args, "--leases")?.map((l) => {
    const n = Number(l);
    if (!Number.isInteger(n) || n < 1000) {
      throw new Error(`Cannot parse --leases "${l}": must be whole milliseconds, at least 1000`);
    }
    return n;
  });
  await run({
    smoke: args.includes("--smoke"),
    followers,
    leasesMs,
    writeDocs: args.includes("--no-docs") ? false : undefined,
  });
}
