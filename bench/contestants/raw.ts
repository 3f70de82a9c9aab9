/**
 * The raw readers, the ceiling of the throughput benchmark: they open the
 * same watch as the others and only count bytes and newlines (one watch
 * event per line), parsing nothing. One reads through undici's
 * `dispatcher.request()` on an HTTP/1.1 pool (the transport kevents uses
 * only for insecure-skip-tls-verify or tls-server-name); the other through
 * Deno's own `fetch` (HTTP/1.1 too), the transport the pump uses.
 *
 * @module
 */

import { Agent } from "undici";
import { PooledKubeConfig } from "../../lib/kube/kubeconfig.ts";
import type { Contestant, ContestantOptions, Figures, Progress } from "./types.ts";

function watchPath(o: ContestantOptions): string {
  return `/api/v1/events?watch=1&resourceVersion=${encodeURIComponent(o.fromRv)}` +
    "&allowWatchBookmarks=true&timeoutSeconds=1800";
}

/** Counts newlines of chunks until `o.events` lines; returns true once reached. */
function counter(o: ContestantOptions, progress: Progress) {
  let bytes = 0;
  let lines = 0;
  return {
    add(chunk: Uint8Array): boolean {
      bytes += chunk.length;
      let i = -1;
      while ((i = chunk.indexOf(10, i + 1)) >= 0) lines++;
      progress.events = lines;
      if (lines >= o.events) progress.reached();
      return lines >= o.events;
    },
    figures: (): Figures => ({ bytes, lines, bytesPerEvent: Math.round(bytes / lines) }),
  };
}

/** Prepares the raw reader on undici's `dispatcher.request()`. */
export async function prepareRawUndici(o: ContestantOptions): Promise<Contestant> {
  const kc = new PooledKubeConfig();
  kc.loadFromFile(o.kubeconfig);
  const cluster = kc.getCurrentCluster()!;
  const origin = cluster.server;
  const headers = await kc.authHeaders();
  const ca = cluster.caData === undefined ? undefined : atob(cluster.caData);
  const dispatcher = new Agent({ allowH2: false, connect: ca === undefined ? {} : { ca } });
  const first = await dispatcher.request({
    origin,
    path: "/api/v1/events?limit=1",
    method: "GET",
    headers,
  });
  await first.body.text();
  return {
    async run(progress: Progress): Promise<Figures> {
      const count = counter(o, progress);
      const res = await dispatcher.request({
        origin,
        path: watchPath(o),
        method: "GET",
        headers,
      });
      if (res.statusCode !== 200) throw new Error(`Cannot watch: HTTP ${res.statusCode}`);
      for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
        if (count.add(chunk)) break;
      }
      return count.figures();
    },
    close: async () => {
      await dispatcher.destroy();
      await kc.close();
    },
  };
}

/** Prepares the raw reader on Deno's `fetch`. */
export async function prepareRawFetch(o: ContestantOptions): Promise<Contestant> {
  const kc = new PooledKubeConfig();
  kc.loadFromFile(o.kubeconfig);
  const cluster = kc.getCurrentCluster()!;
  const ca = cluster.caData === undefined ? undefined : atob(cluster.caData);
  const client = Deno.createHttpClient({
    caCerts: ca === undefined ? [] : [ca],
    http1: true,
    http2: false,
  });
  const headers = await kc.authHeaders();
  await (await fetch(`${cluster.server}/api/v1/events?limit=1`, { client, headers })).text();
  return {
    async run(progress: Progress): Promise<Figures> {
      const count = counter(o, progress);
      const res = await fetch(`${cluster.server}${watchPath(o)}`, { client, headers });
      if (res.status !== 200 || res.body === null) {
        throw new Error(`Cannot watch: HTTP ${res.status}`);
      }
      const reader = res.body.getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) throw new Error("The watch ended early");
        if (count.add(value)) break;
      }
      await reader.cancel();
      return count.figures();
    },
    close: () => {
      client.close();
      return kc.close();
    },
  };
}
