/**
 * Helpers the HTTP sink tests share: a local receiver (Deno.serve on
 * 127.0.0.1, plain or TLS) that records every request and answers from a
 * script, and a clock whose sleeps return at once but are recorded.
 *
 * @module
 */

import type { Clock } from "../lib/time/clock.ts";

/** A request as the receiver got it. */
export interface ReceivedRequest {
  method: string;
  /** Path and query. */
  path: string;
  headers: Headers;
  body: string;
}

/** An answer of the receiver. */
export interface Reply {
  status: number;
  headers?: Record<string, string>;
  body?: string;
}

/** Options for {@linkcode startReceiver}. */
export interface ReceiverOptions {
  /** Serve HTTPS with this certificate and key (PEM). */
  tls?: { cert: string; key: string };
  /** The answer when the script is empty (default 200 with `{"status":"ok"}`). */
  fallback?: Reply | ((req: ReceivedRequest) => Reply | Promise<Reply>);
}

/** A running receiver; dispose shuts it down. */
export interface Receiver extends AsyncDisposable {
  /** Base URL, `http(s)://127.0.0.1:PORT`. */
  readonly url: string;
  /** Every request, in arrival order. */
  readonly requests: ReceivedRequest[];
  /** Answers the next requests with these, in order; then the fallback. */
  script(...replies: Reply[]): void;
  /** Sets the answer once the script is empty. */
  setFallback(fallback: Reply | ((req: ReceivedRequest) => Reply | Promise<Reply>)): void;
  /** Resolves once `n` requests have arrived (rejects after `ms`). */
  received(n: number, ms?: number): Promise<void>;
  shutdown(): Promise<void>;
}

const OK: Reply = { status: 200, body: '{"status":"ok"}' };

/** Starts a receiver on 127.0.0.1 and a free port. */
export function startReceiver(options: ReceiverOptions = {}): Receiver {
  const requests: ReceivedRequest[] = [];
  const queue: Reply[] = [];
  let fallback = options.fallback ?? OK;
  const watchers = new Set<() => void>();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: () => {},
    ...(options.tls === undefined ? {} : { cert: options.tls.cert, key: options.tls.key }),
  }, async (req) => {
    const url = new URL(req.url);
    const received: ReceivedRequest = {
      method: req.method,
      path: url.pathname + url.search,
      headers: req.headers,
      body: await req.text(),
    };
    requests.push(received);
    for (const wake of [...watchers]) wake();
    const reply = queue.shift() ??
      (typeof fallback === "function" ? await fallback(received) : fallback);
    return new Response(reply.body ?? "", { status: reply.status, headers: reply.headers });
  });
  const scheme = options.tls === undefined ? "http" : "https";
  let closed = false;
  const shutdown = async () => {
    if (closed) return;
    closed = true;
    await server.shutdown();
  };
  return {
    url: `${scheme}://127.0.0.1:${server.addr.port}`,
    requests,
    script: (...replies) => void queue.push(...replies),
    setFallback: (f) => void (fallback = f),
    received: (n, ms = 20_000) =>
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (requests.length < n) return;
          watchers.delete(check);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          watchers.delete(check);
          reject(
            new Error(`Gave up after ${ms} ms waiting for ${n} requests (${requests.length})`),
          );
        }, ms);
        watchers.add(check);
        check();
      }),
    shutdown,
    [Symbol.asyncDispose]: shutdown,
  };
}

/** A clock whose sleeps return at once (advancing its time) and are recorded. */
export class InstantClock implements Clock {
  /** Every sleep asked for, in ms, in order. */
  readonly sleeps: number[] = [];
  #now: number;

  constructor(start: number = Date.UTC(2026, 0, 1)) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    this.sleeps.push(ms);
    this.#now += Math.max(0, ms);
    return Promise.resolve();
  }
}
