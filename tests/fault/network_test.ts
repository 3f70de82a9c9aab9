/**
 * The fault suite, network and API-server faults: restarts, dropped and
 * stalled watches, error storms, latency beyond the request timeout, a
 * partitioned leader, clock skew, and history compacted while no leader
 * ran. Each case runs in-process replicas against the fake API server
 * while events are generated, then checks the delivery log against what
 * the server generated and the Lease history (tests/fault/_harness.ts) and
 * prints one `FAULT <name>: ...` line for the reliability report.
 *
 * Every wait is on a condition and bounded; none is a sleep.
 */

import assert from "node:assert/strict";
import { TOKEN_KEY } from "../../lib/checkpoint/checkpointer.ts";
import { KubeClient } from "../../lib/kube/client.ts";
import { PooledKubeConfig } from "../../lib/kube/kubeconfig.ts";
import { runPump } from "../../lib/pump/pump.ts";
import type { Sink } from "../../lib/sinks/sink.ts";
import { type FaultHarness, startFaultHarness } from "./_harness.ts";

/** Requests the server answered with `code` so far. */
function answered(h: FaultHarness, code: number): number {
  return h.server.requestLog.count({ code });
}

Deno.test("API server restarts mid-watch: nothing lost, nothing twice, one leader at a time", async () => {
  await using h = await startFaultHarness();
  h.startReplica();
  h.startReplica();
  await h.waitForLeader();
  h.generate({ total: 900, seed: 11 });
  for (const after of [150, 400, 650]) {
    await h.waitForDeliveries(after);
    await h.server.restart();
  }
  await h.waitAllDelivered();
  const r = h.verify();
  h.summary("apiserver-restart", r, { restarts: 3 });
});

Deno.test("every watch dropped, abruptly and cleanly, over and over: nothing lost, nothing twice", async () => {
  await using h = await startFaultHarness();
  h.startReplica();
  h.startReplica();
  await h.waitForLeader();
  h.generate({ total: 900, seed: 12 });
  let drops = 0;
  for (const [i, after] of [100, 200, 300, 400, 500, 600, 700].entries()) {
    await h.waitForDeliveries(after);
    drops += h.server.dropWatches({ abrupt: i % 2 === 0 });
  }
  await h.waitAllDelivered();
  const r = h.verify();
  assert.ok(drops >= 7, `dropped ${drops} watches`);
  h.summary("watches-dropped", r, { drops });
});

Deno.test("a watch the server ends at once with nothing while history remains is reopened, not relisted: no repeat lost", async () => {
  // A clean end with no event looks like what kube-apiserver does for an
  // events watch from a compacted resourceVersion; here the history is
  // intact (a stalled watch ended cleanly, as by a proxy or a graceful
  // restart), and a relist would return only the latest version of each
  // Event, losing the repeats in between.
  await using h = await startFaultHarness();
  h.startReplica();
  const leader = await h.waitForLeader();
  h.generate({ total: 600, seed: 22, repeatRatio: 0.5 });
  await h.waitForDeliveries(100);
  h.server.stallWatches(true);
  const watches = () => h.server.requestLog.count({ identity: leader.name, verb: "watch" });
  const before = watches();
  h.server.dropWatches({ abrupt: false, identity: leader.name });
  await h.until("the pump to watch again", () => watches() > before);
  const n = h.generated.size;
  await h.until("100 more changes", () => h.generated.size >= n + 100);
  // Ends the new watch before it sent a byte.
  h.server.dropWatches({ abrupt: false, identity: leader.name });
  await h.until(
    "the pump to see the empty watch",
    () =>
      h.logs.some((l) => /closed at once without events; its history is still there/.test(l.text)),
  );
  h.server.stallWatches(false);
  await h.waitAllDelivered();
  const r = h.verify();
  h.summary("watch-ended-empty", r);
});

Deno.test("every watch stalled with no bytes for longer than the lease: the leader keeps leading, nothing lost", async () => {
  await using h = await startFaultHarness();
  const a = h.startReplica();
  h.startReplica();
  const leader = await h.waitForLeader();
  h.generate({ total: 900, seed: 13 });
  await h.waitForDeliveries(200);
  h.server.stallWatches(true);
  const stalledAt = performance.now();
  const delivered = h.deliveries.length;
  // Renewals are not watches: the leader goes on renewing through the stall.
  const leaseMs = h.config.timings.leaseDurationMs;
  await h.until(
    "the leader to renew for two lease durations into the stall",
    () => h.leaseHistory.some((c) => c.holder === leader.name && c.at > stalledAt + 2 * leaseMs),
  );
  assert.ok(
    h.leaseHistory.every((c) => c.at < stalledAt || c.holder === leader.name),
    "the lease stayed with the leader during the stall",
  );
  assert.ok(
    h.deliveries.length - delivered <= h.config.queueCapacity,
    "a stalled watch delivers at most what was queued",
  );
  h.server.stallWatches(false);
  await h.waitAllDelivered();
  const r = h.verify();
  assert.equal(h.leader(), leader);
  assert.ok(a.alive);
  h.summary("watches-stalled", r, { stallMs: Math.round(performance.now() - stalledAt) });
});

Deno.test("a watch silent past its idle limit is reopened from where it was (pump with a 1 s watch timeout)", async () => {
  // The collector runs the pump with the default 300 s watch timeout (idle
  // limit 330 s) and has no option to shorten it, so this runs the pump
  // itself, as the leader's term would.
  await using h = await startFaultHarness();
  h.server.addUser("pump");
  const kc = new PooledKubeConfig();
  kc.loadFromString(h.server.kubeconfig({ user: "pump" }));
  const client = new KubeClient(kc, { requestTimeoutMs: h.config.timings.requestTimeoutMs });
  const c = h.config;
  const seeded = h.server.get("configmaps", c.resourcesNamespace, c.tokenConfigMapName)!;
  const token = {
    resourceVersion: (seeded.data as Record<string, string>)[TOKEN_KEY]!,
    timestamp: undefined,
  };
  const sink: Sink = {
    name: "recording",
    send: (batch) => Promise.resolve(h.recordDeliveries("pump", batch.map((r) => r.key))),
    close: () => Promise.resolve(),
  };
  const stop = new AbortController();
  const pump = runPump({
    client,
    sinks: [sink],
    token,
    acknowledge: () => {},
    watchTimeoutSeconds: 1,
  }, stop.signal);
  try {
    h.generate({ total: 600, seed: 21 });
    await h.waitForDeliveries(100);
    h.server.stallWatches(true);
    const since = Date.now();
    await h.until(
      "the pump to give up on two silent watches",
      () => h.server.requestLog.count({ identity: "pump", verb: "watch", since }) >= 2,
    );
    assert.ok(
      h.logs.some((l) => /Watch sent nothing for 1100 ms/.test(l.text)),
      "the restarts were for silence",
    );
    h.server.stallWatches(false);
    await h.waitAllDelivered();
  } finally {
    stop.abort();
    await pump;
    await client.close();
  }
  const r = h.verify({ checkLeaders: false });
  h.summary("watch-idle-restart", { ...r, leaders: 1 });
});

for (const code of [500, 503, 429] as const) {
  Deno.test(`a storm of ${code} answers${code === 500 ? "" : " with Retry-After"}: nothing lost, one leader at a time`, async () => {
    await using h = await startFaultHarness();
    h.startReplica();
    h.startReplica();
    h.startReplica();
    await h.waitForLeader();
    h.generate({ total: 900, seed: 14 });
    await h.waitForDeliveries(150);
    const before = answered(h, code);
    const count = 30;
    h.server.failNext(count, { code, ...(code === 500 ? {} : { retryAfterSeconds: 1 }) });
    await h.until(
      `the ${count} injected ${code} answers`,
      () => answered(h, code) - before >= count,
    );
    await h.waitAllDelivered();
    const r = h.verify({ duplicates: "afterCheckpoint" });
    h.summary(`storm-${code}`, r, { failed: count });
  });
}

Deno.test("latency beyond the request timeout: the leader steps down before its lease expires, nothing lost", async () => {
  await using h = await startFaultHarness();
  h.startReplica();
  h.startReplica();
  const leader = await h.waitForLeader();
  const term = h.terms[leader.term!]!;
  h.generate({ total: 900, seed: 15 });
  await h.waitForDeliveries(150);
  const { leaseDurationMs, requestTimeoutMs } = h.config.timings;
  h.server.setLatency(requestTimeoutMs + 300);
  const slowFrom = performance.now();
  await h.until("the leader to step down", () => term.end !== undefined);
  const lastRenewal = h.leaseHistory.findLast((c) => c.holder === leader.name)!;
  assert.ok(
    term.end! < lastRenewal.at + leaseDurationMs,
    `the term ended ${(term.end! - lastRenewal.at).toFixed(0)} ms after the last renewal, ` +
      `within the ${leaseDurationMs} ms lease`,
  );
  // Nobody can write while every request times out: candidates keep trying, no one wins.
  const since = Date.now();
  await h.until(
    "six more tries at the lease",
    () => h.server.requestLog.count({ resource: "leases.coordination.k8s.io", since }) >= 6,
  );
  assert.ok(
    h.leaseHistory.every((c) => c.at < slowFrom || c.holder === ""),
    "no lease write got through",
  );
  h.server.setLatency(0);
  await h.waitForLeader();
  await h.waitAllDelivered();
  const r = h.verify({ duplicates: "afterCheckpoint" });
  h.summary("latency-beyond-timeout", r, {
    latencyMs: requestTimeoutMs + 300,
    stepDownMs: Math.round(term.end! - lastRenewal.at),
  });
});

for (const followerWatch of [true, false]) {
  Deno.test(`a partitioned leader aborts its term before its lease expires; the next resumes from the checkpoint (followers ${followerWatch ? "watch" : "poll"})`, async () => {
    await using h = await startFaultHarness({
      env: { KEVENTS_FOLLOWER_WATCH: String(followerWatch) },
    });
    h.startReplica();
    h.startReplica();
    h.startReplica();
    const old = await h.waitForLeader();
    const oldTerm = h.terms[old.term!]!;
    h.generate({ total: 1200, seed: 16 });
    await h.waitForDeliveries(200);
    old.partition();
    const next = await h.waitForLeader({ not: old });
    const nextTerm = h.terms[next.term!]!;
    const lastRenewal = h.leaseHistory.findLast((c) => c.holder === old.name)!;
    const { leaseDurationMs } = h.config.timings;
    assert.ok(oldTerm.end !== undefined, "the partitioned leader's term has ended");
    assert.ok(
      oldTerm.end < lastRenewal.at + leaseDurationMs,
      `the old term ended ${(oldTerm.end - lastRenewal.at).toFixed(0)} ms after its last ` +
        `renewal, within the ${leaseDurationMs} ms lease`,
    );
    assert.ok(nextTerm.start > oldTerm.end, "the new term started after the old one ended");
    const checkpoint = h.checkpoints.findLast((w) => w.at < nextTerm.start)!;
    assert.equal(nextTerm.from, checkpoint.rv, "the new leader resumed from the checkpoint");
    await h.until(
      "the new leader to deliver 200",
      () => h.deliveries.filter((d) => d.replica === next.name).length >= 200,
    );
    old.heal();
    await h.waitAllDelivered();
    const r = h.verify({ duplicates: "afterCheckpoint" });
    h.summary(`leader-partitioned-${followerWatch ? "watch" : "poll"}`, r, {
      stepDownMs: Math.round(oldTerm.end - lastRenewal.at),
      takeoverMs: Math.round(nextTerm.start - lastRenewal.at),
    });
  });
}

Deno.test("clocks minutes ahead and behind: one leader at a time through handovers, nothing lost", async () => {
  await using h = await startFaultHarness();
  const MIN = 60_000;
  h.startReplica({ clockOffsetMs: -4 * MIN });
  h.startReplica({ clockOffsetMs: 3 * MIN });
  h.startReplica({ clockOffsetMs: 7 * MIN });
  const first = await h.waitForLeader();
  h.generate({ total: 1200, seed: 17 });
  await h.waitForDeliveries(200);
  // A clean handover (the lease released), then one by expiry (the leader cut off).
  await first.stop();
  h.startReplica({ clockOffsetMs: -9 * MIN });
  const second = await h.waitForLeader({ not: first });
  await h.until(
    "the second leader to deliver 200",
    () => h.deliveries.filter((d) => d.replica === second.name).length >= 200,
  );
  second.partition();
  const third = await h.waitForLeader({ not: second });
  await h.until(
    "the third leader to deliver 100",
    () => h.deliveries.filter((d) => d.replica === third.name).length >= 100,
  );
  second.heal();
  await h.waitAllDelivered();
  const r = h.verify({ duplicates: "afterCheckpoint" });
  assert.ok(r.leaders >= 3, `${r.leaders} terms`);
  h.summary("clock-skew", r, { offsetsMin: "-9/-4/+3/+7" });
});

for (const quirk of [false, true]) {
  Deno.test(`history compacted while no leader ran (${quirk ? "watch closed at once, as kube-apiserver does for events" : "410 Expired"}): a relist over several pages delivers everything once`, async () => {
    await using h = await startFaultHarness({ server: { eventsWatchQuirk: quirk } });
    const first = h.startReplica();
    await h.waitForLeader();
    h.generate({ total: 100, seed: 18, ratePerSecond: 1000 });
    await h.waitAllDelivered();
    await first.stop();
    h.generate({ total: 1500, seed: 19, ratePerSecond: 5000 });
    await h.generatorsDone();
    h.compactNow();
    const since = Date.now();
    const second = h.startReplica();
    await h.waitAllDelivered();
    const pages = h.server.requestLog.count({
      identity: second.name,
      verb: "list",
      resource: "events",
      since,
    });
    // More than 1,000 Events (some changes repeat one): at least three pages of 500.
    assert.ok(pages >= 3, `relisted in ${pages} pages`);
    const path = quirk ? /closed at once without events: relisting/ : /is gone .*: relisting/;
    assert.ok(h.logs.some((l) => path.test(l.text)), "the pump took the expected relist path");
    const r = h.verify();
    h.summary(`compacted-${quirk ? "silent-close" : "410"}`, r, { pages, collapsed: r.collapsed });
  });
}

Deno.test("the harness's verify fails on a lost change, a duplicate, and two leaders delivering", async () => {
  await using h = await startFaultHarness();
  h.generate({ total: 5, ratePerSecond: 1000, seed: 20 });
  await h.generatorsDone();
  const keys = [...h.generated.keys()];
  h.leaseHistory.push({ holder: "x", transitions: 0, rv: 1, at: performance.now() });
  h.recordDeliveries("x", keys.slice(0, 4));
  assert.throws(() => h.verify({ dumpOnFailure: false }), /never delivered/);
  h.recordDeliveries("x", keys.slice(3));
  assert.throws(() => h.verify({ dumpOnFailure: false }), /Unexpected duplicate/);
  assert.throws(
    () => h.verify({ duplicates: "afterCheckpoint", dumpOnFailure: false }),
    /within one term/,
  );
  h.deliveries.splice(4, 1);
  assert.equal(h.verify().lost, 0);
  h.leaseHistory.push({ holder: "y", transitions: 1, rv: 2, at: performance.now() });
  h.generate({ total: 1, ratePerSecond: 1000, seed: 21 });
  await h.generatorsDone();
  h.recordDeliveries("x", [...h.generated.keys()].slice(5));
  assert.throws(
    () => h.verify({ dumpOnFailure: false }),
    /x delivered .* while the Lease named "y" the holder/,
  );
});
