/**
 * An independent judge of the ConfigMap lock: the Kubernetes Python
 * client's own leader elector (`kubernetes.leaderelection`, Debian's
 * python3-kubernetes) and kevents' elector share one ConfigMap on the fake
 * API server, each on its own real clock, each taking over from the other.
 * The Python elector writes its record in its own way (the lease as a
 * string, str(datetime) times, no transition count) and ignores the
 * record's lease in favour of its own configuration; kevents must read the
 * one and write what the other reads.
 *
 * Skipped, with a message, when `/usr/bin/python3` cannot import
 * `kubernetes.leaderelection`; .ci/run installs python3-kubernetes.
 */

import { TrackedLock } from "../_tracked_lock.ts";
import assert from "node:assert/strict";
import {
  AnnotationLock,
  decodeRecord,
  LEADER_ANNOTATION,
} from "../../lib/election/annotation_lock.ts";
import { type ElectionTimings, runElector, type Term } from "../../lib/election/elector.ts";
import { type FakeApiServer, startFakeApiServer } from "../../lib/fake_apiserver/mod.ts";
import { KubeClient } from "../../lib/kube/client.ts";
import { PooledKubeConfig } from "../../lib/kube/kubeconfig.ts";
import { polling, waitUntil, within } from "../_fake_api.ts";
import { commandSucceeds, LineReader, withTempDir } from "../_process.ts";

const PYTHON = "/usr/bin/python3";
const NS = "default";
const NAME = "datadog-leader-election";
/** Bound of every wait: generous, for a loaded 2-core machine and Python's start. */
const BOUND_MS = 30_000;

/** The Python elector's configuration, in whole seconds as it requires. */
const PY_LEASE_S = 6;
const PY_RENEW_DEADLINE_S = 4;
const PY_RETRY_S = 1;

/** kevents' timings: the retry period above a second, as whole-second record times need. */
const TIMINGS: ElectionTimings = {
  leaseDurationMs: 6_000,
  renewDeadlineMs: 4_000,
  retryPeriodMs: 1_500,
  requestTimeoutMs: 1_000,
};

function pythonElectorAvailable(): Promise<boolean> {
  return commandSucceeds(PYTHON, ["-c", "import kubernetes.leaderelection"]);
}

const HAVE_PYTHON_ELECTOR = await pythonElectorAvailable();
if (!HAVE_PYTHON_ELECTOR) {
  console.log(
    `SKIPPED: ${PYTHON} cannot import kubernetes.leaderelection (apt-get install ` +
      "python3-kubernetes); python_elector_test needs it",
  );
}

/** One candidate of the Python client's election on the ConfigMap lock, printing when it leads. */
const ELECT_PY = `
import sys
from kubernetes import config
from kubernetes.leaderelection import electionconfig, leaderelection
from kubernetes.leaderelection.resourcelock.configmaplock import ConfigMapLock

kubeconfig, namespace, name, identity, lease, renew, retry = sys.argv[1:8]
config.load_kube_config(config_file=kubeconfig)


def started():
    print("LEADING " + identity, flush=True)


def stopped():
    print("STOPPED " + identity, flush=True)


lock = ConfigMapLock(name, namespace, identity)
cfg = electionconfig.Config(
    lock,
    lease_duration=int(lease),
    renew_deadline=int(renew),
    retry_period=int(retry),
    onstarted_leading=started,
    onstopped_leading=stopped,
)
leaderelection.LeaderElection(cfg).run()
`;

/** The Python elector as a child process, its output read line by line as it arrives. */
class PythonElector implements AsyncDisposable {
  readonly identity: string;
  readonly stdout: LineReader;
  readonly stderr: LineReader;
  readonly #child: Deno.ChildProcess;

  constructor(dir: string, identity: string) {
    this.identity = identity;
    this.#child = new Deno.Command(PYTHON, {
      args: [
        `${dir}/elect.py`,
        `${dir}/kubeconfig`,
        NS,
        NAME,
        identity,
        String(PY_LEASE_S),
        String(PY_RENEW_DEADLINE_S),
        String(PY_RETRY_S),
      ],
      clearEnv: true,
      env: { HOME: dir, PATH: "/usr/bin:/bin", PYTHONDONTWRITEBYTECODE: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.stdout = new LineReader(this.#child.stdout);
    this.stderr = new LineReader(this.#child.stderr);
  }

  /** Resolves once it has taken the lock. */
  async leading(): Promise<void> {
    await this.stdout.waitFor(new RegExp(`^LEADING ${this.identity}$`), BOUND_MS).catch((e) => {
      throw new Error(`${e}; ${this.identity}'s log:\n${this.stderr.lines.join("\n")}`);
    });
  }

  /** How many times it found the lock held by `holder`, unexpired, and left it alone. */
  deferredTo(holder: string): number {
    return this.stderr.lines.filter((l) =>
      l.includes(`lease held by ${holder} and has not expired`)
    ).length;
  }

  /** Whether it printed that it leads. */
  get led(): boolean {
    return this.stdout.lines.some((l) => l.startsWith("LEADING "));
  }

  /** SIGKILL: it dies without a word, holding the lock. */
  async kill(): Promise<void> {
    try {
      this.#child.kill("SIGKILL");
    } catch (e) {
      if (!(e instanceof TypeError)) throw e; // Already exited.
    }
    await this.#child.status;
    await Promise.all([this.stdout.done, this.stderr.done]);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill();
  }
}

/** kevents' elector on the ConfigMap lock, on the system clock. */
class KeventsElector implements AsyncDisposable {
  readonly identity: string;
  readonly lock: TrackedLock;
  /** Its terms, with the Date.now() times they started and ended. */
  readonly terms: { startedAt: number; endedAt?: number }[] = [];
  readonly #client: KubeClient;
  readonly #stop = new AbortController();
  readonly #done: Promise<void>;

  constructor(server: FakeApiServer, identity: string) {
    this.identity = identity;
    server.addUser(identity);
    const kc = new PooledKubeConfig();
    kc.loadFromString(server.kubeconfig({ user: identity }));
    this.#client = new KubeClient(kc);
    this.lock = new TrackedLock(
      new AnnotationLock(this.#client, { kind: "configmap", namespace: NS, name: NAME }),
    );
    // The work ends with its term, or when asked to drain (it has nothing in flight).
    const lead = (term: Term) =>
      new Promise<void>((resolve) => {
        const entry: { startedAt: number; endedAt?: number } = { startedAt: Date.now() };
        this.terms.push(entry);
        const end = () => {
          entry.endedAt ??= Date.now();
          resolve();
        };
        term.signal.addEventListener("abort", end, { once: true });
        term.drain?.addEventListener("abort", end, { once: true });
      });
    this.#done = runElector(
      { lock: this.lock, identity, timings: TIMINGS, lead },
      this.#stop.signal,
    );
  }

  get leading(): boolean {
    return this.terms.some((t) => t.endedAt === undefined);
  }

  /** Stops it: it releases the lock if it holds it. */
  async stop(): Promise<void> {
    this.#stop.abort(new Error("Stopping"));
    await within(this.#done, BOUND_MS, `${this.identity} to stop`);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
    await this.#client.close();
  }
}

/** Every write to the lock's annotation, with when the server committed it (Date.now()). */
function annotationHistory(
  server: FakeApiServer,
): { writes: { at: number; text: string }[] } & Disposable {
  const writes: { at: number; text: string }[] = [];
  const unsubscribe = server.store.subscribe((change) => {
    const { record } = change;
    if (record.storage !== "/configmaps" || record.key !== `${NS}/${NAME}`) return;
    const text = record.object.metadata.annotations?.[LEADER_ANNOTATION];
    if (change.type !== "DELETED" && text !== undefined && text !== writes.at(-1)?.text) {
      writes.push({ at: Date.now(), text });
    }
  });
  return { writes, [Symbol.dispose]: unsubscribe };
}

/** The annotation as the server holds it. */
function annotationOf(server: FakeApiServer): string | undefined {
  return server.get("configmaps", NS, NAME)?.metadata.annotations?.[LEADER_ANNOTATION];
}

/** Waits until `condition` holds, checking every few ms; fails naming `what`. */
function until(what: string, condition: () => boolean): Promise<void> {
  return waitUntil(what, condition, polling, BOUND_MS);
}

/** What the Python elector writes: its spacing, the lease a string, str(datetime) times. */
const PYTHON_RECORD = new RegExp(
  String.raw`^\{"holderIdentity": "(py-[a-z])", "leaseDurationSeconds": "${PY_LEASE_S}", ` +
    String.raw`"acquireTime": "(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?)", ` +
    String.raw`"renewTime": "(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?)"\}$`,
);

/** Runs `use` with a fake API server and a folder holding its kubeconfig and the Python script. */
async function withPythonSetup(
  use: (server: FakeApiServer, dir: string) => Promise<void>,
): Promise<void> {
  await withTempDir("kevents_python_", async (dir) => {
    await using server = await startFakeApiServer();
    // Python's client verifies TLS with the CA the kubeconfig carries.
    await Deno.writeTextFile(`${dir}/kubeconfig`, server.kubeconfig());
    await Deno.writeTextFile(`${dir}/elect.py`, ELECT_PY);
    await use(server, dir);
  });
}

Deno.test({
  name:
    "kevents takes a ConfigMap lock over from a killed Python elector once its lease has run out",
  ignore: !HAVE_PYTHON_ELECTOR,
  async fn(t) {
    await withPythonSetup(async (server, dir) => {
      using history = annotationHistory(server);
      await using python = new PythonElector(dir, "py-a");

      await t.step("the Python elector creates the ConfigMap and leads", async () => {
        await python.leading();
        const text = annotationOf(server)!;
        console.log(`Python's record: ${text}`);
        const m = PYTHON_RECORD.exec(text);
        assert.ok(m !== null, `the Python elector's record as expected: ${text}`);
        assert.equal(m[1], "py-a");
        assert.deepEqual(decodeRecord(text), {
          holderIdentity: "py-a",
          leaseDurationSeconds: PY_LEASE_S,
          acquireTime: m[2],
          renewTime: m[4],
          leaderTransitions: 0,
        });
      });

      await using kevents = new KeventsElector(server, "kevents-a");

      await t.step("kevents leaves it alone while it renews", async () => {
        const before = history.writes.length;
        await until("three renewals by the Python elector", () => {
          assert.equal(kevents.leading, false, "kevents took a renewed lock");
          return history.writes.length >= before + 3;
        });
        assert.ok(history.writes.every((w) => PYTHON_RECORD.test(w.text)));
      });

      await t.step(
        "killed, its last record is taken over by kevents after the lease, no sooner",
        async () => {
          await python.kill();
          const last = history.writes.at(-1)!;
          assert.match(last.text, PYTHON_RECORD);
          await until("kevents to lead", () => kevents.leading);
          const waited = kevents.terms[0]!.startedAt - last.at;
          assert.ok(waited >= PY_LEASE_S * 1000, `took over ${waited} ms after the last renewal`);
          const taken = JSON.parse(annotationOf(server)!);
          assert.deepEqual(Object.keys(taken), [
            "holderIdentity",
            "leaseDurationSeconds",
            "acquireTime",
            "renewTime",
            "leaderTransitions",
          ]);
          assert.equal(taken.holderIdentity, "kevents-a");
          assert.equal(taken.leaseDurationSeconds, TIMINGS.leaseDurationMs / 1000);
          assert.match(taken.renewTime, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
          assert.equal(taken.leaderTransitions, 1);
        },
      );
    });
  },
});

Deno.test({
  name:
    "the Python elector takes a ConfigMap lock over from kevents: at once when released, after its lease when kevents is cut off",
  ignore: !HAVE_PYTHON_ELECTOR,
  async fn(t) {
    for (const ending of ["released", "cut off"] as const) {
      await t.step(ending, async (t) => {
        await withPythonSetup(async (server, dir) => {
          using history = annotationHistory(server);
          await using kevents = new KeventsElector(server, "kevents-a");
          await until("kevents to lead", () => kevents.leading);
          await using python = new PythonElector(dir, "py-b");

          await t.step("the Python elector reads kevents' record and leaves it alone", async () => {
            await until("the Python elector to defer to kevents three times", () => {
              assert.equal(python.led, false, "the Python elector took a renewed lock");
              return python.deferredTo("kevents-a") >= 3;
            });
            assert.equal(JSON.parse(annotationOf(server)!).holderIdentity, "kevents-a");
          });

          if (ending === "released") {
            await t.step("kevents stops and releases: the Python elector takes it", async () => {
              await kevents.stop();
              assert.equal(JSON.parse(annotationOf(server)!).holderIdentity, "");
              const releasedAt = history.writes.at(-1)!.at;
              await python.leading();
              const taken = history.writes.at(-1)!;
              assert.match(taken.text, PYTHON_RECORD);
              assert.equal(PYTHON_RECORD.exec(taken.text)![1], "py-b");
              // At its next poll: no lease to wait out.
              assert.ok(taken.at - releasedAt < PY_LEASE_S * 1000);
            });
          } else {
            await t.step(
              "kevents is cut off: its term ends, then the Python elector takes it after its lease",
              async () => {
                kevents.lock.cut();
                await python.leading();
                const taken = history.writes.at(-1)!;
                assert.equal(PYTHON_RECORD.exec(taken.text)?.[1], "py-b");
                const lastRenewal = history.writes.findLast((w) =>
                  JSON.parse(w.text).holderIdentity === "kevents-a"
                )!;
                const waited = taken.at - lastRenewal.at;
                assert.ok(
                  waited >= PY_LEASE_S * 1000,
                  `took over ${waited} ms after the last renewal`,
                );
                const ended = kevents.terms[0]!.endedAt;
                assert.ok(ended !== undefined && ended < taken.at, "kevents stopped leading first");
              },
            );
          }
        });
      });
    }
  },
});
