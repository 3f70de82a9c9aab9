/**
 * Specification of the control-plane service check
 * (`kube_apiserver_controlplane.up`): what it reports from componentstatuses
 * and, where they are not served, from /readyz?verbose, in the Agent's
 * forms; that it sends nothing when the API cannot be read (as the Agent); that it runs only under a leader's term and stops
 * with it. Runs go against the fake API server over the network; time is a
 * FakeClock wherever the interval matters, and every wait is on a condition
 * (checks emitted, requests logged) bounded by a timeout.
 */

import { captureLogs } from "../_logs.ts";
import assert from "node:assert/strict";
import type { V1ComponentStatus } from "@kubernetes/client-node";
import type { LogRecord } from "@logtape/logtape";
import { runCollector, runTerm } from "../../lib/collector.ts";
import { type Config, parseConfig } from "../../lib/config/mod.ts";
import {
  CHECK_STATUS,
  componentStatusChecks,
  CONTROL_PLANE_CHECK,
  readyzChecks,
  runControlPlaneCheck,
  serviceCheckSinks,
} from "../../lib/ops/control_plane_check.ts";
import { ServerError } from "../../lib/kube/errors.ts";
import {
  type FakeApiServer,
  type PolicyRule,
  startFakeApiServer,
} from "../../lib/fake_apiserver/mod.ts";
import { KubeClient } from "../../lib/kube/client.ts";
import { PooledKubeConfig } from "../../lib/kube/kubeconfig.ts";
import { NullSink } from "../../lib/sinks/null.ts";
import type { EventRecord, ServiceCheck, ServiceCheckSink, Sink } from "../../lib/sinks/sink.ts";
import { StdoutSink } from "../../lib/sinks/stdout.ts";
import { polling, waitUntil, within } from "../_fake_api.ts";
import { FakeClock } from "../_fake_clock.ts";

/** Bound of every wait: generous, for a loaded 2-core machine. */
const BOUND_MS = 20_000;
const INTERVAL_MS = 15_000;
const LEASE = "datadog-leader-election";

// ---- a sink that records service checks ------------------------------------

/**
 * Records every batch of service checks (and accepts events, so it can be
 * a collector's sink). `fail` makes it refuse checks; `hold` makes it keep
 * them until the signal aborts.
 */
class CheckRecorder implements Sink, ServiceCheckSink {
  readonly name: string;
  /** Every batch of checks accepted, in order. */
  readonly batches: ServiceCheck[][] = [];
  /** Calls of sendServiceChecks, accepted or not. */
  calls = 0;
  /** Rejects every batch with this error when set. */
  fail: Error | undefined;
  /** Holds every batch until the signal aborts when true. */
  hold = false;
  #watchers = new Set<() => void>();

  constructor(name = "recorder") {
    this.name = name;
  }

  send(_batch: readonly EventRecord[], signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    return Promise.resolve();
  }

  sendServiceChecks(checks: readonly ServiceCheck[], signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    this.calls++;
    this.#notify();
    if (this.hold) {
      return new Promise((_, reject) => {
        signal.addEventListener("abort", () => reject(signal.reason), { once: true });
      });
    }
    if (this.fail !== undefined) return Promise.reject(this.fail);
    this.batches.push([...checks]);
    this.#notify();
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  /** The last batch, sorted by tags. */
  get last(): ServiceCheck[] {
    const batch = this.batches.at(-1);
    assert.ok(batch !== undefined, `${this.name} has no checks`);
    return sorted(batch);
  }

  /** Resolves once `condition` holds for this recorder. */
  until(what: string, condition: (r: CheckRecorder) => boolean): Promise<void> {
    return waitUntil(`${this.name} has ${what}`, () => condition(this), (wake) => {
      this.#watchers.add(wake);
      return () => this.#watchers.delete(wake);
    }, BOUND_MS);
  }

  /** Resolves once `n` batches were accepted. */
  received(n: number): Promise<void> {
    return this.until(`${n} batches (has ${this.batches.length})`, (r) => r.batches.length >= n);
  }

  #notify(): void {
    for (const wake of [...this.#watchers]) wake();
  }
}

/** Counts what the check tells its metrics, and wakes whoever waits for a count. */
class CheckCounts {
  failures = 0;
  emitted = 0;
  #watchers = new Set<() => void>();

  serviceCheck(_status: 0 | 1 | 2 | 3): void {
    this.emitted++;
    this.#notify();
  }

  serviceCheckFailure(): void {
    this.failures++;
    this.#notify();
  }

  /** Resolves once `n` runs failed to read the API. */
  failed(n: number): Promise<void> {
    return waitUntil(
      `${n} failed runs (has ${this.failures})`,
      () => this.failures >= n,
      (wake) => {
        this.#watchers.add(wake);
        return () => this.#watchers.delete(wake);
      },
      BOUND_MS,
    );
  }

  #notify(): void {
    for (const wake of [...this.#watchers]) wake();
  }
}

/** Checks in a stable order (by their tags). */
function sorted(checks: readonly ServiceCheck[]): ServiceCheck[] {
  return [...checks].sort((a, b) => a.tags.join(",").localeCompare(b.tags.join(",")));
}

// ---- the fake API server, clients, a running check -----------------------------

/** A client of the fake server as `user`, closed on dispose. */
function connect(
  server: FakeApiServer,
  user = "admin",
  requestTimeoutMs?: number,
): { client: KubeClient } & AsyncDisposable {
  const kc = new PooledKubeConfig();
  kc.loadFromString(server.kubeconfig({ user }));
  const client = new KubeClient(kc, { requestTimeoutMs });
  return { client, [Symbol.asyncDispose]: () => client.close() };
}

/** A running control-plane check on a FakeClock; dispose stops it and closes its client. */
interface RunningCheck extends AsyncDisposable {
  readonly clock: FakeClock;
  readonly sink: CheckRecorder;
  /** What the check told its metrics. */
  readonly counts: CheckCounts;
  readonly controller: AbortController;
  /** Settles when runControlPlaneCheck does. */
  readonly done: Promise<void>;
  /** Aborts and waits (bounded) for the loop to settle. */
  stop(): Promise<void>;
}

function startCheck(
  server: FakeApiServer,
  options: {
    user?: string;
    sinks?: ServiceCheckSink[];
    requestTimeoutMs?: number;
    signal?: AbortSignal;
    hostName?: string;
  } = {},
): RunningCheck {
  const conn = connect(server, options.user);
  const clock = new FakeClock();
  const sink = new CheckRecorder();
  const counts = new CheckCounts();
  const controller = new AbortController();
  const signal = options.signal === undefined
    ? controller.signal
    : AbortSignal.any([controller.signal, options.signal]);
  const done = runControlPlaneCheck({
    client: conn.client,
    sinks: options.sinks ?? [sink],
    intervalMs: INTERVAL_MS,
    requestTimeoutMs: options.requestTimeoutMs,
    clock,
    metrics: counts,
    ...(options.hostName === undefined ? {} : { hostName: options.hostName }),
  }, signal);
  const stop = async () => {
    controller.abort(new Error("Test over"));
    await within(done, BOUND_MS, "the check to stop");
    await conn[Symbol.asyncDispose]();
  };
  return { clock, sink, counts, controller, done, stop, [Symbol.asyncDispose]: stop };
}

/** Seconds since the epoch on `clock`, as service checks carry them. */
function seconds(clock: FakeClock): number {
  return Math.floor(clock.now() / 1000);
}

/** A check of kube_apiserver_controlplane.up. */
function expected(
  status: ServiceCheck["status"],
  tags: string[],
  timestamp: number,
  message?: string,
): ServiceCheck {
  return {
    check: CONTROL_PLANE_CHECK,
    status,
    tags,
    ...(message === undefined ? {} : { message }),
    timestamp,
  };
}

function countRequests(server: FakeApiServer, resource: string, identity = "admin"): number {
  return server.requestLog.count({ identity, resource });
}

/** Rendered messages of the control-plane check's logs at `level`. */
function messagesOf(records: LogRecord[], level: LogRecord["level"]): string[] {
  return records
    .filter((r) => r.level === level && r.category[1] === "control_plane_check")
    .map((r) => r.message.map(String).join(""));
}

/** Calls `fn` synchronously when the first request whose path ends with `pathEnd` arrives. */
function onFirstRequest(server: FakeApiServer, pathEnd: string, fn: () => void): Disposable {
  let fired = false;
  return server.onRequest((r) => {
    if (!fired && r.path.split("?")[0]!.endsWith(pathEnd)) {
      fired = true;
      fn();
    }
  });
}

// ---- componentstatuses -------------------------------------------------------

Deno.test("each component's Healthy condition maps to OK, CRITICAL or UNKNOWN, tagged with the component, every interval", async () => {
  await using server = await startFakeApiServer();
  const refused = 'Get "https://127.0.0.1:10257/healthz": dial tcp 127.0.0.1:10257: ' +
    "connect: connection refused";
  server.setComponentStatus("scheduler", true);
  server.setComponentStatus("controller-manager", false, refused);
  server.setComponentStatus("etcd-0", "Unknown", "etcd did not answer in time");
  await using check = startCheck(server);
  const { clock, sink } = check;

  await sink.received(1);
  const t0 = seconds(clock);
  assert.deepEqual(sink.last, [
    expected(CHECK_STATUS.CRITICAL, ["component:controller-manager"], t0, refused),
    expected(CHECK_STATUS.UNKNOWN, ["component:etcd-0"], t0, "etcd did not answer in time"),
    expected(CHECK_STATUS.OK, ["component:scheduler"], t0, "ok"),
  ]);

  // Nothing runs before the interval has passed...
  server.setComponentStatus("controller-manager", true);
  await clock.advance(INTERVAL_MS - 1);
  assert.equal(clock.pending, 1, "the loop is still waiting for the interval");
  assert.equal(sink.batches.length, 1);
  assert.equal(countRequests(server, "componentstatuses"), 1);
  // ...and the next run reports what changed.
  await clock.advance(1);
  await sink.received(2);
  const t1 = seconds(clock);
  assert.equal(t1, t0 + INTERVAL_MS / 1000);
  assert.deepEqual(sink.last.map((c) => [c.tags[0], c.status, c.timestamp]), [
    ["component:controller-manager", CHECK_STATUS.OK, t1],
    ["component:etcd-0", CHECK_STATUS.UNKNOWN, t1],
    ["component:scheduler", CHECK_STATUS.OK, t1],
  ]);
  assert.equal(countRequests(server, "componentstatuses"), 2);
});

Deno.test("componentStatusChecks reads only the Healthy condition", async (t) => {
  const at = 1_767_225_600;
  const cases: [string, V1ComponentStatus, ServiceCheck][] = [
    [
      "False reports the error rather than the message",
      {
        metadata: { name: "etcd-1" },
        conditions: [{ type: "Healthy", status: "False", message: "probe", error: "timeout" }],
      },
      expected(CHECK_STATUS.CRITICAL, ["component:etcd-1"], at, "timeout"),
    ],
    [
      "False without an error reports the message",
      {
        metadata: { name: "etcd-1" },
        conditions: [{ type: "Healthy", status: "False", message: "unhealthy" }],
      },
      expected(CHECK_STATUS.CRITICAL, ["component:etcd-1"], at, "unhealthy"),
    ],
    [
      "any status other than True or False is UNKNOWN",
      {
        metadata: { name: "scheduler" },
        conditions: [{ type: "Healthy", status: "Maybe" }],
      },
      expected(CHECK_STATUS.UNKNOWN, ["component:scheduler"], at),
    ],
    [
      "other condition types are ignored",
      {
        metadata: { name: "scheduler" },
        conditions: [
          { type: "Ready", status: "False", error: "not the one" },
          { type: "Healthy", status: "True", message: "ok" },
        ],
      },
      expected(CHECK_STATUS.OK, ["component:scheduler"], at, "ok"),
    ],
  ];
  for (const [name, item, check] of cases) {
    await t.step(name, () => {
      assert.deepEqual(componentStatusChecks([item], at), [check]);
    });
  }
  await t.step("a component without a Healthy condition is not reported, as by the Agent", () => {
    assert.deepEqual(
      componentStatusChecks([{ metadata: { name: "scheduler" }, conditions: [] }], at),
      [],
    );
  });
  await t.step("an item without a name is skipped", () => {
    assert.deepEqual(
      componentStatusChecks([{ conditions: [{ type: "Healthy", status: "True" }] }], at),
      [],
    );
  });
});

// ---- the /readyz fallback -----------------------------------------------------

Deno.test("where componentstatuses is not served, /readyz is reported in the Agent's form: component:apiserver and component:etcd", async () => {
  await using server = await startFakeApiServer({ serveComponentStatuses: false });
  server.setHealthCheck("etcd", false);
  await using logs = await captureLogs();
  await using check = startCheck(server);
  const { clock, sink } = check;

  await sink.received(1);
  const t0 = seconds(clock);
  assert.deepEqual(sink.last, [
    expected(CHECK_STATUS.CRITICAL, ["component:apiserver"], t0, "apiserver not ready: etcd"),
    expected(CHECK_STATUS.CRITICAL, ["component:etcd"], t0, "etcd not ready: etcd"),
  ]);
  assert.equal(server.requestLog.count({ resource: "componentstatuses", code: 404 }), 1);

  server.setHealthCheck("etcd", true);
  await clock.advance(INTERVAL_MS);
  await sink.received(2);
  const t1 = seconds(clock);
  assert.deepEqual(sink.last, [
    expected(CHECK_STATUS.OK, ["component:apiserver"], t1, "ok"),
    expected(CHECK_STATUS.OK, ["component:etcd"], t1, "ok"),
  ]);
  assert.equal(countRequests(server, "componentstatuses"), 1, "the 404 is remembered");
  assert.equal(countRequests(server, "/readyz"), 2);
  assert.equal(messagesOf(logs.records, "info").length, 1, "the switch is logged once");
});

Deno.test("readyzChecks reads the check lines and the answer's code", async (t) => {
  const at = 1_767_225_600;
  await t.step("an excluded etcd check passes", () => {
    const checks = readyzChecks({
      code: 200,
      text: "[+]ping ok\n[+]etcd excluded: ok\nwarn: some health checks cannot be excluded\n" +
        "readyz check passed\n",
    }, at);
    assert.deepEqual(checks, [
      expected(CHECK_STATUS.OK, ["component:apiserver"], at, "ok"),
      expected(CHECK_STATUS.OK, ["component:etcd"], at, "ok"),
    ]);
  });
  await t.step("a plain 200 ok is the apiserver alone: no etcd line, no etcd check", () => {
    assert.deepEqual(readyzChecks({ code: 200, text: "ok" }, at), [
      expected(CHECK_STATUS.OK, ["component:apiserver"], at, "ok"),
    ]);
  });
  await t.step("a failure elsewhere leaves etcd OK; names may hold slashes", () => {
    const checks = readyzChecks({
      code: 500,
      text: "[+]etcd ok\n[+]etcd-readiness ok\n" +
        "[-]poststarthook/rbac/bootstrap-roles failed: reason withheld\nreadyz check failed\n",
    }, at);
    assert.deepEqual(checks, [
      expected(
        CHECK_STATUS.CRITICAL,
        ["component:apiserver"],
        at,
        "apiserver not ready: poststarthook/rbac/bootstrap-roles",
      ),
      expected(CHECK_STATUS.OK, ["component:etcd"], at, "ok"),
    ]);
  });
  await t.step("etcd-readiness failing makes etcd not ready", () => {
    const checks = readyzChecks({
      code: 500,
      text: "[+]etcd ok\n[-]etcd-readiness failed: reason withheld\nreadyz check failed\n",
    }, at);
    assert.deepEqual(checks?.map((c) => [c.tags[0], c.status, c.message]), [
      ["component:apiserver", CHECK_STATUS.CRITICAL, "apiserver not ready: etcd-readiness"],
      ["component:etcd", CHECK_STATUS.CRITICAL, "etcd not ready: etcd-readiness"],
    ]);
  });
  await t.step("a failed answer without check lines is not the health endpoint's", () => {
    assert.equal(readyzChecks({ code: 500, text: "Internal Server Error" }, at), undefined);
  });
});

Deno.test("requestText returns the body of an accepted error code and fails like request otherwise", async () => {
  await using server = await startFakeApiServer();
  server.setHealthCheck("etcd", false);
  await using conn = connect(server);
  const answer = await conn.client.requestText("GET", "/readyz", {
    query: { verbose: true },
    acceptCodes: [500],
  });
  assert.equal(answer.code, 500);
  assert.match(answer.text, /^\[-\]etcd failed: reason withheld$/m);
  await assert.rejects(
    conn.client.requestText("GET", "/readyz", { query: { verbose: true } }),
    (e) => e instanceof ServerError && e.code === 500 && /readyz check failed/.test(e.message),
  );
  const reason = new Error("Stop");
  await assert.rejects(
    conn.client.requestText("GET", "/readyz", { signal: AbortSignal.abort(reason) }),
    (e) => e === reason,
  );
  server.setHealthCheck("etcd", true);
  assert.deepEqual(await conn.client.requestText("GET", "/readyz"), { code: 200, text: "ok" });
});

Deno.test("with the node known, every check carries the host <node>-<cluster name>", async () => {
  await using server = await startFakeApiServer();
  await using check = startCheck(server, { hostName: "node-1-prod" });
  await check.sink.received(1);
  assert.ok(check.sink.last.length > 0);
  assert.ok(
    check.sink.last.every((c) => c.hostName === "node-1-prod"),
    JSON.stringify(check.sink.last),
  );
});

// ---- failures -------------------------------------------------------------------

Deno.test("an API error sends no service check, as in the Agent: it is logged once, counted, and the loop goes on", async (t) => {
  await using server = await startFakeApiServer();
  await using logs = await captureLogs();
  await using check = startCheck(server, { requestTimeoutMs: 300 });
  const { clock, sink, counts } = check;
  await sink.received(1);
  assert.equal(sink.last.length, 3, "the seeded components");

  await t.step("503: nothing sent, one failure counted, no fallback to /readyz", async () => {
    server.failNext(1, { code: 503, resources: ["componentstatuses"] });
    await clock.advance(INTERVAL_MS);
    await counts.failed(1);
    assert.equal(sink.calls, 1, "no sink was called for the failed run");
    assert.equal(countRequests(server, "/readyz"), 0, "only a 404 falls back to /readyz");
  });

  await t.step("the next run reports the components again", async () => {
    await clock.advance(INTERVAL_MS);
    await sink.received(2);
    assert.deepEqual(sink.last.map((c) => [c.tags[0], c.status]), [
      ["component:controller-manager", CHECK_STATUS.OK],
      ["component:etcd-0", CHECK_STATUS.OK],
      ["component:scheduler", CHECK_STATUS.OK],
    ]);
  });

  await t.step("no answer within the request timeout: nothing sent, counted", async () => {
    server.setLatency(5_000);
    try {
      await clock.advance(INTERVAL_MS);
      await counts.failed(2);
      assert.equal(sink.batches.length, 2);
    } finally {
      server.setLatency(0);
    }
  });

  await t.step("each failure is logged once, naming it, and the recovery too", async () => {
    await clock.advance(INTERVAL_MS);
    await sink.received(3);
    const warnings = messagesOf(logs.records, "warning");
    assert.equal(warnings.length, 2, warnings.join("\n"));
    assert.match(
      warnings[0]!,
      /Cannot list componentstatuses: 503 ServiceUnavailable: .*injected fault.*no service check is sent$/,
    );
    assert.match(
      warnings[1]!,
      /componentstatuses: no answer within 300 ms; no service check is sent$/,
    );
    assert.equal(
      messagesOf(logs.records, "info").filter((m) => /answers again/.test(m)).length,
      2,
    );
    assert.equal(counts.failures, 2);
  });
});

Deno.test("without list on componentstatuses nothing is sent and the log names the permission, once", async () => {
  await using server = await startFakeApiServer();
  const eventsOnly: PolicyRule = {
    verbs: ["get", "list", "watch"],
    apiGroups: [""],
    resources: ["events"],
  };
  server.addUser("collector", [eventsOnly]);
  await using logs = await captureLogs();
  await using check = startCheck(server, { user: "collector" });
  const { clock, sink, counts } = check;

  await counts.failed(1);
  await clock.advance(INTERVAL_MS);
  await counts.failed(2);
  assert.equal(sink.calls, 0);
  const warnings = messagesOf(logs.records, "warning");
  assert.equal(warnings.length, 1, "the same refusal is logged once");
  assert.match(
    warnings[0]!,
    /403 Forbidden: .*cannot list resource "componentstatuses" in API group "" at the cluster scope.*needs the "list" verb on "componentstatuses"/,
  );
  assert.equal(countRequests(server, "/readyz", "collector"), 0);
});

Deno.test("a sink that refuses the checks is logged and the others still get them, every run", async () => {
  await using server = await startFakeApiServer();
  await using logs = await captureLogs();
  const broken = new CheckRecorder("broken");
  broken.fail = new Error("Intake unreachable");
  const good = new CheckRecorder("good");
  await using check = startCheck(server, { sinks: [broken, good] });
  await good.received(1);
  await check.clock.advance(INTERVAL_MS);
  await good.received(2);
  assert.equal(broken.calls, 2);
  const warnings = messagesOf(logs.records, "warning");
  assert.ok(warnings.length >= 1);
  assert.match(warnings[0]!, /Sink "?broken"? did not take the control-plane checks: .*Intake/);
});

// ---- stopping -----------------------------------------------------------------

Deno.test("the check stops when its signal aborts and emits nothing after", async (t) => {
  await t.step("already aborted: returns at once without calling the API", async () => {
    await using server = await startFakeApiServer();
    await using check = startCheck(server, { signal: AbortSignal.abort(new Error("Over")) });
    await within(check.done, BOUND_MS, "the check to return");
    assert.equal(server.requestLog.count({ identity: "admin" }), 0);
    assert.equal(check.sink.calls, 0);
  });

  await t.step("aborted between runs: nothing is left waiting to run", async () => {
    await using server = await startFakeApiServer();
    await using check = startCheck(server);
    await check.sink.received(1);
    check.controller.abort(new Error("Term over"));
    await within(check.done, BOUND_MS, "the check to stop");
    assert.equal(check.clock.pending, 0, "no run is scheduled");
    await check.clock.advance(10 * INTERVAL_MS);
    assert.equal(check.sink.calls, 1);
    assert.equal(countRequests(server, "componentstatuses"), 1);
  });

  await t.step("aborted while the request is in flight: settles, reports nothing", async () => {
    await using server = await startFakeApiServer();
    server.partition("admin");
    const stopper = new AbortController();
    using _ = onFirstRequest(server, "/componentstatuses", () => stopper.abort(new Error("Over")));
    await using check = startCheck(server, { signal: stopper.signal });
    await within(check.done, BOUND_MS, "the check to stop");
    assert.equal(check.sink.calls, 0);
    assert.equal(check.clock.pending, 0);
    server.heal("admin");
  });

  await t.step("aborted while a sink holds the checks: settles", async () => {
    await using server = await startFakeApiServer();
    const holding = new CheckRecorder("holding");
    holding.hold = true;
    await using check = startCheck(server, { sinks: [holding] });
    await holding.until("a send in progress", (r) => r.calls === 1);
    check.controller.abort(new Error("Over"));
    await within(check.done, BOUND_MS, "the check to stop");
    assert.equal(check.clock.pending, 0);
  });
});

// ---- under the collector ---------------------------------------------------------

/** The collector's configuration with the control-plane check on (KUBERNETES) and `env` on top. */
function configWith(env: Record<string, string> = {}): Config {
  return parseConfig({ env: { KUBERNETES: "1", KEVENTS_LEASE_DURATION_MS: "30000", ...env } });
}

Deno.test("a term runs the check beside the pump, sends it to every service-check sink, and stops it when it ends", async (t) => {
  await t.step(
    "on: stdout gets serviceCheck lines, sinks without service checks are left out",
    async () => {
      await using server = await startFakeApiServer();
      await using conn = connect(server);
      const clock = new FakeClock();
      const recorder = new CheckRecorder();
      let ndjson = "";
      const stdout = new StdoutSink({
        writer: {
          write: (p) => {
            ndjson += new TextDecoder().decode(p);
            return Promise.resolve(p.length);
          },
        },
      });
      const nullSink = new NullSink();
      assert.deepEqual(serviceCheckSinks([nullSink, stdout, recorder]), [stdout, recorder]);
      const config = configWith();
      assert.equal(config.controlPlaneCheck, true);
      assert.equal(config.controlPlaneCheckIntervalMs, INTERVAL_MS);
      const controller = new AbortController();
      const done = runTerm(
        { client: conn.client, config, identity: "a", sinks: [nullSink, stdout, recorder], clock },
        { identity: "a", transitions: 0, signal: controller.signal },
      );
      await recorder.received(1);
      const lines = ndjson.trimEnd().split("\n").map((l) => JSON.parse(l));
      assert.deepEqual(lines, recorder.batches[0]!.map((serviceCheck) => ({ serviceCheck })));
      assert.deepEqual(
        sorted(recorder.batches[0]!).map((c) => c.tags[0]),
        ["component:controller-manager", "component:etcd-0", "component:scheduler"],
      );

      controller.abort(new Error("Term over"));
      await within(done, BOUND_MS, "the term to end");
      const requests = countRequests(server, "componentstatuses");
      await clock.advance(10 * INTERVAL_MS);
      assert.equal(recorder.calls, 1, "no check after the term ended");
      assert.equal(countRequests(server, "componentstatuses"), requests);
    },
  );

  await t.step("off: the term never asks for componentstatuses", async () => {
    await using server = await startFakeApiServer();
    await using conn = connect(server);
    const recorder = new CheckRecorder();
    const config: Config = { ...configWith(), controlPlaneCheck: false };
    const controller = new AbortController();
    const done = runTerm(
      { client: conn.client, config, identity: "a", sinks: [recorder], clock: new FakeClock() },
      { identity: "a", transitions: 0, signal: controller.signal },
    );
    await waitUntil(
      "the pump watches events",
      () => server.requestLog.count({ verb: "watch", resource: "events" }) >= 1,
      polling,
      BOUND_MS,
    );
    controller.abort(new Error("Term over"));
    await within(done, BOUND_MS, "the term to end");
    assert.equal(countRequests(server, "componentstatuses"), 0);
    assert.equal(recorder.calls, 0);
  });
});

/** The leader-election lease's holder. */
function holderOf(server: FakeApiServer): string | undefined {
  const spec = server.get("leases.coordination.k8s.io", "default", LEASE)?.spec as {
    holderIdentity?: string;
  };
  return spec?.holderIdentity;
}

/** A collector replica with its own user (so the request log tells replicas apart) and sink. */
interface Replica {
  readonly identity: string;
  readonly sink: CheckRecorder;
  readonly controller: AbortController;
  readonly done: Promise<void>;
  readonly client: KubeClient;
}

function startReplica(server: FakeApiServer, user: string, config: Config): Replica {
  server.addUser(user);
  const { client } = connect(server, user);
  const sink = new CheckRecorder(user);
  const controller = new AbortController();
  const identity = `replica-${user}`;
  const done = runCollector({ client, config, identity, sinks: [sink] }, controller.signal);
  return { identity, sink, controller, done, client };
}

Deno.test("only the leader reports the control plane; after a handover only the new leader does", async () => {
  await using server = await startFakeApiServer();
  // A lease long enough that a loaded machine does not lose it by accident;
  // a clean stop releases it, so the handover takes one retry period.
  const config: Config = {
    ...configWith({ KEVENTS_LEASE_DURATION_MS: "8000" }),
    controlPlaneCheckIntervalMs: 50,
  };
  const replicas = [startReplica(server, "a", config), startReplica(server, "b", config)];
  try {
    await waitUntil(
      "one replica has reported the control plane three times",
      () => replicas.some((r) => r.sink.batches.length >= 3),
      polling,
      BOUND_MS,
    );
    const leader = replicas.find((r) => r.sink.batches.length >= 3)!;
    const follower = replicas.find((r) => r !== leader)!;
    const user = (r: Replica) => r.identity.slice("replica-".length);
    assert.equal(holderOf(server), leader.identity);
    await waitUntil(
      "the follower has asked for the lease",
      () => countRequests(server, "leases.coordination.k8s.io", user(follower)) >= 1,
      polling,
      BOUND_MS,
    );
    assert.equal(follower.sink.calls, 0, "the follower reported nothing");
    assert.equal(countRequests(server, "componentstatuses", user(follower)), 0);

    // The leader steps down: its term ends, the lease is released, the follower takes it.
    leader.controller.abort(new Error("Shutdown"));
    await within(leader.done, BOUND_MS, "the leader to stop");
    const leaderCalls = leader.sink.calls;
    const leaderRequests = countRequests(server, "componentstatuses", user(leader));
    await follower.sink.received(3);
    assert.equal(holderOf(server), follower.identity);
    assert.equal(leader.sink.calls, leaderCalls, "the old leader reported nothing after its term");
    assert.equal(countRequests(server, "componentstatuses", user(leader)), leaderRequests);
  } finally {
    for (const r of replicas) r.controller.abort(new Error("Test over"));
    await within(Promise.all(replicas.map((r) => r.done)), BOUND_MS, "the replicas to stop");
    await Promise.all(replicas.map((r) => r.client.close()));
  }
});

Deno.test("KUBERNETES with DD_COLLECT_KUBERNETES_EVENTS=false: the leader runs the control-plane check and collects no events", async () => {
  await using server = await startFakeApiServer();
  const config: Config = {
    ...configWith({ KEVENTS_LEASE_DURATION_MS: "8000", DD_COLLECT_KUBERNETES_EVENTS: "false" }),
    controlPlaneCheckIntervalMs: 50,
  };
  assert.equal(config.collectEvents, false);
  const replica = startReplica(server, "a", config);
  try {
    await replica.sink.received(3);
    assert.equal(holderOf(server), replica.identity, "it leads");
    assert.equal(countRequests(server, "events", "a"), 0, "no list or watch of events");
    assert.equal(server.get("configmaps", "default", "datadogtoken"), undefined, "no checkpoint");
  } finally {
    replica.controller.abort(new Error("Test over"));
    await within(replica.done, BOUND_MS, "the replica to stop");
    await replica.client.close();
  }
});

// ---- the stdout sink -----------------------------------------------------------

Deno.test("the stdout sink writes one serviceCheck line per check and never splits a line between writers", async () => {
  let out = "";
  // A writer that takes at most 7 bytes per call and yields in between.
  const stdout = new StdoutSink({
    writer: {
      write: async (p) => {
        await Promise.resolve();
        const n = Math.min(7, p.length);
        out += new TextDecoder().decode(p.subarray(0, n));
        return n;
      },
    },
  });
  const signal = new AbortController().signal;
  const checks = [
    expected(CHECK_STATUS.OK, ["component:scheduler"], 1, "ok"),
    expected(CHECK_STATUS.CRITICAL, ["component:etcd-0"], 1, "down"),
  ];
  const record: EventRecord = {
    key: "u/1",
    type: "ADDED",
    event: { metadata: { name: "e" }, involvedObject: {} },
  };
  await Promise.all([
    stdout.send([record, record], signal),
    stdout.sendServiceChecks(checks, signal),
    stdout.send([record], signal),
  ]);
  const lines = out.trimEnd().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(lines, [
    { key: "u/1", type: "ADDED", event: record.event },
    { key: "u/1", type: "ADDED", event: record.event },
    { serviceCheck: checks[0] },
    { serviceCheck: checks[1] },
    { key: "u/1", type: "ADDED", event: record.event },
  ]);
  await assert.rejects(stdout.sendServiceChecks(checks, AbortSignal.abort(new Error("No"))));
});
