import assert from "node:assert/strict";
import {
  type CoreEvent,
  EventGenerator,
  type EventGeneratorOptions,
  type GeneratedChange,
  runEventGenerator,
} from "../../lib/fake_apiserver/event_generator.ts";

const START = Date.parse("2026-11-21T20:03:04Z");

/** A clock that advances a fixed step on every read, so runs are reproducible. */
function steppingClock(stepMs = 730): () => Date {
  let now = START;
  return () => new Date(now += stepMs);
}

function generate(count: number, options: EventGeneratorOptions = {}): GeneratedChange[] {
  const generator = new EventGenerator({ now: steppingClock(), ...options });
  return Array.from({ length: count }, () => generator.next());
}

function creates(changes: GeneratedChange[]): CoreEvent[] {
  return changes.flatMap((c) => (c.op === "create" ? [c.event] : []));
}

function field<T>(event: CoreEvent, key: string): T {
  return event[key] as T;
}

interface Ref {
  kind: string;
  namespace?: string;
  name: string;
  uid: string;
  apiVersion: string;
  resourceVersion?: string;
  fieldPath?: string;
}

const RFC3339_SECONDS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const API_VERSIONS: Record<string, string> = {
  Pod: "v1",
  Node: "v1",
  ReplicaSet: "apps/v1",
  Deployment: "apps/v1",
};

/** Asserts everything a core/v1 Event from the generator must have; returns the involved object. */
function assertCoreEvent(event: CoreEvent): Ref {
  const json = JSON.stringify(event);
  assert.equal(event.apiVersion, "v1", json);
  assert.equal(event.kind, "Event", json);

  const ref = field<Ref>(event, "involvedObject");
  assert.equal(API_VERSIONS[ref.kind], ref.apiVersion, json);
  assert.ok(ref.name.length > 0, json);
  assert.match(event.metadata.name, new RegExp(`^${ref.name}\\.[0-9a-f]{16}$`), json);
  if (ref.kind === "Node") {
    // Cluster-scoped: no namespace on the reference, the event lives in "default".
    assert.equal(ref.namespace, undefined, json);
    assert.equal(event.metadata.namespace, "default", json);
    assert.match(ref.name, /^node-\d+$/, json);
    // The kubelet puts the node name where the UID goes; the node controller uses the real UID.
    assert.ok(ref.uid === ref.name || UUID_V4.test(ref.uid), json);
  } else {
    assert.equal(ref.namespace, event.metadata.namespace, json);
    assert.match(ref.uid, UUID_V4, json);
    assert.match(ref.resourceVersion ?? "", /^\d+$/, json);
  }
  if (ref.fieldPath !== undefined) {
    assert.equal(ref.kind, "Pod", json);
    assert.match(ref.fieldPath, /^spec\.containers\{[a-z0-9-]+\}$/, json);
  }

  assert.match(field<string>(event, "reason"), /^[A-Z][A-Za-z]+$/, json);
  assert.ok(field<string>(event, "message").length > 0, json);
  const source = field<{ component: string; host?: string }>(event, "source");
  assert.ok(source.component.length > 0, json);
  if (source.component === "kubelet") assert.match(source.host ?? "", /^node-\d+$/, json);
  assert.match(field<string>(event, "firstTimestamp"), RFC3339_SECONDS, json);
  assert.equal(event.lastTimestamp, event.firstTimestamp, json);
  assert.equal(event.count, 1, json);
  assert.ok(event.type === "Normal" || event.type === "Warning", json);
  assert.equal(event.eventTime, null, json);
  assert.equal(event.reportingComponent, source.component, json);
  assert.equal(event.reportingInstance, source.host ?? "", json);
  return ref;
}

Deno.test("event generator", async (t) => {
  await t.step("the same seed and clock give the same sequence", () => {
    assert.deepEqual(generate(2_000, { seed: 42 }), generate(2_000, { seed: 42 }));
  });

  await t.step("different seeds give different sequences", () => {
    const one = JSON.stringify(generate(200, { seed: 1 }));
    const two = JSON.stringify(generate(200, { seed: 2 }));
    assert.notEqual(one, two);
  });

  await t.step("every create is a complete core/v1 Event with a unique name", () => {
    const events = creates(generate(3_000));
    assert.ok(events.length > 2_000);
    for (const event of events) assertCoreEvent(event);
    const keys = new Set(events.map((e) => `${e.metadata.namespace}/${e.metadata.name}`));
    assert.equal(keys.size, events.length);
  });

  await t.step("events are 650 to 750 bytes of JSON on average", () => {
    const sizes = creates(generate(1_000)).map((e) => JSON.stringify(e).length);
    const mean = sizes.reduce((a, b) => a + b, 0) / sizes.length;
    assert.ok(mean >= 650 && mean <= 750, `mean size ${mean}`);
    assert.ok(Math.max(...sizes) < 1_500, `largest event ${Math.max(...sizes)} bytes`);
  });

  await t.step("the mix covers pods, controllers and nodes, normal and warning", () => {
    const events = creates(generate(5_000));
    const reasons = new Set(events.map((e) => e.reason));
    for (
      const reason of [
        "Scheduled",
        "Pulling",
        "Pulled",
        "Created",
        "Started",
        "Killing",
        "BackOff",
        "Unhealthy",
        "FailedScheduling",
        "SuccessfulCreate",
        "ScalingReplicaSet",
        "NodeNotReady",
        "NodeReady",
        "Starting",
        "NodeHasSufficientMemory",
      ]
    ) {
      assert.ok(reasons.has(reason), `no ${reason} event among ${[...reasons].join(", ")}`);
    }
    const kinds = new Set(events.map((e) => field<Ref>(e, "involvedObject").kind));
    assert.deepEqual([...kinds].sort(), ["Deployment", "Node", "Pod", "ReplicaSet"]);
    const warnings = events.filter((e) => e.type === "Warning").length / events.length;
    assert.ok(warnings > 0.05 && warnings < 0.5, `warning share ${warnings}`);
    const namespaces = new Set(events.map((e) => e.metadata.namespace));
    assert.deepEqual([...namespaces].sort(), ["default", "kube-system", "payments", "web"]);
  });

  await t.step("a pod is scheduled before its node's kubelet reports on it", () => {
    const events = creates(generate(3_000));
    const assigned = new Map<string, string>();
    let checked = 0;
    for (const event of events) {
      const ref = field<Ref>(event, "involvedObject");
      if (ref.kind !== "Pod") continue;
      const message = field<string>(event, "message");
      if (event.reason === "Scheduled") {
        const match = /^Successfully assigned ([a-z0-9-]+)\/([a-z0-9-]+) to (node-\d+)$/.exec(
          message,
        );
        assert.ok(match, message);
        assert.equal(match[1], ref.namespace);
        assert.equal(match[2], ref.name);
        assigned.set(ref.uid, match[3]!);
        continue;
      }
      const node = assigned.get(ref.uid);
      if (event.reason === "Started" && node !== undefined) {
        assert.equal(field<{ host?: string }>(event, "source").host, node);
        checked++;
      }
    }
    assert.ok(checked > 10, `only ${checked} pods checked`);
  });

  await t.step(
    "pod names look like the ReplicaSet's, and kubelet events name the container",
    () => {
      const events = creates(generate(2_000));
      const pulled = events.find((e) => /^Successfully pulled image "/.test(String(e.message)));
      assert.ok(pulled, "no image pull among the events");
      assert.match(
        String(pulled.message),
        /^Successfully pulled image "[^"]+" in [\d.]+m?s \([\d.]+m?s including waiting\)\. Image size: \d+ bytes\.$/,
      );
      for (const event of events) {
        const ref = field<Ref>(event, "involvedObject");
        if (ref.kind === "Pod") {
          assert.match(
            ref.name,
            /^[a-z0-9-]+-[bcdfghjklmnpqrstvwxz2456789]{9,10}-[bcdfghjklmnpqrstvwxz2456789]{5}$/,
          );
        }
        if (event.reason === "Started") {
          assert.equal(event.message, `Started container ${/\{(.+)\}/.exec(ref.fieldPath!)![1]}`);
        }
      }
    },
  );

  await t.step("repeats name earlier created events, favouring warnings", () => {
    const changes = generate(5_000);
    const created = new Map<string, CoreEvent>();
    let repeats = 0;
    let repeatedWarnings = 0;
    for (const change of changes) {
      if (change.op === "create") {
        created.set(
          `${change.event.metadata.namespace}/${change.event.metadata.name}`,
          change.event,
        );
        continue;
      }
      repeats++;
      const original = created.get(`${change.namespace}/${change.name}`);
      assert.ok(original, `repeat of unknown event ${change.namespace}/${change.name}`);
      assert.match(change.lastTimestamp, RFC3339_SECONDS);
      assert.ok(change.lastTimestamp >= String(original.firstTimestamp));
      if (original.type === "Warning") repeatedWarnings++;
    }
    const share = repeats / changes.length;
    assert.ok(share > 0.15 && share < 0.25, `repeat share ${share}`);
    const createdWarnings = [...created.values()].filter((e) => e.type === "Warning").length /
      created.size;
    assert.ok(
      repeatedWarnings / repeats > 2 * createdWarnings,
      `warnings are ${repeatedWarnings / repeats} of repeats, ${createdWarnings} of creates`,
    );
  });

  await t.step("repeatRatio 0 never repeats, 1 repeats after the first event", () => {
    assert.ok(generate(1_000, { repeatRatio: 0 }).every((c) => c.op === "create"));
    const always = generate(100, { repeatRatio: 1 });
    assert.equal(always[0]!.op, "create");
    assert.ok(always.slice(1).every((c) => c.op === "repeat"));
  });

  await t.step("namespaces and nodes come from the options", () => {
    const events = creates(generate(5_000, { namespaces: ["alpha", "beta"], nodes: 5, seed: 7 }));
    const namespaces = new Set(events.map((e) => e.metadata.namespace));
    // Node events always land in "default", whatever namespaces the workloads use.
    assert.deepEqual([...namespaces].sort(), ["alpha", "beta", "default"]);
    const hosts = new Set(
      events.flatMap((e) => field<{ host?: string }>(e, "source").host ?? []),
    );
    assert.deepEqual([...hosts].sort(), ["node-1", "node-2", "node-3", "node-4", "node-5"]);
  });

  await t.step("timestamps and name suffixes come from the clock", () => {
    const at = new Date("2031-02-03T04:05:06.789Z");
    const [first] = creates(generate(1, { now: () => at }));
    assert.ok(first);
    assert.equal(first.firstTimestamp, "2031-02-03T04:05:06Z");
    const suffix = first.metadata.name.split(".").at(-1)!;
    assert.equal(BigInt(`0x${suffix}`) / 1_000_000n, BigInt(at.getTime()));
  });

  await t.step("name suffixes keep increasing while the clock stands still", () => {
    const events = creates(generate(500, { now: () => new Date(START) }));
    const suffixes = events.map((e) => BigInt(`0x${e.metadata.name.split(".").at(-1)}`));
    for (let i = 1; i < suffixes.length; i++) assert.ok(suffixes[i]! > suffixes[i - 1]!);
  });

  await t.step("invalid options are rejected", () => {
    assert.throws(() => new EventGenerator({ namespaces: [] }), RangeError);
    assert.throws(() => new EventGenerator({ nodes: 0 }), RangeError);
    assert.throws(() => new EventGenerator({ nodes: 1.5 }), RangeError);
    assert.throws(() => new EventGenerator({ repeatRatio: 1.5 }), RangeError);
    assert.throws(() => new EventGenerator({ repeatRatio: Number.NaN }), RangeError);
    assert.throws(() => new EventGenerator({ seed: Number.POSITIVE_INFINITY }), RangeError);
  });
});

/** An EventGenerator that counts how often next() was called. */
class CountingGenerator extends EventGenerator {
  calls = 0;
  override next(): GeneratedChange {
    this.calls++;
    return super.next();
  }
}

// The ops sanitizer (off by default) fails a test that leaves a timer pending:
// that is how these tests check that an abort clears the runner's wait.
Deno.test({ name: "runEventGenerator", sanitizeOps: true }, async (t) => {
  await t.step("applies the generator's changes in order and stops exactly at total", async () => {
    const applied: GeneratedChange[] = [];
    const progress: number[] = [];
    const count = await runEventGenerator(
      new EventGenerator({ now: steppingClock() }),
      (change) => {
        applied.push(change);
      },
      { ratePerSecond: 1_000_000, total: 250, onProgress: (n) => progress.push(n) },
    );
    assert.equal(count, 250);
    assert.deepEqual(applied, generate(250));
    assert.deepEqual(progress, Array.from({ length: 250 }, (_, i) => i + 1));
  });

  await t.step("total 0 applies nothing", async () => {
    const generator = new CountingGenerator();
    const count = await runEventGenerator(generator, () => {
      throw new Error("Unexpected apply");
    }, { ratePerSecond: 10, total: 0 });
    assert.equal(count, 0);
    assert.equal(generator.calls, 0);
  });

  await t.step("keeps to the rate: only the burst goes out before the bucket empties", async () => {
    const controller = new AbortController();
    let applied = 0;
    const count = await runEventGenerator(new EventGenerator(), () => {
      applied++;
    }, {
      // One token per 1,000 seconds: after the burst the runner must wait.
      ratePerSecond: 0.001,
      burst: 5,
      signal: controller.signal,
      onProgress: (n) => {
        // The runner starts its wait right after this returns; abort once it has.
        if (n === 5) queueMicrotask(() => controller.abort());
      },
    });
    assert.equal(count, 5);
    assert.equal(applied, 5);
    // Had the 1,000-second wait's timer survived the abort, the ops sanitizer would fail the test.
  });

  await t.step("waits for tokens and then carries on", async () => {
    // 20 changes at 2,000 a second with no burst: the runner must wait between changes.
    const count = await runEventGenerator(new EventGenerator(), () => {}, {
      ratePerSecond: 2_000,
      burst: 1,
      total: 20,
    });
    assert.equal(count, 20);
  });

  await t.step("an already aborted signal applies nothing", async () => {
    const generator = new CountingGenerator();
    const count = await runEventGenerator(generator, () => {
      throw new Error("Unexpected apply");
    }, { ratePerSecond: 100, signal: AbortSignal.abort() });
    assert.equal(count, 0);
    assert.equal(generator.calls, 0);
  });

  await t.step("aborting during an apply counts that change and stops", async () => {
    const controller = new AbortController();
    const generator = new CountingGenerator();
    const count = await runEventGenerator(generator, () => {
      if (generator.calls === 3) controller.abort();
    }, { ratePerSecond: 1_000_000, signal: controller.signal });
    assert.equal(count, 3);
    assert.equal(generator.calls, 3);
  });

  await t.step("awaits an async apply: one change in flight at a time", async () => {
    const generator = new CountingGenerator();
    let inFlight = 0;
    let maxInFlight = 0;
    let progress = 0;
    const calls: Array<PromiseWithResolvers<void>> = [];
    let nextCall = Promise.withResolvers<void>();
    const run = runEventGenerator(generator, async () => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      const done = Promise.withResolvers<void>();
      calls.push(done);
      nextCall.resolve();
      await done.promise;
      inFlight--;
    }, { ratePerSecond: 1_000_000, total: 5, onProgress: (n) => (progress = n) });

    for (let i = 0; i < 5; i++) {
      await nextCall.promise;
      nextCall = Promise.withResolvers<void>();
      assert.equal(inFlight, 1);
      assert.equal(progress, i, "progress reported before the apply finished");
      assert.equal(generator.calls, i + 1, "generated ahead of the apply in flight");
      calls[i]!.resolve();
    }
    assert.equal(await run, 5);
    assert.equal(maxInFlight, 1);
  });

  await t.step("rejects with the error apply throws", async () => {
    const failure = new Error("Cannot create event: connection refused");
    let calls = 0;
    await assert.rejects(
      runEventGenerator(new EventGenerator(), () => {
        calls++;
        return calls === 2 ? Promise.reject(failure) : Promise.resolve();
      }, { ratePerSecond: 1_000_000, total: 10 }),
      (error) => error === failure,
    );
    assert.equal(calls, 2);
  });

  await t.step("does not starve other tasks when the rate never makes it wait", async () => {
    let timerFiredAt: number | undefined;
    let produced = 0;
    const timer = setTimeout(() => (timerFiredAt = produced), 0);
    try {
      await runEventGenerator(new EventGenerator(), () => {}, {
        ratePerSecond: 1e9,
        total: 5_000,
        onProgress: (n) => (produced = n),
      });
    } finally {
      clearTimeout(timer);
    }
    assert.ok(timerFiredAt !== undefined && timerFiredAt < 5_000, `timer fired at ${timerFiredAt}`);
  });

  await t.step("invalid options are rejected", async () => {
    const generator = new EventGenerator();
    const apply = () => {};
    for (
      const options of [
        { ratePerSecond: 0 },
        { ratePerSecond: -1 },
        { ratePerSecond: Number.NaN },
        { ratePerSecond: Number.POSITIVE_INFINITY },
        { ratePerSecond: 10, burst: 0.5 },
        { ratePerSecond: 10, total: -1 },
        { ratePerSecond: 10, total: 1.5 },
      ]
    ) {
      await assert.rejects(runEventGenerator(generator, apply, options), RangeError);
    }
  });
});
