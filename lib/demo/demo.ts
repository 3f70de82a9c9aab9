/**
 * `kevents demo`: an embedded fake API server generating events, three
 * collector replicas in this process, two leadership handovers (a clean
 * stop, then a crash), and a timeline. The closing line is computed by
 * auditing every delivery against the server's history.
 *
 * A crash is simulated by cutting the replica's connections and dropping
 * whatever it delivers afterwards: it writes nothing more to the API server,
 * as a killed process would not.
 *
 * @module
 */

import { auditDeliveries, type DeliveryAudit, generatedEventKeys } from "../fake_apiserver/mod.ts";
import type { Token } from "../checkpoint/mod.ts";
import { runCollector } from "../collector.ts";
import { parseConfig } from "../config/mod.ts";
import type { Term } from "../election/mod.ts";
import { EventGenerator, type FakeApiServer, startFakeApiServer } from "../fake_apiserver/mod.ts";
import { KubeClient, PooledKubeConfig } from "../kube/mod.ts";
import type { EventRecord, Sink } from "../sinks/mod.ts";

/** Options for {@linkcode runDemo}. */
export interface DemoOptions {
  /** Generated events per second (default 200). */
  eventsPerSecond?: number;
  /** Seed of the generator (default 1). */
  seed?: number;
  /** How long each leader runs before the next handover (default 3000 ms). */
  phaseMs?: number;
  /** Lease duration of the replicas (default 3000 ms: an expert setting). */
  leaseMs?: number;
  /** Where timeline lines go (default console.log). */
  out?: (line: string) => void;
}

/** What the demo measured. */
export interface DemoResult extends DeliveryAudit {
  /** Takeover times in ms: after the clean stop, after the crash. */
  takeoverMs: { stop: number; crash: number };
  /** Events delivered again by the leader that followed a clean stop (must be 0). */
  replaysAfterStop: number;
  /** Events delivered again by the leader that followed the crash (past its last checkpoint). */
  replaysAfterCrash: number;
}

interface Replica {
  name: string;
  identity: string;
  /** Why the current term began: the first election, a clean stop, a crash. */
  cause: Cause;
  client: KubeClient;
  root: AbortController;
  done: Promise<void>;
  alive: boolean;
}

type Cause = "start" | "stop" | "crash";

function rv(t: Token | undefined): string {
  return t?.resourceVersion ?? "now";
}

/** Runs the demo; resolves with the audit once every replica has stopped. */
export async function runDemo(options: DemoOptions = {}): Promise<DemoResult> {
  const out = options.out ?? console.log;
  const phaseMs = options.phaseMs ?? 3000;
  const leaseMs = options.leaseMs ?? 3000;
  const rate = options.eventsPerSecond ?? 200;
  const t0 = performance.now();
  const stamp = () => `+${((performance.now() - t0) / 1000).toFixed(1).padStart(5)}s`;
  const say = (who: string, what: string) => out(`${stamp()}  ${who.padEnd(10)} ${what}`);

  await using server = await startFakeApiServer({ historyLimit: 1_000_000 });
  const startRv = server.store.currentRv;
  // The checkpoint starts at "now": everything generated from here on must arrive.
  server.create("configmaps", "default", {
    metadata: { name: "datadogtoken" },
    data: { "event.tokenKey": String(startRv) },
  });
  const config = parseConfig({
    env: {
      KUBERNETES: "1",
      KEVENTS_LEASE_DURATION_MS: String(leaseMs),
      KEVENTS_CHECKPOINT_INTERVAL_MS: "200",
    },
  });
  out(`kevents demo: fake API server at ${server.url}, ${rate} events/s, 3 replicas`);
  out(
    `lease ${leaseMs} ms (renew deadline ${config.timings.renewDeadlineMs} ms, retry ${config.timings.retryPeriodMs} ms), checkpoint every 200 ms`,
  );

  const deliveries: string[] = [];
  const seen = new Set<string>();
  const replays: Record<Cause, number> = { start: 0, stop: 0, crash: 0 };
  let nextCause: Cause = "start";
  const replicas = new Map<string, Replica>();
  let leader: Replica | undefined;
  let termWaiters: ((r: Replica) => void)[] = [];
  let counter = 0;

  const startReplica = (name: string): Replica => {
    const kc = new PooledKubeConfig();
    kc.loadFromString(server.kubeconfig());
    const client = new KubeClient(kc, { requestTimeoutMs: config.timings.requestTimeoutMs });
    const identity = `${name}-${(++counter).toString(16).padStart(4, "0")}`;
    const replica: Replica = {
      name,
      identity,
      cause: "start",
      client,
      root: new AbortController(),
      done: Promise.resolve(),
      alive: true,
    };
    const sink: Sink = {
      name: "demo",
      send(batch: readonly EventRecord[]) {
        // A crashed process delivers nothing more.
        if (!replica.alive) return Promise.resolve();
        for (const r of batch) {
          deliveries.push(r.key);
          // The destination recognises a replay by its idempotency key.
          if (seen.has(r.key)) replays[replica.cause]++;
          else seen.add(r.key);
        }
        return Promise.resolve();
      },
      close: () => Promise.resolve(),
    };
    replica.done = runCollector({
      client,
      config,
      identity,
      sinks: [sink],
      observer: {
        termStarted(term: Term, from: Token | undefined) {
          if (!replica.alive) return;
          leader = replica;
          replica.cause = nextCause;
          say(name, `leads (term ${term.transitions}), resumes from RV ${rv(from)}`);
          const waiters = termWaiters;
          termWaiters = [];
          for (const w of waiters) w(replica);
        },
        termEnded(term: Term, at: Token | undefined) {
          if (!replica.alive) return;
          say(name, `term ${term.transitions} over, checkpoint at RV ${rv(at)}`);
        },
      },
    }, replica.root.signal);
    replicas.set(name, replica);
    say(name, "started as a candidate");
    return replica;
  };
  const nextTerm = () => new Promise<Replica>((resolve) => termWaiters.push(resolve));

  const generator = server.startEventGenerator(new EventGenerator({ seed: options.seed ?? 1 }), {
    ratePerSecond: rate,
  });
  const progress = setInterval(() => {
    const cm = server.get("configmaps", "default", "datadogtoken") as
      | { data?: Record<string, string> }
      | undefined;
    say(
      "",
      `checkpoint RV ${cm?.data?.["event.tokenKey"] ?? "-"}, ${deliveries.length} events delivered`,
    );
  }, 1000);
  const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
  let takeoverStop = 0;
  let takeoverCrash = 0;
  try {
    const first = nextTerm();
    for (const n of ["replica-1", "replica-2", "replica-3"]) startReplica(n);
    await first;
    await wait(phaseMs);

    // Handover 1: a clean stop (what SIGTERM does).
    const a = leader!;
    const afterStop = nextTerm();
    nextCause = "stop";
    say(a.name, "stopping (SIGTERM): stop pump, write checkpoint, release lease");
    let t = performance.now();
    a.root.abort(new Error("demo stop"));
    await a.done;
    const b = await afterStop;
    takeoverStop = performance.now() - t;
    say(b.name, `took over ${Math.round(takeoverStop)} ms after the stop`);
    startReplica(a.name);
    await wait(phaseMs);

    // Handover 2: a crash (what SIGKILL does): no checkpoint, no release.
    const c = leader!;
    const afterCrash = nextTerm();
    nextCause = "crash";
    say(c.name, "crashes (SIGKILL): connections cut, nothing more written");
    t = performance.now();
    c.alive = false;
    await c.client.close();
    c.root.abort(new Error("demo crash"));
    await c.done.catch(() => {});
    const d = await afterCrash;
    takeoverCrash = performance.now() - t;
    say(d.name, `took over ${Math.round(takeoverCrash)} ms after the crash (lease ${leaseMs} ms)`);
    startReplica(c.name);
    await wait(phaseMs);
  } finally {
    const generated = await generator.stop();
    say("", `generator stopped after ${generated} changes; draining`);
    await drain(server, deliveries, startRv);
    clearInterval(progress);
    for (const r of replicas.values()) {
      if (r.alive) r.root.abort(new Error("demo over"));
    }
    await Promise.all([...replicas.values()].map((r) => r.done.catch(() => {})));
    await Promise.all([...replicas.values()].map((r) => r.client.close()));
  }
  const audit = auditDeliveries(
    generatedEventKeys(server.store, startRv, server.store.currentRv),
    deliveries,
  );
  const dropped = replays.start + replays.stop + replays.crash;
  out(
    `Result: ${audit.generated} events generated, ${audit.delivered} delivered, ${
      audit.deliveries - dropped - audit.delivered
    } duplicates, ${audit.gaps} gaps.`,
  );
  out(
    `Replays: ${replays.stop} after the clean stop, ${replays.crash} after the crash (events the crashed leader delivered after its last checkpoint), recognised by their idempotency key and dropped.`,
  );
  return {
    ...audit,
    takeoverMs: { stop: takeoverStop, crash: takeoverCrash },
    replaysAfterStop: replays.stop,
    replaysAfterCrash: replays.crash,
  };
}

/** Waits (up to 15 s) until every generated event has been delivered. */
async function drain(server: FakeApiServer, deliveries: string[], startRv: number): Promise<void> {
  const deadline = performance.now() + 15_000;
  const generated = generatedEventKeys(server.store, startRv, server.store.currentRv);
  while (performance.now() < deadline) {
    if (auditDeliveries(generated, deliveries).gaps === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}
