/**
 * The fault suite, the checkpoint ConfigMap in a hostile world: what
 * operators and restores do to the `datadogtoken` ConfigMap while kevents
 * leads, done with kubectl (an independent client) where an operator would
 * use it. Each case is checked by the fault harness against every Event
 * change the server committed: nothing lost, nothing twice across the
 * clean handover that follows, one leader at a time.
 *
 * Every wait is on a condition and bounded; none is a sleep.
 */

import assert from "node:assert/strict";
import { TERM_ANNOTATION, TOKEN_KEY, TOKEN_TIMESTAMP } from "../../lib/checkpoint/checkpointer.ts";
import { type FaultHarness, startFaultHarness } from "./_harness.ts";

const KUBECTL = "/usr/bin/kubectl";
const MANIFEST = new URL("../../manifests/datadog_configmap.yaml", import.meta.url).pathname;
const LEASE_MS = 3000;

/** Runs kubectl as an admin user of the harness's server; returns its stdout, fails on a non-zero exit. */
async function kubectl(h: FaultHarness, args: string[], stdin?: string): Promise<string> {
  const { code, stdout, stderr } = await tryKubectl(h, args, stdin);
  assert.equal(code, 0, `kubectl ${args.join(" ")}: ${stderr}`);
  return stdout;
}

/**
 * `kubectl replace`, as an operator runs it: kubectl reads the object for its
 * resourceVersion and then writes it, and a leader writing its checkpoint in
 * between makes it answer Conflict ("the object has been modified"); the
 * operator runs it again. At most 10 tries.
 */
async function kubectlReplace(h: FaultHarness, args: string[], stdin?: string): Promise<void> {
  for (let attempt = 1;; attempt++) {
    const { code, stderr } = await tryKubectl(h, ["replace", ...args], stdin);
    if (code === 0) return;
    if (attempt >= 10 || !/Conflict/.test(stderr)) {
      assert.fail(`kubectl replace ${args.join(" ")}: ${stderr}`);
    }
  }
}

/** Runs kubectl as an admin user of the harness's server. */
async function tryKubectl(
  h: FaultHarness,
  args: string[],
  stdin?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const kubeconfig = await h.kubeconfigFile("operator");
  const child = new Deno.Command(KUBECTL, {
    args: ["--kubeconfig", kubeconfig, ...args],
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

/** Log lines of the harness at `level` whose text contains `part`. */
function logsWith(h: FaultHarness, level: string, part: string) {
  return h.logs.filter((l) => l.level === level && l.text.includes(part));
}

/** What the token ConfigMap holds now. */
function tokenOf(h: FaultHarness): { rv?: string; term?: string } | undefined {
  const c = h.config;
  const cm = h.server.get("configmaps", c.resourcesNamespace, c.tokenConfigMapName);
  if (cm === undefined) return undefined;
  const data = (cm as { data?: Record<string, string> }).data ?? {};
  return { rv: data[TOKEN_KEY], term: cm.metadata.annotations?.[TERM_ANNOTATION] };
}

const operatorActions: {
  name: string;
  act: (h: FaultHarness) => Promise<void>;
  /** The warning the leader logs when it notices. */
  noticed: string;
}[] = [
  {
    name: "kubectl replace -f manifests/datadog_configmap.yaml",
    act: (h) => kubectlReplace(h, ["-f", MANIFEST]),
    noticed: "was changed by someone else while this replica leads",
  },
  {
    name: "kubectl replace with a token far in the future",
    act: async (h) => {
      const text = (await Deno.readTextFile(MANIFEST)).replace(
        /event\.tokenKey: "0"/,
        'event.tokenKey: "999999999"',
      );
      assert.ok(text.includes("999999999"));
      await kubectlReplace(h, ["-f", "-"], text);
    },
    noticed: "was changed by someone else while this replica leads",
  },
  {
    name: "kubectl delete, then kubectl create -f manifests/datadog_configmap.yaml",
    act: async (h) => {
      await kubectl(h, ["delete", "configmap", "datadogtoken"]);
      const created = await tryKubectl(h, ["create", "-f", MANIFEST]);
      if (created.code !== 0) {
        // The leader was faster and created it again first: the operator replaces it.
        assert.match(created.stderr, /AlreadyExists/);
        await kubectlReplace(h, ["-f", MANIFEST]);
      }
    },
    noticed: "was changed by someone else while this replica leads",
  },
  {
    name: "kubectl delete configmap datadogtoken",
    act: async (h) => void await kubectl(h, ["delete", "configmap", "datadogtoken"]),
    noticed: "was deleted while this replica leads",
  },
];

for (const { name, act, noticed } of operatorActions) {
  Deno.test(`${name} while a leader runs: it keeps its position and writes it back; the next leader resumes from it, nothing lost, nothing twice`, async () => {
    await using h = await startFaultHarness({ leaseMs: LEASE_MS });
    const a = h.startReplica();
    const leader = await h.waitForLeader();
    assert.equal(leader, a);
    const b = h.startReplica();
    h.generate({ total: 900, ratePerSecond: 150, seed: 7 });
    await h.waitForDeliveries(200);
    const before = h.checkpoints.length;

    await act(h);
    // The leader notices at its next write (events keep coming) and mends the ConfigMap.
    await h.until(
      `the leader to log "${noticed}"`,
      () => logsWith(h, "warning", noticed).length > 0,
    );
    await h.until(
      "the ConfigMap to hold the leader's position and stamp again",
      () => {
        const t = tokenOf(h);
        return h.checkpoints.length > before && t?.term?.startsWith(`${a.name}/`) === true &&
          t.rv !== undefined && t.rv !== "0" && t.rv !== "999999999";
      },
    );
    assert.equal(
      logsWith(h, "warning", "Checkpoint write refused").length,
      0,
      "no fence: nobody else leads",
    );

    await a.stop();
    const next = await h.waitForLeader();
    assert.equal(next, b);
    await h.waitAllDelivered();
    const result = h.verify({ duplicates: "none" });
    assert.equal(result.lost, 0);
    assert.equal(result.duplicates, 0);
    assert.equal(
      logsWith(h, "info", "No checkpoint: starting from now").length,
      0,
      "no term started from now",
    );
    console.log(
      `FAULT ${name}: ${result.generated} generated, ${result.delivered} delivered, ` +
        `${result.lost} lost, ${result.duplicates} duplicates`,
    );
  });
}

Deno.test("a checkpoint ahead of the API server (a restored etcd, a copied ConfigMap) is noticed at once: relisted by the token's time, nothing lost", async () => {
  await using h = await startFaultHarness({ leaseMs: LEASE_MS, seedCheckpoint: false });
  const c = h.config;
  const ahead = String(h.server.store.currentRv + 1_000_000);
  h.server.create("configmaps", c.resourcesNamespace, {
    metadata: { name: c.tokenConfigMapName, namespace: c.resourcesNamespace },
    data: {
      [TOKEN_KEY]: ahead,
      [TOKEN_TIMESTAMP]: new Date(Date.now() - 5_000).toISOString(),
    },
  });
  h.startReplica();
  await h.waitForLeader();
  await h.until(
    "the warning that the token is ahead",
    () => logsWith(h, "warning", "is ahead of the API server").length === 1,
  );
  // A relist returns the latest version of each event only: changes start
  // once it is done, so that none is superseded while it runs.
  await h.until("the relist", () => logsWith(h, "info", "Listed ").length === 1);
  h.generate({ total: 300, ratePerSecond: 150, seed: 11 });
  await h.waitAllDelivered();
  const result = h.verify({ duplicates: "none" });
  assert.equal(result.lost, 0);
  assert.notEqual(tokenOf(h)?.rv, ahead, "the checkpoint moved to the server's positions");
  console.log(
    `FAULT token ahead of the server: ${result.generated} generated, ${result.delivered} delivered, 0 lost`,
  );
});

for (const state of ["immutable", "binaryData"] as const) {
  Deno.test(`a checkpoint ConfigMap that cannot hold the token (${state}) gets one error naming it; delivery goes on from memory, and a mended ConfigMap is written again`, async () => {
    await using h = await startFaultHarness({ leaseMs: LEASE_MS, seedCheckpoint: false });
    const c = h.config;
    const rv = String(h.server.store.currentRv);
    h.server.create("configmaps", c.resourcesNamespace, {
      metadata: { name: c.tokenConfigMapName, namespace: c.resourcesNamespace },
      ...(state === "immutable"
        ? { immutable: true, data: { [TOKEN_KEY]: rv } }
        : { binaryData: { [TOKEN_KEY]: btoa(rv) } }),
    });
    h.startReplica();
    await h.waitForLeader();
    h.generate({ total: 300, ratePerSecond: 150, seed: 13 });
    await h.waitAllDelivered();
    const errors = h.logs.filter((l) =>
      l.level === "error" && l.text.includes(`configmaps default/${c.tokenConfigMapName}`)
    );
    assert.equal(errors.length, 1, errors.map((e) => e.text).join("\n"));
    assert.match(errors[0]!.text, state === "immutable" ? /immutable/ : /binaryData/);
    assert.match(errors[0]!.text, /delete it|delete the ConfigMap/);
    assert.equal(h.verify({ duplicates: "none" }).lost, 0);
    // Written nowhere meanwhile: the API server refuses such writes (422), and none was sent.
    assert.equal(
      h.server.requestLog.count({ verb: "update", resource: "configmaps", code: 422 }),
      0,
    );

    // The operator does what the error says; the leader notices within an idle interval.
    await kubectl(h, ["delete", "configmap", c.tokenConfigMapName]);
    const last = h.deliveries.at(-1)!.key.split("/")[1];
    await h.until(
      "the position written to a new ConfigMap",
      () => tokenOf(h)?.rv !== undefined && BigInt(tokenOf(h)!.rv!) >= BigInt(last!),
    );
  });
}

Deno.test("a leader whose credentials cannot list events steps down after the limit; a healthy replica takes over, nothing lost", async () => {
  await using h = await startFaultHarness({ leaseMs: LEASE_MS });
  const bad = h.startReplica({
    name: "no-events",
    env: { KEVENTS_WATCH_FAILURE_LIMIT_SECONDS: "1" },
  });
  // Everything but events: it wins the lease, stamps the checkpoint, and cannot list.
  h.server.setRules("no-events", [
    { verbs: ["*"], apiGroups: ["coordination.k8s.io"], resources: ["leases"] },
    { verbs: ["*"], apiGroups: [""], resources: ["configmaps", "componentstatuses"] },
  ]);
  await h.waitForLeader();
  const good = h.startReplica({ name: "healthy" });
  h.generate({ total: 300, ratePerSecond: 100, seed: 17 });
  const next = await h.waitForLeader({ not: bad });
  assert.equal(next, good);
  await h.waitAllDelivered();
  assert.equal(h.verify({ duplicates: "none" }).lost, 0);
  const verdict = bad.liveness.check(h.config.health.watchStallLimitMs);
  assert.equal(verdict.live, false, "the replica that stepped down reports unhealthy");
  assert.match(verdict.detail, /unfit/);
  assert.ok(logsWith(h, "error", "steps down").length >= 1);
  assert.equal(h.terms.filter((t) => t.replica === "no-events").length, 1, "it stays away");
});
