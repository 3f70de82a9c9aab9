/**
 * The fake API server's request log: who asked for what, and what they got,
 * so tests and benchmarks can measure the load each replica puts on the API
 * server.
 *
 * @module
 */

/** One logged request. */
export interface RequestLogEntry {
  /** Milliseconds since the epoch when the request arrived. */
  at: number;
  /** The authenticated user name (one per replica in tests and benchmarks). */
  identity: string;
  /** Kubernetes verb (get, list, watch, create, update, patch, delete...) or HTTP method for other paths. */
  verb: string;
  /** Resource ("events", "leases.coordination.k8s.io") or path for non-resource requests. */
  resource: string;
  namespace: string;
  name: string;
  /** HTTP status code answered. */
  code: number;
}

/** A filter over the log; every given field must match. */
export type RequestFilter = Partial<Omit<RequestLogEntry, "at">> & { since?: number };

/** Options for {@linkcode RequestLog}. */
export interface RequestLogOptions {
  /** Entries kept (the oldest are dropped beyond it; default 1,000,000). */
  capacity?: number;
}

/** An append-only, bounded log of requests. */
export class RequestLog {
  #entries: RequestLogEntry[] = [];
  #capacity: number;
  #dropped = 0;

  constructor(options: RequestLogOptions = {}) {
    this.#capacity = options.capacity ?? 1_000_000;
  }

  /** Appends an entry. */
  add(entry: RequestLogEntry): void {
    this.#entries.push(entry);
    if (this.#entries.length > this.#capacity * 1.25) {
      const drop = this.#entries.length - this.#capacity;
      this.#entries = this.#entries.slice(drop);
      this.#dropped += drop;
    }
  }

  /** Entries matching the filter, oldest first. */
  entries(filter: RequestFilter = {}): RequestLogEntry[] {
    return this.#entries.filter((e) =>
      (filter.since === undefined || e.at >= filter.since) &&
      (filter.identity === undefined || e.identity === filter.identity) &&
      (filter.verb === undefined || e.verb === filter.verb) &&
      (filter.resource === undefined || e.resource === filter.resource) &&
      (filter.namespace === undefined || e.namespace === filter.namespace) &&
      (filter.name === undefined || e.name === filter.name) &&
      (filter.code === undefined || e.code === filter.code)
    );
  }

  /** How many entries match the filter. */
  count(filter: RequestFilter = {}): number {
    return this.entries(filter).length;
  }

  /** Counts per "identity verb resource", for reports. */
  summary(filter: RequestFilter = {}): Record<string, number> {
    const out: Record<string, number> = {};
    for (const e of this.entries(filter)) {
      const key = `${e.identity} ${e.verb} ${e.resource}`;
      out[key] = (out[key] ?? 0) + 1;
    }
    return out;
  }

  /** Forgets every entry. */
  clear(): void {
    this.#entries = [];
  }

  /** How many entries were dropped for capacity. */
  get dropped(): number {
    return this.#dropped;
  }
}
