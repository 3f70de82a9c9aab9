/**
 * The health and metrics endpoint the manifests' probes and Prometheus
 * call:
 *
 * - `/healthz` (and `/livez`): liveness. Fails (503) when this replica leads
 *   but its event watch has received nothing for longer than the stall
 *   limit although the pump restarted it (see lib/ops/liveness.ts); a restart
 *   of the process is then the remedy. A follower is always live.
 * - `/readyz`: readiness: configuration loaded and the collector started.
 *   A waiting candidate is ready too: readiness is not leadership.
 * - `/metrics`: the Prometheus text format.
 *
 * It exposes nothing else, answers only GET and HEAD, and its answers hold
 * no setting, URL or credential: a probe or a scraper learns states and
 * counts, nothing it could use against the cluster. Bind it to 127.0.0.1
 * (`kevents_health_address`) to keep it off the network.
 *
 * @module
 */

import type { LivenessVerdict } from "./liveness.ts";

/** Options for {@linkcode startHealthServer}. */
export interface HealthServerOptions {
  /** Address to bind (e.g. "0.0.0.0" in a pod, "127.0.0.1" to keep it local). */
  hostname: string;
  /** Port; 0 picks a free one. */
  port: number;
  /** Whether the collector is ready. */
  ready: () => boolean;
  /** Whether the process is live (default: always). */
  live?: () => LivenessVerdict;
  /** The metrics exposition (default: `/metrics` is not served). */
  metrics?: () => Promise<{ contentType: string; text: string }>;
}

/** A running health endpoint. */
export interface HealthServer {
  /** The bound port. */
  readonly port: number;
  /** Stops listening; resolves when closed. */
  close(): Promise<void>;
}

function text(body: string, status: number, contentType = "text/plain; charset=utf-8"): Response {
  return new Response(body, {
    status,
    headers: { "content-type": contentType, "cache-control": "no-store" },
  });
}

/** Starts the endpoint; rejects if the address cannot be bound. */
export async function startHealthServer(options: HealthServerOptions): Promise<HealthServer> {
  const listening = Promise.withResolvers<Deno.NetAddr>();
  const server = Deno.serve({
    hostname: options.hostname,
    port: options.port,
    onListen: (addr) => listening.resolve(addr),
    onError: () => text("internal error\n", 500),
  }, async (req) => {
    if (req.method !== "GET" && req.method !== "HEAD") return text("method not allowed\n", 405);
    const path = new URL(req.url).pathname;
    if (path === "/healthz" || path === "/livez") {
      const verdict = options.live?.() ?? { live: true, detail: "ok" };
      return text(`${verdict.detail}\n`, verdict.live ? 200 : 503);
    }
    if (path === "/readyz") {
      return options.ready() ? text("ok\n", 200) : text("not ready\n", 503);
    }
    if (path === "/metrics" && options.metrics !== undefined) {
      const { contentType, text: body } = await options.metrics();
      return text(body, 200, contentType);
    }
    return text("not found\n", 404);
  });
  // Deno.serve throws synchronously on a bind error (AddrInUse), before onListen.
  const addr = await listening.promise;
  return { port: addr.port, close: () => server.shutdown() };
}
