/**
 * The benchmarks' fake API server, run in a process of its own so that its
 * work (storing, serialising, TLS) is not counted against the client
 * measured. Started by {@linkcode startBenchServer} in bench/_server.ts.
 *
 * Arguments (all optional but the first):
 * `--kubeconfig-out PATH --events N --history-limit N --repeat-ratio R
 * --rate N --seed N`. It loads `--events` generated changes at full speed
 * (no HTTP), writes the kubeconfig, starts the generator when `--rate` is
 * set, and prints one line `server {"kubeconfig","startRv","endRv",...}`.
 * Then it reads commands on stdin, one a line, answering each on stdout:
 * `load N` (`loaded {startRv,endRv,ms}`), `watches` (`watches N`),
 * `stats` (`stats {currentRv,events,watches}`). It exits at the end of stdin.
 *
 * @module
 */

import { EventGenerator, startFakeApiServer } from "../lib/fake_apiserver/mod.ts";
import type { FakeApiServer } from "../lib/fake_apiserver/mod.ts";
import { forEachLine } from "./_child.ts";

function flags(args: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < args.length; i += 2) {
    const flag = args[i]!;
    const value = args[i + 1];
    if (!flag.startsWith("--") || value === undefined) {
      throw new Error(`Cannot parse the arguments of bench/fake_server.ts: ${args.join(" ")}`);
    }
    out.set(flag.slice(2), value);
  }
  return out;
}

function numberFlag(f: Map<string, string>, name: string, fallback: number): number {
  const text = f.get(name);
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isFinite(n) || n < 0) {
    throw new Error(`Cannot parse --${name} "${text}": not a number`);
  }
  return n;
}

/** Applies `n` generated changes; returns the resourceVersions around them. */
function load(
  server: FakeApiServer,
  generator: EventGenerator,
  n: number,
): { startRv: number; endRv: number; ms: number } {
  const t0 = performance.now();
  const startRv = server.store.currentRv;
  for (let i = 0; i < n; i++) server.applyGenerated(generator.next());
  return { startRv, endRv: server.store.currentRv, ms: Math.round(performance.now() - t0) };
}

async function main(args: string[]): Promise<void> {
  const f = flags(args);
  const kubeconfigOut = f.get("kubeconfig-out");
  if (kubeconfigOut === undefined) throw new Error("Cannot start: --kubeconfig-out is required");
  const events = numberFlag(f, "events", 0);
  const rate = numberFlag(f, "rate", 0);
  await using server = await startFakeApiServer({
    historyLimit: numberFlag(f, "history-limit", Math.max(100_000, events + 10_000)),
  });
  const generator = new EventGenerator({
    seed: numberFlag(f, "seed", 1),
    repeatRatio: numberFlag(f, "repeat-ratio", 0.2),
  });
  const loaded = load(server, generator, events);
  await Deno.writeTextFile(kubeconfigOut, server.kubeconfig(), { mode: 0o600 });
  const running = rate > 0
    ? server.startEventGenerator(generator, { ratePerSecond: rate })
    : undefined;
  console.log(`server ${
    JSON.stringify({
      kubeconfig: kubeconfigOut,
      url: server.url,
      ...loaded,
      compactedRv: server.store.compactedRv,
      events: server.store.count("/events"),
    })
  }`);
  await forEachLine(Deno.stdin.readable, (line) => {
    const [command, arg] = line.trim().split(/\s+/);
    if (command === "load") {
      console.log(`loaded ${JSON.stringify(load(server, generator, Number(arg)))}`);
    } else if (command === "watches") {
      console.log(`watches ${server.watchCount}`);
    } else if (command === "stats") {
      console.log(`stats ${
        JSON.stringify({
          currentRv: server.store.currentRv,
          events: server.store.count("/events"),
          watches: server.watchCount,
        })
      }`);
    } else if (command !== "") {
      console.log(`error Unknown command: ${line}`);
    }
  });
  await running?.stop();
}

if (import.meta.main) {
  try {
    await main(Deno.args);
  } catch (e) {
    console.error(`bench/fake_server.ts: ${e instanceof Error ? e.message : e}`);
    Deno.exit(1);
  }
}
