/**
 * Benchmark 1, pump throughput: one fake API server process holding
 * 200,000 realistic events (about 810 bytes a watch line), read from its
 * watch history by each contestant in turn, each in its own process: a raw
 * reader that only counts bytes (undici, the pump's transport; and Deno's
 * fetch), kevents' pump (a leadership term with the null sink and
 * checkpointing on), `@kubernetes/client-node`'s Watch, and kubectl. The
 * short readers run three rounds in rotated order (the median counts).
 *
 * kubectl has no flag to watch from a resourceVersion, so it is measured
 * twice: started on the empty server, it receives the 200,000 events on its
 * watch as the server loads them (the streaming figure, compared with the
 * others); started on the full server, it lists them first.
 *
 * @module
 */

import { mib } from "./_rss.ts";
import { measureContestant, measureKubectl, type Measurement } from "./_measure.ts";
import {
  describeMachine,
  fmt,
  type Machine,
  machine,
  printResult,
  ProgressLine,
  table,
} from "./_report.ts";
import { startBenchServer } from "./_server.ts";
import { barChart, chartFile, writeChart } from "./_svg.ts";
import { describeKeventsFlags, type KeventsFlags, keventsFlags } from "./_shipped.ts";

/** Options of a benchmark run. */
export interface BenchRunOptions {
  /** A tiny run that exercises every path (CI). */
  smoke: boolean;
  /** Write the charts into this folder (default: none). */
  chartsDir?: string;
  /**
   * V8 flags for kevents' processes only (the pump, `kevents run`), to try a
   * fix; `none` for V8's defaults (default: the shipped flags, bench/_shipped.ts).
   */
  keventsV8Flags?: string;
  /** The sinks of the memory benchmark's replicas (default "stdout"). */
  keventsSinks?: string;
  /** More environment variables for the memory benchmark's replicas. */
  keventsEnv?: Record<string, string>;
}

/** The targets of the issue, as ratios. */
export const THROUGHPUT_TARGETS = {
  pumpVsClientNode: 1.5,
  pumpVsKubectl: 20,
  pumpVsRaw: 0.5,
  pumpPeakVsIdle: 1.3,
} as const;

async function kubectlAvailable(): Promise<boolean> {
  try {
    const out = await new Deno.Command("kubectl", {
      args: ["version", "--client"],
      stdout: "null",
      stderr: "null",
    }).output();
    return out.success;
  } catch {
    return false;
  }
}

/** Rounds of the short readers in a full run (kubectl runs once: it takes minutes). */
const ROUNDS = 3;

/** A contestant over its runs: median rate and idle RSS, highest peak. */
export interface Summary {
  name: string;
  runs: number;
  eventsPerSecond: number;
  minEventsPerSecond: number;
  maxEventsPerSecond: number;
  seconds: number;
  idleRss: number;
  peakRss: number;
  readyMemory?: Record<string, number>;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function summarise(runs: readonly Measurement[]): Summary {
  const rates = runs.map((r) => r.eventsPerSecond);
  return {
    name: runs[0]!.name,
    runs: runs.length,
    eventsPerSecond: median(rates),
    minEventsPerSecond: Math.min(...rates),
    maxEventsPerSecond: Math.max(...rates),
    seconds: median(runs.map((r) => r.seconds)),
    idleRss: median(runs.map((r) => r.idleRss)),
    peakRss: Math.max(...runs.map((r) => r.peakRss)),
    readyMemory: runs[0]!.readyMemory,
  };
}

function ratio(
  a: { eventsPerSecond: number } | undefined,
  b: { eventsPerSecond: number } | undefined,
): number | undefined {
  if (a === undefined || b === undefined || b.eventsPerSecond === 0) return undefined;
  return a.eventsPerSecond / b.eventsPerSecond;
}

function verdict(value: number | undefined, target: number, atMost = false): string {
  if (value === undefined) return "n/a";
  const ok = atMost ? value <= target : value >= target;
  return `${fmt(value, 2)} (target ${atMost ? "<=" : ">="} ${target}: ${ok ? "met" : "MISSED"})`;
}

/** Runs the throughput benchmark; prints its figures and a RESULT line. */
export async function run(options: BenchRunOptions): Promise<void> {
  const events = options.smoke ? 2_000 : 200_000;
  const timeoutMs = options.smoke ? 60_000 : 900_000;
  const m = machine();
  const progress = new ProgressLine();
  const kevents = keventsFlags(options.keventsV8Flags);
  console.log(`## Throughput: ${fmt(events)} events${options.smoke ? " (smoke)" : ""}`);
  console.log(describeMachine(m));
  console.log(`${describeKeventsFlags(kevents)}; the other readers run with none`);
  const results: (Measurement & { round?: number })[] = [];

  progress.done("throughput: the Deno runtime alone (baseline RSS)");
  const baseline = await measureContestant("baseline", {
    kubeconfig: "",
    fromRv: "0",
    events: 0,
  }, { name: "deno (empty)", timeoutMs, progress });

  progress.done("throughput: starting the fake API server");
  await using server = await startBenchServer({
    events: 0,
    historyLimit: events + 50_000,
    repeatRatio: 0,
  });
  const fromRv = (await server.stats()).currentRv;
  const hasKubectl = await kubectlAvailable();
  if (hasKubectl) {
    progress.done("throughput: kubectl receiving the events on its watch");
    results.push(await measureKubectl({ server, events, mode: "watch", timeoutMs, progress }));
  } else {
    console.log("kubectl not found: its figures are left out");
    progress.done(`throughput: loading ${fmt(events)} events`);
    await server.load(events);
  }
  const stats = await server.stats();
  progress.done(
    `throughput: the server holds ${fmt(stats.events)} events (resourceVersions ${
      fromRv + 1
    } to ${stats.currentRv})`,
  );
  const contestants: [string, string][] = [
    ["raw", "raw reader (undici)"],
    ["raw-fetch", "raw reader (Deno fetch)"],
    ["pump", "kevents pump"],
    ["client-node", "client-node Watch"],
  ];
  // The machine is shared and its load changes by the minute: each reader
  // runs once per round, in a rotated order, and the median counts.
  const rounds = options.smoke ? 1 : ROUNDS;
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < contestants.length; i++) {
      const [kind, name] = contestants[(i + round) % contestants.length]!;
      progress.done(`throughput: ${name} (round ${round + 1} of ${rounds})`);
      const run = await measureContestant(kind, {
        kubeconfig: server.info.kubeconfig,
        fromRv: String(fromRv),
        events,
      }, {
        name,
        timeoutMs,
        progress,
        denoFlags: kind === "pump" ? kevents.runFlags : undefined,
      });
      results.push({ ...run, round });
    }
  }
  if (hasKubectl) {
    progress.done("throughput: kubectl listing the events first");
    results.push(await measureKubectl({ server, events, mode: "list", timeoutMs, progress }));
  }

  const names = [...new Set(results.map((r) => r.name))];
  const summaries = names.map((name) => summarise(results.filter((r) => r.name === name)));
  const by = (name: string) => summaries.find((r) => r.name === name);
  const pump = by("kevents pump")!;
  /** The pump's rate over another's, per round (same round, minutes apart at most). */
  const perRound = (other: string) => {
    const values = [];
    for (let round = 0; round < rounds; round++) {
      const a = results.find((r) => r.name === "kevents pump" && r.round === round);
      const b = results.find((r) => r.name === other && r.round === round);
      if (a !== undefined && b !== undefined) values.push(a.eventsPerSecond / b.eventsPerSecond);
    }
    return values.length === 0 ? undefined : { min: Math.min(...values), max: Math.max(...values) };
  };
  const ratios = {
    pumpVsClientNode: ratio(pump, by("client-node Watch")),
    pumpVsKubectl: ratio(pump, by("kubectl (watch)")),
    pumpVsKubectlList: ratio(pump, by("kubectl (list)")),
    pumpVsRaw: ratio(pump, by("raw reader (undici)")),
    pumpVsRawFetch: ratio(pump, by("raw reader (Deno fetch)")),
    pumpPeakVsIdle: pump.peakRss / pump.idleRss,
  };
  const ratioRanges = {
    pumpVsClientNode: perRound("client-node Watch"),
    pumpVsRaw: perRound("raw reader (undici)"),
    pumpVsRawFetch: perRound("raw reader (Deno fetch)"),
  };

  console.log();
  console.log(table(
    [
      "contestant",
      "runs",
      "events/s (median)",
      "events/s (min-max)",
      "idle RSS (MiB)",
      "peak RSS (MiB, max)",
      "peak / idle",
    ],
    [
      ["deno (empty)", "1", "-", "-", mib(baseline.idleRss), "-", "-"],
      ...summaries.map((r) => [
        r.name,
        String(r.runs),
        fmt(r.eventsPerSecond),
        `${fmt(r.minEventsPerSecond)}-${fmt(r.maxEventsPerSecond)}`,
        r.idleRss === 0 ? "n/a" : mib(r.idleRss),
        mib(r.peakRss),
        r.idleRss === 0 ? "n/a" : fmt(r.peakRss / r.idleRss, 2),
      ]),
    ],
  ));
  console.log();
  const range = (r: { min: number; max: number } | undefined) =>
    r === undefined ? "" : `; per round ${fmt(r.min, 2)}-${fmt(r.max, 2)}`;
  console.log(
    `pump / client-node Watch: ${verdict(ratios.pumpVsClientNode, 1.5)}${
      range(ratioRanges.pumpVsClientNode)
    }`,
  );
  console.log(
    `pump / kubectl (watch):   ${verdict(ratios.pumpVsKubectl, THROUGHPUT_TARGETS.pumpVsKubectl)}`,
  );
  console.log(
    `pump / kubectl (list):    ${
      verdict(ratios.pumpVsKubectlList, THROUGHPUT_TARGETS.pumpVsKubectl)
    }`,
  );
  console.log(
    `pump / raw (undici):      ${verdict(ratios.pumpVsRaw, 0.5)}${range(ratioRanges.pumpVsRaw)}`,
  );
  console.log(
    `pump / raw (Deno fetch):  ${verdict(ratios.pumpVsRawFetch, 0.5)}${
      range(ratioRanges.pumpVsRawFetch)
    }`,
  );
  console.log(`pump peak / idle RSS:     ${verdict(ratios.pumpPeakVsIdle, 1.3, true)}`);
  const memoryParts = (r: Summary | Measurement) =>
    r.readyMemory === undefined
      ? ""
      : `${r.name}: V8 heap ${mib(r.readyMemory.heapUsed ?? 0)} of ${
        mib(r.readyMemory.heapTotal ?? 0)
      } MiB, external ${mib(r.readyMemory.external ?? 0)} MiB`;
  console.log(
    `idle memory at ready: ${
      [baseline, ...summaries].map(memoryParts).filter((s) => s !== "").join("; ")
    }`,
  );
  const pumpRuns = results.filter((r) => r.name === "kevents pump");
  console.log(
    `pump: ${pumpRuns.map((r) => r.figures.checkpointWrites).join(", ")} checkpoint writes ` +
      `per run (the term's stamp included); longest time without one ${
        pumpRuns.map((r) => fmt(Number(r.figures.maxCheckpointGapMs) / 1000, 1)).join(", ")
      } s`,
  );

  const result: ThroughputResult = {
    smoke: options.smoke,
    machine: m,
    keventsFlags: kevents,
    events,
    baselineRss: baseline.idleRss,
    baselineMemory: baseline.readyMemory,
    rounds,
    contestants: summaries,
    runs: results.map(({ timeline: _t, ...r }) => r),
    ratios,
    ratioRanges,
    targets: THROUGHPUT_TARGETS,
  };
  if (options.chartsDir !== undefined) {
    const paths = await writeThroughputCharts(result, options.chartsDir);
    console.log(`charts: ${paths.join(", ")}`);
  }
  printResult("throughput", result);
}

/** What the throughput benchmark found (its RESULT line). */
export interface ThroughputResult {
  smoke: boolean;
  machine: Machine;
  /** The Deno flags the pump ran with. */
  keventsFlags: KeventsFlags;
  events: number;
  baselineRss: number;
  baselineMemory: Record<string, number> | undefined;
  rounds: number;
  contestants: Summary[];
  runs: Omit<Measurement, "timeline">[];
  ratios: Record<string, number | undefined>;
  ratioRanges: Record<string, { min: number; max: number } | undefined>;
  targets: typeof THROUGHPUT_TARGETS;
}

/**
 * Writes bench_throughput.svg (median events/s, with the range) and
 * bench_throughput_rss.svg (idle and peak RSS) into `dir` (with the V8
 * flags in their names for a run with `--kevents-v8-flags`); returns their paths.
 */
export async function writeThroughputCharts(
  result: ThroughputResult,
  dir: string,
): Promise<string[]> {
  const m = result.machine;
  const rows = result.contestants;
  const flags = result.keventsFlags;
  const subtitle = `${
    fmt(result.events)
  } events, each reader in its own process; median of ${result.rounds} rounds (kubectl: 1); pump: ${
    flags.runFlags.join(" ") || "no Deno flags"
  }; ${m.cores} cores, ${m.memoryGiB} GiB; ${m.date.slice(0, 10)}`;
  return [
    await writeChart(
      dir,
      chartFile("bench_throughput", flags.override),
      barChart({
        title: "Watch throughput (events/s, higher is better)",
        subtitle,
        unit: "events per second",
        series: ["events/s"],
        rows: rows.map((r) => ({
          label: r.name,
          values: [r.eventsPerSecond],
          note: r.runs > 1
            ? `(${fmt(r.minEventsPerSecond)}-${fmt(r.maxEventsPerSecond)})`
            : undefined,
        })),
      }),
    ),
    await writeChart(
      dir,
      chartFile("bench_throughput_rss", flags.override),
      barChart({
        title: "Memory: idle and peak RSS while streaming (MiB, lower is better)",
        subtitle,
        unit: "MiB resident",
        series: ["idle (after start-up and first request)", "peak while streaming (highest run)"],
        rows: [
          {
            label: "deno (empty)",
            values: [mib(result.baselineRss), undefined],
          },
          ...rows.map((r) => ({
            label: r.name,
            values: [r.idleRss === 0 ? undefined : mib(r.idleRss), mib(r.peakRss)],
          })),
        ],
        clipAt: 2 *
          Math.max(...rows.filter((r) => r.name !== "kubectl (list)").map((r) => mib(r.peakRss))),
        digits: 1,
      }),
    ),
  ];
}
