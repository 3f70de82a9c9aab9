/**
 * The fake Kubernetes API server: a real HTTP(S) server on 127.0.0.1 that
 * answers the way kube-apiserver does for everything kevents touches (see
 * the module docs of mod.ts for the list), with fault controls for tests.
 *
 * @module
 */

import YAML from "yaml";
import { Authenticator, type PolicyRule, type UserSpec } from "./auth.ts";
import { discovery, openApiV3 } from "./discovery.ts";
import { decodeKubernetesProtobuf, ProtobufError } from "./protobuf.ts";
import {
  type EventGenerator,
  type GeneratedChange,
  runEventGenerator,
  type RunEventGeneratorOptions,
} from "./event_generator.ts";
import {
  canonical,
  decodeObject,
  formatTime,
  itemJson,
  objectJson,
  validateUpdate,
  viewObject,
} from "./objects.ts";
import { jsonPatch, mergePatch, PATCH_TYPES } from "./patch.ts";
import { parseRequestInfo, type RequestInfo } from "./request_info.ts";
import { RequestLog } from "./request_log.ts";
import {
  apiVersionOf,
  findResourceType,
  qualifiedResource,
  RESOURCE_TYPES,
  type ResourceType,
} from "./resources.ts";
import {
  checkFieldSelector,
  fieldsOf,
  parseFieldSelector,
  parseLabelSelector,
  SelectorError,
} from "./selectors.ts";
import {
  alreadyExists,
  badRequest,
  conflict,
  expired,
  internalError,
  methodNotAllowed,
  notFound,
  pathNotFound,
  serviceUnavailable,
  StatusError,
  success,
  tooLargeResourceVersion,
  tooManyRequests,
  unsupportedMediaType,
} from "./status.ts";
import { CompactedError, type KubeObject, Store, type StoredRecord } from "./store.ts";
import { type IncludeObject, renderTable, wantsTable } from "./table.ts";
import { generateTlsMaterial, type TlsMaterial } from "./tls.ts";
import { type StreamFault, type StreamFaultKind, WatchStream } from "./watch.ts";

/** Options for {@linkcode startFakeApiServer}. Every field is optional. */
export interface FakeApiServerOptions {
  /** Serve HTTPS with a CA and certificate generated at start (default true). */
  tls?: boolean;
  /** Address to bind (default "127.0.0.1"). */
  hostname?: string;
  /** Port (default 0: any free port). */
  port?: number;
  /** Users by bearer token (default: one user "admin" with a random token and every permission). */
  users?: UserSpec[];
  /**
   * Requests without a token: false answers 401 (default); true treats them
   * as system:anonymous; "admin" as the admin user (as behind `kubectl proxy`).
   */
  anonymousAuth?: boolean | "admin";
  /** Changes kept in history before the oldest are compacted (default 100,000). */
  historyLimit?: number;
  /** First resourceVersion (default 1000). */
  initialRv?: number;
  /** Events expire this long after their last write (default 1 hour). */
  eventTtlMs?: number;
  /** How often expired events are deleted (default 1 s, or the TTL if shorter). */
  ttlSweepIntervalMs?: number;
  /** How often a watch that allows bookmarks gets one (default 60 s). */
  bookmarkIntervalMs?: number;
  /** Watch timeout when the client sets none: this to twice this, at random (default 1800 s). */
  defaultWatchTimeoutSeconds?: number;
  /**
   * Reproduce the real server's behaviour for resources without a watch
   * cache (events): a watch from a compacted resourceVersion is answered
   * with 200 and closed at once with no events, instead of a 410 ERROR
   * event, and event watches get no BOOKMARKs (default false).
   */
  eventsWatchQuirk?: boolean;
  /** Serve componentstatuses (default true; false answers 404 as newer clusters may). */
  serveComponentStatuses?: boolean;
  /** Clock in ms (default Date.now); drives timestamps and event TTL. */
  now?: () => number;
}

/** Which resource requests a fault applies to; every given field must match. */
export interface RequestRule {
  /** Only requests with one of these verbs (default: any resource request). */
  verbs?: string[];
  /** Only requests for one of these resources (plural name). */
  resources?: string[];
  /** Only requests from this identity. */
  identity?: string;
}

/** A rule for {@linkcode FakeApiServer.failNext}. */
export interface FailureRule extends RequestRule {
  /** HTTP code to answer: 500, 503 or 429 (default 503). */
  code?: 429 | 500 | 503;
  /** Retry-After seconds sent with 429 and 503 (default 1 for 429). */
  retryAfterSeconds?: number;
}

/** A request as it arrives ({@linkcode FakeApiServer.onRequest}). */
export interface ArrivedRequest {
  method: string;
  /** Path and query. */
  path: string;
  /** The authenticated user (system:unauthenticated without credentials). */
  identity: string;
}

/** Options for {@linkcode FakeApiServer.holdRequests}. */
export interface HoldOptions {
  /**
   * Carry out a held request even when its client went away meanwhile, as
   * an API server that had the whole request may: the body is read before
   * the hold, and the answer goes to nobody (default false: a client that
   * goes away abandons its request, which is never carried out).
   */
  completeWithoutClient?: boolean;
}

/** Requests held by {@linkcode FakeApiServer.holdRequests}. */
export interface RequestHold {
  /** Resolves with the identity of the first request held. */
  readonly arrived: Promise<string>;
  /** Requests held so far, released or abandoned ones included. */
  readonly count: number;
  /** Lets the held requests go on, and holds no more. */
  release(): void;
}

/**
 * Malformed data {@linkcode FakeApiServer.injectWatchFault} puts into a
 * watch: a line that is not JSON, a chunk cut in the middle of a line
 * followed by a broken connection, an event of type "WEIRD", an ADDED event
 * whose object has no metadata, or a 200 answer with an HTML page.
 */
export type WatchFault = StreamFaultKind | "html-200";

/** Which watches a {@linkcode FakeApiServer.injectWatchFault} fault may hit. */
export interface WatchFaultRule {
  /** Only watches of one of these resources (plural name; default any). */
  resources?: string[];
  /** Only watches of this identity (default any). */
  identity?: string;
}

interface ActiveHold {
  rule: RequestRule;
  options: HoldOptions;
  hold: RequestHold;
  wait: (identity: string, signal: AbortSignal | undefined) => Promise<void>;
}

function matches(rule: RequestRule, identity: string, info: RequestInfo): boolean {
  return (rule.verbs === undefined || rule.verbs.includes(info.verb)) &&
    (rule.resources === undefined || rule.resources.includes(info.resource)) &&
    (rule.identity === undefined || rule.identity === identity);
}

interface PendingWatchFault extends WatchFaultRule {
  kind: WatchFault;
  sent: (lastGoodRv: string | undefined) => void;
}

/** The page a "html-200" fault answers with, as an authenticating proxy might. */
export const HTML_PAGE =
  "<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body><form>Please sign in</form></body></html>\n";

/** Options for {@linkcode FakeApiServer.kubeconfig}. */
export interface KubeconfigOptions {
  /** User to authenticate as (default "admin"). */
  user?: string;
  /** Default namespace of the context (default "default"). */
  namespace?: string;
}

/** A running event generator. */
export interface RunningGenerator {
  /** Resolves with the number of changes applied once the generator has stopped. */
  readonly done: Promise<number>;
  /** Stops the generator; resolves with the number of changes applied. */
  stop(): Promise<number>;
}

interface PendingFailure extends FailureRule {
  remaining: number;
}

const ACCEPTED_BODIES = [
  "application/json",
  "application/yaml",
  "application/vnd.kubernetes.protobuf",
];

const HEALTH_CHECKS = ["ping", "log", "etcd", "etcd-readiness", "informer-sync", "shutdown"];

function randomToken(): string {
  return [...crypto.getRandomValues(new Uint8Array(24))]
    .map((b) => b.toString(16).padStart(2, "0")).join("");
}

function jsonResponse(body: string, code: number, headers: Record<string, string> = {}): Response {
  return new Response(body, {
    status: code,
    headers: {
      "content-type": "application/json",
      "cache-control": "no-cache, private",
      ...headers,
    },
  });
}

function statusResponse(e: StatusError): Response {
  return jsonResponse(JSON.stringify(e.status), e.status.code, e.headers);
}

function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const id = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(id);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

interface ContinueToken {
  v: string;
  rv: number;
  start: string;
}

function encodeContinue(rv: number, lastKey: string): string {
  const json = JSON.stringify({ v: "meta.k8s.io/v1", rv, start: `${lastKey}\u0000` });
  const bytes = new TextEncoder().encode(json);
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_")
    .replace(/=+$/, "");
}

function decodeContinue(token: string): ContinueToken {
  try {
    const b64 = token.replaceAll("-", "+").replaceAll("_", "/");
    const bin = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
    const parsed = JSON.parse(
      new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0))),
    ) as ContinueToken;
    if (parsed.v !== "meta.k8s.io/v1" || typeof parsed.rv !== "number") throw new Error("bad");
    if (typeof parsed.start !== "string") throw new Error("bad");
    return parsed;
  } catch {
    throw badRequest(`continue key is not valid: ${token}`);
  }
}

function parseRv(text: string): number {
  if (!/^\d+$/.test(text)) {
    throw badRequest(`Invalid value: "${text}": resourceVersion: invalid resource version`);
  }
  return Number(text);
}

/** A running fake API server. Create one with {@linkcode startFakeApiServer}. */
export class FakeApiServer {
  /** The objects, their history and resourceVersions. */
  readonly store: Store;
  /** Every request answered, by identity, verb and resource. */
  readonly requestLog = new RequestLog();
  /** PEM of the CA that signed the server certificate; undefined over plain HTTP. */
  readonly caCertPem: string | undefined;
  /** The token of the built-in "admin" user (every permission). */
  readonly adminToken: string;

  #o: FakeApiServerOptions;
  #tls: TlsMaterial | undefined;
  #auth: Authenticator;
  #http: Deno.HttpServer<Deno.NetAddr> | undefined;
  #port: number;
  #watches = new Set<WatchStream>();
  #failures: PendingFailure[] = [];
  #watchFaults: PendingWatchFault[] = [];
  #holds = new Set<ActiveHold>();
  #arrivals = new Set<(request: ArrivedRequest) => void>();
  #watchPieceBytes = 0;
  #latencyMs = 0;
  #stallAll = false;
  #partitioned = new Map<string, { waiters: Set<() => void> }>();
  #sweepTimer: ReturnType<typeof setInterval> | undefined;
  #now: () => number;
  #health = new Map<string, boolean>(HEALTH_CHECKS.map((c) => [c, true]));
  #generators = new Set<RunningGenerator>();
  #closed = false;

  constructor(options: FakeApiServerOptions, tls: TlsMaterial | undefined) {
    this.#o = options;
    this.#tls = tls;
    this.caCertPem = tls?.caCertPem;
    this.#now = options.now ?? Date.now;
    this.#port = options.port ?? 0;
    this.store = new Store({
      historyLimit: options.historyLimit,
      initialRv: options.initialRv,
      now: this.#now,
    });
    const users = options.users ?? [];
    const admin = users.find((u) => u.name === "admin");
    this.adminToken = admin?.token ?? randomToken();
    this.#auth = new Authenticator(
      admin === undefined ? [...users, { name: "admin", token: this.adminToken }] : users,
      { anonymousAuth: options.anonymousAuth },
    );
    const ttl = options.eventTtlMs ?? 3_600_000;
    this.store.setTtl("/events", ttl);
    this.#seed();
  }

  /** Base URL, e.g. "https://127.0.0.1:43125". */
  get url(): string {
    const scheme = this.#tls === undefined ? "http" : "https";
    return `${scheme}://${this.#o.hostname ?? "127.0.0.1"}:${this.#port}`;
  }

  /** The port the server listens on. */
  get port(): number {
    return this.#port;
  }

  /** Open watch connections now. */
  get watchCount(): number {
    return this.#watches.size;
  }

  /** Identities of the open watch connections, one entry per watch. */
  watchIdentities(): string[] {
    return [...this.#watches].map((w) => w.identity);
  }

  /** Starts listening (again, after {@linkcode stop}) on the same port. */
  async start(): Promise<void> {
    if (this.#http !== undefined) return;
    const listening = Promise.withResolvers<Deno.NetAddr>();
    const base = {
      hostname: this.#o.hostname ?? "127.0.0.1",
      port: this.#port,
      onListen: (addr: Deno.NetAddr) => listening.resolve(addr),
      onError: (e: unknown) => {
        const err = e instanceof StatusError ? e : internalError(String(e));
        return statusResponse(err);
      },
    };
    const handler = (req: Request) => this.#handle(req);
    this.#http = this.#tls === undefined
      ? Deno.serve(base, handler)
      : Deno.serve({ ...base, cert: this.#tls.certPem, key: this.#tls.keyPem }, handler);
    this.#port = (await listening.promise).port;
    if (this.#sweepTimer === undefined) {
      const ttl = this.#o.eventTtlMs ?? 3_600_000;
      const every = this.#o.ttlSweepIntervalMs ?? Math.min(1000, ttl);
      this.#sweepTimer = setInterval(() => this.store.sweepExpired(), every);
    }
  }

  /**
   * Stops listening and breaks every connection, keeping all state, as an
   * API server process that goes down would.
   */
  async stop(): Promise<void> {
    const http = this.#http;
    if (http === undefined) return;
    this.#http = undefined;
    for (const w of [...this.#watches]) w.abort();
    for (const p of this.#partitioned.values()) for (const wake of p.waiters) wake();
    await http.shutdown();
  }

  /** Stops and starts again on the same port, keeping state. */
  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  /** Stops everything: generators, timers, connections. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([...this.#generators].map((g) => g.stop()));
    clearInterval(this.#sweepTimer);
    this.#sweepTimer = undefined;
    this.#partitioned.clear();
    await this.stop();
  }

  /** Closes the server (for `await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ---- users and kubeconfigs ----

  /** Adds a user; returns its token. Rules undefined grants everything. */
  addUser(name: string, rules?: PolicyRule[]): string {
    const token = randomToken();
    this.#auth.set({ name, token, rules });
    return token;
  }

  /** Replaces what a user may do (undefined: everything). */
  setRules(name: string, rules: PolicyRule[] | undefined): void {
    const user = this.#auth.user(name);
    if (user === undefined) throw new Error(`Cannot set rules: unknown user ${name}`);
    this.#auth.set({ ...user, rules });
  }

  /** A kubeconfig (YAML) that reaches this server as the given user. */
  kubeconfig(options: KubeconfigOptions = {}): string {
    const userName = options.user ?? "admin";
    const user = this.#auth.user(userName);
    if (user === undefined) throw new Error(`Cannot write kubeconfig: unknown user ${userName}`);
    const cluster: Record<string, string> = { server: this.url };
    if (this.caCertPem !== undefined) {
      cluster["certificate-authority-data"] = btoa(this.caCertPem);
    }
    return YAML.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "kevents-fake", cluster }],
      // No credentials in a kubeconfig for an http:// server: kubectl and
      // kevents send none over plain HTTP (run it with anonymousAuth "admin").
      users: [{ name: userName, user: this.url.startsWith("http:") ? {} : { token: user.token } }],
      contexts: [{
        name: "kevents-fake",
        context: {
          cluster: "kevents-fake",
          user: userName,
          namespace: options.namespace ?? "default",
        },
      }],
      "current-context": "kevents-fake",
    });
  }

  // ---- faults ----

  /** Answers the next `count` matching requests with an error. */
  failNext(count: number, rule: FailureRule = {}): void {
    this.#failures.push({ ...rule, remaining: count });
  }

  /** Adds this much latency to every request (0 removes it). */
  setLatency(ms: number): void {
    this.#latencyMs = ms;
  }

  /**
   * Holds every resource request matching `rule` just before it is carried
   * out, until released (a write "in flight" for as long as a test needs).
   * A held request whose client goes away is abandoned (logged with code
   * 499), unless `completeWithoutClient` is set.
   */
  holdRequests(rule: RequestRule, options: HoldOptions = {}): RequestHold {
    const arrived = Promise.withResolvers<string>();
    const released = Promise.withResolvers<void>();
    let count = 0;
    let open = true;
    const hold: RequestHold = {
      arrived: arrived.promise,
      get count() {
        return count;
      },
      release: () => {
        open = false;
        this.#holds.delete(active);
        released.resolve();
      },
    };
    const active: ActiveHold = {
      rule,
      options,
      hold,
      wait: (identity, signal) => {
        if (!open) return Promise.resolve();
        count++;
        arrived.resolve(identity);
        if (signal === undefined) return released.promise;
        return new Promise<void>((resolve, reject) => {
          if (signal.aborted) return reject(signal.reason);
          const onAbort = () => reject(signal.reason);
          signal.addEventListener("abort", onAbort, { once: true });
          released.promise.then(() => {
            signal.removeEventListener("abort", onAbort);
            resolve();
          });
        });
      },
    };
    this.#holds.add(active);
    return hold;
  }

  /** Breaks every open watch connection (abruptly by default, or with a clean end). */
  dropWatches(options: { abrupt?: boolean; identity?: string } = {}): number {
    let n = 0;
    for (const w of [...this.#watches]) {
      if (options.identity !== undefined && w.identity !== options.identity) continue;
      if (options.abrupt === false) w.close();
      else w.abort();
      n++;
    }
    return n;
  }

  /**
   * Makes one watch send malformed data, once; resolves when it has been
   * sent, with the resourceVersion of the last complete event line the
   * watch sent before it (where a client should resume; undefined for
   * "html-200", or when the watch had sent none). "html-200" answers the next matching watch request with 200, a
   * `text/html` content type and {@linkcode HTML_PAGE}. The other kinds go
   * into the next chunk with events of a matching watch, open now or opened
   * later: the bad line right after the chunk's first line (the lines after
   * it are sent too), or for "truncated-chunk" the first line and half of
   * the next (half of the only one), then the connection is broken.
   * Faults are taken in the order they were injected.
   */
  injectWatchFault(kind: WatchFault, rule: WatchFaultRule = {}): Promise<string | undefined> {
    const sent = Promise.withResolvers<string | undefined>();
    this.#watchFaults.push({ ...rule, kind, sent: sent.resolve });
    return sent.promise;
  }

  /**
   * Sends watch bodies in pieces of at most `bytes` bytes, cutting through
   * lines and UTF-8 characters alike; 0 sends whole chunks again.
   */
  splitWatchBodies(bytes: number): void {
    this.#watchPieceBytes = bytes;
  }

  /**
   * Takes the first pending watch fault for this watch if it is of a kind
   * `accept` takes (a later one waits for it: faults go in order).
   */
  #takeWatchFault<K extends WatchFault>(
    t: ResourceType,
    identity: string,
    accept: (kind: WatchFault) => kind is K,
  ): { kind: K; sent: (lastGoodRv: string | undefined) => void } | undefined {
    const idx = this.#watchFaults.findIndex((f) =>
      (f.resources === undefined || f.resources.includes(t.resource)) &&
      (f.identity === undefined || f.identity === identity)
    );
    const f = this.#watchFaults[idx];
    if (f === undefined) return undefined;
    const kind = f.kind;
    if (!accept(kind)) return undefined;
    this.#watchFaults.splice(idx, 1);
    return { kind, sent: f.sent };
  }

  /** Stalls every watch: connections stay open but no byte is sent until resumed. */
  stallWatches(stalled = true): void {
    this.#stallAll = stalled;
    for (const w of this.#watches) w.poke();
  }

  /** Drops all change history now: older resourceVersions get 410 Expired. */
  compactNow(): void {
    this.store.compact();
  }

  /**
   * Partitions an identity from the server: its requests hang (until healed
   * or abandoned by the client) and its watches stall.
   */
  partition(identity: string): void {
    if (!this.#partitioned.has(identity)) this.#partitioned.set(identity, { waiters: new Set() });
  }

  /** Ends a partition: held requests proceed, watches resume. */
  heal(identity: string): void {
    const p = this.#partitioned.get(identity);
    this.#partitioned.delete(identity);
    if (p !== undefined) { for (const wake of p.waiters) wake(); }
    for (const w of this.#watches) w.poke();
  }

  /** Sets the health of a /readyz check (e.g. "etcd"). */
  setHealthCheck(name: string, ok: boolean): void {
    this.#health.set(name, ok);
  }

  /** Sets a component's status: true Healthy, false Unhealthy, "Unknown" unknown. */
  setComponentStatus(name: string, healthy: boolean | "Unknown", message = ""): void {
    const status = healthy === "Unknown" ? "Unknown" : healthy ? "True" : "False";
    this.#putDirect(this.#type("", "componentstatuses"), "", {
      metadata: { name },
      conditions: [{
        type: "Healthy",
        status,
        message: message || (healthy === true ? "ok" : ""),
        ...(healthy === false ? { error: message || "unhealthy" } : {}),
      }],
    });
  }

  // ---- objects, bypassing HTTP (seeding, generator) ----

  /** Creates an object as a client would, without going through HTTP. */
  create(resource: string, namespace: string, body: Record<string, unknown>): KubeObject {
    const t = this.#typeByName(resource);
    return this.#create(t, namespace, body, false).object;
  }

  /** Gets an object's current state, or undefined. */
  get(resource: string, namespace: string, name: string): KubeObject | undefined {
    const t = this.#typeByName(resource);
    return this.store.get(t.storage, t.namespaced ? namespace : "", name)?.object;
  }

  /** Applies one generated change (create an event, or repeat one). */
  applyGenerated(change: GeneratedChange): void {
    const t = this.#type("", "events");
    if (change.op === "create") {
      const ns = change.event.metadata.namespace;
      if (this.store.get("/namespaces", "", ns) === undefined) {
        this.#putDirect(this.#type("", "namespaces"), "", {
          metadata: { name: ns },
          spec: { finalizers: ["kubernetes"] },
          status: { phase: "Active" },
        });
      }
      this.#create(t, ns, change.event, false);
      return;
    }
    const current = this.store.get(t.storage, change.namespace, change.name);
    if (current === undefined) return; // Expired by TTL meanwhile: nothing to repeat.
    const obj = current.object as KubeObject & { count?: number };
    this.store.put(t.storage, change.namespace, {
      ...obj,
      count: (obj.count ?? 1) + 1,
      lastTimestamp: change.lastTimestamp,
    });
  }

  /** Runs an event generator against this server until stopped. */
  startEventGenerator(
    generator: EventGenerator,
    options: Omit<RunEventGeneratorOptions, "signal">,
  ): RunningGenerator {
    const controller = new AbortController();
    const done = runEventGenerator(generator, (c) => this.applyGenerated(c), {
      ...options,
      signal: controller.signal,
    });
    const running: RunningGenerator = {
      done,
      stop: async () => {
        controller.abort();
        try {
          return await done;
        } finally {
          this.#generators.delete(running);
        }
      },
    };
    this.#generators.add(running);
    done.finally(() => this.#generators.delete(running));
    return running;
  }

  // ---- request handling ----

  /**
   * Calls `listener` synchronously as each request arrives, before it is
   * authorized, delayed, held or carried out (the moment a client's request
   * is "on the wire"), until disposed.
   */
  onRequest(listener: (request: ArrivedRequest) => void): Disposable {
    this.#arrivals.add(listener);
    return { [Symbol.dispose]: () => this.#arrivals.delete(listener) };
  }

  async #handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const info = parseRequestInfo(req.method, url);
    let identity = "system:unauthenticated";
    let code = 500;
    try {
      const user = this.#auth.authenticate(req.headers.get("authorization"));
      identity = user.name;
      for (const listener of [...this.#arrivals]) {
        listener({ method: req.method, path: url.pathname + url.search, identity });
      }
      await this.#gate(identity, req.signal);
      if (this.#latencyMs > 0) await delay(this.#latencyMs, req.signal);
      this.#injectFailure(identity, info);
      this.#auth.authorize(user, info);
      const hold = info.isResourceRequest
        ? [...this.#holds].find((h) => matches(h.rule, identity, info))
        : undefined;
      if (hold !== undefined) {
        if (hold.options.completeWithoutClient === true) {
          // The whole request first: then it no longer depends on its client.
          const body = req.body === null ? undefined : await req.arrayBuffer();
          req = new Request(req.url, { method: req.method, headers: req.headers, body });
          await hold.wait(identity, undefined);
        } else {
          await hold.wait(identity, req.signal);
        }
      }
      const res = await this.#route(req, url, info, identity);
      code = res.status;
      return res;
    } catch (e) {
      if (e instanceof StatusError) {
        code = e.status.code;
        return statusResponse(e);
      }
      if (req.signal.aborted) {
        code = 499; // Client went away (timeout, partition): nothing to answer.
        return new Response(null, { status: 499 });
      }
      const err = internalError(e instanceof Error ? e.message : String(e));
      return statusResponse(err);
    } finally {
      this.requestLog.add({
        at: Date.now(),
        identity,
        verb: info.verb,
        resource: info.isResourceRequest
          ? qualifiedResource({ group: info.group, resource: info.resource })
          : info.path,
        namespace: info.namespace,
        name: info.name,
        code,
      });
    }
  }

  /** Holds a partitioned identity's request until healed or abandoned. */
  async #gate(identity: string, signal: AbortSignal): Promise<void> {
    while (this.#partitioned.has(identity) && this.#http !== undefined) {
      const p = this.#partitioned.get(identity)!;
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => {
          p.waiters.delete(wake);
          reject(signal.reason);
        };
        const wake = () => {
          p.waiters.delete(wake);
          signal.removeEventListener("abort", onAbort);
          resolve();
        };
        if (signal.aborted) return reject(signal.reason);
        p.waiters.add(wake);
        signal.addEventListener("abort", onAbort, { once: true });
      });
    }
  }

  #injectFailure(identity: string, info: RequestInfo): void {
    if (!info.isResourceRequest) return;
    const idx = this.#failures.findIndex((f) => f.remaining > 0 && matches(f, identity, info));
    if (idx < 0) return;
    const f = this.#failures[idx]!;
    if (--f.remaining === 0) this.#failures.splice(idx, 1);
    const code = f.code ?? 503;
    if (code === 429) throw tooManyRequests(f.retryAfterSeconds ?? 1);
    if (code === 500) throw internalError("injected fault");
    throw serviceUnavailable(
      "The server is currently unable to handle the request (injected fault)",
      f.retryAfterSeconds,
    );
  }

  async #route(req: Request, url: URL, info: RequestInfo, identity: string): Promise<Response> {
    if (!info.isResourceRequest) return await this.#nonResource(url);
    const t = findResourceType(info.group, info.version, info.resource);
    if (t === undefined || info.subresource !== "") throw pathNotFound();
    if (t.resource === "componentstatuses" && this.#o.serveComponentStatuses === false) {
      throw pathNotFound();
    }
    if (!t.namespaced && info.namespace !== "" && t.resource !== "namespaces") throw pathNotFound();
    if (!t.verbs.includes(info.verb)) throw methodNotAllowed();
    const ns = t.namespaced ? info.namespace : "";
    const needsNamespace = ["get", "create", "update", "patch", "delete"].includes(info.verb);
    if (t.namespaced && ns === "" && needsNamespace) throw pathNotFound();
    const p = url.searchParams;
    const res = await this.#dispatch(t, ns, info, p, req, identity);
    if (t.resource === "componentstatuses") {
      res.headers.set("warning", '299 - "v1 ComponentStatus is deprecated in v1.19+"');
    }
    return res;
  }

  async #dispatch(
    t: ResourceType,
    ns: string,
    info: RequestInfo,
    p: URLSearchParams,
    req: Request,
    identity: string,
  ): Promise<Response> {
    switch (info.verb) {
      case "get":
        return this.#get(t, ns, info.name, req);
      case "list":
        return this.#list(t, info.namespace === "" ? undefined : ns, p, req);
      case "watch":
        return this.#watch(t, info.namespace === "" ? undefined : ns, p, req, identity);
      case "create":
        return this.#respondObject(
          t,
          this.#create(t, ns, await this.#body(req, t), p.has("dryRun")),
          201,
          req,
        );
      case "update":
        return this.#update(t, ns, info.name, await this.#body(req, t), req, p.has("dryRun"));
      case "patch":
        return await this.#patch(t, ns, info.name, req, p.has("dryRun"));
      case "delete":
        return await this.#delete(t, ns, info.name, req);
      case "deletecollection":
        return this.#deleteCollection(t, info.namespace === "" ? undefined : ns, p);
    }
    throw methodNotAllowed();
  }

  async #nonResource(url: URL): Promise<Response> {
    const p = url.pathname.replace(/\/$/, "");
    const check = /^\/(healthz|livez|readyz)$/.exec(p);
    if (check !== null) {
      const failed = [...this.#health].filter(([, ok]) => !ok).map(([n]) => n);
      const verbose = url.searchParams.has("verbose");
      const lines = [...this.#health].map(([name, ok]) =>
        ok ? `[+]${name} ok` : `[-]${name} failed: reason withheld`
      );
      const text = failed.length === 0
        ? (verbose ? `${lines.join("\n")}\n${check[1]} check passed\n` : "ok")
        : `${lines.join("\n")}\n${check[1]} check failed\n`;
      return new Response(text, {
        status: failed.length === 0 ? 200 : 500,
        headers: {
          "content-type": "text/plain; charset=utf-8",
          "x-content-type-options": "nosniff",
        },
      });
    }
    const doc = p.startsWith("/openapi/v3")
      ? openApiV3(p)
      : await discovery(p, `${this.#o.hostname ?? "127.0.0.1"}:${this.#port}`);
    if (doc === undefined) throw pathNotFound();
    return jsonResponse(JSON.stringify(doc), 200);
  }

  async #body(req: Request, t: ResourceType): Promise<unknown> {
    const type = (req.headers.get("content-type") ?? "application/json").split(";")[0]!.trim();
    if (type === "application/vnd.kubernetes.protobuf") {
      try {
        return decodeKubernetesProtobuf(new Uint8Array(await req.arrayBuffer()));
      } catch (e) {
        if (e instanceof ProtobufError) throw unsupportedMediaType(type, ACCEPTED_BODIES);
        throw e;
      }
    }
    const text = await req.text();
    if (type === "application/json" || type === "") {
      try {
        return JSON.parse(text);
      } catch (e) {
        throw badRequest(
          `${t.kind} in version "${t.version}" cannot be handled as a ${t.kind}: ${
            e instanceof Error ? e.message : e
          }`,
        );
      }
    }
    if (type === "application/yaml") {
      try {
        return YAML.parse(text);
      } catch (e) {
        throw badRequest(`error converting YAML to JSON: ${e instanceof Error ? e.message : e}`);
      }
    }
    throw unsupportedMediaType(type, ACCEPTED_BODIES);
  }

  #respondObject(t: ResourceType, record: StoredRecord, code: number, req: Request): Response {
    if (wantsTable(req.headers.get("accept"))) {
      const table = renderTable(t, [record], {
        includeObject: "Metadata",
        resourceVersion: String(record.rv),
        now: this.#now(),
      });
      return jsonResponse(JSON.stringify(table), code);
    }
    return jsonResponse(objectJson(t, record), code);
  }

  #get(t: ResourceType, ns: string, name: string, req: Request): Response {
    const record = this.store.get(t.storage, ns, name);
    if (record === undefined) throw notFound(t, name);
    return this.#respondObject(t, record, 200, req);
  }

  /** Builds the matcher for fieldSelector and labelSelector; undefined when both are empty. */
  #matcher(t: ResourceType, p: URLSearchParams): ((r: StoredRecord) => boolean) | undefined {
    const resource = t.group === "" ? t.resource : `${t.resource}.${t.group}`;
    try {
      const fields = parseFieldSelector(p.get("fieldSelector") ?? "");
      checkFieldSelector(resource, fields);
      const labels = parseLabelSelector(p.get("labelSelector") ?? "");
      if (fields.isEmpty() && labels.isEmpty()) return undefined;
      return (r) =>
        (fields.isEmpty() || fields.matches(fieldsOf(resource, r.object))) &&
        (labels.isEmpty() || labels.matches(r.object.metadata.labels ?? {}));
    } catch (e) {
      if (e instanceof SelectorError) throw badRequest(e.message);
      throw e;
    }
  }

  #list(t: ResourceType, ns: string | undefined, p: URLSearchParams, req: Request): Response {
    const match = this.#matcher(t, p);
    const rvParam = p.get("resourceVersion") ?? "";
    const rvMatch = p.get("resourceVersionMatch") ?? "";
    let limit = Number(p.get("limit") ?? "0");
    if (!Number.isInteger(limit) || limit < 0) limit = 0;
    const token = p.get("continue") ?? "";
    let snapshotRv = this.store.currentRv;
    let startAfter: string | undefined;
    if (token !== "") {
      if (rvParam !== "" && rvParam !== "0") {
        throw badRequest("specifying resource version is not allowed when using continue");
      }
      const c = decodeContinue(token);
      startAfter = c.start.endsWith("\u0000") ? c.start.slice(0, -1) : c.start;
      if (c.rv >= 0) {
        if (c.rv < this.store.compactedRv) {
          const e = expired(
            "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
          );
          e.status.metadata.continue = encodeContinue(-1, startAfter);
          throw e;
        }
        snapshotRv = c.rv;
      }
    } else if (rvParam === "0") {
      // "Any" resourceVersion: served from the watch cache where there is
      // one, which ignores limit; events have none and page from storage.
      if (t.watchCache) limit = 0;
    } else if (rvParam !== "") {
      const rv = parseRv(rvParam);
      if (rv > this.store.currentRv) throw tooLargeResourceVersion(rv, this.store.currentRv);
      const exact = rvMatch === "Exact" || (rvMatch === "" && limit > 0);
      if (exact) {
        if (rv < this.store.compactedRv) {
          throw expired("The resourceVersion for the provided list is too old.");
        }
        snapshotRv = rv;
      }
    }
    let page;
    try {
      page = this.store.list(t.storage, {
        namespace: ns,
        snapshotRv,
        startAfter,
        limit: limit > 0 ? limit : undefined,
        match,
      });
    } catch (e) {
      if (e instanceof CompactedError) {
        throw expired("The resourceVersion for the provided list is too old.");
      }
      throw e;
    }
    const continueToken = page.continueAfter === undefined
      ? undefined
      : encodeContinue(page.snapshotRv, page.continueAfter);
    const remaining = continueToken !== undefined && match === undefined
      ? page.remaining
      : undefined;
    if (wantsTable(req.headers.get("accept"))) {
      const table = renderTable(t, page.records, {
        includeObject: (p.get("includeObject") ?? "Metadata") as IncludeObject,
        resourceVersion: String(page.snapshotRv),
        continueToken,
        remaining,
        now: this.#now(),
      });
      return jsonResponse(JSON.stringify(table), 200);
    }
    const meta: Record<string, unknown> = { resourceVersion: String(page.snapshotRv) };
    if (continueToken !== undefined) meta.continue = continueToken;
    if (remaining !== undefined) meta.remainingItemCount = remaining;
    const items = page.records.map((r) => itemJson(t, r)).join(",");
    const body = `{"kind":"${t.kind}List","apiVersion":"${apiVersionOf(t)}","metadata":${
      JSON.stringify(meta)
    },"items":[${items}]}`;
    return jsonResponse(body, 200);
  }

  #watch(
    t: ResourceType,
    ns: string | undefined,
    p: URLSearchParams,
    req: Request,
    identity: string,
  ): Response {
    if (p.has("continue")) throw badRequest("a watch request cannot carry a continue token");
    const html = this.#takeWatchFault(t, identity, (k): k is "html-200" => k === "html-200");
    if (html !== undefined) {
      html.sent(undefined);
      return new Response(HTML_PAGE, {
        status: 200,
        headers: { "content-type": "text/html; charset=utf-8" },
      });
    }
    const match = this.#matcher(t, p) ?? (() => true);
    const rvParam = p.get("resourceVersion") ?? "";
    let fromRv = this.store.currentRv;
    let initial: StoredRecord[] = [];
    if (rvParam === "" || rvParam === "0") {
      // Without a resourceVersion a watch first sends the current state as ADDED.
      initial = this.store.list(t.storage, { namespace: ns, match }).records;
    } else {
      fromRv = parseRv(rvParam);
    }
    const timeoutParam = p.get("timeoutSeconds");
    const defaultTimeout = this.#o.defaultWatchTimeoutSeconds ?? 1800;
    const timeoutMs = timeoutParam !== null && Number(timeoutParam) > 0
      ? Number(timeoutParam) * 1000
      : defaultTimeout * 1000 * (1 + Math.random());
    const bookmarksParam = p.get("allowWatchBookmarks");
    const table = wantsTable(req.headers.get("accept"));
    const includeObject = (p.get("includeObject") ?? "Metadata") as IncludeObject;
    const stream: WatchStream = new WatchStream({
      store: this.store,
      type: t,
      identity,
      namespace: ns,
      match,
      fromRv,
      initial,
      // Bookmarks come from the watch cache: with the events quirk on (events
      // modelled without a watch cache, as on kube-apiserver) they send none.
      bookmarks: (bookmarksParam === "true" || bookmarksParam === "1") &&
        !(this.#o.eventsWatchQuirk === true && !t.watchCache),
      bookmarkIntervalMs: this.#o.bookmarkIntervalMs ?? 60_000,
      timeoutMs,
      closeSilentlyWhenExpired: this.#o.eventsWatchQuirk === true && !t.watchCache,
      render: table
        ? (type, record, first) =>
          JSON.stringify(renderTable(type, [record], {
            includeObject,
            noHeaders: !first,
            now: this.#now(),
          }))
        : undefined,
      stalled: () => this.#stallAll || this.#partitioned.has(identity),
      onClose: () => this.#watches.delete(stream),
      takeFault: (): StreamFault | undefined =>
        this.#takeWatchFault(t, identity, (k): k is StreamFaultKind => k !== "html-200"),
      pieceBytes: () => this.#watchPieceBytes,
    });
    this.#watches.add(stream);
    const contentType = table ? "application/json;as=Table;v=v1;g=meta.k8s.io" : "application/json";
    return new Response(stream.body, {
      status: 200,
      headers: { "content-type": contentType, "cache-control": "no-cache, private" },
    });
  }

  #create(
    t: ResourceType,
    ns: string,
    body: unknown,
    dryRun: boolean,
  ): StoredRecord {
    const obj = decodeObject(t, body, { namespace: ns });
    if (t.namespaced && this.store.get("/namespaces", "", ns) === undefined) {
      throw notFound({ group: "", resource: "namespaces" }, ns);
    }
    if (obj.metadata.resourceVersion !== undefined && obj.metadata.resourceVersion !== "") {
      throw internalError("resourceVersion should not be set on objects to be created");
    }
    if (this.store.get(t.storage, ns, obj.metadata.name) !== undefined) {
      throw alreadyExists(t, obj.metadata.name);
    }
    const stamped = canonical({
      ...obj,
      metadata: {
        ...obj.metadata,
        uid: crypto.randomUUID(),
        // Placeholder so the canonical key order holds once the store stamps it.
        resourceVersion: "",
        creationTimestamp: formatTime(new Date(this.#now())),
      },
    });
    if (dryRun) {
      return {
        storage: t.storage,
        key: "",
        namespace: ns,
        name: obj.metadata.name,
        rv: 0,
        object: stamped,
      };
    }
    return this.store.put(t.storage, ns, stamped).record;
  }

  /** Writes a decoded object over an existing one, with optimistic concurrency. */
  #replace(
    t: ResourceType,
    ns: string,
    existing: StoredRecord,
    obj: KubeObject,
    dryRun: boolean,
  ): StoredRecord {
    const name = existing.name;
    const rv = obj.metadata.resourceVersion;
    if (rv !== undefined && rv !== "" && rv !== String(existing.rv)) throw conflict(t, name);
    validateUpdate(t, existing.object, obj);
    const uid = obj.metadata.uid;
    const oldUid = existing.object.metadata.uid;
    if (uid !== undefined && uid !== "" && uid !== oldUid) {
      throw conflict(
        t,
        name,
        `Precondition failed: UID in precondition: ${oldUid}, UID in object meta: ${uid}`,
      );
    }
    const next = canonical({
      ...obj,
      metadata: {
        ...obj.metadata,
        uid: oldUid,
        resourceVersion: String(existing.rv),
        creationTimestamp: existing.object.metadata.creationTimestamp,
      },
    });
    // An update that changes nothing is not a write: no new resourceVersion, no watch event.
    if (JSON.stringify(next) === JSON.stringify(existing.object)) return existing;
    if (dryRun) return { ...existing, object: next, json: undefined };
    return this.store.put(t.storage, ns, next).record;
  }

  #update(
    t: ResourceType,
    ns: string,
    name: string,
    body: unknown,
    req: Request,
    dryRun: boolean,
  ): Response {
    const obj = decodeObject(t, body, { namespace: ns, name });
    const existing = this.store.get(t.storage, ns, name);
    if (existing === undefined) {
      if (!t.allowCreateOnUpdate) throw notFound(t, name);
      const { resourceVersion: _rv, ...meta } = obj.metadata;
      return this.#respondObject(
        t,
        this.#create(t, ns, { ...obj, metadata: meta }, dryRun),
        201,
        req,
      );
    }
    return this.#respondObject(t, this.#replace(t, ns, existing, obj, dryRun), 200, req);
  }

  async #patch(
    t: ResourceType,
    ns: string,
    name: string,
    req: Request,
    dryRun: boolean,
  ): Promise<Response> {
    const type = (req.headers.get("content-type") ?? "").split(";")[0]!.trim();
    if (!(PATCH_TYPES as readonly string[]).includes(type)) {
      throw unsupportedMediaType(type, [...PATCH_TYPES]);
    }
    const text = await req.text();
    let patch: unknown;
    try {
      patch = JSON.parse(text);
    } catch (e) {
      throw badRequest(`error decoding patch: ${e instanceof Error ? e.message : e}`);
    }
    const existing = this.store.get(t.storage, ns, name);
    if (existing === undefined) throw notFound(t, name);
    const current = JSON.parse(objectJson(t, existing)) as Record<string, unknown>;
    const patched = type === "application/json-patch+json"
      ? jsonPatch(current, patch)
      : mergePatch(current, patch);
    const obj = decodeObject(t, patched, { namespace: ns, name });
    return this.#respondObject(t, this.#replace(t, ns, existing, obj, dryRun), 200, req);
  }

  async #delete(t: ResourceType, ns: string, name: string, req: Request): Promise<Response> {
    const existing = this.store.get(t.storage, ns, name);
    if (existing === undefined) throw notFound(t, name);
    const text = await req.text();
    if (text.trim() !== "") {
      let options: { preconditions?: { resourceVersion?: string; uid?: string } };
      try {
        options = JSON.parse(text);
      } catch (e) {
        throw badRequest(`error decoding DeleteOptions: ${e instanceof Error ? e.message : e}`);
      }
      // The real server checks delete preconditions before storage (rest.BeforeDelete),
      // UID first, and names the kind, not the resource, in its message.
      const pre = options.preconditions ?? {};
      const byKind = { group: t.group, resource: t.kind };
      const uid = existing.object.metadata.uid;
      if (pre.uid !== undefined && pre.uid !== uid) {
        throw conflict(
          byKind,
          name,
          `the UID in the precondition (${pre.uid}) does not match the UID in record (${uid}). The object might have been deleted and then recreated`,
        );
      }
      if (pre.resourceVersion !== undefined && pre.resourceVersion !== String(existing.rv)) {
        throw conflict(
          byKind,
          name,
          `the ResourceVersion in the precondition (${pre.resourceVersion}) does not match the ResourceVersion in record (${existing.rv}). The object might have been modified`,
        );
      }
    }
    if (t.resource === "namespaces") {
      // Namespace deletion removes what the namespace holds (at once, not via a Terminating phase).
      for (const type of RESOURCE_TYPES) {
        if (!type.namespaced || type.storage !== `${type.group}/${type.resource}`) continue;
        for (const r of this.store.list(type.storage, { namespace: name }).records) {
          this.store.delete(type.storage, r.namespace, r.name);
        }
      }
    }
    this.store.delete(t.storage, ns, name);
    return jsonResponse(JSON.stringify(success(t, name, existing.object.metadata.uid ?? "")), 200);
  }

  #deleteCollection(t: ResourceType, ns: string | undefined, p: URLSearchParams): Response {
    const match = this.#matcher(t, p);
    const page = this.store.list(t.storage, { namespace: ns, match });
    const deleted = page.records.map((r) => this.store.delete(t.storage, r.namespace, r.name)!);
    const items = deleted.map((c) => itemJson(t, c.record)).join(",");
    return jsonResponse(
      `{"kind":"${t.kind}List","apiVersion":"${
        apiVersionOf(t)
      }","metadata":{"resourceVersion":"${this.store.currentRv}"},"items":[${items}]}`,
      200,
    );
  }

  // ---- helpers ----

  #type(group: string, resource: string): ResourceType {
    const t = RESOURCE_TYPES.find((x) => x.group === group && x.resource === resource);
    if (t === undefined) throw new Error(`Unknown resource ${resource}.${group}`);
    return t;
  }

  /** "configmaps", "leases.coordination.k8s.io", "events.events.k8s.io". */
  #typeByName(name: string): ResourceType {
    const dot = name.indexOf(".");
    return dot < 0 ? this.#type("", name) : this.#type(name.slice(dot + 1), name.slice(0, dot));
  }

  /** Stores an object with server-side fields, skipping validation (seeding, component statuses). */
  #putDirect(
    t: ResourceType,
    ns: string,
    obj: Record<string, unknown> & { metadata: Record<string, unknown> & { name: string } },
  ): void {
    const existing = this.store.get(t.storage, ns, obj.metadata.name);
    this.store.put(
      t.storage,
      ns,
      canonical({
        ...obj,
        metadata: {
          ...obj.metadata,
          ...(t.namespaced ? { namespace: ns } : {}),
          uid: existing?.object.metadata.uid ?? crypto.randomUUID(),
          resourceVersion: "",
          creationTimestamp: existing?.object.metadata.creationTimestamp ??
            formatTime(new Date(this.#now())),
        },
      }),
    );
  }

  #seed(): void {
    const nsType = this.#type("", "namespaces");
    for (const name of ["default", "kube-system", "kube-public", "kube-node-lease"]) {
      this.#putDirect(nsType, "", {
        metadata: { name, labels: { "kubernetes.io/metadata.name": name } },
        spec: { finalizers: ["kubernetes"] },
        status: { phase: "Active" },
      });
    }
    const sa = this.#type("", "serviceaccounts");
    for (const ns of ["default", "kube-system", "kube-public", "kube-node-lease"]) {
      this.#putDirect(sa, ns, { metadata: { name: "default" } });
    }
    this.setComponentStatus("scheduler", true);
    this.setComponentStatus("controller-manager", true);
    this.setComponentStatus("etcd-0", true, '{"health":"true","reason":""}');
  }

  /** The view of a record for a given type, for tests that inspect objects. */
  static view(t: ResourceType, record: StoredRecord): Record<string, unknown> {
    return viewObject(t, record);
  }
}

/** Starts a fake API server (HTTPS on 127.0.0.1 with a fresh CA by default). */
export async function startFakeApiServer(
  options: FakeApiServerOptions = {},
): Promise<FakeApiServer> {
  const tls = options.tls === false ? undefined : await generateTlsMaterial({
    hosts: [options.hostname ?? "127.0.0.1", "localhost"],
  });
  const server = new FakeApiServer(options, tls);
  await server.start();
  return server;
}
