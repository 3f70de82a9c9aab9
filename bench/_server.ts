/**
 * Starting bench/fake_server.ts as a subprocess and talking to it.
 *
 * @module
 */

import { Child, denoRunArgs } from "./_child.ts";

/** Options for {@linkcode startBenchServer}; see bench/fake_server.ts. */
export interface BenchServerOptions {
  /** Generated changes loaded before it answers (default 0). */
  events?: number;
  /** Changes kept in history (default max(100,000, events + 10,000)). */
  historyLimit?: number;
  /** Share of generated changes that repeat an event (default 0.2). */
  repeatRatio?: number;
  /** Generated changes per second after the load (default 0: none). */
  rate?: number;
  /** Seed of the generator (default 1). */
  seed?: number;
  /** How long loading may take (default 300 s). */
  timeoutMs?: number;
}

/** What the server printed once it was ready. */
export interface BenchServerInfo {
  kubeconfig: string;
  url: string;
  /** resourceVersion before the load. */
  startRv: number;
  /** resourceVersion after the load. */
  endRv: number;
  /** Oldest resourceVersion a watch may start from. */
  compactedRv: number;
  /** Events stored. */
  events: number;
  /** How long the load took. */
  ms: number;
}

/** The server's counters. */
export interface BenchServerStats {
  currentRv: number;
  events: number;
  watches: number;
}

/** A running bench/fake_server.ts. */
export class BenchServer {
  readonly info: BenchServerInfo;
  readonly child: Child;
  #dir: string;

  constructor(child: Child, info: BenchServerInfo, dir: string) {
    this.child = child;
    this.info = info;
    this.#dir = dir;
  }

  /** Loads `n` more generated changes at full speed. */
  async load(n: number, timeoutMs = 300_000): Promise<{ startRv: number; endRv: number }> {
    await this.child.send(`load ${n}`);
    return await this.child.expectJson("loaded", timeoutMs);
  }

  /** Open watch connections now. */
  async watches(): Promise<number> {
    await this.child.send("watches");
    return Number(await this.child.expect("watches", 10_000));
  }

  /** The server's counters now. */
  async stats(): Promise<BenchServerStats> {
    await this.child.send("stats");
    return await this.child.expectJson("stats", 10_000);
  }

  /** Stops the server and removes its kubeconfig. */
  async close(): Promise<void> {
    await this.child.finish();
    await Deno.remove(this.#dir, { recursive: true }).catch(() => {});
  }

  /** Closes the server (for `await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Starts bench/fake_server.ts and waits until it has loaded its events. */
export async function startBenchServer(options: BenchServerOptions = {}): Promise<BenchServer> {
  const dir = await Deno.makeTempDir({ prefix: "kevents-bench-" });
  const args = ["--kubeconfig-out", `${dir}/kubeconfig`];
  const add = (flag: string, value: number | undefined) => {
    if (value !== undefined) args.push(`--${flag}`, String(value));
  };
  add("events", options.events);
  add("history-limit", options.historyLimit);
  add("repeat-ratio", options.repeatRatio);
  add("rate", options.rate);
  add("seed", options.seed);
  const child = new Child(Deno.execPath(), denoRunArgs("fake_server.ts", args), {
    name: "fake-apiserver",
  });
  try {
    const info = await child.expectJson<BenchServerInfo>("server", options.timeoutMs ?? 300_000);
    return new BenchServer(child, info, dir);
  } catch (e) {
    await child[Symbol.asyncDispose]();
    throw e;
  }
}
