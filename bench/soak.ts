/**
 * Benchmark 5, soak: `kevents run` (the real command, as a subprocess, with
 * the stdout sink, leader election and the control-plane check on, the
 * health endpoint on a free port) against a fake API server process that
 * generates 2,000 realistic events per second (a fifth of them repeats of
 * recent events), for 10 minutes. The benchmark reads and discards
 * kevents' stdout, counting the events delivered, and reads its RSS every
 * 10 s. After a warm-up of 60 s (the JIT, the heap growing to its working
 * size, the first checkpoint writes), the RSS must stay within +/-10% of its
 * mean. `--smoke`: 20 s, a sample every 2 s, 6 s of warm-up.
 *
 * @module
 */

import { Child } from "./_child.ts";
import { mib, readProcMemory } from "./_rss.ts";
import {
  describeMachine,
  fmt,
  type Machine,
  machine,
  pause,
  printResult,
  ProgressLine,
  table,
} from "./_report.ts";
import { startBenchServer } from "./_server.ts";
import { chartFile, lineChart, writeChart } from "./_svg.ts";
import type { BenchRunOptions } from "./throughput.ts";
import { describeKeventsFlags, type KeventsFlags, keventsFlags } from "./_shipped.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** The issue's target: RSS within +/-10% over the soak (after the warm-up). */
export const SOAK_TARGETS = { maxDeviation: 0.1 } as const;

/** One sample of the soak. */
export interface SoakSample {
  /** Seconds since the pump started. */
  atSeconds: number;
  /** bytes */
  rss: number;
  /** Events delivered to stdout so far. */
  delivered: number;
}

/** What the samples after the warm-up show. */
export interface SoakStats {
  samples: number;
  /** RSS of the first and last sample, and min, max, mean (bytes). */
  first: number;
  last: number;
  min: number;
  max: number;
  mean: number;
  /** The largest distance of a sample from the mean, as a fraction of the mean. */
  deviation: number;
  /** Least-squares trend, bytes per minute. */
  slopePerMinute: number;
  deliveredPerSecond: number;
}

/** min, max, mean, deviation and trend of the samples after the warm-up. */
export function soakStats(samples: readonly SoakSample[], warmupSeconds: number): SoakStats {
  const steady = samples.filter((s) => s.atSeconds >= warmupSeconds);
  if (steady.length === 0) throw new Error("No sample after the warm-up");
  const rss = steady.map((s) => s.rss);
  const mean = rss.reduce((a, b) => a + b, 0) / rss.length;
  const min = Math.min(...rss);
  const max = Math.max(...rss);
  const deviation = Math.max(max / mean - 1, 1 - min / mean);
  // Least-squares slope, in bytes per minute.
  const xs = steady.map((s) => s.atSeconds / 60);
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
  let num = 0;
  let den = 0;
  steady.forEach((s, i) => {
    num += (xs[i]! - mx) * (s.rss - mean);
    den += (xs[i]! - mx) ** 2;
  });
  const first = steady[0]!;
  const last = steady[steady.length - 1]!;
  return {
    samples: steady.length,
    first: first.rss,
    last: last.rss,
    min,
    max,
    mean,
    deviation,
    slopePerMinute: den === 0 ? 0 : num / den,
    deliveredPerSecond: (last.delivered - first.delivered) /
      Math.max(1e-9, last.atSeconds - first.atSeconds),
  };
}

/** Runs the soak; prints its figures and a RESULT line. */
export async function run(options: BenchRunOptions): Promise<void> {
  const durationS = options.smoke ? 20 : 600;
  const sampleS = options.smoke ? 2 : 10;
  const warmupS = options.smoke ? 6 : 60;
  const rate = 2_000;
  const m = machine();
  const progress = new ProgressLine();
  const flags = keventsFlags(options.keventsV8Flags);
  console.log(
    `## Soak: ${durationS} s at ${fmt(rate)} events/s into the stdout sink${
      options.smoke ? " (smoke)" : ""
    }`,
  );
  console.log(describeMachine(m));
  console.log(describeKeventsFlags(flags));
  progress.done(`soak: starting the fake API server generating ${fmt(rate)} events/s`);
  await using server = await startBenchServer({ rate });
  let delivered = 0;
  let logErrors = 0;
  const started = Promise.withResolvers<number>();
  progress.done("soak: starting kevents run");
  await using kevents = new Child(Deno.execPath(), [
    "run",
    "--frozen",
    "--allow-net",
    "--allow-read",
    "--allow-write",
    "--allow-env",
    ...flags.runFlags,
    MAIN,
    "run",
    "--kubeconfig",
    server.info.kubeconfig,
  ], {
    name: "kevents",
    env: {
      KUBERNETES: "1",
      POD_NAME: "kevents-soak",
      KEVENTS_SINKS: "stdout",
      KEVENTS_HEALTH_PORT: "0",
      KEVENTS_HEALTH_ADDRESS: "127.0.0.1",
      DD_LOG_LEVEL: "info",
    },
    onStdout: (chunk) => {
      let i = -1;
      while ((i = chunk.indexOf(10, i + 1)) >= 0) delivered++;
    },
    onStderrLine: (line) => {
      if (line.includes("Pump started")) started.resolve(performance.now());
      if (/"level":"(ERROR|FATAL)"|"level":"WARN/.test(line)) {
        logErrors++;
        if (logErrors <= 5) console.error(`[kevents] ${line}`);
      }
    },
  });
  const exited = kevents.done.then((s) => {
    throw new Error(`kevents exited early with code ${s.code}`);
  });
  exited.catch(() => {});
  const t0 = await Promise.race([
    started.promise,
    exited,
    pause(60_000).then(() => {
      throw new Error("kevents did not start its pump within 60 s");
    }),
  ]);
  const samples: SoakSample[] = [];
  for (let k = 0;; k++) {
    const due = t0 + k * sampleS * 1000;
    const wait = due - performance.now();
    if (wait > 0) await Promise.race([pause(wait), exited]);
    const mem = readProcMemory(kevents.pid);
    if (mem === undefined) throw new Error("kevents exited during the soak");
    const sample = {
      atSeconds: (performance.now() - t0) / 1000,
      rss: mem.rss,
      delivered,
    };
    samples.push(sample);
    progress.update(
      `  soak: ${fmt(sample.atSeconds)} of ${durationS} s, RSS ${mib(mem.rss)} MiB, ${
        fmt(delivered)
      } events delivered`,
    );
    if (k * sampleS >= durationS) break;
  }
  const stats = await server.stats();
  kevents.kill("SIGTERM");
  const status = await kevents.waitForExit(30_000);
  progress.done(`  soak: done; kevents exited with code ${status.code}`);
  const s = soakStats(samples, warmupS);
  const ok = s.deviation <= SOAK_TARGETS.maxDeviation;
  console.log();
  console.log(table(
    ["t (s)", "RSS (MiB)", "delivered"],
    samples.map((x) => [fmt(x.atSeconds), mib(x.rss), fmt(x.delivered)]),
  ));
  console.log();
  console.log(
    `after the ${warmupS} s warm-up: ${s.samples} samples, first ${mib(s.first)} MiB, last ${
      mib(s.last)
    } MiB, min ${mib(s.min)} MiB, max ${mib(s.max)} MiB, mean ${mib(s.mean)} MiB; ` +
      `largest deviation from the mean ${fmt(s.deviation * 100, 1)}% (target +/-10%: ${
        ok ? "met" : "MISSED"
      }); trend ${fmt(s.slopePerMinute / 2 ** 20, 2)} MiB/min; ${
        fmt(s.deliveredPerSecond)
      } events/s delivered; ${logErrors} warnings or errors logged`,
  );
  const result: SoakResult = {
    smoke: options.smoke,
    machine: m,
    keventsFlags: flags,
    durationSeconds: durationS,
    sampleSeconds: sampleS,
    warmupSeconds: warmupS,
    rate,
    samples,
    steady: s,
    withinTarget: ok,
    delivered,
    serverRv: stats.currentRv,
    exitCode: status.code,
    logWarnings: logErrors,
    targets: SOAK_TARGETS,
  };
  if (options.chartsDir !== undefined) {
    console.log(`chart: ${await writeSoakChart(result, options.chartsDir)}`);
  }
  printResult("soak", result);
  if (status.code !== 0) throw new Error(`kevents exited with code ${status.code} on SIGTERM`);
}

/** What the soak found (its RESULT line). */
export interface SoakResult {
  smoke: boolean;
  machine: Machine;
  /** The Deno flags kevents ran with. */
  keventsFlags: KeventsFlags;
  durationSeconds: number;
  sampleSeconds: number;
  warmupSeconds: number;
  rate: number;
  samples: SoakSample[];
  steady: SoakStats;
  withinTarget: boolean;
  delivered: number;
  serverRv: number;
  exitCode: number;
  logWarnings: number;
  targets: typeof SOAK_TARGETS;
}

/**
 * Writes the RSS timeline with the +/-10% band into `dir`: bench_soak_rss.svg,
 * or bench_soak_rss_<flags>.svg for a run with `--kevents-v8-flags`. Returns its path.
 */
export async function writeSoakChart(result: SoakResult, dir: string): Promise<string> {
  const m = result.machine;
  const s = result.steady;
  const mean = mib(s.mean);
  const d = result.durationSeconds;
  const flags = result.keventsFlags;
  return await writeChart(
    dir,
    chartFile("bench_soak_rss", flags.override),
    lineChart({
      title: `Soak: kevents run RSS at ${fmt(result.rate)} events/s into the stdout sink`,
      subtitle: `${
        d >= 60 ? `${fmt(d / 60, 1)} minutes` : `${d} s`
      }, a sample every ${result.sampleSeconds} s; ${
        fmt(s.deliveredPerSecond)
      } events/s delivered; ${
        flags.runFlags.length === 0 ? "no Deno flags" : flags.runFlags.join(" ")
      }; ${m.cores} cores, ${m.memoryGiB} GiB; ${m.date.slice(0, 10)}`,
      xUnit: "minutes since the pump started",
      yUnit: "RSS (MiB)",
      points: result.samples.map((x) => ({ x: x.atSeconds / 60, y: mib(x.rss) })),
      band: { from: mean * 0.9, to: mean * 1.1, label: `\u00b110% of ${mean} MiB` },
      marker: { x: result.warmupSeconds / 60, label: "end of warm-up" },
    }),
  );
}
