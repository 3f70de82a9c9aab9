/**
 * Benchmark 2, catch-up after 410: the fake API server (its own process)
 * holds 200,000 events but keeps only the last 10,000 changes of history;
 * the pump's token is the resourceVersion from before them all. Its first
 * watch gets 410 Expired, so it relists every event in pages of 500,
 * delivers those newer than the token to the null sink (checkpointing on),
 * and watches again from the list's resourceVersion. Measured: the time
 * from the start of the term to caught up (the list's position
 * acknowledged and the watch reopened), pages read, and RSS idle vs peak.
 *
 * @module
 */

import { measureContestant, type Measurement } from "./_measure.ts";
import { mib } from "./_rss.ts";
import { describeMachine, fmt, machine, printResult, ProgressLine, table } from "./_report.ts";
import { startBenchServer } from "./_server.ts";
import { chartFile, lineChart, writeChart } from "./_svg.ts";
import type { BenchRunOptions } from "./throughput.ts";
import { describeKeventsFlags, keventsFlags } from "./_shipped.ts";

/** The memory target for the catch-up. */
export const CATCHUP_TARGETS = { peakVsIdle: 1.3 } as const;

/** Runs the catch-up benchmark; prints its figures and a RESULT line. */
export async function run(options: BenchRunOptions): Promise<void> {
  const events = options.smoke ? 2_000 : 200_000;
  const historyLimit = options.smoke ? 500 : 10_000;
  const m = machine();
  const progress = new ProgressLine();
  const kevents = keventsFlags(options.keventsV8Flags);
  console.log(`## Catch-up after 410: ${fmt(events)} events${options.smoke ? " (smoke)" : ""}`);
  console.log(describeMachine(m));
  console.log(describeKeventsFlags(kevents));
  progress.done(
    `catchup: starting the fake API server with ${fmt(events)} events, ${
      fmt(historyLimit)
    } changes of history`,
  );
  await using server = await startBenchServer({ events, historyLimit, repeatRatio: 0 });
  const { startRv, endRv, compactedRv } = server.info;
  if (compactedRv <= startRv) throw new Error("The token is still in the server's history");
  progress.done(
    `catchup: token ${startRv}, history from ${compactedRv}, newest ${endRv}; the pump starts`,
  );
  const pump: Measurement = await measureContestant("pump", {
    kubeconfig: server.info.kubeconfig,
    fromRv: String(startRv),
    events,
    caughtUpRv: endRv,
  }, {
    name: "kevents pump (catch-up)",
    timeoutMs: options.smoke ? 60_000 : 900_000,
    progress,
    denoFlags: kevents.runFlags,
  });
  const f = pump.figures;
  const peakVsIdle = pump.peakRss / pump.idleRss;
  const ok = peakVsIdle <= CATCHUP_TARGETS.peakVsIdle;
  console.log();
  console.log(table(
    [
      "events relisted",
      "pages",
      "time to caught up (s)",
      "events/s",
      "idle RSS (MiB)",
      "peak RSS (MiB)",
      "peak / idle",
    ],
    [[
      fmt(pump.events),
      fmt(Number(f.pages)),
      fmt(pump.seconds, 2),
      fmt(pump.eventsPerSecond),
      mib(pump.idleRss),
      mib(pump.peakRss),
      fmt(peakVsIdle, 2),
    ]],
  ));
  console.log();
  console.log(
    `peak / idle RSS: ${fmt(peakVsIdle, 2)} (target <= ${CATCHUP_TARGETS.peakVsIdle}: ${
      ok ? "met" : "MISSED"
    }); ${f.watches} watches (the 410, then the one after the relist), ${f.checkpointWrites} checkpoint writes (longest time without one ${
      fmt(Number(f.maxCheckpointGapMs) / 1000, 1)
    } s)`,
  );
  if (pump.events < events) {
    throw new Error(`The pump delivered ${pump.events} of the ${events} events relisted`);
  }
  const result = {
    smoke: options.smoke,
    machine: m,
    keventsFlags: kevents,
    events,
    historyLimit,
    token: startRv,
    compactedRv,
    endRv,
    seconds: pump.seconds,
    eventsPerSecond: pump.eventsPerSecond,
    delivered: pump.events,
    pages: f.pages,
    watches: f.watches,
    checkpointWrites: f.checkpointWrites,
    maxCheckpointGapMs: f.maxCheckpointGapMs,
    idleRss: pump.idleRss,
    peakRss: pump.peakRss,
    peakFromKernel: pump.peakFromKernel,
    readyMemory: pump.readyMemory,
    ratios: { peakVsIdle },
    targets: CATCHUP_TARGETS,
  };
  if (options.chartsDir !== undefined) {
    const idle = mib(pump.idleRss);
    const path = await writeChart(
      options.chartsDir,
      chartFile("bench_catchup_rss", kevents.override),
      lineChart({
        title: `Catch-up after 410: RSS while relisting ${fmt(events)} events`,
        subtitle: `${fmt(Number(f.pages))} pages of 500, then the watch; caught up in ${
          fmt(pump.seconds, 1)
        } s; ${
          kevents.runFlags.join(" ") || "no Deno flags"
        }; ${m.cores} cores, ${m.memoryGiB} GiB, ${m.date.slice(0, 10)}`,
        xUnit: "seconds since the term started",
        yUnit: "RSS (MiB)",
        points: pump.timeline.map((s) => ({ x: s.atMs / 1000, y: mib(s.rss) })),
        references: [
          { value: idle, label: `idle ${idle} MiB` },
          { value: idle * 1.3, label: "1.3 \u00d7 idle (target)" },
        ],
      }),
    );
    console.log(`chart: ${path}`);
  }
  printResult("catchup", result);
}
