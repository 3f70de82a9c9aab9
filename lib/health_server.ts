/**
 * The health endpoint the manifests' probes call: `/healthz` (liveness: the
 * process serves requests) and `/readyz` (readiness: configuration loaded
 * and the collector started; a waiting candidate is ready too, readiness is
 * not leadership). It exposes nothing else.
 *
 * @module
 */

/** Options for {@linkcode startHealthServer}. */
export interface HealthServerOptions {
  /** Address to bind (e.g. "0.0.0.0" in a pod, "127.0.0.1" to keep it local). */
  hostname: string;
  /** Port; 0 picks a free one. */
  port: number;
  /** Whether the collector is ready. */
  ready: () => boolean;
}

/** A running health endpoint. */
export interface HealthServer {
  /** The bound port. */
  readonly port: number;
  /** Stops listening; resolves when closed. */
  close(): Promise<void>;
}

function text(body: string, status: number): Response {
  return new Response(body, {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" },
  });
}

/** Starts the health endpoint; rejects if the address cannot be bound. */
export async function startHealthServer(options: HealthServerOptions): Promise<HealthServer> {
  const listening = Promise.withResolvers<Deno.NetAddr>();
  const server = Deno.serve({
    hostname: options.hostname,
    port: options.port,
    onListen: (addr) => listening.resolve(addr),
    onError: () => text("internal error\n", 500),
  }, (req) => {
    if (req.method !== "GET" && req.method !== "HEAD") return text("method not allowed\n", 405);
    const path = new URL(req.url).pathname;
    if (path === "/healthz" || path === "/livez") return text("ok\n", 200);
    if (path === "/readyz") {
      return options.ready() ? text("ok\n", 200) : text("not ready\n", 503);
    }
    return text("not found\n", 404);
  });
  // Deno.serve throws synchronously on a bind error (AddrInUse), before onListen.
  const addr = await listening.promise;
  return { port: addr.port, close: () => server.shutdown() };
}
