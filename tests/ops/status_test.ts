/**
 * Specification of `kevents status`: what it reads from the lock and the
 * token ConfigMap, how it judges whether the checkpoint lags, its JSON
 * output, and the CLI's exit codes and secrecy, against the fake API server
 * over the network.
 */

import assert from "node:assert/strict";
import type { V1ConfigMap, V1Lease } from "@kubernetes/client-node";
import { TERM_ANNOTATION, TOKEN_KEY, TOKEN_TIMESTAMP } from "../../lib/checkpoint/checkpointer.ts";
import { runCollector } from "../../lib/collector.ts";
import { type Config, parseConfig } from "../../lib/config/mod.ts";
import {
  type FakeApiServer,
  type PolicyRule,
  startFakeApiServer,
} from "../../lib/fake_apiserver/mod.ts";
import { CONFIGMAPS, EVENTS, KubeClient, LEASES } from "../../lib/kube/client.ts";
import { PooledKubeConfig } from "../../lib/kube/kubeconfig.ts";
import { microTime } from "../../lib/election/lease_lock.ts";
import { NullSink } from "../../lib/sinks/null.ts";
import { formatStatus, readStatus, type Status, StatusReadError } from "../../lib/ops/status.ts";
import { coreEvent, eventually } from "../_fake_api.ts";

const NS = "default";
const LOCK = "datadog-leader-election";
const TOKEN_CM = "datadogtoken";
const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const REPO = new URL("..", import.meta.url).pathname;
/** Recognisable credentials: none of them may ever be printed. */
const ADMIN_TOKEN = "kevents-test-admin-token-7f3a9c1e5b";
const VIEWER_TOKEN = "kevents-test-viewer-token-2d8e4b6a0c";
const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;

/** Everything status needs, except get on leases. */
const WITHOUT_LEASES: PolicyRule[] = [
  { verbs: ["get"], apiGroups: [""], resources: ["configmaps"] },
  { verbs: ["list", "watch"], apiGroups: [""], resources: ["events"] },
];

/** A fake API server; `now` is its clock (creationTimestamp), the real one by default. */
function start(now?: () => number): Promise<FakeApiServer> {
  return startFakeApiServer({
    ...(now === undefined ? {} : { now }),
    users: [
      { name: "admin", token: ADMIN_TOKEN },
      { name: "viewer", token: VIEWER_TOKEN, rules: WITHOUT_LEASES },
    ],
  });
}

function clientFor(server: FakeApiServer, user = "admin"): KubeClient {
  const kc = new PooledKubeConfig();
  kc.loadFromString(server.kubeconfig({ user }));
  return new KubeClient(kc);
}

function configWith(env: Record<string, string> = {}): Config {
  return parseConfig({ env: { DD_COLLECT_KUBERNETES_EVENTS: "true", ...env } });
}

/** Creates an event now and returns its resourceVersion. */
async function createEvent(client: KubeClient, name: string): Promise<string> {
  const created = await client.create<{ metadata: { resourceVersion: string } }>(
    EVENTS,
    NS,
    coreEvent(NS, name),
  );
  return created.metadata.resourceVersion;
}

/** Writes the token ConfigMap as the checkpointer does. */
async function writeToken(
  client: KubeClient,
  data: Record<string, string>,
  term = "replica-a/2/2026-01-01T00:00:00.000Z",
): Promise<void> {
  await client.create<V1ConfigMap>(CONFIGMAPS, NS, {
    metadata: { name: TOKEN_CM, namespace: NS, annotations: { [TERM_ANNOTATION]: term } },
    data,
  });
}

/** The events collection's current resourceVersion. */
async function currentRv(client: KubeClient): Promise<string> {
  return (await client.list(EVENTS, { limit: 1 })).resourceVersion;
}

Deno.test("without a lock object or a token ConfigMap status says so and judges nothing", async () => {
  await using server = await start();
  const client = clientFor(server);
  try {
    const status = await readStatus(client, configWith());
    assert.equal(status.namespace, NS);
    assert.equal(status.lock.object, `leases ${NS}/${LOCK}`);
    assert.equal(status.lock.state, "absent");
    assert.equal(status.lock.holder, null);
    assert.equal(status.lock.expiredByLocalClock, null);
    assert.equal(status.token.object, `configmaps ${NS}/${TOKEN_CM}`);
    assert.equal(status.token.state, "absent");
    assert.equal(status.token.resourceVersion, null);
    assert.equal(status.checkpoint.state, "unknown");
    assert.equal(status.checkpoint.currentResourceVersion, await currentRv(client));
    const text = formatStatus(status, "text");
    assert.match(text, /^Holder\s+no lock object$/m);
    assert.match(text, /^Token RV\s+no ConfigMap$/m);
    assert.match(text, /^Checkpoint\s+unknown: no token yet/m);
    const verbs = new Set(server.requestLog.entries().map((e) => e.verb));
    assert.deepEqual([...verbs].filter((v) => v !== "get" && v !== "list"), [], "read-only");
  } finally {
    await client.close();
  }
});

Deno.test("with a running leader status shows its holder, transitions and the token it checkpoints", async (t) => {
  await using server = await start();
  const client = clientFor(server);
  // A released lock that changed hands four times: the collector takes it at once.
  await client.create<V1Lease>(LEASES, NS, {
    metadata: { name: LOCK, namespace: NS },
    spec: {
      holderIdentity: "",
      leaseDurationSeconds: 1,
      leaseTransitions: 4,
      acquireTime: microTime(Date.now() - 60_000),
      renewTime: microTime(Date.now() - 60_000),
    } as unknown as V1Lease["spec"],
  });
  const config = configWith({
    KEVENTS_LEASE_DURATION_MS: "8000",
    KEVENTS_CHECKPOINT_INTERVAL_MS: "50",
  });
  const controller = new AbortController();
  server.addUser("leader");
  const leaderClient = clientFor(server, "leader");
  const identity = "replica-leader-1";
  const sink = new NullSink();
  const done = runCollector(
    { client: leaderClient, config, identity, sinks: [sink] },
    controller.signal,
  );
  try {
    await eventually(
      () =>
        (server.get("configmaps", NS, TOKEN_CM)?.metadata.annotations as Record<string, string>)
          ?.[TERM_ANNOTATION]?.startsWith(`${identity}/5/`) === true,
      "the leader stamps its term into the token ConfigMap",
    );
    // An event created before the pump's first list is part of "now" and not delivered.
    await eventually(() => server.watchIdentities().includes("leader"), "the leader's watch");
    const lastRv = await createEvent(client, "web-1.a");
    await eventually(() => {
      const data = server.get("configmaps", NS, TOKEN_CM)?.data as Record<string, string>;
      return sink.count === 1 && data?.[TOKEN_KEY] !== undefined &&
        BigInt(data[TOKEN_KEY]!) >= BigInt(lastRv);
    }, "the leader delivers and checkpoints the event");
    const tokenRv = (server.get("configmaps", NS, TOKEN_CM)!.data as Record<string, string>)[
      TOKEN_KEY
    ];

    await t.step("the holder, when it took the lock, and the fifth transition", async () => {
      const status = await readStatus(client, config);
      assert.equal(status.lock.state, "held");
      assert.equal(status.lock.holder, identity);
      assert.equal(status.lock.leaderTransitions, 5);
      assert.equal(status.lock.leaseDurationSeconds, 8);
      assert.equal(status.lock.expiredByLocalClock, false);
      assert.match(status.lock.acquireTime!, RFC3339);
      assert.ok(status.lock.acquiredAgeSeconds! >= 0 && status.lock.acquiredAgeSeconds! < 60);
      assert.ok(status.lock.renewAgeSeconds! < 8, "renewed within the lease");
      assert.equal(status.token.state, "present");
      assert.equal(status.token.resourceVersion, tokenRv);
      assert.match(status.token.timestamp!, RFC3339);
      assert.equal(status.token.term?.holder, identity);
      assert.equal(status.token.term?.leaderTransitions, 5);
      assert.equal(status.checkpoint.state, "up-to-date");
      const text = formatStatus(status, "text");
      assert.match(text, new RegExp(`^Holder\\s+${identity}$`, "m"));
      assert.match(text, /^Transitions\s+5$/m);
      assert.match(text, new RegExp(`^Token RV\\s+${tokenRv}$`, "m"));
      assert.match(text, /^Expired\s+no \(expires .*judged by this machine's clock\)$/m);
      assert.match(text, /^Checkpoint\s+up to date/m);
    });

    await t.step(
      "a lease not renewed for its duration reads as expired by this clock",
      async () => {
        const status = await readStatus(client, config, { now: Date.now() + 60_000 });
        assert.equal(status.lock.expiredByLocalClock, true);
        assert.match(formatStatus(status, "text"), /^Expired\s+yes \(expired /m);
      },
    );

    await t.step("after a clean stop the lock reads as released", async () => {
      controller.abort();
      await done;
      const status = await readStatus(client, config);
      assert.equal(status.lock.state, "released");
      assert.equal(status.lock.holder, null);
      assert.equal(status.lock.leaderTransitions, 5);
      const text = formatStatus(status, "text");
      assert.match(text, /^Holder\s+none \(released\)$/m);
      assert.match(text, /^Released\s+\d{4}-.*ago\)$/m);
      assert.doesNotMatch(text, /^Acquired/m);
    });
  } finally {
    controller.abort();
    await done;
    await leaderClient.close();
    await client.close();
  }
});

Deno.test("whether the checkpoint lags", async (t) => {
  const anHourAgo = new Date(Date.now() - 3_600_000).toISOString();

  await t.step("an event after an old token is lagging", async () => {
    await using server = await start();
    const client = clientFor(server);
    try {
      const rv = await currentRv(client);
      await writeToken(client, { [TOKEN_KEY]: rv, [TOKEN_TIMESTAMP]: anHourAgo });
      await createEvent(client, "web-2.b");
      const status = await readStatus(client, configWith());
      assert.equal(status.checkpoint.state, "lagging", status.checkpoint.reason);
      assert.equal(status.checkpoint.tokenOlderThanThreshold, true);
      assert.equal(status.checkpoint.replayFromToken, "events");
      assert.equal(status.checkpoint.lagThresholdSeconds, 120);
      assert.ok(status.checkpoint.resourceVersionsAheadOfToken! >= 2);
      assert.ok(status.token.ageSeconds! >= 3600);
      assert.match(formatStatus(status, "text"), /^Checkpoint\s+lagging: /m);
    } finally {
      await client.close();
    }
  });

  await t.step(
    "the lag is the age of the first event after the token, shown against the event TTL",
    async () => {
      const now = Date.parse("2026-03-01T12:00:00Z");
      // The API server's clock when each event is created.
      let serverNow = now - 60 * 60_000;
      await using server = await start(() => serverNow);
      const client = clientFor(server);
      try {
        const rv = await currentRv(client);
        await writeToken(client, { [TOKEN_KEY]: rv, [TOKEN_TIMESTAMP]: "2026-03-01T11:00:00Z" });
        const at = (minutesAgo: number) => new Date(now - minutesAgo * 60_000).toISOString();
        // The first event after the token waited 40 minutes; a later one 5.
        serverNow = now - 40 * 60_000;
        await client.create(EVENTS, NS, coreEvent(NS, "web-6.f", { lastTimestamp: at(40) }));
        serverNow = now - 5 * 60_000;
        await client.create(EVENTS, NS, coreEvent(NS, "web-7.g", { lastTimestamp: at(5) }));
        let status = await readStatus(client, configWith(), { now });
        assert.equal(status.checkpoint.state, "lagging");
        assert.equal(status.checkpoint.lagSeconds, 2400);
        assert.equal(status.checkpoint.lagIsUpperBound, false);
        assert.equal(status.checkpoint.eventTtlSeconds, 3600);
        assert.equal(status.checkpoint.lagLimitSeconds, 1800);
        assert.match(
          formatStatus(status, "text"),
          /^Checkpoint lag\s+40m \(67% of the 1h event TTL, over the 50% limit: a handover now may lose the events the API server deletes first\)$/m,
        );

        const longer = configWith({
          KEVENTS_EVENT_TTL_SECONDS: "14400",
          KEVENTS_CHECKPOINT_LAG_SHARE: "0.25",
        });
        status = await readStatus(client, longer, { now });
        assert.equal(status.checkpoint.lagLimitSeconds, 3600);
        assert.match(
          formatStatus(status, "text"),
          /^Checkpoint lag\s+40m \(17% of the 4h event TTL, limit 25%\)$/m,
        );
      } finally {
        await client.close();
      }
    },
  );

  await t.step(
    "the lag counts from an event's last write, which the API server's TTL counts from: " +
      "a series' last observation, not its first",
    async () => {
      const now = Date.parse("2026-03-01T12:00:00Z");
      let serverNow = now - 5 * 3_600_000;
      await using server = await start(() => serverNow);
      const client = clientFor(server);
      const at = (minutesAgo: number) => new Date(now - minutesAgo * 60_000).toISOString();
      try {
        const rv = await currentRv(client);
        await writeToken(client, { [TOKEN_KEY]: rv, [TOKEN_TIMESTAMP]: at(300) });
        // An events.k8s.io series as core/v1 shows it: first seen 5 hours ago
        // (eventTime), last seen 3 minutes ago, no lastTimestamp; created
        // (first written) 5 hours ago and last written with the observation.
        await client.create(
          EVENTS,
          NS,
          coreEvent(NS, "web-8.h", {
            eventTime: new Date(now - 5 * 3_600_000).toISOString().replace("Z", "000Z"),
            series: { count: 40, lastObservedTime: at(3) },
            reportingComponent: "kubelet",
            reportingInstance: "node-1",
            action: "Pulling",
          }),
        );
        let status = await readStatus(client, configWith(), { now });
        assert.equal(status.checkpoint.state, "lagging", status.checkpoint.reason);
        assert.equal(status.checkpoint.lagSeconds, 180);
        assert.equal(status.checkpoint.lagIsUpperBound, false);
        assert.match(formatStatus(status, "text"), /^Checkpoint lag\s+3m \(5% of the 1h /m);

        // A manager's later write (the API server's clock) counts too.
        await client.patch(CONFIGMAPS, NS, TOKEN_CM, {
          data: { [TOKEN_KEY]: await currentRv(client), [TOKEN_TIMESTAMP]: at(3) },
        });
        serverNow = now - 60 * 60_000;
        await client.create(
          EVENTS,
          NS,
          coreEvent(NS, "web-9.i", {
            lastTimestamp: at(60),
            metadata: {
              name: "web-9.i",
              namespace: NS,
              managedFields: [
                { manager: "kubelet", operation: "Update", apiVersion: "v1", time: at(60) },
                { manager: "labeller", operation: "Update", apiVersion: "v1", time: at(2) },
              ],
            },
          }),
        );
        status = await readStatus(client, configWith(), { now });
        assert.equal(status.checkpoint.state, "lagging", status.checkpoint.reason);
        assert.equal(status.checkpoint.lagSeconds, 120);
      } finally {
        await client.close();
      }
    },
  );

  await t.step(
    "an old token in a quiet cluster is up to date, whatever else was written",
    async () => {
      await using server = await start();
      const client = clientFor(server);
      try {
        const rv = await currentRv(client);
        await writeToken(client, { [TOKEN_KEY]: rv, [TOKEN_TIMESTAMP]: anHourAgo });
        await client.create(CONFIGMAPS, NS, { metadata: { name: "unrelated" }, data: {} });
        const status = await readStatus(client, configWith(), { replayIdleMs: 300 });
        assert.equal(status.checkpoint.state, "up-to-date", status.checkpoint.reason);
        assert.equal(status.checkpoint.replayFromToken, "nothing");
        assert.equal(status.checkpoint.lagSeconds, 0);
        assert.match(formatStatus(status, "text"), /^Checkpoint lag\s+0s \(0% of the 1h /m);
        assert.ok(status.checkpoint.resourceVersionsAheadOfToken! >= 2);
      } finally {
        await client.close();
      }
    },
  );

  await t.step("a token older than the server's history is lagging", async () => {
    await using server = await start();
    const client = clientFor(server);
    try {
      const rv = await currentRv(client);
      await writeToken(client, { [TOKEN_KEY]: rv, [TOKEN_TIMESTAMP]: anHourAgo });
      await createEvent(client, "web-3.c");
      server.compactNow();
      const now = Date.parse(anHourAgo) + 3_600_000;
      const status = await readStatus(client, configWith(), { now });
      assert.equal(status.checkpoint.state, "lagging");
      assert.equal(status.checkpoint.replayFromToken, "expired");
      // Whatever followed the token is younger than the token's event.
      assert.equal(status.checkpoint.lagSeconds, 3600);
      assert.equal(status.checkpoint.lagIsUpperBound, true);
      assert.match(
        formatStatus(status, "text"),
        /^Checkpoint lag\s+at most 1h \(100% of the 1h event TTL, limit 50%\)$/m,
      );
    } finally {
      await client.close();
    }
  });

  await t.step(
    "a recent token behind the current resourceVersion is up to date without a watch",
    async () => {
      await using server = await start();
      const client = clientFor(server);
      try {
        const rv = await currentRv(client);
        await writeToken(client, { [TOKEN_KEY]: rv, [TOKEN_TIMESTAMP]: new Date().toISOString() });
        await createEvent(client, "web-4.d");
        const status = await readStatus(client, configWith());
        assert.equal(status.checkpoint.state, "up-to-date");
        assert.equal(status.checkpoint.tokenOlderThanThreshold, false);
        assert.equal(status.checkpoint.replayFromToken, null);
        assert.equal(server.requestLog.count({ verb: "watch" }), 0);
        assert.equal(status.checkpoint.lagIsUpperBound, true);
        assert.equal(status.checkpoint.lagSeconds, status.token.ageSeconds);
      } finally {
        await client.close();
      }
    },
  );

  await t.step("the threshold is twice the idle checkpoint interval", async () => {
    await using server = await start();
    const client = clientFor(server);
    try {
      const rv = await currentRv(client);
      const tenSecondsAgo = new Date(Date.now() - 10_000).toISOString();
      await writeToken(client, { [TOKEN_KEY]: rv, [TOKEN_TIMESTAMP]: tenSecondsAgo });
      await createEvent(client, "web-5.e");
      const config = configWith({ KEVENTS_CHECKPOINT_IDLE_INTERVAL_MS: "2000" });
      const status = await readStatus(client, config);
      assert.equal(status.checkpoint.lagThresholdSeconds, 4);
      assert.equal(status.checkpoint.state, "lagging");
    } finally {
      await client.close();
    }
  });

  await t.step("a token at the current resourceVersion is up to date", async () => {
    await using server = await start();
    const client = clientFor(server);
    try {
      await writeToken(client, {});
      const rv = await currentRv(client);
      await client.patch(CONFIGMAPS, NS, TOKEN_CM, {
        data: { [TOKEN_KEY]: String(BigInt(rv) + 1n), [TOKEN_TIMESTAMP]: anHourAgo },
      });
      const status = await readStatus(client, configWith());
      assert.equal(status.checkpoint.currentResourceVersion, status.token.resourceVersion);
      assert.equal(status.checkpoint.state, "up-to-date");
      assert.equal(status.checkpoint.replayFromToken, null);
      assert.equal(status.checkpoint.lagSeconds, 0);
      assert.equal(status.checkpoint.lagIsUpperBound, false);
    } finally {
      await client.close();
    }
  });

  await t.step("resourceVersions that are not decimal integers are not compared", async () => {
    await using server = await start();
    const client = clientFor(server);
    try {
      await writeToken(client, { [TOKEN_KEY]: "opaque-v1", [TOKEN_TIMESTAMP]: anHourAgo });
      const status = await readStatus(client, configWith());
      assert.equal(status.token.state, "present");
      assert.equal(status.checkpoint.state, "unknown");
      assert.equal(status.checkpoint.resourceVersionsAheadOfToken, null);
      assert.match(status.checkpoint.reason, /not decimal integers/);
      assert.equal(status.checkpoint.lagSeconds, null);
      assert.match(
        formatStatus(status, "text"),
        /^Checkpoint lag\s+unknown \(event TTL 1h, limit 50%\)$/m,
      );
    } finally {
      await client.close();
    }
  });

  await t.step("a garbage token, an empty one and a garbage timestamp are named", async () => {
    await using server = await start();
    const client = clientFor(server);
    try {
      await writeToken(client, { [TOKEN_KEY]: "not a version" }, "garbage-stamp");
      let status = await readStatus(client, configWith());
      assert.equal(status.token.state, "invalid");
      assert.match(status.token.problem!, /event\.tokenKey holds "not a version"/);
      assert.deepEqual(status.token.term, {
        raw: "garbage-stamp",
        holder: null,
        leaderTransitions: null,
        startedAt: null,
      });
      assert.equal(status.checkpoint.state, "unknown");
      assert.match(formatStatus(status, "text"), /^Token RV\s+invalid: /m);

      await client.patch(CONFIGMAPS, NS, TOKEN_CM, { data: { [TOKEN_KEY]: "" } });
      status = await readStatus(client, configWith());
      assert.equal(status.token.state, "empty");

      await client.patch(CONFIGMAPS, NS, TOKEN_CM, {
        data: { [TOKEN_KEY]: "1000", [TOKEN_TIMESTAMP]: "yesterday-ish" },
      });
      status = await readStatus(client, configWith(), { replayIdleMs: 300 });
      assert.equal(status.token.state, "present");
      assert.equal(status.token.timestamp, null);
      assert.match(status.token.problem!, /event\.tokenTimestamp holds "yesterday-ish"/);
      assert.equal(status.checkpoint.tokenOlderThanThreshold, null);
    } finally {
      await client.close();
    }
  });
});

Deno.test("status reads annotation locks on a ConfigMap or an Endpoints object", async (t) => {
  await using server = await start();
  const client = clientFor(server);
  try {
    const renewed = new Date(Date.now() - 5_000).toISOString().replace(/\.\d+Z$/, "Z");
    const record = JSON.stringify({
      holderIdentity: "agent-7",
      leaseDurationSeconds: 60,
      acquireTime: "2026-01-01T00:00:00Z",
      renewTime: renewed,
      leaderTransitions: 3,
    });
    const annotation = "control-plane.alpha.kubernetes.io/leader";
    await client.create(CONFIGMAPS, NS, {
      metadata: { name: LOCK, annotations: { [annotation]: record } },
    });
    await t.step("a ConfigMap lock", async () => {
      const config = configWith({ DD_LEADER_ELECTION_DEFAULT_RESOURCE: "configmap" });
      const status = await readStatus(client, config);
      assert.equal(status.lock.object, `configmaps ${NS}/${LOCK}`);
      assert.equal(status.lock.holder, "agent-7");
      assert.equal(status.lock.leaderTransitions, 3);
      assert.equal(status.lock.acquireTime, "2026-01-01T00:00:00.000Z");
      assert.equal(status.lock.expiredByLocalClock, false);
    });
    await t.step("an unreadable record is shown, not an error", async () => {
      await client.patch(CONFIGMAPS, NS, LOCK, {
        metadata: { annotations: { [annotation]: "{not json" } },
      });
      const config = configWith({ DD_LEADER_ELECTION_DEFAULT_RESOURCE: "configmap" });
      const status = await readStatus(client, config);
      assert.equal(status.lock.state, "invalid");
      assert.match(status.lock.problem!, /not JSON/);
      assert.match(formatStatus(status, "text"), /^Holder\s+unreadable: /m);
    });
    await t.step("a missing Endpoints lock", async () => {
      const config = configWith({ DD_LEADER_ELECTION_DEFAULT_RESOURCE: "endpoints" });
      const status = await readStatus(client, config);
      assert.equal(status.lock.object, `endpoints ${NS}/${LOCK}`);
      assert.equal(status.lock.state, "absent");
    });
  } finally {
    await client.close();
  }
});

/** The JSON shape, field by field: names are a contract with scripts. */
function assertShape(json: Status): void {
  assert.deepEqual(Object.keys(json), [
    "checkedAt",
    "server",
    "namespace",
    "lock",
    "token",
    "checkpoint",
  ]);
  assert.deepEqual(Object.keys(json.lock), [
    "kind",
    "object",
    "state",
    "holder",
    "acquireTime",
    "acquiredAgeSeconds",
    "renewTime",
    "renewAgeSeconds",
    "leaseDurationSeconds",
    "expiresAt",
    "expiredByLocalClock",
    "leaderTransitions",
    "problem",
  ]);
  assert.deepEqual(Object.keys(json.token), [
    "object",
    "state",
    "resourceVersion",
    "timestamp",
    "ageSeconds",
    "term",
    "problem",
  ]);
  assert.deepEqual(Object.keys(json.checkpoint), [
    "state",
    "reason",
    "currentResourceVersion",
    "fieldSelector",
    "resourceVersionsAheadOfToken",
    "lagThresholdSeconds",
    "tokenOlderThanThreshold",
    "replayFromToken",
    "lagSeconds",
    "lagIsUpperBound",
    "eventTtlSeconds",
    "lagLimitSeconds",
  ]);
  assert.match(json.checkedAt, RFC3339);
}

Deno.test("the JSON output is one object with stable names, RFC 3339 times and ages in seconds", async () => {
  await using server = await start();
  const client = clientFor(server);
  try {
    const now = Date.parse("2026-03-01T12:00:00Z");
    await client.create<V1Lease>(LEASES, NS, {
      metadata: { name: LOCK, namespace: NS },
      spec: {
        holderIdentity: "replica-b",
        leaseDurationSeconds: 60,
        leaseTransitions: 2,
        acquireTime: "2026-03-01T11:00:00.000000Z",
        renewTime: "2026-03-01T11:59:30.500000Z",
      } as unknown as V1Lease["spec"],
    });
    await writeToken(client, {
      [TOKEN_KEY]: await currentRv(client),
      [TOKEN_TIMESTAMP]: "2026-03-01T11:59:00Z",
    }, "replica-b/2/2026-03-01T11:00:01.000Z");
    const status = await readStatus(client, configWith(), { now });
    const json = JSON.parse(formatStatus(status, "json"));
    assertShape(json);
    assert.equal(json.checkedAt, "2026-03-01T12:00:00.000Z");
    assert.equal(json.server, server.url);
    assert.deepEqual(json.lock, {
      kind: "lease",
      object: `leases ${NS}/${LOCK}`,
      state: "held",
      holder: "replica-b",
      acquireTime: "2026-03-01T11:00:00.000Z",
      acquiredAgeSeconds: 3600,
      renewTime: "2026-03-01T11:59:30.500Z",
      renewAgeSeconds: 29.5,
      leaseDurationSeconds: 60,
      expiresAt: "2026-03-01T12:00:30.500Z",
      expiredByLocalClock: false,
      leaderTransitions: 2,
      problem: null,
    });
    assert.deepEqual(json.token.term, {
      raw: "replica-b/2/2026-03-01T11:00:01.000Z",
      holder: "replica-b",
      leaderTransitions: 2,
      startedAt: "2026-03-01T11:00:01.000Z",
    });
    assert.equal(json.token.timestamp, "2026-03-01T11:59:00.000Z");
    assert.equal(json.token.ageSeconds, 60);
    assert.equal(json.checkpoint.state, "up-to-date");
    assert.equal(json.checkpoint.tokenOlderThanThreshold, false);
  } finally {
    await client.close();
  }
});

Deno.test("a filtered collector's server-side selector is used to read the current resourceVersion", async () => {
  await using server = await start();
  const client = clientFor(server);
  try {
    const config = configWith({ DD_FILTERED_EVENT_TYPES: "type!=Normal" });
    const status = await readStatus(client, config);
    assert.ok(status.checkpoint.fieldSelector !== null);
    assert.match(status.checkpoint.fieldSelector!, /type!=Normal/);
  } finally {
    await client.close();
  }
});

Deno.test("an API read that fails names the object, the Status reason, the verb and the resource", async () => {
  await using server = await start();
  const client = clientFor(server, "viewer");
  try {
    await assert.rejects(readStatus(client, configWith()), (e) => {
      assert.ok(e instanceof StatusReadError);
      assert.match(e.message, /^Cannot read the lock leases default\/datadog-leader-election: /);
      assert.match(e.message, /403 Forbidden/);
      assert.match(e.message, /cannot get resource "leases"/);
      return true;
    });
  } finally {
    await client.close();
  }
});

// ---- the command ------------------------------------------------------------

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `kevents status` in a subprocess with a datadog.yaml of our own. */
async function kevents(args: string[], datadogYaml = ""): Promise<Run> {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/datadog.yaml`, datadogYaml);
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAIN, "status", "--config", `${dir}/datadog.yaml`, ...args],
      cwd: REPO,
      env: { KEVENTS_HEALTH_PORT: "0" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder();
    return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function writeKubeconfig(server: FakeApiServer, user: string): Promise<string> {
  const path = await Deno.makeTempFile({ suffix: ".kubeconfig" });
  await Deno.writeTextFile(path, server.kubeconfig({ user }));
  return path;
}

function assertNoSecrets(run: Run): void {
  for (const secret of [ADMIN_TOKEN, VIEWER_TOKEN, "Bearer", "authorization"]) {
    assert.ok(!run.stdout.includes(secret), `stdout shows ${secret}`);
    assert.ok(!run.stderr.toLowerCase().includes(secret.toLowerCase()), `stderr shows ${secret}`);
  }
}

Deno.test("kevents status --output json prints what the configured lock and token hold", async () => {
  await using server = await start();
  const client = clientFor(server);
  const kubeconfig = await writeKubeconfig(server, "admin");
  try {
    // The settings file names the lock: status must resolve it as run does.
    await client.create<V1Lease>(LEASES, NS, {
      metadata: { name: "my-lock", namespace: NS },
      spec: {
        holderIdentity: "replica-c",
        leaseDurationSeconds: 60,
        leaseTransitions: 7,
        acquireTime: microTime(Date.now() - 1000),
        renewTime: microTime(Date.now() - 1000),
      } as unknown as V1Lease["spec"],
    });
    const run = await kevents(
      ["--kubeconfig", kubeconfig, "--output", "json"],
      "leader_lease_name: my-lock\n",
    );
    assert.equal(run.code, 0, run.stderr);
    const json = JSON.parse(run.stdout);
    assertShape(json);
    assert.equal(json.lock.object, `leases ${NS}/my-lock`);
    assert.equal(json.lock.holder, "replica-c");
    assert.equal(json.lock.leaderTransitions, 7);
    assert.equal(json.token.state, "absent");
    assertNoSecrets(run);

    const text = await kevents(["--kubeconfig", kubeconfig], "leader_lease_name: my-lock\n");
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^Holder\s+replica-c$/m);
    assertNoSecrets(text);
  } finally {
    await client.close();
    await Deno.remove(kubeconfig);
  }
});

Deno.test("kevents status exits 1 naming what is forbidden, and never prints a credential", async (t) => {
  await using server = await start();
  await t.step("a user without get on leases", async () => {
    const kubeconfig = await writeKubeconfig(server, "viewer");
    try {
      const run = await kevents(["--kubeconfig", kubeconfig, "-o", "json"]);
      assert.equal(run.code, 1);
      assert.equal(run.stdout, "");
      assert.match(run.stderr, /Cannot read the lock leases default\/datadog-leader-election/);
      assert.match(run.stderr, /403 Forbidden.*cannot get resource "leases"/);
      assertNoSecrets(run);
    } finally {
      await Deno.remove(kubeconfig);
    }
  });
  await t.step("a token the server does not know", async () => {
    const kubeconfig = await writeKubeconfig(server, "admin");
    try {
      const text = await Deno.readTextFile(kubeconfig);
      await Deno.writeTextFile(kubeconfig, text.replace(ADMIN_TOKEN, VIEWER_TOKEN + "-revoked"));
      const run = await kevents(["--kubeconfig", kubeconfig]);
      assert.equal(run.code, 1);
      assert.match(run.stderr, /401 Unauthorized/);
      assertNoSecrets(run);
    } finally {
      await Deno.remove(kubeconfig);
    }
  });
});

Deno.test("kevents status exits 2 for a bad command line or configuration", async (t) => {
  await t.step("a missing kubeconfig", async () => {
    const run = await kevents(["--kubeconfig", "/nonexistent/kubeconfig"]);
    assert.equal(run.code, 2);
    assert.match(
      run.stderr,
      /Cannot read kubeconfig from --kubeconfig "\/nonexistent\/kubeconfig"/,
    );
  });
  await t.step("an unknown output format", async () => {
    const run = await kevents(["--output", "yaml"]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /Cannot parse --output "yaml": must be text or json/);
  });
  await t.step("a setting out of range", async () => {
    const run = await kevents(["--kubeconfig", "/nonexistent"], "leader_lease_duration: 5\n");
    assert.equal(run.code, 2);
    assert.match(run.stderr, /leader_lease_duration/);
  });
});
