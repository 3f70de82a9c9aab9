/**
 * One contestant of the throughput or catch-up benchmark, in a process of
 * its own: `deno run -A bench/contestant.ts <kind> '<options json>'`.
 *
 * The parent measures this process's memory from outside, so the steps are
 * announced on stdout: after start-up and the first request to the server
 * it prints `ready {memory}` and waits for `go` on stdin (the parent reads
 * the idle RSS in between); it then streams, printing `progress N` now and
 * then, and prints `done {events, seconds, ...}` once its goal is reached
 * and it has stopped; it exits when stdin ends (the parent reads the peak
 * RSS first). `baseline` is the runtime alone: it connects to nothing.
 *
 * @module
 */

import { forEachLine } from "./_child.ts";
import {
  type Contestant,
  type ContestantOptions,
  type Prepare,
  Progress,
} from "./contestants/types.ts";

/**
 * The contestants by name, each loaded only when chosen: a module loaded
 * is memory resident, and the idle RSS is part of what is measured.
 */
const CONTESTANTS: Record<string, () => Promise<Prepare>> = {
  baseline: () =>
    Promise.resolve(() =>
      Promise.resolve({
        run: (progress: Progress) => {
          progress.reached();
          return Promise.resolve({});
        },
        close: () => Promise.resolve(),
      })
    ),
  pump: async () => (await import("./contestants/pump.ts")).preparePump,
  raw: async () => (await import("./contestants/raw.ts")).prepareRawUndici,
  "raw-fetch": async () => (await import("./contestants/raw.ts")).prepareRawFetch,
  "client-node": async () => (await import("./contestants/client_node.ts")).prepareClientNode,
};

function memory(): Record<string, number> {
  const m = Deno.memoryUsage();
  return { rss: m.rss, heapTotal: m.heapTotal, heapUsed: m.heapUsed, external: m.external };
}

async function main(kind: string, optionsJson: string): Promise<void> {
  const load = CONTESTANTS[kind];
  if (load === undefined) {
    throw new Error(
      `Unknown contestant "${kind}": one of ${Object.keys(CONTESTANTS).join(", ")}`,
    );
  }
  const options = JSON.parse(optionsJson) as ContestantOptions;
  const contestant: Contestant = await (await load())(options);
  const commands: string[] = [];
  let wake: (() => void) | undefined;
  let ended = false;
  const stdin = forEachLine(Deno.stdin.readable, (line) => {
    commands.push(line.trim());
    wake?.();
  }).finally(() => {
    ended = true;
    wake?.();
  });
  const next = async (): Promise<string | undefined> => {
    while (commands.length === 0 && !ended) {
      await new Promise<void>((resolve) => (wake = resolve));
    }
    return commands.shift();
  };

  console.log(`ready ${JSON.stringify({ memory: memory() })}`);
  if ((await next()) !== "go") return;
  const progress = new Progress();
  const ticker = setInterval(() => console.log(`progress ${progress.events}`), 1000);
  const t0 = performance.now();
  let figures;
  try {
    figures = await contestant.run(progress);
  } finally {
    clearInterval(ticker);
  }
  const seconds = ((progress.reachedAt ?? performance.now()) - t0) / 1000;
  console.log(`done ${
    JSON.stringify({
      events: progress.events,
      goalReached: progress.reachedAt !== undefined,
      seconds,
      eventsPerSecond: progress.events / seconds,
      memory: memory(),
      ...figures,
    })
  }`);
  await stdin;
  await contestant.close();
}

if (import.meta.main) {
  try {
    await main(Deno.args[0] ?? "", Deno.args[1] ?? "{}");
    Deno.exit(0);
  } catch (e) {
    console.error(`bench/contestant.ts: ${e instanceof Error ? e.stack : e}`);
    Deno.exit(1);
  }
}
