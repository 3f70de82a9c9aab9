/**
 * Shared helpers of the failover and API-load benchmarks: `kevents run`
 * replicas as subprocesses with their JSON log lines, RSS sampling from
 * /proc, a per-replica TCP proxy that counts connections and can play a
 * dead API server, and the markdown output (tables, the machine, the
 * sections of docs/BENCHMARKS.md these benchmarks own).
 *
 * @module
 */

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** One JSON log line of a replica (logtape's JSON lines format). */
export interface LogLine {
  "@timestamp"?: string;
  level?: string;
  message: string;
  properties: Record<string, unknown>;
  /** When the benchmark process read the line (ms since the epoch). */
  receivedAt: number;
}

/** Options for {@linkcode Replica}. */
export interface ReplicaOptions {
  /** POD_NAME of the replica; its identity is this plus a random suffix. */
  name: string;
  /** Path of the kubeconfig it uses (`--kubeconfig`). */
  kubeconfig: string;
  /** Lease duration in ms (KEVENTS_LEASE_DURATION_MS; default: the 60 s of leader_lease_duration). */
  leaseDurationMs?: number;
  /** Followers watch the lock (KEVENTS_FOLLOWER_WATCH=true) or poll it (false); default kevents' own. */
  followerWatch?: boolean;
  /** KEVENTS_SINKS (default "null"). */
  sinks?: string;
  /** Deno options before main.ts, e.g. kevents' shipped flags (bench/_shipped.ts; default none). */
  denoFlags?: readonly string[];
  /** Takes what the replica writes to stdout (default: discarded). */
  onStdout?: (chunk: Uint8Array) => void;
  /** More environment variables. */
  env?: Record<string, string>;
}

interface Waiter {
  match: (line: LogLine) => boolean;
  resolve: (line: LogLine) => void;
}

/**
 * A `kevents run` subprocess (`deno run main.ts run`: its pid is the Deno
 * process itself), the null sink unless told otherwise, its log lines kept
 * in memory.
 */
export class Replica {
  /** POD_NAME given at start. */
  readonly name: string;
  /** Parsed stderr log lines, oldest first. */
  readonly logs: LogLine[] = [];
  /** Settles when the process has exited and both pipes are drained. */
  readonly done: Promise<Deno.CommandStatus>;
  #child: Deno.ChildProcess;
  #waiters: Waiter[] = [];
  #exited = false;

  constructor(options: ReplicaOptions) {
    this.name = options.name;
    const env: Record<string, string> = {
      KUBERNETES: "1",
      KEVENTS_SINKS: options.sinks ?? "null",
      KEVENTS_HEALTH_PORT: "0",
      POD_NAME: options.name,
      DD_LOG_LEVEL: "info",
      ...options.env,
    };
    if (options.followerWatch !== undefined) {
      env.KEVENTS_FOLLOWER_WATCH = String(options.followerWatch);
    }
    if (options.leaseDurationMs !== undefined) {
      env.KEVENTS_LEASE_DURATION_MS = String(options.leaseDurationMs);
    }
    // Only what Deno needs to find its cache: no DD_* or KUBECONFIG from the caller's shell.
    for (const key of ["PATH", "HOME", "DENO_DIR", "XDG_CACHE_HOME", "TMPDIR"]) {
      const value = Deno.env.get(key);
      if (value !== undefined) env[key] = value;
    }
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-net",
        "--allow-read",
        "--allow-env",
        ...options.denoFlags ?? [],
        MAIN,
        "run",
        "--kubeconfig",
        options.kubeconfig,
      ],
      env,
      clearEnv: true,
      stdin: "null",
      stdout: options.onStdout === undefined ? "null" : "piped",
      stderr: "piped",
    }).spawn();
    this.#child = child;
    const onStdout = options.onStdout;
    const stdout = onStdout === undefined ? Promise.resolve() : (async () => {
      for await (const chunk of child.stdout) onStdout(chunk);
    })();
    this.done = Promise.all([this.#read(child.stderr), stdout]).then(() => child.status)
      .finally(() => {
        this.#exited = true;
      });
  }

  /** The process id (for RSS). */
  get pid(): number {
    return this.#child.pid;
  }

  /** Whether the process has exited. */
  get exited(): boolean {
    return this.#exited;
  }

  /** The identity it logged at start ("Starting as ..."), once known. */
  get identity(): string | undefined {
    const line = this.logs.find((l) => typeof l.properties.identity === "string");
    return line?.properties.identity as string | undefined;
  }

  async #read(stream: ReadableStream<Uint8Array>): Promise<void> {
    let pending = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      pending += chunk;
      let nl;
      while ((nl = pending.indexOf("\n")) >= 0) {
        this.#line(pending.slice(0, nl));
        pending = pending.slice(nl + 1);
      }
    }
    if (pending !== "") this.#line(pending);
  }

  #line(text: string): void {
    let line: LogLine;
    try {
      line = { ...JSON.parse(text), receivedAt: Date.now() };
      line.properties ??= {};
    } catch {
      // Not a log line (a Deno warning, a torn last line after SIGKILL): keep it as text.
      line = { message: text, properties: {}, receivedAt: Date.now() };
    }
    this.logs.push(line);
    for (const w of [...this.#waiters]) {
      if (w.match(line)) {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  }

  /**
   * Resolves with the first log line matching, looking at the lines from
   * index `from` (default: only lines still to come) onwards.
   */
  waitFor(match: (line: LogLine) => boolean, from = this.logs.length): Promise<LogLine> {
    const seen = this.logs.slice(from).find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve) => this.#waiters.push({ match, resolve }));
  }

  /** Sends a signal; a process that has already exited is left alone. */
  kill(signal: Deno.Signal): void {
    if (this.#exited) return;
    try {
      this.#child.kill(signal);
    } catch (e) {
      // It exited between the check and the signal.
      if (!(e instanceof TypeError)) throw e;
    }
  }

  /** Stops the replica with SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
  async stop(graceMs = 15_000): Promise<void> {
    this.kill("SIGTERM");
    const timer = setTimeout(() => this.kill("SIGKILL"), graceMs);
    try {
      await this.done;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Log line predicates shared by both benchmarks. */
export const LINES = {
  /** The term's pump started: the replica is the working leader. */
  pumpStarted: (l: LogLine): boolean => l.message.startsWith("Pump started"),
  /** The elector took the lock ("<identity> leads <lock>"). */
  leads: (l: LogLine): boolean => / leads /.test(l.message) && "transitions" in l.properties,
  /** The replica has read the lock and knows its holder. */
  leaderIs: (holder: string) => (l: LogLine): boolean => l.properties.holder === holder,
  /** The leader gave the lock up on its way out. */
  released: (l: LogLine): boolean => / released /.test(l.message),
};

/** When a log line was written, by the replica's clock (same machine), else when it was read. */
export function lineTime(line: LogLine): number {
  const at = line.properties.at;
  if (typeof at === "string" && Number.isFinite(Date.parse(at))) return Date.parse(at);
  const ts = line["@timestamp"];
  if (ts !== undefined && Number.isFinite(Date.parse(ts))) return Date.parse(ts);
  return line.receivedAt;
}

/** Rejects with a message naming `what` when `promise` takes longer than `ms`. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`Timed out after ${ms} ms waiting for ${what}`)),
        ms,
      );
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resident set size of a process in MiB from /proc, or undefined once it is gone. */
export function rssMiB(pid: number): number | undefined {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return m === null ? undefined : Number(m[1]) / 1024;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

/** Samples the RSS of processes every `intervalMs` and keeps each one's peak and last value. */
export class RssPoller {
  #timer: ReturnType<typeof setInterval>;
  #pids: () => number[];
  /** Peak RSS by pid, in MiB. */
  readonly peak = new Map<number, number>();
  /** Last RSS sampled by pid, in MiB. */
  readonly last = new Map<number, number>();

  constructor(pids: () => number[], intervalMs = 1000) {
    this.#pids = pids;
    this.sample();
    this.#timer = setInterval(() => this.sample(), intervalMs);
  }

  /** Takes one sample now. */
  sample(): void {
    for (const pid of this.#pids()) {
      const rss = rssMiB(pid);
      if (rss === undefined) continue;
      this.last.set(pid, rss);
      this.peak.set(pid, Math.max(rss, this.peak.get(pid) ?? 0));
    }
  }

  /** Forgets the peaks (a new measuring window starts). */
  reset(): void {
    this.peak.clear();
    this.sample();
  }

  /** Stops sampling. */
  stop(): void {
    clearInterval(this.#timer);
  }
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch (e) {
    // Closed already by the other direction of the pipe.
    if (!(e instanceof Deno.errors.BadResource)) throw e;
  }
}

/**
 * A TCP proxy in front of the API server for one replica: it counts the
 * connections the replica opens and, when down, accepts each connection and
 * closes it at once (counted as an attempt), as an API server that is gone
 * behind a load balancer would look.
 */
export class ConnectionProxy {
  #listener: Deno.TcpListener;
  #target: { hostname: string; port: number };
  #down = false;
  #open = new Set<Deno.Conn>();
  #accepting: Promise<void>;
  /** When each connection was accepted (ms since the epoch), and whether the proxy was down then. */
  readonly accepted: { at: number; down: boolean }[] = [];

  constructor(target: { hostname: string; port: number }) {
    this.#target = target;
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#accepting = this.#accept();
  }

  /** The port replicas connect to. */
  get port(): number {
    return this.#listener.addr.port;
  }

  /** Connections accepted in [from, to), while down or up. */
  count(from: number, to: number, down: boolean): number {
    return this.accepted.filter((a) => a.at >= from && a.at < to && a.down === down).length;
  }

  /** Going down breaks every open connection; up forwards new ones again. */
  setDown(down: boolean): void {
    this.#down = down;
    if (down) { for (const c of [...this.#open]) closeQuietly(c); }
  }

  async #accept(): Promise<void> {
    try {
      for await (const conn of this.#listener) {
        this.accepted.push({ at: Date.now(), down: this.#down });
        if (this.#down) closeQuietly(conn);
        else this.#forward(conn);
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.BadResource)) throw e;
    }
  }

  async #forward(client: Deno.Conn): Promise<void> {
    this.#open.add(client);
    let upstream: Deno.Conn | undefined;
    try {
      upstream = await Deno.connect(this.#target);
      this.#open.add(upstream);
      // Either direction ending (or breaking) ends the connection: HTTP
      // clients do not half-close.
      // A broken connection is an end like any other.
      const ended = () => {};
      await Promise.race([
        client.readable.pipeTo(upstream.writable, { preventClose: true }).catch(ended),
        upstream.readable.pipeTo(client.writable, { preventClose: true }).catch(ended),
      ]);
    } catch {
      // The server refused: the client sees its connection closed.
    } finally {
      for (const c of [client, upstream]) {
        if (c === undefined) continue;
        this.#open.delete(c);
        closeQuietly(c);
      }
    }
  }

  /** Stops listening and breaks every connection. */
  async close(): Promise<void> {
    this.#listener.close();
    this.setDown(true);
    await this.#accepting;
  }
}

/** Median of a list (the lower middle for an even count); NaN when empty. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)]!;
}

/** Formats a number with thousands separators and `digits` decimals. */
export function fmt(n: number, digits = 0): string {
  if (!Number.isFinite(n)) return "-";
  return n.toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

/** A markdown table with padded columns, as `deno fmt` writes it. */
export function markdownTable(header: readonly string[], rows: readonly string[][]): string {
  const widths = header.map((h, i) =>
    Math.max(1, h.length, ...rows.map((r) => (r[i] ?? "").length))
  );
  const line = (cells: readonly string[]) =>
    `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
  return [
    line(header),
    `| ${widths.map((w) => "-".repeat(w)).join(" | ")} |`,
    ...rows.map(line),
  ].join("\n");
}

/** The machine, for the record: cores, memory, load, Deno version. */
export function machine(): string {
  const mem = Deno.systemMemoryInfo();
  const load = Deno.loadavg().map((l) => l.toFixed(2)).join(" ");
  return `${navigator.hardwareConcurrency} cores, ${
    Math.round(mem.total / 2 ** 30)
  } GiB memory, load average ${load} at the start (shared with other jobs), Deno ${Deno.version.deno}`;
}

/** Today's date as YYYY-MM-DD. */
export function today(): string {
  return new Date().toISOString().slice(0, 10);
}

/** Formats markdown as `deno fmt` does with this repository's settings (line width, tables). */
export async function formatMarkdown(text: string): Promise<string> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--ext", "md", "-"],
    cwd: new URL("..", import.meta.url).pathname,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  const out = await child.output();
  if (!out.success) {
    throw new Error(`Cannot format markdown: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
  return new TextDecoder().decode(out.stdout);
}

/** Options for {@linkcode writeDocBlock}. */
export interface DocBlockOptions {
  /** The markdown file (default docs/BENCHMARKS.md of this repository). */
  path?: string;
  /** The section's heading line, e.g. "## Failover". */
  heading: string;
  /** Name of the generated block inside the section (its marker comments). */
  block: string;
  /** The generated markdown. */
  content: string;
}

/**
 * Replaces the generated block of a section of docs/BENCHMARKS.md, leaving
 * the rest of the file (and the section's hand-written text) alone. A
 * missing block goes at the end of its section; a missing section at the end
 * of the file.
 */
export async function writeDocBlock(options: DocBlockOptions): Promise<void> {
  const path = options.path ?? new URL("../docs/BENCHMARKS.md", import.meta.url).pathname;
  const begin =
    `<!-- ${options.block}:begin (generated by the benchmark; edit the text around it) -->`;
  const end = `<!-- ${options.block}:end -->`;
  const block = `${begin}\n\n${(await formatMarkdown(options.content)).trim()}\n\n${end}`;
  const text = await Deno.readTextFile(path);
  const b = text.indexOf(begin);
  const e = text.indexOf(end);
  let out: string;
  if (b >= 0 && e > b) {
    out = text.slice(0, b) + block + text.slice(e + end.length);
  } else {
    const h = text.indexOf(`\n${options.heading}\n`);
    if (h < 0) {
      out = `${text.trimEnd()}\n\n${options.heading}\n\n${block}\n`;
    } else {
      const next = text.indexOf("\n## ", h + options.heading.length + 1);
      const at = next < 0 ? text.length : next;
      out = `${text.slice(0, at).trimEnd()}\n\n${block}\n${text.slice(at)}`;
    }
  }
  await Deno.writeTextFile(path, out.endsWith("\n") ? out : `${out}\n`);
}
