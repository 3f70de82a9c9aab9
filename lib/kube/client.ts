/**
 * The Kubernetes client kevents uses: JSON requests and watches over the
 * shared HTTP/1.1 pool of a {@linkcode PooledKubeConfig}, each bounded by a
 * timeout and cancellable by an AbortSignal, with failures mapped to the
 * typed errors of errors.ts. Objects are typed with @kubernetes/client-node's
 * API types; resourceVersions are passed through as opaque strings.
 *
 * @module
 */

import {
  errorFromResponse,
  KubeApiError,
  KubeNetworkError,
  KubeTimeoutError,
  type RequestDescription,
  WatchDecodeError,
  WatchStalledError,
} from "./errors.ts";
import { describeNetworkError, type HttpResponse, type HttpTransport } from "./http_transport.ts";
import type { PooledKubeConfig } from "./kubeconfig.ts";
import type { Metrics } from "../ops/mod.ts";
import { readWatchBatches, type WatchEvent, type WatchPosition } from "./watch_stream.ts";

/** A resource kevents talks to. */
export interface ResourceRef {
  group: string;
  version: string;
  /** Plural name as in URLs. */
  resource: string;
  namespaced: boolean;
}

/** core/v1 events. */
export const EVENTS: ResourceRef = {
  group: "",
  version: "v1",
  resource: "events",
  namespaced: true,
};
/** core/v1 configmaps. */
export const CONFIGMAPS: ResourceRef = {
  group: "",
  version: "v1",
  resource: "configmaps",
  namespaced: true,
};
/** core/v1 endpoints. */
export const ENDPOINTS: ResourceRef = {
  group: "",
  version: "v1",
  resource: "endpoints",
  namespaced: true,
};
/** core/v1 componentstatuses. */
export const COMPONENT_STATUSES: ResourceRef = {
  group: "",
  version: "v1",
  resource: "componentstatuses",
  namespaced: false,
};
/** coordination.k8s.io/v1 leases. */
export const LEASES: ResourceRef = {
  group: "coordination.k8s.io",
  version: "v1",
  resource: "leases",
  namespaced: true,
};

/** Query parameters; undefined values are left out. */
export type Query = Record<string, string | number | boolean | undefined>;

/** Options of one request. */
export interface RequestOptions {
  query?: Query;
  /** JSON body. */
  body?: unknown;
  /** Body media type (default application/json). */
  contentType?: string;
  /** Cancels the request; it then rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Overrides the client's request timeout. */
  timeoutMs?: number;
  /** The Kubernetes verb, for metrics (default from the method: GET is get, POST create...). */
  verb?: string;
}

/** Options of a request answered in text ({@linkcode KubeClient.requestText}). */
export interface TextRequestOptions extends RequestOptions {
  /**
   * Error codes whose answer the caller reads itself instead of a rejection
   * (a failing `/readyz` answers 500 with the list of checks; default none).
   */
  acceptCodes?: readonly number[];
}

/** A text answer. */
export interface TextAnswer {
  /** HTTP status code. */
  code: number;
  text: string;
}

/** A page of a list. */
export interface ListPage<T> {
  items: T[];
  /** The collection's resourceVersion (opaque). */
  resourceVersion: string;
  /** Token for the next page; undefined on the last page. */
  continueToken: string | undefined;
}

/** Options of a list request. */
export interface ListOptions {
  namespace?: string;
  limit?: number;
  continueToken?: string;
  resourceVersion?: string;
  fieldSelector?: string;
  labelSelector?: string;
  signal?: AbortSignal;
  timeoutMs?: number;
}

/** Options of a watch. */
export interface WatchOptions {
  namespace?: string;
  /** Start after this resourceVersion (opaque); omit for "current state first". */
  resourceVersion?: string;
  allowWatchBookmarks?: boolean;
  /** Ask the server to end the watch after this long. */
  timeoutSeconds?: number;
  fieldSelector?: string;
  labelSelector?: string;
  /** Ends the watch; the generator then throws the signal's reason. */
  signal?: AbortSignal;
  /** Throw {@linkcode WatchStalledError} when no byte arrives for this long (default: never). */
  idleTimeoutMs?: number;
  /** Called once the server accepted the watch (a 2xx with a JSON stream), before any event. */
  onOpen?: () => void;
  /**
   * Paths of string fields of each object (`metadata.uid`) to read without
   * building the object, given in {@linkcode WatchEvent.fields} (default none).
   */
  fields?: readonly string[];
}

/** Options for {@linkcode KubeClient}. */
export interface KubeClientOptions {
  /** Timeout of each request, response body included (default 10 s). */
  requestTimeoutMs?: number;
  /** User-Agent header (default "kevents"). */
  userAgent?: string;
  /** Counts every request by verb and answer code. */
  metrics?: Pick<Metrics, "apiRequest">;
}

const VERB_OF_METHOD: Readonly<Record<string, string>> = {
  GET: "get",
  POST: "create",
  PUT: "update",
  PATCH: "patch",
  DELETE: "delete",
};

/** The metrics code of a failed request: its HTTP status, or why there was none. */
function failureCode(e: unknown): number | "network" | "timeout" | undefined {
  if (e instanceof KubeApiError) return e.code;
  if (e instanceof KubeTimeoutError) return "timeout";
  if (e instanceof KubeNetworkError) return "network";
  return undefined; // Aborted by the caller: not the server's doing.
}

/**
 * Wraps a response body so that it errors with the signal's reason as soon
 * as the signal aborts, whatever the pool (http_transport.ts): undici's
 * body under Deno does not end when its request is aborted (the read just
 * hangs), and without this an aborted watch or a timed-out body would never
 * settle.
 */
export function abortableBody(
  body: ReadableStream<Uint8Array>,
  signal: AbortSignal,
  onChunk?: () => void,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>({
    start(controller) {
      const onAbort = () => {
        controller.error(signal.reason);
        // Releases the connection; its outcome no longer matters to anyone.
        reader.cancel(signal.reason).catch(() => {});
      };
      if (signal.aborted) onAbort();
      else signal.addEventListener("abort", onAbort, { once: true });
    },
    async pull(controller) {
      try {
        const { value, done } = await reader.read();
        if (signal.aborted) return;
        if (done) controller.close();
        else {
          onChunk?.();
          controller.enqueue(value);
        }
      } catch (e) {
        if (!signal.aborted) controller.error(e);
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}

/** Reads a whole body as text, giving up when the signal aborts. */
function bodyText(res: { body: unknown }, signal: AbortSignal): Promise<string> {
  if (res.body === null || res.body === undefined) return Promise.resolve("");
  return new Response(abortableBody(res.body as ReadableStream<Uint8Array>, signal)).text();
}

const PATCH_CONTENT_TYPES = {
  merge: "application/merge-patch+json",
  strategic: "application/strategic-merge-patch+json",
  json: "application/json-patch+json",
} as const;

/** A Kubernetes API client over the shared connection pool. */
export class KubeClient {
  readonly config: PooledKubeConfig;
  #server: string;
  #timeoutMs: number;
  #userAgent: string;
  #metrics: Pick<Metrics, "apiRequest"> | undefined;

  constructor(config: PooledKubeConfig, options: KubeClientOptions = {}) {
    this.config = config;
    const server = config.getCurrentCluster()?.server;
    if (server === undefined) {
      throw new Error("Cannot create a Kubernetes client: no current cluster");
    }
    this.#server = server.replace(/\/$/, "");
    this.#timeoutMs = options.requestTimeoutMs ?? 10_000;
    this.#userAgent = options.userAgent ?? "kevents";
    this.#metrics = options.metrics;
  }

  #count(verb: string, outcome: number | unknown): void {
    if (this.#metrics === undefined) return;
    const code = typeof outcome === "number" || outcome === "network" || outcome === "timeout"
      ? outcome
      : failureCode(outcome);
    if (code !== undefined) this.#metrics.apiRequest(verb, code);
  }

  /** The API server's base URL. */
  get server(): string {
    return this.#server;
  }

  /** The request timeout in ms. */
  get requestTimeoutMs(): number {
    return this.#timeoutMs;
  }

  /** The URL path of a resource collection or object. */
  pathFor(ref: ResourceRef, namespace?: string, name?: string): string {
    const base = ref.group === "" ? `/api/${ref.version}` : `/apis/${ref.group}/${ref.version}`;
    const ns = ref.namespaced && namespace !== undefined && namespace !== ""
      ? `/namespaces/${encodeURIComponent(namespace)}`
      : "";
    const obj = name === undefined ? "" : `/${encodeURIComponent(name)}`;
    return `${base}${ns}/${ref.resource}${obj}`;
  }

  #url(path: string, query: Query = {}): URL {
    const url = new URL(this.#server + path);
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined) url.searchParams.set(k, String(v));
    }
    return url;
  }

  async #headers(extra: Record<string, string>): Promise<Record<string, string>> {
    return {
      ...(await this.config.authHeaders()),
      Accept: "application/json",
      "User-Agent": this.#userAgent,
      ...extra,
    };
  }

  /**
   * Sends one request and parses the JSON answer. Rejects with a typed
   * KubeApiError subclass for an error answer, KubeTimeoutError after the
   * timeout, KubeNetworkError when no answer came, or the signal's reason.
   */
  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const { text, request } = await this.#exchange(method, path, options, []);
    try {
      return (text === "" ? undefined : JSON.parse(text)) as T;
    } catch (e) {
      throw new KubeNetworkError(`${method} ${request.path}: answer is not JSON`, {
        cause: e,
        request,
      });
    }
  }

  /**
   * Sends one request and returns the answer as text (for non-resource
   * paths such as `/readyz?verbose`). Fails as {@linkcode request} does,
   * except that an answer whose code is in `acceptCodes` is returned.
   */
  async requestText(
    method: string,
    path: string,
    options: TextRequestOptions = {},
  ): Promise<TextAnswer> {
    const { code, text } = await this.#exchange(method, path, options, options.acceptCodes ?? []);
    return { code, text };
  }

  /** One request with its timeout and abort; error answers not in `acceptCodes` reject typed. */
  async #exchange(
    method: string,
    path: string,
    options: RequestOptions,
    acceptCodes: readonly number[],
  ): Promise<{ code: number; text: string; request: RequestDescription }> {
    const verb = options.verb ?? VERB_OF_METHOD[method] ?? method.toLowerCase();
    try {
      const answer = await this.#exchangeOnce(method, path, options, acceptCodes);
      this.#count(verb, answer.code);
      return answer;
    } catch (e) {
      this.#count(verb, e);
      throw e;
    }
  }

  async #exchangeOnce(
    method: string,
    path: string,
    options: RequestOptions,
    acceptCodes: readonly number[],
  ): Promise<{ code: number; text: string; request: RequestDescription }> {
    const signal = options.signal;
    signal?.throwIfAborted();
    const url = this.#url(path, options.query);
    const request: RequestDescription = { method, path: url.pathname + url.search };
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    const controller = new AbortController();
    const timeout = new KubeTimeoutError(timeoutMs, request);
    const timer = setTimeout(() => controller.abort(timeout), timeoutMs);
    const onAbort = () => controller.abort(signal?.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const headers = await this.#headers(
        options.body === undefined
          ? {}
          : { "Content-Type": options.contentType ?? "application/json" },
      );
      const transport = await this.config.transport();
      const res = await transport.send({
        url,
        method,
        headers,
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
        signal: controller.signal,
      });
      const text = await bodyText(res, controller.signal);
      if (res.status === 401) this.config.credentialsRejected();
      const ok = res.status >= 200 && res.status <= 299;
      if (!ok && !acceptCodes.includes(res.status)) {
        throw errorFromResponse(res.status, text, res.header("retry-after"), request);
      }
      return { code: res.status, text, request };
    } catch (e) {
      if (controller.signal.aborted) throw controller.signal.reason;
      if (e instanceof KubeApiError) throw e;
      // No answer came: name the server, which the path alone does not.
      throw new KubeNetworkError(
        `${method} ${url.origin}${request.path}: ${describeNetworkError(e)}`,
        {
          cause: e,
          request,
        },
      );
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /** Gets one object. */
  get<T>(ref: ResourceRef, namespace: string, name: string, o: RequestOptions = {}): Promise<T> {
    return this.request<T>("GET", this.pathFor(ref, namespace, name), o);
  }

  /** Creates an object. */
  create<T>(ref: ResourceRef, namespace: string, body: T, o: RequestOptions = {}): Promise<T> {
    return this.request<T>("POST", this.pathFor(ref, namespace), { ...o, body });
  }

  /**
   * Replaces an object. With `metadata.resourceVersion` set this is a
   * compare-and-swap: a stale version rejects with ConflictError.
   */
  replace<T>(
    ref: ResourceRef,
    namespace: string,
    name: string,
    body: T,
    o: RequestOptions = {},
  ): Promise<T> {
    return this.request<T>("PUT", this.pathFor(ref, namespace, name), { ...o, body });
  }

  /** Patches an object (merge patch by default). */
  patch<T>(
    ref: ResourceRef,
    namespace: string,
    name: string,
    patch: unknown,
    o: RequestOptions & { type?: "merge" | "strategic" | "json" } = {},
  ): Promise<T> {
    const type = o.type ?? "merge";
    return this.request<T>("PATCH", this.pathFor(ref, namespace, name), {
      ...o,
      body: patch,
      contentType: PATCH_CONTENT_TYPES[type],
    });
  }

  /** Deletes an object. */
  delete(
    ref: ResourceRef,
    namespace: string,
    name: string,
    o: RequestOptions = {},
  ): Promise<unknown> {
    return this.request("DELETE", this.pathFor(ref, namespace, name), o);
  }

  /** Lists one page. */
  async list<T>(ref: ResourceRef, o: ListOptions = {}): Promise<ListPage<T>> {
    const list = await this.request<{
      metadata?: { resourceVersion?: string; continue?: string };
      items?: T[];
    }>("GET", this.pathFor(ref, o.namespace), {
      query: {
        limit: o.limit,
        continue: o.continueToken,
        resourceVersion: o.resourceVersion,
        fieldSelector: o.fieldSelector,
        labelSelector: o.labelSelector,
      },
      signal: o.signal,
      timeoutMs: o.timeoutMs,
      verb: "list",
    });
    const token = list.metadata?.continue;
    return {
      items: list.items ?? [],
      resourceVersion: list.metadata?.resourceVersion ?? "",
      continueToken: token === undefined || token === "" ? undefined : token,
    };
  }

  /**
   * Watches a resource, yielding events in batches (one per network chunk).
   * Ends normally when the server ends the watch; throws the typed error of
   * an ERROR event (GoneError for 410), WatchDecodeError for malformed
   * data, WatchStalledError after `idleTimeoutMs` of silence,
   * KubeNetworkError when the connection breaks, or the signal's reason.
   */
  async *watchBatches<T = Record<string, unknown>>(
    ref: ResourceRef,
    o: WatchOptions = {},
  ): AsyncGenerator<WatchEvent<T>[], void, undefined> {
    const signal = o.signal;
    signal?.throwIfAborted();
    const url = this.#url(this.pathFor(ref, o.namespace), {
      watch: 1,
      resourceVersion: o.resourceVersion,
      allowWatchBookmarks: o.allowWatchBookmarks,
      timeoutSeconds: o.timeoutSeconds,
      fieldSelector: o.fieldSelector,
      labelSelector: o.labelSelector,
    });
    const request: RequestDescription = { method: "GET", path: url.pathname + url.search };
    const controller = new AbortController();
    const onAbort = () => controller.abort(signal?.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    // Until the headers arrive the request timeout applies; after that the
    // idle limit (if any). A chunk only notes the time: re-arming a timer
    // per chunk cost 8% of the pump's time. The timer, when it fires, sets
    // itself again for what is left of the limit since the last chunk, so
    // silence is still caught exactly `idleTimeoutMs` after the last byte.
    let timer: ReturnType<typeof setTimeout> | undefined = setTimeout(
      () => controller.abort(new KubeTimeoutError(this.#timeoutMs, request)),
      this.#timeoutMs,
    );
    let lastChunkAt = 0;
    const onChunk = () => {
      lastChunkAt = performance.now();
    };
    const checkIdle = (idleMs: number) => {
      const left = lastChunkAt + idleMs - performance.now();
      if (left <= 0) controller.abort(new WatchStalledError(idleMs));
      else timer = setTimeout(checkIdle, left, idleMs);
    };
    const arm = () => {
      clearTimeout(timer);
      timer = undefined;
      onChunk();
      if (o.idleTimeoutMs !== undefined) {
        timer = setTimeout(checkIdle, o.idleTimeoutMs, o.idleTimeoutMs);
      }
    };
    try {
      let res: HttpResponse;
      let transport: HttpTransport;
      try {
        // The headers first: an exec plugin's new client certificate replaces the pool.
        const headers = await this.#headers({});
        transport = await this.config.transport();
        res = await transport.send({ url, method: "GET", headers, signal: controller.signal });
      } catch (e) {
        if (controller.signal.aborted) {
          this.#count("watch", controller.signal.reason);
          throw controller.signal.reason;
        }
        this.#count("watch", "network");
        throw new KubeNetworkError(`GET ${url.origin}${request.path}: ${describeNetworkError(e)}`, {
          cause: e,
          request,
        });
      }
      this.#count("watch", res.status);
      if (res.status === 401) this.config.credentialsRejected();
      const raw = res.body ?? new Response("").body!;
      const header = res.header;
      if (res.status < 200 || res.status > 299) {
        const text = await bodyText({ body: raw }, controller.signal);
        throw errorFromResponse(res.status, text, header("retry-after"), request);
      }
      const type = header("content-type") ?? "";
      if (!type.startsWith("application/json")) {
        await raw.cancel();
        throw new WatchDecodeError(
          `Watch ${request.path} answered ${res.status} with "${type}" instead of a JSON stream`,
        );
      }
      arm();
      o.onOpen?.();
      // The signal ends a read waiting on Deno's fetch body (which does not
      // end by itself); undici's body keeps its wrapper, one stream layer
      // per chunk that Deno's fetch does without.
      const body = transport.kind === "native" ? raw : abortableBody(raw, controller.signal);
      const position: WatchPosition = { lines: 0, partial: 0 };
      try {
        yield* readWatchBatches<T>(body, position, {
          fields: o.fields,
          onChunk,
          signal: controller.signal,
        });
        if (controller.signal.aborted) throw controller.signal.reason;
      } catch (e) {
        if (controller.signal.aborted) throw controller.signal.reason;
        if (e instanceof KubeApiError || e instanceof WatchDecodeError) throw e;
        const where = position.partial > 0
          ? ` in the middle of line ${
            position.lines + 1
          } (${position.partial} characters of it received)`
          : ` after ${position.lines} lines`;
        throw new KubeNetworkError(
          `Watch ${request.path} broke${where}: ${describeNetworkError(e)}`,
          {
            cause: e,
            request,
          },
        );
      }
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      // Releases the connection if the consumer stopped early.
      controller.abort(new Error("Watch closed by its consumer"));
    }
  }

  /** Closes the connection pool. */
  async close(): Promise<void> {
    await this.config.close();
  }
}
