/**
 * The control-plane service check, `kube_apiserver_controlplane.up`, as the
 * Datadog Agent's `kubernetes_apiserver` check reports it: run by the leader
 * only, under its term, once right away and then every interval (15 s by
 * default, the Agent's check interval).
 *
 * Each run lists `componentstatuses` and reports one check per component,
 * tagged `component:<name>`, from its `Healthy` condition: OK when `True`
 * (message: the condition's message), CRITICAL when `False` (message: the
 * condition's error, else its message), UNKNOWN otherwise; a component
 * without a `Healthy` condition is not reported, as in the Agent. Clusters
 * that no longer serve componentstatuses (deprecated since 1.19) answer
 * 404; from then on the term reads `GET /readyz?verbose` and reports it as
 * the Agent's readyz form does: `component:apiserver` (OK "ok" on a 200,
 * else CRITICAL "apiserver not ready") and `component:etcd` (OK "ok" when
 * every `etcd*` check line passes, else CRITICAL "etcd not ready"); the
 * failing check lines follow the Agent's message after a colon. Where the
 * Agent would use componentstatuses and find none, it sends nothing; kevents
 * reports readyz instead.
 *
 * When the API cannot be read (403, 5xx, timeout, no connection) the run
 * sends no check, as the Agent's does: a monitor must not page "control
 * plane down" because kevents lacks a permission or one request failed. The
 * reason is logged at WARN (once while it lasts) and counted
 * (`kevents_service_check_failures_total`).
 *
 * Checks carry a host when kevents knows the node it runs on
 * (`kubernetes_kubelet_nodename`): `<node>-<cluster name>`, the Cluster
 * Agent's own host name, which the Agent gives these checks.
 *
 * @module
 */

import type { Metrics } from "./metrics.ts";
import type { V1ComponentStatus } from "@kubernetes/client-node";
import { getLogger } from "@logtape/logtape";
import { type Clock, systemClock } from "../time/mod.ts";
import {
  COMPONENT_STATUSES,
  ForbiddenError,
  KubeApiError,
  type KubeClient,
  NotFoundError,
  type TextAnswer,
} from "../kube/mod.ts";
import { isServiceCheckSink, type ServiceCheck, type ServiceCheckSink } from "../sinks/mod.ts";

/** The service check's name, as the Agent sends it. */
export const CONTROL_PLANE_CHECK = "kube_apiserver_controlplane.up";

/** Service check statuses. */
export const CHECK_STATUS = { OK: 0, WARNING: 1, CRITICAL: 2, UNKNOWN: 3 } as const;

/** The default interval between runs, in ms: the Agent's default check interval. */
export const DEFAULT_CONTROL_PLANE_CHECK_INTERVAL_MS = 15_000;

/** Options for {@linkcode runControlPlaneCheck}. */
export interface ControlPlaneCheckOptions {
  client: KubeClient;
  /** Where each run's checks go. */
  sinks: readonly ServiceCheckSink[];
  /** Time between the starts of two runs, in ms (default 15000). */
  intervalMs?: number;
  /** Bound of each API request, in ms (default: the client's). */
  requestTimeoutMs?: number;
  clock?: Clock;
  /** Counts the checks emitted, by status, and the runs that could not read the API. */
  metrics?: Pick<Metrics, "serviceCheck" | "serviceCheckFailure">;
  /** The host of every check (`<node>-<cluster name>`); absent: none. */
  hostName?: string;
}

const log = getLogger(["kevents", "control_plane_check"]);

/** The sinks among `sinks` that take service checks (have `sendServiceChecks`), in order. */
export function serviceCheckSinks<T extends object>(
  sinks: readonly T[],
): (T & ServiceCheckSink)[] {
  return sinks.filter(isServiceCheckSink);
}

function check(
  status: ServiceCheck["status"],
  tags: string[],
  timestamp: number,
  message?: string,
): ServiceCheck {
  return {
    check: CONTROL_PLANE_CHECK,
    status,
    tags,
    ...(message === undefined || message === "" ? {} : { message }),
    timestamp,
  };
}

/**
 * One check per component of a componentstatuses list, from its `Healthy`
 * condition; a component without one is left out. `timestamp` in seconds.
 */
export function componentStatusChecks(
  items: readonly V1ComponentStatus[],
  timestamp: number,
): ServiceCheck[] {
  const checks: ServiceCheck[] = [];
  for (const item of items) {
    const name = item.metadata?.name;
    if (name === undefined || name === "") continue;
    const tags = [`component:${name}`];
    const healthy = item.conditions?.find((c) => c.type === "Healthy");
    // The Agent reports only a component's Healthy condition.
    if (healthy === undefined) continue;
    if (healthy.status === "True") {
      checks.push(check(CHECK_STATUS.OK, tags, timestamp, healthy.message));
    } else {
      // The error says what is wrong; the message is often only a probe's output.
      const status = healthy.status === "False" ? CHECK_STATUS.CRITICAL : CHECK_STATUS.UNKNOWN;
      checks.push(check(status, tags, timestamp, healthy.error || healthy.message));
    }
  }
  return checks;
}

const READYZ_LINE = /^\[([+-])\](\S+)(?: (.*))?$/;

/**
 * The checks of a `/readyz?verbose` answer, in the Agent's readyz form:
 * `component:apiserver` (OK "ok" for a 200, else CRITICAL "apiserver not
 * ready") and, when the answer lists etcd checks, `component:etcd` (OK "ok"
 * when every `etcd*` line passes, else CRITICAL "etcd not ready"); the
 * failing lines' names follow a CRITICAL message after a colon. Undefined
 * when a failed answer lists no check (it is not the health endpoint
 * speaking).
 */
export function readyzChecks(answer: TextAnswer, timestamp: number): ServiceCheck[] | undefined {
  const failed: string[] = [];
  const etcd: { passed: number; failed: string[] } = { passed: 0, failed: [] };
  let lines = 0;
  for (const line of answer.text.split("\n")) {
    const m = READYZ_LINE.exec(line.trim());
    if (m === null) continue;
    lines++;
    const [, sign, name] = m as unknown as [string, string, string];
    const isEtcd = name.startsWith("etcd");
    if (sign === "+") {
      if (isEtcd) etcd.passed++;
    } else {
      failed.push(name);
      if (isEtcd) etcd.failed.push(name);
    }
  }
  const ok = answer.code === 200;
  if (!ok && lines === 0) return undefined;
  const notReady = (what: string, names: string[]) =>
    `${what} not ready${names.length > 0 ? `: ${names.join(", ")}` : ` (${answer.code})`}`;
  const checks = [
    ok ? check(CHECK_STATUS.OK, ["component:apiserver"], timestamp, "ok") : check(
      CHECK_STATUS.CRITICAL,
      ["component:apiserver"],
      timestamp,
      notReady("apiserver", failed),
    ),
  ];
  if (etcd.passed + etcd.failed.length > 0) {
    checks.push(
      etcd.failed.length === 0
        ? check(CHECK_STATUS.OK, ["component:etcd"], timestamp, "ok")
        : check(
          CHECK_STATUS.CRITICAL,
          ["component:etcd"],
          timestamp,
          notReady("etcd", etcd.failed),
        ),
    );
  }
  return checks;
}

/** `CODE Reason: message` for an API error, else the error's message. */
function reasonOf(e: unknown): string {
  if (e instanceof KubeApiError) {
    const message = e.status?.message;
    return `${e.code} ${e.reason}${message === undefined || message === "" ? "" : `: ${message}`}`;
  }
  return e instanceof Error ? e.message : String(e);
}

/** What one run found: the checks, and the problem that made it UNKNOWN if any. */
interface RunResult {
  checks: ServiceCheck[];
  problem?: { message: string; hint: string };
}

/** Runs and their state over one term. */
class ControlPlaneProbe {
  #o: ControlPlaneCheckOptions;
  #clock: Clock;
  /** False once componentstatuses answered 404: the rest of the term reads /readyz. */
  #componentStatuses = true;

  constructor(o: ControlPlaneCheckOptions, clock: Clock) {
    this.#o = o;
    this.#clock = clock;
  }

  #now(): number {
    return Math.floor(this.#clock.now() / 1000);
  }

  #failed(what: string, error: unknown): RunResult {
    const message = `Cannot ${what}: ${reasonOf(error)}`;
    const hint = error instanceof ForbiddenError && what === "list componentstatuses"
      ? ` (kevents needs the "list" verb on "componentstatuses" in the core API group)`
      : "";
    return {
      checks: [],
      problem: { message, hint },
    };
  }

  /** One run; rejects only with the signal's reason. */
  async run(signal: AbortSignal): Promise<RunResult> {
    const { client, requestTimeoutMs } = this.#o;
    if (this.#componentStatuses) {
      try {
        const page = await client.list<V1ComponentStatus>(COMPONENT_STATUSES, {
          signal,
          timeoutMs: requestTimeoutMs,
        });
        return { checks: componentStatusChecks(page.items, this.#now()) };
      } catch (e) {
        if (signal.aborted) throw signal.reason;
        if (!(e instanceof NotFoundError)) return this.#failed("list componentstatuses", e);
        this.#componentStatuses = false;
        log.info(
          "The API server does not serve componentstatuses; reporting /readyz?verbose instead",
        );
      }
    }
    try {
      const answer = await client.requestText("GET", "/readyz", {
        query: { verbose: true },
        // A failing readyz answers 500 with the list of checks.
        acceptCodes: [500],
        signal,
        timeoutMs: requestTimeoutMs,
      });
      const checks = readyzChecks(answer, this.#now());
      if (checks !== undefined) return { checks };
      return this.#failed(
        "read /readyz?verbose",
        new Error(`${answer.code} answer without checks: ${answer.text.slice(0, 200).trim()}`),
      );
    } catch (e) {
      if (signal.aborted) throw signal.reason;
      return this.#failed("read /readyz?verbose", e);
    }
  }
}

/** Sends to every sink at once; a sink that fails is logged and the others still get the checks. */
async function deliver(
  sinks: readonly ServiceCheckSink[],
  checks: readonly ServiceCheck[],
  signal: AbortSignal,
): Promise<void> {
  const results = await Promise.allSettled(sinks.map((s) => s.sendServiceChecks(checks, signal)));
  if (signal.aborted) return;
  results.forEach((r, i) => {
    if (r.status === "rejected") {
      const name = (sinks[i] as { name?: string }).name ?? String(i);
      log.warn("Sink {sink} did not take the control-plane checks: {error}", {
        sink: name,
        error: String(r.reason),
      });
    }
  });
}

/**
 * Runs the control-plane check right away and then every `intervalMs`,
 * sending each run's checks to every sink, until `signal` aborts. Never
 * rejects: API and sink failures are reported and the loop goes on.
 * Settles once the run in flight (if any) has stopped.
 */
export async function runControlPlaneCheck(
  o: ControlPlaneCheckOptions,
  signal: AbortSignal,
): Promise<void> {
  const clock = o.clock ?? systemClock;
  const intervalMs = o.intervalMs ?? DEFAULT_CONTROL_PLANE_CHECK_INTERVAL_MS;
  const probe = new ControlPlaneProbe(o, clock);
  // The last problem logged: the same one every interval is logged once.
  let lastProblem: string | undefined;
  while (!signal.aborted) {
    const started = clock.now();
    try {
      const { checks, problem } = await probe.run(signal);
      if (problem !== undefined && problem.message !== lastProblem) {
        log.warn("Control-plane check: {problem}{hint}; no service check is sent", {
          problem: problem.message,
          hint: problem.hint,
        });
      } else if (problem === undefined && lastProblem !== undefined) {
        log.info("Control-plane check: the API server answers again");
      }
      lastProblem = problem?.message;
      if (problem !== undefined) o.metrics?.serviceCheckFailure();
      for (const c of checks) o.metrics?.serviceCheck(c.status);
      const hosted = o.hostName === undefined
        ? checks
        : checks.map((c) => ({ ...c, hostName: o.hostName }));
      if (hosted.length > 0) await deliver(o.sinks, hosted, signal);
    } catch (e) {
      if (signal.aborted) return;
      // A bug, not an API failure: keep the leader's other work running.
      log.error("Control-plane check failed: {error}", { error: String(e) });
    }
    try {
      await clock.sleep(Math.max(0, intervalMs - (clock.now() - started)), signal);
    } catch (e) {
      if (signal.aborted) return;
      throw e;
    }
  }
}
