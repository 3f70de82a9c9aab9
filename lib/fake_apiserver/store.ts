/**
 * The fake API server's storage: an in-memory, multi-version key-value store
 * that hands out resourceVersions the way etcd does. One global counter is
 * bumped by every write; every write is appended to a bounded change history
 * from which watches replay and paginated lists read consistent snapshots.
 * Compaction drops the oldest history, after which reads at an older
 * resourceVersion fail with 410 Expired, as on a real cluster.
 *
 * Records are immutable: a write stores a new record. That lets the history
 * share objects with the live map and lets each record cache its JSON.
 *
 * @module
 */

/** A stored object, without `kind`/`apiVersion` (the view adds them). */
export type KubeObject = Record<string, unknown> & { metadata: ObjectMeta };

/** The metadata fields the store manages; other fields pass through. */
export interface ObjectMeta extends Record<string, unknown> {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  creationTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** One immutable stored version of an object. */
export interface StoredRecord {
  readonly storage: string;
  /** "namespace/name", or "name" for cluster-scoped objects. */
  readonly key: string;
  readonly namespace: string;
  readonly name: string;
  readonly rv: number;
  readonly object: KubeObject;
  /** Cached `JSON.stringify(object)`; see {@linkcode bareJson}. */
  json?: string;
}

/** The kind of a change, as watch events name it. */
export type ChangeType = "ADDED" | "MODIFIED" | "DELETED";

/** One entry of the change history. */
export interface Change {
  readonly rv: number;
  readonly type: ChangeType;
  /** The new state; for DELETED, the last state stamped with the deletion's resourceVersion. */
  readonly record: StoredRecord;
  /** The state before this change, if the object existed. */
  readonly prev: StoredRecord | undefined;
}

/** Thrown when a read needs history that compaction has dropped. */
export class CompactedError extends Error {
  readonly requestedRv: number;
  readonly compactedRv: number;
  constructor(requestedRv: number, compactedRv: number) {
    super(`Resource version ${requestedRv} has been compacted (oldest available ${compactedRv})`);
    this.name = "CompactedError";
    this.requestedRv = requestedRv;
    this.compactedRv = compactedRv;
  }
}

/** Options for {@linkcode Store}. */
export interface StoreOptions {
  /** How many changes the history keeps before compacting the oldest (default 100,000). */
  historyLimit?: number;
  /** First resourceVersion handed out (default 1000). */
  initialRv?: number;
  /** Clock in ms, for TTLs (default Date.now). */
  now?: () => number;
}

/** Options for {@linkcode Store.list}. */
export interface ListOptions {
  /** Restrict to one namespace. */
  namespace?: string;
  /** Read the state as of this resourceVersion (default: current). */
  snapshotRv?: number;
  /** Return keys strictly after this one (pagination). */
  startAfter?: string;
  /** At most this many matching records. */
  limit?: number;
  /** Only records for which this returns true count and are returned. */
  match?: (record: StoredRecord) => boolean;
}

/** A page of a list. */
export interface ListPage {
  records: StoredRecord[];
  snapshotRv: number;
  /** The last key examined, when more keys follow it. */
  continueAfter?: string;
  /** How many records follow, when no filter was applied. */
  remaining?: number;
}

/** The JSON of a record's object, cached on the record. */
export function bareJson(record: StoredRecord): string {
  // Records are immutable, so their serialisation can be computed once and
  // shared by every list and watch that sends them.
  return record.json ??= JSON.stringify(record.object);
}

function keyOf(namespace: string, name: string): string {
  return namespace === "" ? name : `${namespace}/${name}`;
}

/** First index in a sorted array whose value is > key (or >= key when inclusive). */
function lowerBound(sorted: readonly string[], key: string, inclusive: boolean): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const v = sorted[mid]!;
    if (v < key || (!inclusive && v === key)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

class Table {
  readonly map = new Map<string, StoredRecord>();
  #sorted: string[] = [];
  #added: string[] = [];
  #deleted = false;

  set(record: StoredRecord): void {
    if (!this.map.has(record.key)) this.#added.push(record.key);
    this.map.set(record.key, record);
  }

  delete(key: string): void {
    this.map.delete(key);
    this.#deleted = true;
  }

  /** Keys in etcd order. Merges pending inserts instead of re-sorting everything. */
  sortedKeys(): readonly string[] {
    if (this.#added.length === 0 && !this.#deleted) return this.#sorted;
    const base = this.#deleted ? this.#sorted.filter((k) => this.map.has(k)) : this.#sorted;
    const added = this.#added.filter((k) => this.map.has(k)).sort();
    const merged: string[] = new Array(base.length + added.length);
    let i = 0, j = 0, n = 0;
    while (i < base.length || j < added.length) {
      if (j >= added.length || (i < base.length && base[i]! < added[j]!)) merged[n++] = base[i++]!;
      else merged[n++] = added[j++]!;
    }
    merged.length = n;
    // A key deleted and re-added while pending appears once in `added` only
    // if it was absent from `base`; dedupe defensively all the same.
    this.#sorted = merged.filter((k, idx) => idx === 0 || merged[idx - 1] !== k);
    this.#added = [];
    this.#deleted = false;
    return this.#sorted;
  }
}

/** The in-memory multi-version store behind the fake API server. */
export class Store {
  #rv: number;
  #tables = new Map<string, Table>();
  #history: Change[] = [];
  #historyStart = 0;
  #compactedRv: number;
  #historyLimit: number;
  #listeners = new Set<(change: Change) => void>();
  #ttl = new Map<string, number>();
  #ttlQueue: { storage: string; key: string; rv: number; expiresAt: number }[] = [];
  #ttlQueueStart = 0;
  #now: () => number;

  constructor(options: StoreOptions = {}) {
    this.#rv = options.initialRv ?? 1000;
    this.#compactedRv = this.#rv;
    this.#historyLimit = options.historyLimit ?? 100_000;
    this.#now = options.now ?? Date.now;
  }

  /** The newest resourceVersion handed out. */
  get currentRv(): number {
    return this.#rv;
  }

  /**
   * The oldest resourceVersion a watch or snapshot may start from: history
   * holds every change after it.
   */
  get compactedRv(): number {
    return this.#compactedRv;
  }

  /** How many changes the history holds now. */
  get historySize(): number {
    return this.#history.length - this.#historyStart;
  }

  /** Gets the current record of an object. */
  get(storage: string, namespace: string, name: string): StoredRecord | undefined {
    return this.#tables.get(storage)?.map.get(keyOf(namespace, name));
  }

  /** How many objects a storage holds now. */
  count(storage: string): number {
    return this.#tables.get(storage)?.map.size ?? 0;
  }

  /**
   * Stores a new version of an object: bumps the global resourceVersion,
   * stamps it into `metadata.resourceVersion`, records the change and tells
   * the listeners. The caller has already done all validation.
   */
  put(storage: string, namespace: string, object: KubeObject): Change {
    const table = this.#table(storage);
    const name = object.metadata.name;
    const key = keyOf(namespace, name);
    const prev = table.map.get(key);
    const rv = ++this.#rv;
    const record: StoredRecord = {
      storage,
      key,
      namespace,
      name,
      rv,
      object: { ...object, metadata: { ...object.metadata, resourceVersion: String(rv) } },
    };
    table.set(record);
    const ttl = this.#ttl.get(storage);
    if (ttl !== undefined) {
      this.#ttlQueue.push({ storage, key, rv, expiresAt: this.#now() + ttl });
    }
    return this.#record({ rv, type: prev === undefined ? "ADDED" : "MODIFIED", record, prev });
  }

  /** Deletes an object; returns the DELETED change, or undefined when it does not exist. */
  delete(storage: string, namespace: string, name: string): Change | undefined {
    const table = this.#tables.get(storage);
    const key = keyOf(namespace, name);
    const prev = table?.map.get(key);
    if (table === undefined || prev === undefined) return undefined;
    table.delete(key);
    const rv = ++this.#rv;
    const record: StoredRecord = {
      ...prev,
      rv,
      json: undefined,
      object: {
        ...prev.object,
        metadata: { ...prev.object.metadata, resourceVersion: String(rv) },
      },
    };
    return this.#record({ rv, type: "DELETED", record, prev });
  }

  /** Makes objects of a storage expire this long after their last write (event TTL). */
  setTtl(storage: string, ttlMs: number): void {
    this.#ttl.set(storage, ttlMs);
  }

  /** Deletes every object whose TTL has passed; returns how many were deleted. */
  sweepExpired(): number {
    const now = this.#now();
    let deleted = 0;
    const q = this.#ttlQueue;
    // Writes are queued in time order, so expired entries are at the front.
    while (this.#ttlQueueStart < q.length && q[this.#ttlQueueStart]!.expiresAt <= now) {
      const item = q[this.#ttlQueueStart++]!;
      const current = this.#tables.get(item.storage)?.map.get(item.key);
      // A later write renewed the TTL: that write has its own queue entry.
      if (current === undefined || current.rv !== item.rv) continue;
      this.delete(item.storage, current.namespace, current.name);
      deleted++;
    }
    if (this.#ttlQueueStart > 1024 && this.#ttlQueueStart * 2 > q.length) {
      this.#ttlQueue = q.slice(this.#ttlQueueStart);
      this.#ttlQueueStart = 0;
    }
    return deleted;
  }

  /** Drops all history up to `rv` (default: everything). */
  compact(rv: number = this.#rv): void {
    const target = Math.min(rv, this.#rv);
    if (target <= this.#compactedRv) return;
    this.#historyStart += target - this.#compactedRv;
    this.#compactedRv = target;
    if (this.#historyStart > 4096 && this.#historyStart * 2 > this.#history.length) {
      this.#history = this.#history.slice(this.#historyStart);
      this.#historyStart = 0;
    }
  }

  /**
   * The change with resourceVersion `rv`, if history still holds it.
   * History is contiguous: every resourceVersion is exactly one change.
   */
  changeAt(rv: number): Change | undefined {
    if (rv <= this.#compactedRv || rv > this.#rv) return undefined;
    return this.#history[this.#historyStart + (rv - this.#compactedRv - 1)];
  }

  /** Subscribes to every change; returns the unsubscribe function. */
  subscribe(listener: (change: Change) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Lists a storage as of a snapshot, in key order, from a start key, up to
   * a limit of matching records. A snapshot older than the compacted
   * revision throws {@linkcode CompactedError}.
   */
  list(storage: string, options: ListOptions = {}): ListPage {
    const snapshotRv = options.snapshotRv ?? this.#rv;
    if (snapshotRv < this.#compactedRv) throw new CompactedError(snapshotRv, this.#compactedRv);
    const table = this.#table(storage);
    // Objects changed since the snapshot are read as they were at it: the
    // first change after the snapshot carries the state before it.
    const overlay = new Map<string, StoredRecord | undefined>();
    for (let rv = snapshotRv + 1; rv <= this.#rv; rv++) {
      const change = this.changeAt(rv)!;
      if (change.record.storage === storage && !overlay.has(change.record.key)) {
        overlay.set(change.record.key, change.prev);
      }
    }
    const current = table.sortedKeys();
    const gone = [...overlay.keys()].filter((k) => !table.map.has(k)).sort();
    const prefix = options.namespace === undefined ? "" : `${options.namespace}/`;
    const from = options.startAfter ?? prefix;
    const inclusive = options.startAfter === undefined;
    let i = lowerBound(current, from, inclusive);
    let j = lowerBound(gone, from, inclusive);
    const limit = options.limit ?? Infinity;
    const records: StoredRecord[] = [];
    let lastKey: string | undefined;
    while (i < current.length || j < gone.length) {
      const takeCurrent = j >= gone.length || (i < current.length && current[i]! < gone[j]!);
      const key = takeCurrent ? current[i++]! : gone[j++]!;
      if (!key.startsWith(prefix)) break;
      if (records.length >= limit) {
        // More keys follow the page: hand back a continuation.
        // Count what the snapshot holds from this key on: keys created after
        // the snapshot are in the live table but not in the snapshot.
        let createdLater = 0;
        for (const [k, prev] of overlay) {
          if (prev === undefined && k >= key && k.startsWith(prefix)) createdLater++;
        }
        const remaining = options.match === undefined
          ? this.#countFrom(current, i - (takeCurrent ? 1 : 0), prefix) +
            (gone.length - j + (takeCurrent ? 0 : 1)) - createdLater
          : undefined;
        return { records, snapshotRv, continueAfter: lastKey, remaining };
      }
      lastKey = key;
      const record = overlay.has(key) ? overlay.get(key) : table.map.get(key);
      if (record === undefined) continue;
      if (options.match !== undefined && !options.match(record)) continue;
      records.push(record);
    }
    return { records, snapshotRv };
  }

  #countFrom(sorted: readonly string[], index: number, prefix: string): number {
    if (prefix === "") return sorted.length - index;
    // Namespaced keys are contiguous: count up to the end of the prefix range.
    const end = lowerBound(sorted, prefix + "\uffff", true);
    return Math.max(0, end - index);
  }

  #table(storage: string): Table {
    let table = this.#tables.get(storage);
    if (table === undefined) {
      table = new Table();
      this.#tables.set(storage, table);
    }
    return table;
  }

  #record(change: Change): Change {
    this.#history.push(change);
    if (this.historySize > this.#historyLimit) this.compact(change.rv - this.#historyLimit);
    for (const listener of this.#listeners) listener(change);
    return change;
  }
}
