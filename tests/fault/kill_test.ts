/**
 * The fault suite, hard kill: three `kevents run` processes against an
 * in-process fake API server; the leader's checkpoint write (its PUT of
 * the token ConfigMap) is held in flight at the server, and the leader is
 * SIGKILLed while it waits. Three endings of that write:
 *
 * - abandoned: the server drops it with its client (never written);
 * - completed: the server had the whole request and carries it out after
 *   the leader died, before anyone else leads;
 * - late: it is carried out only after the next leader took over, and must
 *   be refused (the next leader's term stamp changed the ConfigMap).
 *
 * What every replica prints is fed to the fault harness, which checks it
 * against every Event change the server committed and the Lease history:
 * nothing lost, duplicates only past the last checkpoint written, one
 * leader at a time. The next leader must hold the Lease within the lease
 * duration plus one second of the kill. Each case prints one
 * `FAULT <name>: ...` line.
 *
 * Every wait is on a condition or a process and bounded; none is a sleep.
 */

import assert from "node:assert/strict";
import { within } from "../_fake_api.ts";
import { FAULT_BOUND_MS, type FaultHarness, startFaultHarness } from "./_harness.ts";
import { readLines } from "../_process.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const LEASE_MS = 2000;

interface LogLine {
  message: string;
  properties: Record<string, string>;
}

/** One `kevents run` process; what it prints is parsed as it comes. */
class Replica {
  readonly user: string;
  readonly child: Deno.ChildProcess;
  /** Its identity (the Lease holder name), from its "Starting as" log line. */
  identity: string | undefined;
  /** Idempotency keys it printed, in order. */
  readonly keys: string[] = [];
  readonly logs: LogLine[] = [];
  /** Lines of stdout that are not a record: only a killed process's torn last line may be one. */
  readonly torn: string[] = [];
  readonly done: Promise<Deno.CommandStatus>;
  killedAt: number | undefined;
  #h: FaultHarness;
  #pending: string[] = [];
  #waiters: { test: () => boolean; resolve: () => void }[] = [];

  constructor(h: FaultHarness, user: string, kubeconfig: string) {
    this.#h = h;
    this.user = user;
    this.child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-net", "--allow-read", "--allow-env", MAIN, "run"],
      env: {
        KUBECONFIG: kubeconfig,
        KUBERNETES: "1",
        POD_NAME: user,
        KEVENTS_LEASE_DURATION_MS: String(LEASE_MS),
        KEVENTS_HEALTH_PORT: "0",
        KEVENTS_CHECKPOINT_INTERVAL_MS: "100",
        DD_LOG_LEVEL: "info",
      },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.done = Promise.all([
      readLines(this.child.stdout, (l) => this.#stdout(l)),
      readLines(this.child.stderr, (l) => this.#stderr(l)),
    ]).then(() => this.child.status);
  }

  #stdout(line: string): void {
    let record: { key?: string; serviceCheck?: unknown };
    try {
      record = JSON.parse(line);
    } catch {
      this.torn.push(line);
      return;
    }
    if (record.serviceCheck !== undefined || record.key === undefined) return;
    this.keys.push(record.key);
    // Logged at once, so the delivery log's times compare with the Lease history's.
    if (this.identity === undefined) this.#pending.push(record.key);
    else this.#h.recordDeliveries(this.identity, [record.key]);
    this.#wake();
  }

  #stderr(line: string): void {
    let log: LogLine;
    try {
      log = JSON.parse(line) as LogLine;
    } catch {
      log = { message: line, properties: {} };
    }
    this.logs.push(log);
    if (log.message.startsWith("Starting as") && this.identity === undefined) {
      this.identity = log.properties.identity;
      if (this.identity !== undefined && this.#pending.length > 0) {
        this.#h.recordDeliveries(this.identity, this.#pending.splice(0));
      }
    }
    this.#wake();
  }

  #wake(): void {
    for (const w of [...this.#waiters]) {
      if (!w.test()) continue;
      this.#waiters.splice(this.#waiters.indexOf(w), 1);
      w.resolve();
    }
  }

  /** Resolves once `test` holds, checked after every line it prints (bounded). */
  until(what: string, test: () => boolean): Promise<void> {
    if (test()) return Promise.resolve();
    const p = new Promise<void>((resolve) => this.#waiters.push({ test, resolve }));
    return within(p, FAULT_BOUND_MS, `${this.user}: ${what}`);
  }

  /** The positions its terms started from ("Pump started ... at {rv}"), in order. */
  resumedFrom(): string[] {
    return this.logs.filter((l) => l.message.startsWith("Pump started"))
      .map((l) => l.properties.rv ?? "");
  }

  /** Whether it has started a term. */
  get leading(): boolean {
    return this.resumedFrom().length > 0;
  }

  kill(signal: Deno.Signal): void {
    if (signal === "SIGKILL") this.killedAt = performance.now();
    try {
      this.child.kill(signal);
    } catch {
      // Already exited.
    }
  }
}

/** The checkpoint writes the server stored for terms of `identity`. */
function writesOf(h: FaultHarness, identity: string) {
  return h.checkpoints.filter((c) => c.term.startsWith(`${identity}/`));
}

type Ending = "abandoned" | "completed" | "late";

for (const ending of ["abandoned", "completed", "late"] as Ending[]) {
  Deno.test(`SIGKILL of the leader during a checkpoint write (${ending}): nothing lost, duplicates only past the last checkpoint written, a new leader within lease + 1 s`, async () => {
    await using h = await startFaultHarness({ leaseMs: LEASE_MS });
    const replicas: Replica[] = [];
    try {
      for (let i = 1; i <= 3; i++) {
        const user = `replica-${i}`;
        replicas.push(new Replica(h, user, await h.kubeconfigFile(user)));
      }
      const leaderOf = (among: Replica[]) =>
        Promise.race(among.map((r) => r.until("to lead", () => r.leading).then(() => r)));
      const leader = await leaderOf(replicas);
      const others = replicas.filter((r) => r !== leader);
      assert.ok(leader.identity !== undefined);
      h.generate({ total: 1500, ratePerSecond: 300, seed: 51 });
      await leader.until("300 deliveries", () => leader.keys.length >= 300);

      // Hold its next checkpoint write at the server, and kill it while the write waits.
      const hold = h.server.holdRequests(
        { verbs: ["update"], resources: ["configmaps"], identity: leader.user },
        { completeWithoutClient: ending !== "abandoned" },
      );
      await within(hold.arrived, FAULT_BOUND_MS, "the leader's checkpoint write");
      const written = writesOf(h, leader.identity);
      const lastWritten = written.at(-1)?.rv;
      assert.ok(lastWritten !== undefined, "the leader had written a checkpoint before");
      const deliveredBeforeKill = leader.keys.length;
      leader.kill("SIGKILL");
      const killedAt = leader.killedAt!;
      await within(leader.done, FAULT_BOUND_MS, "the leader to die");
      if (ending === "abandoned") {
        // Released only once the server saw the client go: then it cannot be carried out.
        await h.until(
          "the held write to be abandoned",
          () => h.server.requestLog.count({ identity: leader.user, verb: "update", code: 499 }) > 0,
        );
        hold.release();
      }
      if (ending === "completed") hold.release();

      const next = await within(leaderOf(others), FAULT_BOUND_MS, "a new leader");
      assert.ok(next.identity !== undefined);
      const taken = h.leaseHistory.find((c) => c.at > killedAt && c.holder === next.identity);
      assert.ok(taken !== undefined, "the new leader's Lease write is in the history");
      const takeoverMs = Math.round(taken.at - killedAt);
      assert.ok(
        takeoverMs <= LEASE_MS + 1000,
        `the next leader took the Lease ${takeoverMs} ms after the kill (lease ${LEASE_MS} ms)`,
      );
      if (ending === "late") {
        const refusedBefore = h.server.requestLog.count({ identity: leader.user, code: 409 });
        hold.release();
        await h.until(
          "the late checkpoint write to be refused",
          () => h.server.requestLog.count({ identity: leader.user, code: 409 }) > refusedBefore,
        );
      }

      await h.waitAllDelivered();
      for (const r of replicas) if (r !== leader) r.kill("SIGTERM");
      await within(
        Promise.all(replicas.map((r) => r.done)),
        FAULT_BOUND_MS,
        "the replicas to exit",
      );
      const result = h.verify({ duplicates: "afterCheckpoint" });

      // Where the next leader resumed: the last checkpoint the server stored.
      const lateWrites = writesOf(h, leader.identity).filter((c) => c.at > killedAt);
      const stored = ending === "completed" ? lateWrites[0]?.rv : lastWritten;
      if (ending === "completed") {
        assert.equal(lateWrites.length, 1, "the held write was carried out after the kill");
        assert.ok(Number(stored) >= Number(lastWritten));
      } else {
        assert.deepEqual(lateWrites, [], "the held write never reached the ConfigMap");
      }
      assert.equal(next.resumedFrom()[0], stored, "the next leader resumed from the checkpoint");
      // The only repeats are what the dead leader delivered past that checkpoint.
      const resumedAt = Number(stored);
      const replayable = new Set(
        leader.keys.filter((k) => Number(k.split("/")[1]) > resumedAt),
      );
      const seen = new Map<string, number>();
      for (const d of h.deliveries) seen.set(d.key, (seen.get(d.key) ?? 0) + 1);
      const repeated = [...seen].filter(([, n]) => n > 1).map(([k]) => k);
      assert.ok(
        repeated.every((k) => replayable.has(k)),
        "a key was delivered twice that the dead leader had checkpointed",
      );
      assert.equal(result.duplicates, repeated.length);
      for (const r of replicas) {
        assert.ok(
          r.torn.length === 0 || (r === leader && r.torn.length === 1),
          `${r.user} printed a line that is not a record: ${r.torn[0]?.slice(0, 80)}`,
        );
      }
      h.summary(`sigkill-during-checkpoint-${ending}`, result, {
        takeoverMs,
        resumedFrom: stored ?? "?",
        killedAfterDeliveries: deliveredBeforeKill,
      });
    } finally {
      for (const r of replicas) r.kill("SIGKILL");
      await Promise.all(replicas.map((r) => r.done.catch(() => {})));
    }
  });
}
