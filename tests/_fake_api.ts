/**
 * Helpers the fake API server tests share: a fetch client that trusts the
 * server's CA, a reader for newline-delimited watch bodies, and guards that
 * fail a test instead of letting it hang.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { FakeApiServer } from "../lib/fake_apiserver/mod.ts";

/** Wire JSON as the server sends it; the tests assert its shape field by field. */
// deno-lint-ignore no-explicit-any
export type Json = any;

/** How long a test waits for something that must happen before it fails. */
export const GUARD_MS = 10_000;

/** One line of a watch stream. */
export interface WatchEvent {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: Json;
}

/** Rejects after `ms` unless the promise settles first; clears its timer either way. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls a condition that becomes true by something the test cannot await (default bound GUARD_MS). */
export async function eventually(
  check: () => boolean,
  what: string,
  ms: number = GUARD_MS,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * Resolves once `condition` holds, re-checking it whenever `onChange` calls
 * its wake function; rejects naming `what` after `ms`.
 */
export function waitUntil(
  what: string,
  condition: () => boolean,
  onChange: (wake: () => void) => () => void,
  ms: number = GUARD_MS,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let done = false;
    let unsubscribe = () => {};
    const finish = (error?: unknown) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      unsubscribe();
      if (error === undefined) resolve();
      else reject(error);
    };
    const check = () => {
      try {
        if (condition()) finish();
      } catch (e) {
        finish(e);
      }
    };
    const timer = setTimeout(
      () => finish(new Error(`Gave up after ${ms} ms waiting until ${what}`)),
      ms,
    );
    unsubscribe = onChange(check);
    check();
  });
}

/** A `waitUntil` trigger that re-checks every few ms: for state that announces no change. */
export function polling(wake: () => void): () => void {
  const id = setInterval(wake, 5);
  return () => clearInterval(id);
}

/** Reads a watch body (newline-delimited JSON) one event at a time, each read bounded by GUARD_MS. */
export class WatchReader implements AsyncDisposable {
  readonly #reader: ReadableStreamDefaultReader<string>;
  #buffer = "";
  #pending: Promise<ReadableStreamReadResult<string>> | undefined;
  #settled = false;

  constructor(body: ReadableStream<Uint8Array>) {
    this.#reader = body.pipeThrough(new TextDecoderStream()).getReader();
  }

  #read(): Promise<ReadableStreamReadResult<string>> {
    if (this.#pending === undefined) {
      this.#settled = false;
      const pending = this.#reader.read();
      const settle = () => {
        this.#settled = true;
      };
      pending.then(settle, settle);
      this.#pending = pending;
    }
    return this.#pending;
  }

  /** The next event; undefined once the server ended the stream; rejects when it broke. */
  async next(): Promise<WatchEvent | undefined> {
    for (;;) {
      const nl = this.#buffer.indexOf("\n");
      if (nl >= 0) {
        const line = this.#buffer.slice(0, nl);
        this.#buffer = this.#buffer.slice(nl + 1);
        return JSON.parse(line);
      }
      const result = await within(this.#read(), GUARD_MS, "a watch event");
      this.#pending = undefined;
      if (result.done) {
        assert.equal(this.#buffer, "", "the stream ended in the middle of a line");
        return undefined;
      }
      this.#buffer += result.value;
    }
  }

  /** The next event, which must exist. */
  async expect(): Promise<WatchEvent> {
    const event = await this.next();
    assert.ok(event !== undefined, "the watch ended early");
    return event;
  }

  /** The next `count` events, which must exist. */
  async take(count: number): Promise<WatchEvent[]> {
    const events: WatchEvent[] = [];
    while (events.length < count) events.push(await this.expect());
    return events;
  }

  /** Every event until the server ends the stream. */
  async rest(): Promise<WatchEvent[]> {
    const events: WatchEvent[] = [];
    for (let e = await this.next(); e !== undefined; e = await this.next()) events.push(e);
    return events;
  }

  /**
   * Whether any byte has arrived since the last event, without waiting.
   * Starts a read if none is pending, so call it once before provoking the
   * change and again after a round trip to the server.
   */
  arrived(): boolean {
    if (this.#buffer !== "") return true;
    this.#read();
    return this.#settled;
  }

  /** Cancels the body. */
  async [Symbol.asyncDispose](): Promise<void> {
    // A stream the server ended or broke has nothing left to cancel.
    await this.#reader.cancel().catch(() => {});
  }
}

/** One answer of the server, its body read and parsed when it is JSON. */
export interface Reply {
  status: number;
  headers: Headers;
  body: Json;
}

/** Options of one request. */
export interface CallOptions {
  /** Sent as JSON unless it is a string. */
  body?: unknown;
  /** Content type of the body (default application/json). */
  contentType?: string;
  /** Bearer token; null sends no Authorization header (default: the client's token). */
  token?: string | null;
  /** Aborts the request. */
  signal?: AbortSignal;
}

/** Plain fetch against one fake API server, through an HttpClient that trusts its CA. */
export class Api implements Disposable {
  /** The server this client talks to. */
  readonly server: FakeApiServer;
  readonly #client: Deno.HttpClient | undefined;
  readonly #token: string | null;

  /** A client with a bearer token (default the admin's); null sends none. */
  constructor(server: FakeApiServer, token: string | null = server.adminToken) {
    this.server = server;
    this.#token = token;
    this.#client = server.caCertPem === undefined
      ? undefined
      : Deno.createHttpClient({ caCerts: [server.caCertPem] });
  }

  #authorization(token: string | null | undefined): Record<string, string> {
    const bearer = token === undefined ? this.#token : token;
    return bearer === null ? {} : { authorization: `Bearer ${bearer}` };
  }

  /** Sends a request and reads the whole answer. */
  async call(method: string, path: string, options: CallOptions = {}): Promise<Reply> {
    const headers: Record<string, string> = {
      accept: "application/json",
      ...this.#authorization(options.token),
    };
    let body: string | undefined;
    if (options.body !== undefined) {
      body = typeof options.body === "string" ? options.body : JSON.stringify(options.body);
      headers["content-type"] = options.contentType ?? "application/json";
    }
    const res = await fetch(this.server.url + path, {
      method,
      headers,
      body,
      client: this.#client,
      signal: options.signal,
    });
    const text = await res.text();
    const json = (res.headers.get("content-type") ?? "").startsWith("application/json");
    return { status: res.status, headers: res.headers, body: json ? JSON.parse(text) : text };
  }

  /**
   * Sends a request, asserts its status code (default 201 for POST, else
   * 200) and returns the body.
   */
  async send(method: string, path: string, body?: unknown, expected?: number): Promise<Json> {
    const reply = await this.call(method, path, { body });
    const want = expected ?? (method === "POST" ? 201 : 200);
    assert.equal(reply.status, want, `${method} ${path}: ${JSON.stringify(reply.body)}`);
    return reply.body;
  }

  /** GET. */
  get(path: string, options: CallOptions = {}): Promise<Reply> {
    return this.call("GET", path, options);
  }

  /** POST with a body. */
  post(path: string, body: unknown, options: CallOptions = {}): Promise<Reply> {
    return this.call("POST", path, { ...options, body });
  }

  /** PUT with a body. */
  put(path: string, body: unknown, options: CallOptions = {}): Promise<Reply> {
    return this.call("PUT", path, { ...options, body });
  }

  /** PATCH with a body in the given patch media type. */
  patch(path: string, body: unknown, contentType: string): Promise<Reply> {
    return this.call("PATCH", path, { body, contentType });
  }

  /** DELETE, with delete options as the body if given. */
  delete(path: string, body?: unknown): Promise<Reply> {
    return this.call("DELETE", path, { body });
  }

  /** Opens a watch; it must be answered with 200 and a JSON stream. */
  async watch(path: string): Promise<WatchReader> {
    const sep = path.includes("?") ? "&" : "?";
    const res = await fetch(`${this.server.url}${path}${sep}watch=true`, {
      headers: this.#authorization(undefined),
      client: this.#client,
    });
    if (res.status !== 200) assert.fail(`watch answered ${res.status}: ${await res.text()}`);
    assert.equal(res.headers.get("content-type"), "application/json");
    assert.ok(res.body !== null);
    return new WatchReader(res.body);
  }

  /** Opens a watch and cancels its body at once: for tests that only need the status. */
  async watchStatus(path: string, options: CallOptions = {}): Promise<Reply> {
    const res = await fetch(this.server.url + path, {
      headers: this.#authorization(options.token),
      client: this.#client,
    });
    if (res.status === 200) {
      await res.body?.cancel();
      return { status: 200, headers: res.headers, body: undefined };
    }
    return { status: res.status, headers: res.headers, body: await res.json() };
  }

  /** Closes the HttpClient. */
  [Symbol.dispose](): void {
    this.#client?.close();
  }
}

/** A core/v1 Event from kubelet about a Pod named after the event's prefix; `fields` override. */
export function coreEvent(namespace: string, name: string, fields: Json = {}): Json {
  return {
    metadata: { name, namespace },
    involvedObject: { kind: "Pod", namespace, name: name.split(".")[0], apiVersion: "v1" },
    reason: "Started",
    message: "Started container app",
    type: "Normal",
    source: { component: "kubelet" },
    count: 1,
    ...fields,
  };
}
