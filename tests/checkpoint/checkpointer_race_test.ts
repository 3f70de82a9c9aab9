/**
 * Specification of the checkpointer's compare-and-swap when its own write
 * lands late: a write whose request timed out but which the API server
 * carried out anyway moves the ConfigMap under our own term. The next write
 * then meets a 409 that is not a newer leader's: it must write again, not
 * fence itself off.
 */

import assert from "node:assert/strict";
import { Checkpointer, TERM_ANNOTATION, TOKEN_KEY } from "../../lib/checkpoint/checkpointer.ts";
import { type FakeApiServer, startFakeApiServer } from "../../lib/fake_apiserver/mod.ts";
import { KubeClient } from "../../lib/kube/client.ts";
import { PooledKubeConfig } from "../../lib/kube/kubeconfig.ts";
import { Metrics } from "../../lib/ops/metrics.ts";

/** The checkpoint ConfigMap's token as the server stores it. */
function storedToken(server: FakeApiServer): string | undefined {
  const data = server.get("configmaps", "default", "datadogtoken")?.data as
    | Record<string, string>
    | undefined;
  return data?.[TOKEN_KEY];
}

Deno.test("a 409 caused by our own late write is retried, not taken for a newer leader", async () => {
  await using server = await startFakeApiServer({ serveComponentStatuses: false });
  const kc = new PooledKubeConfig();
  kc.loadFromString(server.kubeconfig());
  const client = new KubeClient(kc);
  const metrics = new Metrics();
  const checkpointer = new Checkpointer({
    client,
    namespace: "default",
    name: "datadogtoken",
    term: "a/0/2026-11-21T00:00:00.000Z",
    intervalMs: 10,
    maxEvents: 1,
    requestTimeoutMs: 300,
    metrics,
  });
  try {
    const stop = new AbortController();
    await checkpointer.begin(stop.signal);
    // The next PUT is held past the client's 300 ms timeout, then carried out anyway.
    const hold = server.holdRequests({ verbs: ["update"], resources: ["configmaps"] }, {
      completeWithoutClient: true,
    });
    checkpointer.acknowledge({ resourceVersion: "2001", timestamp: undefined }, 1);
    const first = checkpointer.flush(stop.signal);
    await hold.arrived;
    try {
      await assert.rejects(first, { name: "TimeoutError" }, "the client gave up on the write");
    } finally {
      hold.release();
    }
    // The late write lands (the server answers nobody): wait for it.
    const deadline = Date.now() + 10_000;
    while (storedToken(server) !== "2001") {
      assert.ok(Date.now() < deadline, "the held write landed");
      await new Promise((r) => setTimeout(r, 10));
    }
    checkpointer.acknowledge({ resourceVersion: "2002", timestamp: undefined }, 1);
    await checkpointer.flush(stop.signal); // 409: the ConfigMap moved, under our term.
    assert.equal(checkpointer.fenced, false, "not fenced by its own write");
    await checkpointer.flush(stop.signal); // Written on the version read back.
    const cm = server.get("configmaps", "default", "datadogtoken")!;
    assert.equal(storedToken(server), "2002");
    assert.equal(cm.metadata.annotations?.[TERM_ANNOTATION], "a/0/2026-11-21T00:00:00.000Z");
    const text = await metrics.render();
    assert.match(
      text,
      /kevents_checkpoint_writes_total\{result="fenced"\} 0|^(?![\s\S]*result="fenced")/,
    );
  } finally {
    await client.close();
  }
});

Deno.test("a 409 under another term's stamp still fences", async () => {
  await using server = await startFakeApiServer({ serveComponentStatuses: false });
  const kc = new PooledKubeConfig();
  kc.loadFromString(server.kubeconfig());
  const client = new KubeClient(kc);
  const options = {
    client,
    namespace: "default",
    name: "datadogtoken",
    intervalMs: 10,
    maxEvents: 1,
    requestTimeoutMs: 2000,
  };
  const a = new Checkpointer({ ...options, term: "a/0/x" });
  const b = new Checkpointer({ ...options, term: "b/1/y" });
  try {
    const signal = new AbortController().signal;
    await a.begin(signal);
    await b.begin(signal);
    a.acknowledge({ resourceVersion: "3001", timestamp: undefined }, 1);
    await a.flush(signal);
    assert.equal(a.fenced, true);
    assert.equal(
      server.get("configmaps", "default", "datadogtoken")!.metadata.annotations?.[TERM_ANNOTATION],
      "b/1/y",
    );
  } finally {
    await client.close();
  }
});
