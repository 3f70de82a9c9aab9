/**
 * Benchmark 4, API load: the requests each replica makes to the API server,
 * leader and followers apart, idle and under a stream of events, for 3 and
 * for 10 replicas with polling and with watching followers (default 60 s
 * lease: retry period 15 s); then how hard each replica knocks while the API
 * server is gone.
 *
 * Each replica reaches an in-process fake API server as its own user, so
 * the server's request log attributes every request, and through its own
 * TCP proxy, which counts the connections it opens. For the "down" phase
 * the proxies accept every connection and close it at once (as an API
 * server gone behind a load balancer looks) and count the attempts.
 *
 * `deno task bench apiload` or `deno run -A bench/api_load.ts [--smoke]
 * [--replicas 3,10] [--followers poll,watch] [--idle S] [--load S] [--down S]
 * [--no-docs]`.
 *
 * @module
 */

import { EventGenerator, startFakeApiServer } from "../lib/fake_apiserver/mod.ts";
import type { RequestLogEntry } from "../lib/fake_apiserver/mod.ts";
import {
  ConnectionProxy,
  fmt,
  LINES,
  machine,
  markdownTable,
  Replica,
  RssPoller,
  sleep,
  today,
  withTimeout,
  writeDocBlock,
} from "./_replicas.ts";

/** How followers follow the lock. */
export type FollowerMode = "poll" | "watch";

/** Options for {@linkcode run}; everything but `smoke` narrows a full run (then docs are not written). */
export interface ApiLoadOptions {
  /** A tiny run for CI: 2 replicas, 5 s idle, 5 s under load, 3 s down. */
  smoke: boolean;
  /** Replica counts (default 3 and 10). */
  replicas?: number[];
  /** Follower modes (default both). */
  followers?: FollowerMode[];
  /** Idle window in seconds (default 300). */
  idleSeconds?: number;
  /** Window under load in seconds (default 120). */
  loadSeconds?: number;
  /** Window with the API server down in seconds (default 30). */
  downSeconds?: number;
  /** Events per second under load (default 1000). */
  eventsPerSecond?: number;
  /** Write docs/BENCHMARKS.md's "API load" block (default: on a full, unnarrowed run). */
  writeDocs?: boolean;
}

/** Requests per retry period of 15 s at most: 4 a minute. */
const POLLING_TARGET_PER_MIN = 4;
/**
 * "About one per several minutes": at most one per 3 minutes. Followers
 * are judged on their mean: a watching follower reopens its watch every 5
 * minutes or so, so in a 2-minute window one follower shows 0 or 1.
 */
const WATCHING_TARGET_PER_MIN = 1 / 3;
/** Checkpoint writes of an idle leader: at most one a minute. */
const IDLE_CHECKPOINT_TARGET_PER_MIN = 1;
/** A dead API server: about one attempt a second per replica at most. */
const DOWN_TARGET_PER_S = 1;
const TOKEN_CONFIGMAP = "datadogtoken";

/** What one replica did in one window. */
interface ReplicaFigures {
  name: string;
  /** Requests in the server's log. */
  requests: number;
  /** Requests by "verb resource". */
  byKind: Record<string, number>;
  /** Updates of the token ConfigMap (checkpoint writes). */
  checkpointWrites: number;
  /** TCP connections opened (through its proxy). */
  connections: number;
  /** Peak RSS in the window, MiB. */
  rssPeakMiB: number;
}

interface Phase {
  kind: "idle" | "load" | "down";
  windowMs: number;
  leader: ReplicaFigures;
  followers: ReplicaFigures[];
  /** Leadership moved during the window (the figures mix roles). */
  leaderChanged: boolean;
  /** Events generated per second during the window (load only). */
  generatedPerSecond?: number;
}

interface Run {
  replicas: number;
  followers: FollowerMode;
  phases: Phase[];
}

function shortResource(resource: string): string {
  return resource.replace(/\..*$/, "");
}

function kindOf(e: RequestLogEntry): string {
  const kind = `${e.verb} ${shortResource(e.resource)}`;
  return e.resource === "configmaps" && e.name === TOKEN_CONFIGMAP ? `${kind}(token)` : kind;
}

function perMinute(n: number, windowMs: number): number {
  return (n * 60_000) / windowMs;
}

function mean(xs: readonly number[]): number {
  return xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length;
}

interface SetupOptions {
  replicas: number;
  followers: FollowerMode;
  settleMs: number;
  /** Check that every follower has read the lock before measuring. */
  checkFollowers: boolean;
  phases: { kind: Phase["kind"]; seconds: number }[];
  eventsPerSecond: number;
  progress: (text: string) => void;
}

/** Starts a server and N replicas, measures each phase in turn, tears everything down. */
async function runSetup(o: SetupOptions): Promise<Run> {
  await using server = await startFakeApiServer();
  const dir = await Deno.makeTempDir({ prefix: "kevents-apiload-" });
  const replicas: Replica[] = [];
  const proxies = new Map<string, ConnectionProxy>();
  let poller: RssPoller | undefined;
  const phases: Phase[] = [];
  try {
    for (let i = 1; i <= o.replicas; i++) {
      const name = `replica-${i}`;
      server.addUser(name);
      const proxy = new ConnectionProxy({ hostname: "127.0.0.1", port: server.port });
      proxies.set(name, proxy);
      const kubeconfig = `${dir}/${name}.kubeconfig`;
      await Deno.writeTextFile(
        kubeconfig,
        server.kubeconfig({ user: name }).replace(server.url, `https://127.0.0.1:${proxy.port}`),
        { mode: 0o600 },
      );
      replicas.push(new Replica({ name, kubeconfig, followerWatch: o.followers === "watch" }));
    }
    const first = await withTimeout(
      Promise.race(replicas.map((r) => r.waitFor(LINES.pumpStarted, 0).then(() => r))),
      120_000,
      "the first leader",
    );
    o.progress(
      `api load: ${o.replicas} replicas, ${o.followers} followers: ${first.name} leads; settling ${
        o.settleMs / 1000
      } s`,
    );
    await sleep(o.settleMs);
    if (o.checkFollowers) {
      // A follower that lost the race to create the lock first reads it at
      // its next retry; by now (the settle time is longer than a retry
      // period) every replica knows the leader.
      const holder = first.logs.findLast(LINES.leads)?.properties.identity as string;
      await withTimeout(
        Promise.all(replicas.map((r) => r.waitFor(LINES.leaderIs(holder), 0))),
        60_000,
        "every replica to see the leader",
      );
    }
    poller = new RssPoller(() => replicas.map((r) => r.pid));
    for (const p of o.phases) {
      const generator = p.kind === "load"
        ? server.startEventGenerator(new EventGenerator({ seed: 4 }), {
          ratePerSecond: o.eventsPerSecond,
        })
        : undefined;
      if (p.kind === "down") { for (const proxy of proxies.values()) proxy.setDown(true); }
      const leadsBefore = replicas.map((r) => r.logs.filter(LINES.leads).length);
      poller.reset();
      o.progress(
        `api load: ${o.replicas} replicas, ${o.followers} followers: ${p.kind} ${p.seconds} s`,
      );
      const t0 = Date.now();
      await sleep(p.seconds * 1000);
      const t1 = Date.now();
      poller.sample();
      const generated = await generator?.stop();
      const leaderChanged = replicas.some((r, i) =>
        r !== first && r.logs.filter(LINES.leads).length > leadsBefore[i]!
      );
      const entries = server.requestLog.entries({ since: t0 }).filter((e) => e.at < t1);
      const figures = (r: Replica): ReplicaFigures => {
        const mine = entries.filter((e) => e.identity === r.name);
        const byKind: Record<string, number> = {};
        for (const e of mine) byKind[kindOf(e)] = (byKind[kindOf(e)] ?? 0) + 1;
        return {
          name: r.name,
          requests: mine.length,
          byKind,
          checkpointWrites: mine.filter((e) =>
            e.resource === "configmaps" && e.name === TOKEN_CONFIGMAP &&
            (e.verb === "update" || e.verb === "patch")
          ).length,
          connections: proxies.get(r.name)!.count(t0, t1, p.kind === "down"),
          rssPeakMiB: poller!.peak.get(r.pid) ?? NaN,
        };
      };
      const phase: Phase = {
        kind: p.kind,
        windowMs: t1 - t0,
        leader: figures(first),
        followers: replicas.filter((r) =>
          r !== first
        ).map(figures),
        leaderChanged,
        generatedPerSecond: generated === undefined ? undefined : generated / ((t1 - t0) / 1000),
      };
      phases.push(phase);
      o.progress(
        resultLines({ replicas: o.replicas, followers: o.followers, phases: [phase] })[0]!,
      );
    }
  } finally {
    poller?.stop();
    for (const r of replicas) r.kill("SIGKILL");
    await Promise.all(replicas.map((r) => r.done.catch(() => undefined)));
    await Promise.all([...proxies.values()].map((p) => p.close()));
    await Deno.remove(dir, { recursive: true });
  }
  return { replicas: o.replicas, followers: o.followers, phases };
}

function followerTarget(mode: FollowerMode): number {
  return mode === "watch" ? WATCHING_TARGET_PER_MIN : POLLING_TARGET_PER_MIN;
}

/** One line of figures per phase, the same in smoke and full runs. */
function resultLines(run: Run): string[] {
  return run.phases.map((p) => {
    const head = `api load: replicas=${run.replicas} followers=${run.followers} phase=${p.kind} ` +
      `window=${Math.round(p.windowMs / 1000)}s`;
    if (p.kind === "down") {
      const rate = (f: ReplicaFigures) => f.connections / (p.windowMs / 1000);
      const worst = Math.max(rate(p.leader), ...p.followers.map(rate));
      return `${head} attempts/s leader=${rate(p.leader).toFixed(2)} followers mean=${
        mean(p.followers.map(rate)).toFixed(2)
      } max=${Math.max(...p.followers.map(rate)).toFixed(2)} target<=${DOWN_TARGET_PER_S}/s ` +
        `worst/target=${(worst / DOWN_TARGET_PER_S).toFixed(2)} ${
          worst <= DOWN_TARGET_PER_S ? "met" : "MISSED"
        }`;
    }
    const f = p.followers.map((x) => perMinute(x.requests, p.windowMs));
    const target = followerTarget(run.followers);
    const ckpt = perMinute(p.leader.checkpointWrites, p.windowMs);
    const followersMet = mean(f) <= target;
    const idleCkpt = p.kind === "idle"
      ? ` checkpoint target<=${IDLE_CHECKPOINT_TARGET_PER_MIN}/min ${
        ckpt <= IDLE_CHECKPOINT_TARGET_PER_MIN ? "met" : "MISSED"
      }`
      : "";
    return `${head} leader req/min=${perMinute(p.leader.requests, p.windowMs).toFixed(1)} ` +
      `checkpoint writes/min=${ckpt.toFixed(2)}${idleCkpt} follower req/min mean=${
        mean(f).toFixed(2)
      } max=${Math.max(...f).toFixed(2)} target<=${target.toFixed(2)} mean/target=${
        (mean(f) / target).toFixed(2)
      } ${followersMet ? "met" : "MISSED"}${p.leaderChanged ? " (leadership moved)" : ""}${
        p.generatedPerSecond === undefined ? "" : ` generated=${Math.round(p.generatedPerSecond)}/s`
      }`;
  });
}

/** The machine-readable figures (the RESULT line): rates per minute, attempts per second. */
function resultJson(runs: readonly Run[]): Record<string, unknown> {
  const round = (n: number) => Math.round(n * 100) / 100;
  return {
    runs: runs.map((r) => ({
      replicas: r.replicas,
      followers: r.followers,
      phases: r.phases.map((p) => {
        const base = {
          kind: p.kind,
          windowSeconds: round(p.windowMs / 1000),
          leaderChanged: p.leaderChanged,
        };
        if (p.kind === "down") {
          const rate = (x: ReplicaFigures) => round(x.connections / (p.windowMs / 1000));
          const all = [rate(p.leader), ...p.followers.map(rate)];
          return {
            ...base,
            leaderAttemptsPerSecond: rate(p.leader),
            followerAttemptsPerSecond: p.followers.map(rate),
            targetPerSecond: DOWN_TARGET_PER_S,
            met: Math.max(...all) <= DOWN_TARGET_PER_S,
          };
        }
        const f = p.followers.map((x) => round(perMinute(x.requests, p.windowMs)));
        const target = followerTarget(r.followers);
        return {
          ...base,
          generatedPerSecond: p.generatedPerSecond === undefined
            ? undefined
            : Math.round(p.generatedPerSecond),
          leaderPerMinute: round(perMinute(p.leader.requests, p.windowMs)),
          leaderCheckpointWritesPerMinute: round(perMinute(p.leader.checkpointWrites, p.windowMs)),
          followerPerMinute: f,
          followerTargetPerMinute: round(target),
          met: mean(f) <= target &&
            (p.kind !== "idle" ||
              perMinute(p.leader.checkpointWrites, p.windowMs) <= IDLE_CHECKPOINT_TARGET_PER_MIN),
        };
      }),
    })),
  };
}

function kinds(byKind: Record<string, number>, windowMs: number, divisor = 1): string {
  return Object.entries(byKind).sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${k} ${fmt(perMinute(n / divisor, windowMs), 2)}`).join(", ");
}

function followerKinds(p: Phase): Record<string, number> {
  const sum: Record<string, number> = {};
  for (const f of p.followers) {
    for (const [k, n] of Object.entries(f.byKind)) sum[k] = (sum[k] ?? 0) + n;
  }
  return sum;
}

function tables(runs: readonly Run[]): string {
  const up = runs.flatMap((r) => r.phases.filter((p) => p.kind !== "down").map((p) => ({ r, p })));
  const down = runs.flatMap((r) =>
    r.phases.filter((p) => p.kind === "down").map((p) => ({ r, p }))
  );
  const load = markdownTable(
    [
      "replicas",
      "followers",
      "phase",
      "window",
      "leader req/min",
      "leader checkpoint writes/min",
      "follower req/min (mean)",
      "follower max",
      "follower target",
      "mean / target",
      "met",
      "TCP conns/min (leader / follower mean)",
      "peak RSS MiB (leader / follower mean)",
    ],
    up.map(({ r, p }) => {
      const f = p.followers.map((x) => perMinute(x.requests, p.windowMs));
      const target = followerTarget(r.followers);
      const ckpt = perMinute(p.leader.checkpointWrites, p.windowMs);
      return [
        String(r.replicas),
        r.followers === "watch" ? "watching" : "polling",
        p.kind === "idle"
          ? "idle"
          : `${fmt(p.generatedPerSecond ?? NaN)} events/s${
            p.leaderChanged ? " (leader moved)" : ""
          }`,
        `${Math.round(p.windowMs / 1000)} s`,
        fmt(perMinute(p.leader.requests, p.windowMs), 1),
        p.kind === "idle"
          ? `${fmt(ckpt, 2)} (target <= 1: ${
            ckpt <= IDLE_CHECKPOINT_TARGET_PER_MIN ? "met" : "missed"
          })`
          : fmt(ckpt, 1),
        fmt(mean(f), 2),
        fmt(Math.max(...f), 2),
        `<= ${fmt(target, 2)}`,
        fmt(mean(f) / target, 2),
        mean(f) <= target ? "yes" : "no",
        `${fmt(perMinute(p.leader.connections, p.windowMs), 1)} / ${
          fmt(mean(p.followers.map((x) => perMinute(x.connections, p.windowMs))), 2)
        }`,
        `${fmt(p.leader.rssPeakMiB)} / ${fmt(mean(p.followers.map((x) => x.rssPeakMiB)))}`,
      ];
    }),
  );
  const detail = markdownTable(
    [
      "replicas",
      "followers",
      "phase",
      "leader requests/min by kind",
      "per follower requests/min by kind",
    ],
    up.map(({ r, p }) => [
      String(r.replicas),
      r.followers === "watch" ? "watching" : "polling",
      p.kind,
      kinds(p.leader.byKind, p.windowMs),
      kinds(followerKinds(p), p.windowMs, p.followers.length) || "none",
    ]),
  );
  const dead = markdownTable(
    [
      "replicas",
      "followers",
      "window",
      "leader attempts/s",
      "follower attempts/s (mean)",
      "follower max",
      "target",
      "worst / target",
      "met",
    ],
    down.map(({ r, p }) => {
      const rate = (x: ReplicaFigures) => x.connections / (p.windowMs / 1000);
      const worst = Math.max(rate(p.leader), ...p.followers.map(rate));
      return [
        String(r.replicas),
        r.followers === "watch" ? "watching" : "polling",
        `${Math.round(p.windowMs / 1000)} s`,
        fmt(rate(p.leader), 2),
        fmt(mean(p.followers.map(rate)), 2),
        fmt(Math.max(...p.followers.map(rate)), 2),
        `<= ${DOWN_TARGET_PER_S}/s`,
        fmt(worst / DOWN_TARGET_PER_S, 2),
        worst <= DOWN_TARGET_PER_S ? "yes" : "no",
      ];
    }),
  );
  return [
    load,
    "",
    "Requests by kind (verb and resource; `(token)` is the checkpoint ConfigMap), per minute:",
    "",
    detail,
    "",
    "API server down (connection attempts, each accepted and closed at once):",
    "",
    dead,
  ].join("\n");
}

/** Runs the API-load benchmark and prints its figures (and markdown tables). */
export async function run(options: ApiLoadOptions): Promise<void> {
  const smoke = options.smoke;
  const counts = options.replicas ?? (smoke ? [2] : [3, 10]);
  const modes = options.followers ?? (smoke ? ["watch"] : ["poll", "watch"]);
  const idle = options.idleSeconds ?? (smoke ? 5 : 300);
  const load = options.loadSeconds ?? (smoke ? 5 : 120);
  const down = options.downSeconds ?? (smoke ? 3 : 30);
  const eventsPerSecond = options.eventsPerSecond ?? 1000;
  const narrowed = [
    options.replicas,
    options.followers,
    options.idleSeconds,
    options.loadSeconds,
    options.downSeconds,
    options.eventsPerSecond,
  ].some((x) => x !== undefined);
  const writeDocs = options.writeDocs ?? (!smoke && !narrowed);
  const started = machine();
  const progress = (text: string) => console.error(text);
  const runs: Run[] = [];
  for (const replicas of counts) {
    for (const followers of modes) {
      runs.push(
        await runSetup({
          replicas,
          followers,
          settleMs: smoke ? 1000 : 20_000,
          checkFollowers: !smoke,
          phases: [
            { kind: "idle", seconds: idle },
            { kind: "load", seconds: load },
            { kind: "down", seconds: down },
          ],
          eventsPerSecond,
          progress,
        }),
      );
    }
  }
  for (const r of runs) for (const line of resultLines(r)) console.log(line);
  const md = tables(runs);
  console.log(`\n${md}\n`);
  console.log(`RESULT apiload ${JSON.stringify(resultJson(runs))}`);
  if (!writeDocs) return;
  await writeDocBlock({
    heading: "## API load",
    block: "api-load",
    content: [
      `Measured ${today()} with \`deno task bench apiload\` on ${started}. Default 60 s lease ` +
      `(retry period 15 s); per setup: ${idle} s idle, ${load} s at ${eventsPerSecond} ` +
      `generated events/s, ${down} s with the API server down; windows start 20 s after every ` +
      "replica has seen the leader.",
      "",
      md,
    ].join("\n"),
  });
  console.error("api load: docs/BENCHMARKS.md updated");
}

function parseFlag(args: string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  if (i < 0) return undefined;
  const value = args[i + 1];
  if (value === undefined) throw new Error(`Cannot parse ${flag}: a value is required`);
  return value;
}

function positive(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) {
    throw new Error(`Cannot parse ${flag} "${text}": must be a number greater than 0`);
  }
  return n;
}

if (import.meta.main) {
  const args = Deno.args;
  await run({
    smoke: args.includes("--smoke"),
    replicas: parseFlag(args, "--replicas")?.split(",").map((s) => {
      const n = Number(s);
      if (!Number.isInteger(n) || n < 2) {
        throw new Error(`Cannot parse --replicas "${s}": must be whole numbers, at least 2`);
      }
      return n;
    }),
    followers: parseFlag(args, "--followers")?.split(",").map((f) => {
      if (f !== "poll" && f !== "watch") {
        throw new Error(`Cannot parse --followers "${f}": must be poll or watch`);
      }
      return f as FollowerMode;
    }),
    idleSeconds: positive("--idle", parseFlag(args, "--idle")),
    loadSeconds: positive("--load", parseFlag(args, "--load")),
    downSeconds: positive("--down", parseFlag(args, "--down")),
    eventsPerSecond: positive("--events-per-second", parseFlag(args, "--events-per-second")),
    writeDocs: args.includes("--no-docs") ? false : undefined,
  });
}
