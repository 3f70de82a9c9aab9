/**
 * A benchmark subprocess seen from the parent: its stdout read as lines
 * (or handed over raw, for kubectl), its stderr passed on with a prefix,
 * its stdin as a command channel, and waits with a time limit that fail
 * with the child's last words.
 *
 * The line protocol of the benchmark's own children (bench/contestant.ts,
 * bench/fake_server.ts) is `<word> <json>`: `ready {...}`, `done {...}`,
 * `progress N`.
 *
 * @module
 */

/** Options for {@linkcode Child}. */
export interface ChildOptions {
  /** Shown before its stderr lines and in errors. */
  name: string;
  /** Environment variables (added to the parent's; default none added). */
  env?: Record<string, string>;
  /** Take raw stdout chunks instead of lines (kubectl's output is counted, not parsed). */
  onStdout?: (chunk: Uint8Array) => void;
  /** Told of every `progress N` line. */
  onProgress?: (n: number) => void;
  /** Pass stderr lines on to our stderr (default true); they are kept for errors anyway. */
  echoStderr?: boolean;
  /** Take stderr lines here instead of echoing them. */
  onStderrLine?: (line: string) => void;
}

interface Waiter {
  word: string;
  resolve: (rest: string) => void;
}

const encoder = new TextEncoder();

/** Splits a byte stream into lines. */
export async function forEachLine(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  let pending = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    pending += text;
    let nl;
    while ((nl = pending.indexOf("\n")) >= 0) {
      onLine(pending.slice(0, nl));
      pending = pending.slice(nl + 1);
    }
  }
  if (pending !== "") onLine(pending);
}

/** A running subprocess of a benchmark. */
export class Child {
  readonly name: string;
  readonly pid: number;
  /** Settles when the process has exited and its pipes are drained. */
  readonly done: Promise<Deno.CommandStatus>;
  #child: Deno.ChildProcess;
  #stdin: WritableStreamDefaultWriter<Uint8Array>;
  #lines: string[] = [];
  #waiters: Waiter[] = [];
  #stderrTail: string[] = [];
  #exited = false;
  #exitWaiters: (() => void)[] = [];

  constructor(command: string, args: string[], options: ChildOptions) {
    this.name = options.name;
    this.#child = new Deno.Command(command, {
      args,
      env: options.env,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.pid = this.#child.pid;
    this.#stdin = this.#child.stdin.getWriter();
    // A child that exits closes its stdin: later writes must not reject unhandled.
    this.#stdin.closed.catch(() => {});
    const stdout = this.#child.stdout;
    const onStdout = options.onStdout;
    const out = onStdout === undefined
      ? forEachLine(stdout, (line) => this.#line(line, options))
      : (async () => {
        for await (const chunk of stdout) onStdout(chunk);
      })();
    const echo = options.echoStderr ?? true;
    const err = forEachLine(this.#child.stderr, (line) => {
      this.#stderrTail.push(line);
      if (this.#stderrTail.length > 20) this.#stderrTail.shift();
      if (options.onStderrLine !== undefined) options.onStderrLine(line);
      else if (echo) console.error(`[${this.name}] ${line}`);
    });
    this.done = Promise.all([out, err]).then(() => this.#child.status).finally(() => {
      this.#exited = true;
      for (const w of this.#exitWaiters) w();
    });
  }

  #line(line: string, options: ChildOptions): void {
    const space = line.indexOf(" ");
    const word = space < 0 ? line : line.slice(0, space);
    const rest = space < 0 ? "" : line.slice(space + 1);
    if (word === "progress") {
      options.onProgress?.(Number(rest));
      return;
    }
    const w = this.#waiters.findIndex((x) => x.word === word);
    if (w >= 0) {
      const [waiter] = this.#waiters.splice(w, 1);
      waiter!.resolve(rest);
    } else this.#lines.push(line);
  }

  /**
   * Resolves with what follows `word` on the first line starting with it
   * (lines read earlier count too); rejects after `timeoutMs` or when the
   * child exits first.
   */
  expect(word: string, timeoutMs: number): Promise<string> {
    const i = this.#lines.findIndex((l) => l === word || l.startsWith(`${word} `));
    if (i >= 0) {
      const [line] = this.#lines.splice(i, 1);
      return Promise.resolve(line!.slice(word.length + 1));
    }
    return new Promise<string>((resolve, reject) => {
      const waiter: Waiter = {
        word,
        resolve: (rest) => {
          clearTimeout(timer);
          resolve(rest);
        },
      };
      const fail = (why: string) => {
        const i = this.#waiters.indexOf(waiter);
        if (i < 0) return;
        this.#waiters.splice(i, 1);
        clearTimeout(timer);
        reject(new Error(`${this.name} ${why} before "${word}"${this.#lastWords()}`));
      };
      this.#waiters.push(waiter);
      const timer = setTimeout(() => fail(`took more than ${timeoutMs} ms`), timeoutMs);
      if (this.#exited) fail("exited");
      else this.#exitWaiters.push(() => fail("exited"));
    });
  }

  /** Like {@linkcode expect}, parsing the rest of the line as JSON. */
  async expectJson<T>(word: string, timeoutMs: number): Promise<T> {
    return JSON.parse(await this.expect(word, timeoutMs)) as T;
  }

  #lastWords(): string {
    const tail = this.#stderrTail.slice(-8);
    return tail.length === 0 ? "" : `; its last stderr lines:\n  ${tail.join("\n  ")}`;
  }

  /** Writes one line to the child's stdin. */
  async send(line: string): Promise<void> {
    await this.#stdin.write(encoder.encode(`${line}\n`));
  }

  /** Closes the child's stdin (our children exit at its end) and waits for the exit. */
  async finish(timeoutMs = 15_000): Promise<Deno.CommandStatus> {
    await this.#stdin.close().catch(() => {});
    return await this.waitForExit(timeoutMs);
  }

  /** Waits for the exit; kills the child after `timeoutMs`. */
  async waitForExit(timeoutMs: number): Promise<Deno.CommandStatus> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const killer = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.kill("SIGKILL");
        resolve();
      }, timeoutMs);
    });
    try {
      await Promise.race([this.done, killer]);
      return await this.done;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends a signal, ignoring a child that has already exited. */
  kill(signal: Deno.Signal): void {
    try {
      this.#child.kill(signal);
    } catch {
      // Already exited.
    }
  }

  /** Kills the child if it still runs and waits for it (for `await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.#exited) {
      await this.#stdin.close().catch(() => {});
      this.kill("SIGTERM");
      await this.waitForExit(5_000).catch(() => {});
    }
  }
}

/** The path of a file in bench/. */
export function benchFile(name: string): string {
  return new URL(name, import.meta.url).pathname;
}

/**
 * `deno run` arguments for one of the benchmark's own scripts, with more
 * Deno options if any (kevents' shipped flags, bench/_shipped.ts).
 */
export function denoRunArgs(
  script: string,
  args: string[] = [],
  denoFlags: readonly string[] = [],
): string[] {
  return ["run", "--frozen", "--allow-all", ...denoFlags, benchFile(script), ...args];
}
