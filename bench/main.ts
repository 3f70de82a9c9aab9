/**
 * Benchmarks (`deno task bench`). The operations issue adds the throughput,
 * catch-up, failover, API-load and soak benchmarks; for now this measures
 * the fake API server's watch stream, the base every later figure stands on.
 *
 * @module
 */

import { EventGenerator, startFakeApiServer } from "../lib/fake_apiserver/mod.ts";
import { PooledKubeConfig } from "../lib/kube_config.ts";
import { EVENTS, KubeClient } from "../lib/kube_client.ts";

const TOTAL = Number(Deno.args[0] ?? 50_000);

await using server = await startFakeApiServer({ historyLimit: TOTAL + 1000 });
const start = server.store.currentRv;
const generator = new EventGenerator({ seed: 1 });
for (let i = 0; i < TOTAL; i++) server.applyGenerated(generator.next());
const kc = new PooledKubeConfig();
kc.loadFromString(server.kubeconfig());
const client = new KubeClient(kc);
try {
  let events = 0;
  const t0 = performance.now();
  for await (const batch of client.watchBatches(EVENTS, { resourceVersion: String(start) })) {
    events += batch.length;
    if (events >= TOTAL) break;
  }
  const seconds = (performance.now() - t0) / 1000;
  console.log(
    `watch replay: ${events} events in ${seconds.toFixed(2)} s = ${
      Math.round(events / seconds)
    } events/s (peak RSS ${Math.round(Deno.memoryUsage().rss / 2 ** 20)} MiB)`,
  );
} finally {
  await client.close();
}
