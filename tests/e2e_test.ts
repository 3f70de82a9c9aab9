/**
 * End to end: three `kevents run` processes against a standalone fake API
 * server that generates events; leadership is handed over ten times by
 * SIGTERM and three times by SIGKILL. The stdout of every replica is then
 * audited against an independent watch of everything the server generated.
 */

import assert from "node:assert/strict";
import { PooledKubeConfig } from "../lib/kube/kubeconfig.ts";
import { CONFIGMAPS, EVENTS, KubeClient } from "../lib/kube/client.ts";
import { readLines } from "./_process.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const LEASE_MS = 2000;
const TOTAL_EVENTS = 4000;

interface LogLine {
  message: string;
  properties: Record<string, string>;
}

class Proc {
  readonly child: Deno.ChildProcess;
  readonly stdout: string[] = [];
  readonly logs: LogLine[] = [];
  readonly done: Promise<Deno.CommandStatus>;
  #lineWaiters: { re: RegExp; resolve: (line: string) => void }[] = [];
  killedAt: number | undefined;
  readonly name: string;

  constructor(args: string[], env: Record<string, string>) {
    this.name = env.POD_NAME ?? "fake-apiserver";
    this.child = new Deno.Command(Deno.execPath(), {
      args,
      env,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const out = readLines(this.child.stdout, (l) => this.#line(l, true));
    const err = readLines(this.child.stderr, (l) => this.#line(l, false));
    this.done = Promise.all([out, err]).then(() => this.child.status);
  }

  #line(line: string, stdout: boolean): void {
    if (stdout) this.stdout.push(line);
    else {
      try {
        this.logs.push(JSON.parse(line) as LogLine);
      } catch {
        this.logs.push({ message: line, properties: {} });
      }
    }
    for (const w of [...this.#lineWaiters]) {
      if (w.re.test(line)) {
        this.#lineWaiters.splice(this.#lineWaiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  }

  /** Resolves with the first line (stdout or stderr) matching, from now on. */
  waitFor(re: RegExp): Promise<string> {
    return new Promise((resolve) => this.#lineWaiters.push({ re, resolve }));
  }

  kill(signal: Deno.Signal): void {
    if (signal === "SIGKILL") this.killedAt = Date.now();
    try {
      this.child.kill(signal);
    } catch {
      // Already exited.
    }
  }
}

/**
 * The idempotency keys a replica printed. Only a SIGKILLed replica may end
 * with a torn line (killed in the middle of a write); any other line must
 * be a whole record.
 */
function keysOf(p: Proc): string[] {
  return p.stdout.flatMap((line, i) => {
    try {
      const record = JSON.parse(line) as { key: string } | { serviceCheck: unknown };
      // The leader's control-plane service checks share stdout with the events.
      return "serviceCheck" in record ? [] : [record.key];
    } catch (e) {
      if (p.killedAt !== undefined && i === p.stdout.length - 1) return [];
      throw e;
    }
  });
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`Timed out after ${ms} ms waiting for ${what}`)),
        ms,
      );
    }),
  ]).finally(() => clearTimeout(timer));
}

Deno.test({
  name:
    "three replicas hand leadership over 10 times by SIGTERM and 3 times by SIGKILL without losing an event",
  async fn() {
    const dir = await Deno.makeTempDir();
    const kubeconfig = `${dir}/kubeconfig`;
    const server = new Proc([
      "run",
      "--allow-net=127.0.0.1,localhost",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      MAIN,
      "fake-apiserver",
      "--kubeconfig-out",
      kubeconfig,
      "--events-per-second",
      "150",
      "--events-total",
      String(TOTAL_EVENTS),
    ], {});
    const replicas: Proc[] = [];
    const all: Proc[] = [];
    let client: KubeClient | undefined;
    const recorder = new AbortController();
    try {
      await withTimeout(server.waitFor(/Generating 150 events/), 30_000, "the fake API server");
      const kc = new PooledKubeConfig();
      kc.loadFromFile(kubeconfig);
      client = new KubeClient(kc);
      // Start the checkpoint at "now" and record, independently, every event change from there.
      const start = await client.list(EVENTS, { limit: 1 });
      await client.create(CONFIGMAPS, "default", {
        metadata: { name: "datadogtoken" },
        data: { "event.tokenKey": start.resourceVersion },
      });
      const generated = new Set<string>();
      let lastRecordedRv = 0;
      const finished = server.waitFor(/Generator finished after/);
      const recording = (async () => {
        for await (
          const batch of client!.watchBatches<
            { metadata: { uid: string; resourceVersion: string } }
          >(
            EVENTS,
            { resourceVersion: start.resourceVersion, signal: recorder.signal },
          )
        ) {
          for (const ev of batch) {
            if (ev.type === "ADDED" || ev.type === "MODIFIED") {
              generated.add(`${ev.object.metadata.uid}/${ev.object.metadata.resourceVersion}`);
              lastRecordedRv = Number(ev.object.metadata.resourceVersion);
            }
          }
        }
      })().catch((e) => {
        if (!recorder.signal.aborted) throw e;
      });

      let n = 0;
      const spawn = () => {
        const p = new Proc(["run", "--allow-net", "--allow-read", "--allow-env", MAIN, "run"], {
          KUBECONFIG: kubeconfig,
          KUBERNETES: "1",
          POD_NAME: `replica-${++n}`,
          KEVENTS_LEASE_DURATION_MS: String(LEASE_MS),
          KEVENTS_HEALTH_PORT: "0",
          KEVENTS_CHECKPOINT_INTERVAL_MS: "100",
          DD_LOG_LEVEL: "info",
        });
        replicas.push(p);
        all.push(p);
        return p;
      };
      const startedTerm = (procs: Proc[]) =>
        Promise.race(procs.map((p) => p.waitFor(/Pump started for term/).then(() => p)));
      for (let i = 0; i < 3; i++) spawn();
      let leader = await withTimeout(startedTerm(replicas), 30_000, "the first leader");
      const plan: Deno.Signal[] = [
        ...Array(5).fill("SIGTERM"),
        "SIGKILL",
        ...Array(3).fill("SIGTERM"),
        "SIGKILL",
        ...Array(2).fill("SIGTERM"),
        "SIGKILL",
      ];
      const takeovers: { signal: Deno.Signal; ms: number }[] = [];
      for (const signal of plan) {
        // Let the leader deliver something, then hand over.
        await withTimeout(leader.waitFor(/"key"/), 30_000, "a delivery");
        const followers = replicas.filter((p) => p !== leader);
        const newLeader = startedTerm(followers);
        const t0 = Date.now();
        leader.kill(signal);
        await withTimeout(leader.done, 30_000, "the leader to exit");
        replicas.splice(replicas.indexOf(leader), 1);
        leader = await withTimeout(newLeader, 30_000, "a takeover");
        takeovers.push({ signal, ms: Date.now() - t0 });
        spawn();
      }
      // Let the generator finish, the recorder see its last change and the leader catch up.
      await withTimeout(finished, 120_000, "the generator to finish");
      const sentinel = await client.create<{ metadata: { uid: string; resourceVersion: string } }>(
        EVENTS,
        "default",
        {
          metadata: { name: "e2e-sentinel.1" },
          involvedObject: { kind: "Pod", namespace: "default", name: "e2e-sentinel" },
          reason: "Sentinel",
          message: "The last event of the run",
          type: "Normal",
        } as never,
      );
      // Created after the generator finished: once the recorder has it, it has
      // every generated change (a watch is ordered).
      const sentinelKey = `${sentinel.metadata.uid}/${sentinel.metadata.resourceVersion}`;
      const finalRv = Number(sentinel.metadata.resourceVersion);
      const delivered = () => all.flatMap((p) => keysOf(p));
      const caughtUp = async () => {
        for (;;) {
          const seen = new Set(delivered());
          if (generated.has(sentinelKey) && [...generated].every((k) => seen.has(k))) return;
          await new Promise((r) => setTimeout(r, 100));
        }
      };
      await withTimeout(caughtUp(), 60_000, "every generated event to be delivered").catch((e) => {
        const seen = new Set(delivered());
        const missing = [...generated].filter((k) => !seen.has(k));
        console.error(
          `missing ${missing.length}: ${
            missing.slice(0, 5).join(" ")
          }; recorded up to ${lastRecordedRv} of ${finalRv}`,
        );
        for (const p of all) {
          console.error(
            `--- ${p.name} killed=${p.killedAt !== undefined} delivered=${p.stdout.length}`,
          );
          for (const l of p.logs.slice(-12)) {
            console.error(`  ${l.message} ${JSON.stringify(l.properties)}`);
          }
        }
        throw e;
      });
      for (const p of replicas) p.kill("SIGTERM");
      await Promise.all(replicas.map((p) => withTimeout(p.done, 30_000, "replicas to exit")));
      recorder.abort();
      await recording;

      // Every generated event delivered.
      const keys = delivered();
      const seen = new Map<string, number>();
      for (const k of keys) seen.set(k, (seen.get(k) ?? 0) + 1);
      const missing = [...generated].filter((k) => !seen.has(k));
      assert.ok(generated.size > TOTAL_EVENTS / 2, "the recorder saw the generated changes");
      assert.deepEqual(missing, [], "every generated event was delivered");
      // Duplicates only across a SIGKILL: the key was delivered by a killed process and by another.
      const killed = new Set(all.filter((p) => p.killedAt !== undefined));
      const byKey = new Map<string, Proc[]>();
      for (const p of all) {
        for (const k of keysOf(p)) byKey.set(k, [...(byKey.get(k) ?? []), p]);
      }
      // A key delivered k times was delivered by at least k-1 replicas that
      // were then SIGKILLed (each died before checkpointing it), and every
      // replay came from a term that resumed from a checkpoint before it.
      const resumedFrom = (p: Proc) =>
        p.logs.filter((l) => l.message.startsWith("Pump started"))
          .map((l) => Number(l.properties.rv));
      let replays = 0;
      for (const [key, procs] of byKey) {
        if (procs.length < 2) continue;
        replays += procs.length - 1;
        const who = procs.map((p) => `${p.name}${killed.has(p) ? " (killed)" : ""}`).join(", ");
        assert.ok(
          procs.filter((p) => killed.has(p)).length >= procs.length - 1,
          `${key} delivered again without a SIGKILL before: ${who}`,
        );
        const rv = Number(key.split("/")[1]);
        for (const p of procs.slice(1)) {
          assert.ok(
            resumedFrom(p).some((from) => from < rv),
            `${key} replayed by ${p.name}, which resumed from ${resumedFrom(p)}`,
          );
        }
      }
      // Never two pumps at once: term intervals from the logs do not overlap.
      const intervals = all.flatMap((p) => {
        const out: { start: number; end: number }[] = [];
        let open: number | undefined;
        for (const l of p.logs) {
          if (l.message.startsWith("Pump started")) open = Date.parse(l.properties.at!);
          if (l.message.startsWith("Pump stopped") && open !== undefined) {
            out.push({ start: open, end: Date.parse(l.properties.at!) });
            open = undefined;
          }
        }
        if (open !== undefined) out.push({ start: open, end: p.killedAt ?? Infinity });
        return out;
      }).sort((a, b) => a.start - b.start);
      for (let i = 1; i < intervals.length; i++) {
        assert.ok(
          intervals[i]!.start >= intervals[i - 1]!.end,
          `terms overlap: ${JSON.stringify(intervals[i - 1])} and ${JSON.stringify(intervals[i])}`,
        );
      }
      assert.ok(intervals.length >= plan.length + 1, "every handover started a new term");
      // Anything a replica warned about, for the record (the run passes regardless).
      for (const p of all) {
        for (const l of p.logs) {
          const level = (l as unknown as { level?: string }).level;
          if (l.message.startsWith("Expert setting")) continue;
          if (level === "WARN" || level === "ERROR" || level === "FATAL") {
            console.log(`  ${p.name}${p.killedAt ? " (killed)" : ""} ${level}: ${l.message}`);
          }
        }
      }
      const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
      const term = takeovers.filter((t) => t.signal === "SIGTERM").map((t) => t.ms);
      const kill = takeovers.filter((t) => t.signal === "SIGKILL").map((t) => t.ms);
      console.log(
        `e2e: ${generated.size} events, ${keys.length} deliveries, ${replays} replays after ${kill.length} SIGKILLs; ` +
          `takeover after SIGTERM median ${median(term)} ms (max ${Math.max(...term)}), ` +
          `after SIGKILL median ${median(kill)} ms (max ${
            Math.max(...kill)
          }), lease ${LEASE_MS} ms`,
      );
    } finally {
      recorder.abort();
      await client?.close();
      for (const p of [...all, server]) p.kill("SIGKILL");
      await Promise.all([...all, server].map((p) => p.done.catch(() => {})));
      await Deno.remove(dir, { recursive: true });
    }
  },
});
