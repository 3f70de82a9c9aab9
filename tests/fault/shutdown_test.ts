/**
 * The fault suite, the leader stopped on purpose: three `kevents run`
 * processes against the fault harness's fake API server, delivering through
 * the webhook sink to a receiver in this process. The receiver keeps every
 * request it got (when it arrived, the `Kevents-Leader` and
 * `Kevents-Fencing-Token` headers, the keys of its NDJSON body) and logs
 * each one it accepts (answers 2xx) to the harness as a delivery by the
 * leader the header names, at the moment it accepts it; the harness checks
 * that log against every Event change the server committed and the Lease
 * history.
 *
 * - SIGTERM while the receiver takes 1 to 5 s to answer: the leader drains
 *   (delivers what is in flight and queued, renewing its lease), writes the
 *   checkpoint and releases the lease; the next leader resumes exactly
 *   there. Nothing lost, nothing twice, and no delivery outside the
 *   sender's tenure, without any grace.
 * - SIGSTOP past the lease, with a send held at the receiver or a retry
 *   pending after a 503: once the paused process wakes, its term has
 *   expired and it sends nothing more. The held send, accepted only after
 *   the takeover on purpose, is the one delivery that needs `graceMs`.
 *
 * Every wait is on a condition or a process and bounded; none is a sleep.
 * The receiver's 1 to 5 s answers are the slow sink under test, not
 * synchronisation.
 *
 * @module
 */

import assert from "node:assert/strict";
import { delay } from "../../lib/time/clock.ts";
import { FENCE_HEADERS } from "../../lib/sinks/sink.ts";
import { within } from "../_fake_api.ts";
import { FAULT_BOUND_MS, type FaultHarness, startFaultHarness } from "./_harness.ts";
import { childEnv, type LogLine, readLines } from "../_process.ts";

const ROOT = decodeURIComponent(new URL("../../", import.meta.url).pathname);
const LEASE_MS = 4000;
/** What kevents derives from the lease: the renew deadline and the retry period. */
const RENEW_DEADLINE_MS = LEASE_MS / 2;
const RETRY_MS = LEASE_MS / 4;
/** The webhook sink's "attempt N of M in W ms" line, logged right before it waits to retry. */
const RETRY_WAIT = /answered 503\b.*; attempt \d+ of \d+ in \d+ ms$/;
/** How a term that can no longer be trusted ends, in the elector's words. */
const TERM_EXPIRED =
  /could not renew|past its renew deadline|Renew deadline passed|lost .* to|The term has ended/;

/** A PRNG (mulberry32): the same seed gives the same answers' delays. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One request the receiver got. */
interface Arrival {
  /** Its `Kevents-Leader` header ("" when absent). */
  leader: string;
  /** Its `Kevents-Fencing-Token` header. */
  token: number;
  /** The idempotency keys of its body. */
  keys: string[];
  /** `performance.now()` when it arrived. */
  at: number;
  /** The status it was answered with; undefined while the receiver holds it. */
  status: number | undefined;
  /** `performance.now()` when it was answered (and, if 2xx, logged as delivered). */
  answeredAt: number | undefined;
}

/** How the receiver answers a request: a status, when it is ready to give one. */
type Answer = (request: Arrival, signal: AbortSignal) => number | Promise<number>;

/** Holds answers until opened. */
class Gate {
  #opened = Promise.withResolvers<void>();

  /** Resolves once opened; rejects when `signal` aborts first. */
  wait(signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal.aborted) return reject(signal.reason);
      const onAbort = () => reject(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      this.#opened.promise.then(() => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      });
    });
  }

  open(): void {
    this.#opened.resolve();
  }
}

/** The webhook's far end: keeps every request, answers as `answer` says, logs what it accepts. */
class WebhookReceiver {
  readonly arrivals: Arrival[] = [];
  /** How the next requests are answered. */
  answer: Answer;
  #h: FaultHarness;
  #server: Deno.HttpServer<Deno.NetAddr>;
  #closing = new AbortController();

  constructor(h: FaultHarness, answer: Answer) {
    this.#h = h;
    this.answer = answer;
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      (req) => this.#handle(req),
    );
  }

  get url(): string {
    return `http://127.0.0.1:${this.#server.addr.port}/`;
  }

  async #handle(req: Request): Promise<Response> {
    const at = performance.now();
    const body = await req.text();
    const arrival: Arrival = {
      leader: req.headers.get(FENCE_HEADERS.holder) ?? "",
      token: Number(req.headers.get(FENCE_HEADERS.token) ?? NaN),
      keys: body.split("\n").filter((l) => l !== "").map((l) =>
        (JSON.parse(l) as { key: string }).key
      ),
      at,
      status: undefined,
      answeredAt: undefined,
    };
    this.arrivals.push(arrival);
    let status: number;
    try {
      status = await this.answer(arrival, this.#closing.signal);
    } catch (e) {
      if (!this.#closing.signal.aborted) throw e;
      status = 503; // Closing: whatever was held is refused.
    }
    arrival.answeredAt = performance.now();
    arrival.status = status;
    if (status >= 200 && status < 300) this.#h.recordDeliveries(arrival.leader, arrival.keys);
    return new Response(status < 300 ? '{"status":"ok"}' : "", { status });
  }

  /** Requests of `leader` the receiver has not answered yet. */
  held(leader: string): Arrival[] {
    return this.arrivals.filter((a) => a.leader === leader && a.status === undefined);
  }

  /** Requests of `leader` accepted (2xx) at or after `since`. */
  accepted(leader: string, since = -Infinity): number {
    return this.arrivals.filter((a) =>
      a.leader === leader && a.status !== undefined && a.status < 300 && a.answeredAt! >= since
    ).length;
  }

  /** Refuses whatever it still holds, then stops serving. */
  async close(): Promise<void> {
    this.#closing.abort(new Error("The receiver is closing"));
    await this.#server.shutdown();
  }
}

/** One `kevents run` process; its stderr JSON logs are parsed as they come. */
class Replica {
  readonly user: string;
  readonly child: Deno.ChildProcess;
  /** Its identity (the Lease holder name), from its "Starting as" log line. */
  identity: string | undefined;
  readonly logs: LogLine[] = [];
  readonly stdout: string[] = [];
  /** Terms whose pump started, stopped; and times it became a candidate. */
  started = 0;
  stopped = 0;
  candidacies = 0;
  /** `performance.now()` once it has exited. */
  exitedAt: number | undefined;
  readonly done: Promise<Deno.CommandStatus>;

  constructor(user: string, env: Record<string, string>) {
    this.user = user;
    this.child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--frozen",
        "--no-prompt",
        "--config",
        `${ROOT}deno.json`,
        "--allow-net",
        "--allow-read",
        "--allow-env",
        `${ROOT}main.ts`,
        "run",
      ],
      clearEnv: true,
      env: childEnv(env),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.done = Promise.all([
      readLines(this.child.stdout, (l) => this.stdout.push(l)),
      readLines(this.child.stderr, (l) => this.#stderr(l)),
    ]).then(() => this.child.status).then((status) => {
      this.exitedAt = performance.now();
      return status;
    });
  }

  #stderr(line: string): void {
    let log: LogLine;
    try {
      log = JSON.parse(line) as LogLine;
    } catch {
      log = { "@timestamp": "", level: "?", message: line, properties: {} };
    }
    this.logs.push(log);
    const m = log.message;
    if (m.startsWith("Starting as")) this.identity ??= String(log.properties.identity);
    else if (m.startsWith("Pump started")) this.started++;
    else if (m.startsWith("Pump stopped")) this.stopped++;
    else if (/ is a candidate for /.test(m)) this.candidacies++;
  }

  /** Whether a term's pump runs. */
  get leading(): boolean {
    return this.started > this.stopped;
  }

  /** Log lines (from index `from` on) whose message matches `re`. */
  matching(re: RegExp, from = 0): LogLine[] {
    return this.logs.slice(from).filter((l) => re.test(l.message));
  }

  signal(signal: Deno.Signal): void {
    try {
      this.child.kill(signal);
    } catch (e) {
      // Already exited: nothing to signal.
      if (!(e instanceof TypeError)) throw e;
    }
  }
}

/** The harness, the receiver and the replicas of one test. */
class Fleet {
  readonly h: FaultHarness;
  readonly receiver: WebhookReceiver;
  readonly replicas: Replica[] = [];
  #env: Record<string, string>;

  constructor(h: FaultHarness, answer: Answer, env: Record<string, string>) {
    this.h = h;
    this.receiver = new WebhookReceiver(h, answer);
    this.#env = env;
  }

  /** Starts one more replica, `replica-N`. */
  async start(): Promise<Replica> {
    const user = `replica-${this.replicas.length + 1}`;
    const replica = new Replica(user, {
      KUBECONFIG: await this.h.kubeconfigFile(user),
      KUBERNETES: "1",
      POD_NAME: user,
      KEVENTS_LEASE_DURATION_MS: String(LEASE_MS),
      KEVENTS_CHECKPOINT_INTERVAL_MS: "100",
      KEVENTS_HEALTH_PORT: "0",
      KEVENTS_SINKS: "webhook",
      KEVENTS_WEBHOOK_URL: this.receiver.url,
      DD_LOG_LEVEL: "info",
      ...this.#env,
    });
    this.replicas.push(replica);
    return replica;
  }

  byIdentity(identity: string): Replica | undefined {
    return this.replicas.find((r) => r.identity === identity);
  }

  /** The running replica the Lease names whose pump runs, if any. */
  leader(): Replica | undefined {
    const holder = this.h.leaseHistory.at(-1)?.holder;
    if (holder === undefined || holder === "") return undefined;
    const r = this.byIdentity(holder);
    return r !== undefined && r.exitedAt === undefined && r.leading ? r : undefined;
  }

  /** Waits until a replica (other than `not`) leads; returns it. */
  async waitForLeader(not?: Replica): Promise<Replica> {
    let found: Replica | undefined;
    await this.until(`a leader${not === undefined ? "" : ` other than ${not.user}`}`, () => {
      found = this.leader();
      return found !== undefined && found !== not;
    });
    return found!;
  }

  /** The harness's bounded wait on a condition. */
  until(what: string, condition: () => boolean, ms = FAULT_BOUND_MS): Promise<void> {
    return this.h.until(what, condition, ms);
  }

  /** Sends SIGTERM to every replica still running and waits for their exits; returns the codes. */
  async stopAll(): Promise<number[]> {
    const running = this.replicas.filter((r) => r.exitedAt === undefined);
    for (const r of running) r.signal("SIGTERM");
    const statuses = await within(
      Promise.all(running.map((r) => r.done)),
      FAULT_BOUND_MS * 2,
      "the replicas to exit after SIGTERM",
    );
    return statuses.map((s) => s.code);
  }

  /** Prints the tail of every replica's log and the receiver's last requests. */
  dump(): void {
    for (const r of this.replicas) {
      console.error(`--- ${r.user} (${r.identity ?? "?"}), last log lines`);
      for (const l of r.logs.slice(-25)) {
        console.error(`${l["@timestamp"]} ${l.level} ${l.message}`);
      }
    }
    console.error("--- receiver, last requests");
    for (const a of this.receiver.arrivals.slice(-20)) {
      console.error(
        `${a.at.toFixed(0)} ${a.leader}#${a.token} ${a.keys.length} keys -> ${a.status ?? "held"}`,
      );
    }
  }

  /** Kills what still runs (paused ones included), then closes the receiver and the harness. */
  async close(): Promise<void> {
    for (const r of this.replicas) r.signal("SIGKILL");
    await Promise.all(this.replicas.map((r) => r.done));
    await this.receiver.close();
    await this.h.close();
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Handovers by SIGTERM in the slow-sink test. */
const HANDOVERS = 10;

/** One leader stopped by SIGTERM. */
interface Handover {
  user: string;
  identity: string;
  /** From SIGTERM to the lease released (or, if the release did not land, to the exit). */
  drainMs: number;
  /** Lease writes by it after SIGTERM, before the drain ended. */
  renewals: number;
  /** Whether its release (empty holder) is the first Lease write after SIGTERM by anyone else. */
  released: boolean;
}

Deno.test("a SIGTERM while the webhook answers in 1\u20135 s hands over with nothing lost and nothing twice, the lease renewed while it drains", async () => {
  const h = await startFaultHarness({ leaseMs: LEASE_MS });
  const random = seeded(1010);
  const fleet = new Fleet(
    h,
    (_request, signal) => delay(1000 + 4000 * random(), signal).then(() => 200),
    {},
  );
  try {
    for (let i = 0; i < 3; i++) await fleet.start();
    let leader = await fleet.waitForLeader();
    const generator = h.generate({ total: 1_000_000, ratePerSecond: 50, seed: 1011 });
    const handovers: Handover[] = [];
    for (let i = 0; i < HANDOVERS; i++) {
      const identity = leader.identity!;
      // It has caught up with the backlog of the last handover once one of
      // its requests was accepted; then the next one is held for 1 to 5 s.
      await fleet.until(
        `${leader.user} to have a request accepted and the next one in flight`,
        () => fleet.receiver.accepted(identity) > 0 && fleet.receiver.held(identity).length > 0,
      );
      const sigtermAt = performance.now();
      leader.signal("SIGTERM");
      const status = await within(
        leader.done,
        FAULT_BOUND_MS,
        `${leader.user} to exit after SIGTERM`,
      );
      assert.equal(status.code, 0, `${leader.user} exited with ${status.code} after SIGTERM`);
      const next = h.leaseHistory.find((c) => c.at > sigtermAt && c.holder !== identity);
      const released = next?.holder === "";
      const drainEnd = released ? next!.at : leader.exitedAt!;
      handovers.push({
        user: leader.user,
        identity,
        drainMs: drainEnd - sigtermAt,
        renewals: h.leaseHistory.filter((c) =>
          c.holder === identity && c.at > sigtermAt && c.at < drainEnd
        ).length,
        released,
      });
      await fleet.start();
      leader = await fleet.waitForLeader(leader);
    }
    await generator.stop();
    await h.waitAllDelivered();
    const codes = await fleet.stopAll();
    assert.deepEqual(codes, codes.map(() => 0), "every replica exits with 0 on SIGTERM");

    // Deliveries are logged when the receiver accepts them, which is before
    // the leader hears the answer, so before it may release: no grace.
    const result = h.verify({ duplicates: "none" });
    assert.equal(result.lost, 0);
    assert.equal(result.duplicates, 0);
    assert.equal(result.inGrace, 0);
    // The fencing token grows with every leader: in the order the receiver
    // accepted them, no request carries a smaller token than one before it.
    const accepted = fleet.receiver.arrivals.filter((a) => a.status === 200)
      .sort((a, b) => a.answeredAt! - b.answeredAt!);
    const tokens = accepted.map((a) => `${a.leader}#${a.token}`).filter((t, i, all) =>
      t !== all[i - 1]
    );
    const numbers = tokens.map((t) => Number(t.split("#")[1]));
    assert.deepEqual(
      numbers,
      [...numbers].sort((a, b) => a - b).filter((n, i, all) => n !== all[i - 1]),
      `fencing tokens in the order accepted: ${tokens.join(", ")}`,
    );
    for (const r of fleet.replicas) {
      assert.deepEqual(
        r.matching(/The shutdown budget/).map((l) => l.message),
        [],
        `${r.user} ran out of its shutdown budget`,
      );
    }
    // Past the renew deadline without a renewal, the term would have been cut.
    for (const ho of handovers) {
      if (ho.drainMs <= RENEW_DEADLINE_MS + RETRY_MS) continue;
      assert.ok(
        ho.renewals > 0,
        `${ho.user} drained for ${ho.drainMs.toFixed(0)} ms without renewing its lease`,
      );
    }
    const renewed = handovers.filter((ho) => ho.drainMs > RETRY_MS && ho.renewals > 0);
    assert.ok(
      renewed.length > 0,
      `no drain took longer than the retry period with a renewal: ${
        handovers.map((ho) => `${ho.drainMs.toFixed(0)} ms/${ho.renewals}`).join(", ")
      }`,
    );
    const drains = handovers.map((ho) => ho.drainMs);
    console.log(
      `FAULT slow-sink SIGTERM: ${handovers.length} handovers, ${result.generated} generated, ` +
        `${result.delivered} delivered, ${result.lost} lost, ${result.duplicates} duplicates, ` +
        `drain median ${median(drains).toFixed(0)} ms (max ${
          Math.max(...drains).toFixed(0)
        } ms; renewed while draining in ${renewed.length}; released ${
          handovers.filter((ho) => ho.released).length
        }/${handovers.length})`,
    );
  } catch (e) {
    fleet.dump();
    throw e;
  } finally {
    await fleet.close();
  }
});

type PauseKind = "send in flight" | "retry pending";

/** A request the receiver held from a paused leader and accepted after another took the lease. */
interface HeldOver {
  arrival: Arrival;
  takeoverAt: number;
}

/**
 * Pauses the leader past its lease while a send of it is held at the
 * receiver, or while it waits to retry after a 503; checks that once it
 * wakes it sends nothing more and writes no checkpoint. Returns the
 * requests of it the receiver accepted after the takeover (the held one).
 */
async function pauseLeader(fleet: Fleet, kind: PauseKind, round: number): Promise<HeldOver[]> {
  const { h, receiver } = fleet;
  const paused = await fleet.waitForLeader();
  const identity = paused.identity!;
  const since = performance.now();
  await fleet.until(`${paused.user} to deliver`, () => receiver.accepted(identity, since) > 0);
  const mine = new Gate();
  const others = new Gate();
  if (kind === "send in flight") {
    receiver.answer = (r, signal) =>
      (r.leader === identity ? mine : others).wait(signal).then(() => 200);
    await fleet.until(
      `a request of ${paused.user} held at the receiver`,
      () => receiver.held(identity).length > 0,
    );
  } else {
    receiver.answer = (r) => r.leader === identity ? 503 : 200;
    // Its first two attempts refused: it waits 500 ms (+-50%) before the third.
    const waits = paused.matching(RETRY_WAIT).length;
    await fleet.until(
      `${paused.user} to wait for a retry`,
      () => paused.matching(RETRY_WAIT).length >= waits + 2,
    );
  }
  const pausedAt = performance.now();
  paused.signal("SIGSTOP");
  await fleet.until(
    "another replica to take the lease",
    () => h.leaseHistory.some((c) => c.at > pausedAt && c.holder !== "" && c.holder !== identity),
  );
  const taken = h.leaseHistory.find((c) =>
    c.at > pausedAt && c.holder !== "" && c.holder !== identity
  )!;
  const next = fleet.byIdentity(taken.holder);
  assert.ok(next !== undefined, `the Lease names ${taken.holder}, not one of the replicas`);
  await fleet.until(
    `${next.user} to hold the lease for a further lease duration`,
    () => h.leaseHistory.some((c) => c.holder === taken.holder && c.at >= taken.at + LEASE_MS),
  );
  const heldOver: HeldOver[] = [];
  if (kind === "send in flight") {
    // The new leader sends too (held): the paused one's send is accepted first.
    await fleet.until(
      `a request of ${next.user} held at the receiver`,
      () => receiver.held(taken.holder).length > 0,
    );
    const held = receiver.held(identity);
    assert.equal(held.length, 1, `${paused.user} had one request in flight`);
    mine.open();
    await fleet.until(
      `the held request of ${paused.user} to be accepted`,
      () => held.every((a) => a.status !== undefined),
    );
    others.open();
    heldOver.push(...held.map((arrival) => ({ arrival, takeoverAt: taken.at })));
  } else {
    await fleet.until(
      `${next.user} to deliver`,
      () => receiver.accepted(taken.holder, taken.at) > 0,
    );
  }
  receiver.answer = () => 200;

  const candidacies = paused.candidacies;
  const logsBefore = paused.logs.length;
  const pausedMs = performance.now() - pausedAt;
  paused.signal("SIGCONT");
  await fleet.until(
    `${paused.user} to end its term and be a candidate again`,
    () => paused.candidacies > candidacies,
  );
  const late = receiver.arrivals.filter((a) => a.leader === identity && a.at > taken.at);
  assert.deepEqual(
    late.map((a) => `${a.keys.length} keys at +${(a.at - taken.at).toFixed(0)} ms`),
    [],
    `${paused.user} sent requests after ${next.user} took the lease`,
  );
  const lateWrites = h.checkpoints.filter((w) =>
    w.term.startsWith(`${identity}/`) && w.at > taken.at
  );
  assert.deepEqual(lateWrites, [], `${paused.user} wrote the checkpoint after the takeover`);
  assert.equal(paused.exitedAt, undefined, `${paused.user} exited after its pause`);
  const reason = paused.matching(TERM_EXPIRED, logsBefore)[0]?.message;
  assert.ok(reason !== undefined, `${paused.user} ended its term without saying why`);
  console.log(
    `FAULT paused leader (${kind}, round ${round}; paused ${pausedMs.toFixed(0)} ms, lease taken ` +
      `${(taken.at - pausedAt).toFixed(0)} ms after the pause; woke to "${reason}"): ` +
      `requests after takeover ${late.length}`,
  );
  return heldOver;
}

/** Rounds of each paused-leader case. */
const PAUSE_ROUNDS = 3;

Deno.test("a leader paused past its lease sends nothing after another replica took the lease", async (t) => {
  const h = await startFaultHarness({ leaseMs: LEASE_MS });
  // Debug: the webhook sink logs each retry wait, which tells when a retry is pending.
  const fleet = new Fleet(h, () => 200, {
    DD_LOG_LEVEL: "debug",
    KEVENTS_WEBHOOK_MAX_ATTEMPTS: "10",
  });
  try {
    for (let i = 0; i < 3; i++) await fleet.start();
    await fleet.waitForLeader();
    const generator = h.generate({ total: 1_000_000, ratePerSecond: 50, seed: 2021 });
    const heldOver: HeldOver[] = [];
    for (let round = 1; round <= PAUSE_ROUNDS; round++) {
      for (const kind of ["send in flight", "retry pending"] as PauseKind[]) {
        const passed = await t.step({
          name: `${kind} (round ${round})`,
          fn: async () => void heldOver.push(...await pauseLeader(fleet, kind, round)),
          // The replicas, the receiver and its requests outlive each step.
          sanitizeOps: false,
          sanitizeResources: false,
        });
        assert.ok(passed, `${kind} (round ${round}) failed`);
      }
    }
    await generator.stop();
    await h.waitAllDelivered();
    const codes = await fleet.stopAll();
    assert.deepEqual(codes, codes.map(() => 0), "every replica exits with 0 on SIGTERM");

    // Accepted only after the takeover, on purpose: the held sends are the
    // only deliveries outside their sender's tenure, by as long as they were
    // held past it.
    const graceMs = Math.ceil(
      Math.max(0, ...heldOver.map((o) => o.arrival.answeredAt! - o.takeoverAt)),
    ) + 5;
    const result = h.verify({ duplicates: "afterCheckpoint", graceMs });
    assert.equal(result.lost, 0);
    assert.equal(
      result.inGrace,
      heldOver.reduce((n, o) => n + o.arrival.keys.length, 0),
      "only the held sends were accepted after their sender's tenure",
    );
    h.summary("paused-leader", result, { rounds: PAUSE_ROUNDS * 2, graceMs });
  } catch (e) {
    fleet.dump();
    throw e;
  } finally {
    await fleet.close();
  }
});
