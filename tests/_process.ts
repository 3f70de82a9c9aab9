/**
 * Test helpers for `deno run main.ts` child processes: the environment and
 * arguments they start with, one run to its end, a long-running one whose
 * output is collected as it arrives, a line reader for a child's stream and
 * a temporary folder.
 */

import assert from "node:assert/strict";

const ROOT = decodeURIComponent(new URL("../", import.meta.url).pathname);
/** Bound of every wait: generous, for a loaded 2-core machine. */
const BOUND_MS = 30_000;
/** The permissions the compiled binary gets. */
const BINARY_PERMISSIONS = ["--allow-net", "--allow-read", "--allow-env"];

/** This process's environment without kevents' settings and kubeconfig, plus `extra`, for a child. */
export function childEnv(extra: Record<string, string>): Record<string, string> {
  const env = Deno.env.toObject();
  for (const name of Object.keys(env)) {
    if (/^(DD_|KEVENTS_|KUBERNETES|KUBECONFIG$|POD_NAME$|HOSTNAME$)/.test(name)) delete env[name];
  }
  return { ...env, NO_COLOR: "1", ...extra };
}

/** Options of a `deno run <permissions> main.ts <args>` child. */
export interface MainOptions {
  /** Settings on top of `childEnv`'s environment. */
  env: Record<string, string>;
  /** The working directory. */
  cwd: string;
  /** Deno permission flags; the binary's (`--allow-net --allow-read --allow-env`) by default. */
  permissions?: string[];
}

/** The `Deno.Command` options of `deno run <permissions> main.ts <args>`. */
function mainCommand(args: string[], options: MainOptions): Deno.CommandOptions {
  return {
    args: [
      "run",
      "--frozen",
      "--no-prompt",
      "--config",
      `${ROOT}deno.json`,
      ...(options.permissions ?? BINARY_PERMISSIONS),
      `${ROOT}main.ts`,
      ...args,
    ],
    cwd: options.cwd,
    clearEnv: true,
    env: childEnv(options.env),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  };
}

/** Runs `deno run <permissions> main.ts <args>` to its end. */
export async function runMain(
  args: string[],
  options: MainOptions,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), mainCommand(args, options)).output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** One JSON log line of kevents' stderr. */
export interface LogLine {
  "@timestamp": string;
  level: string;
  message: string;
  properties: Record<string, unknown>;
}

/** A `deno run main.ts <args>` that keeps running; its output is collected as it arrives. */
export class KeventsProcess implements AsyncDisposable {
  readonly #child: Deno.ChildProcess;
  readonly #done: Promise<void>;
  /** Its stdout so far. */
  stdout = "";
  /** Its stderr so far. */
  stderr = "";
  /** Set once the process has exited. */
  exited = false;

  constructor(args: string[], options: MainOptions) {
    this.#child = new Deno.Command(Deno.execPath(), mainCommand(args, options)).spawn();
    const collect = async (stream: ReadableStream<Uint8Array>, into: "stdout" | "stderr") => {
      for await (const text of stream.pipeThrough(new TextDecoderStream())) this[into] += text;
    };
    this.#done = Promise.all([
      collect(this.#child.stdout, "stdout"),
      collect(this.#child.stderr, "stderr"),
    ]).then(() => {});
    this.#child.status.then(() => this.exited = true);
  }

  /** The JSON log lines of stderr, parsed (a line still being written is left out). */
  logs(): LogLine[] {
    return this.stderr.split("\n").flatMap((l) => {
      try {
        return l.startsWith("{") ? [JSON.parse(l)] : [];
      } catch {
        return [];
      }
    });
  }

  /** Whether a log line of `level` matches `pattern`. */
  logged(level: string, pattern: RegExp): boolean {
    return this.logs().some((l) => l.level === level && pattern.test(l.message));
  }

  /** Waits until `condition` holds; fails with stderr if the process exits first or time runs out. */
  async until(what: string, condition: () => boolean): Promise<void> {
    const deadline = Date.now() + BOUND_MS;
    while (!condition()) {
      if (this.exited) {
        await this.#done;
        if (condition()) return;
        assert.fail(`kevents exited before ${what}; stderr:\n${this.stderr}`);
      }
      if (Date.now() > deadline) {
        assert.fail(`Gave up waiting for ${what}; stderr so far:\n${this.stderr}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** Sends SIGTERM and waits for the exit and the last output; returns the exit code. */
  async stop(): Promise<number> {
    this.#signal("SIGTERM");
    const status = await this.#child.status;
    await this.#done;
    return status.code;
  }

  /** Sends SIGKILL and waits for the exit and the last output. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.#signal("SIGKILL");
    await this.#child.status;
    await this.#done;
  }

  #signal(signal: Deno.Signal): void {
    try {
      this.#child.kill(signal);
    } catch (e) {
      // Already exited: nothing to signal.
      if (!(e instanceof TypeError)) throw e;
    }
  }
}

/** Calls `onLine` with every line of `stream` (a last line without a newline included). */
export async function readLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  let pending = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    let nl;
    while ((nl = pending.indexOf("\n")) >= 0) {
      onLine(pending.slice(0, nl));
      pending = pending.slice(nl + 1);
    }
  }
  if (pending !== "") onLine(pending);
}

/** Reads a child's stream, keeping every line; `waitFor` resolves at the first line matching. */
export class LineReader {
  /** Every line read so far. */
  readonly lines: string[] = [];
  /** Settles once the stream has ended. */
  readonly done: Promise<void>;
  #waiters: { re: RegExp; resolve: (line: string) => void }[] = [];

  constructor(stream: ReadableStream<Uint8Array>) {
    this.done = readLines(stream, (line) => this.#add(line));
  }

  #add(line: string): void {
    this.lines.push(line);
    this.#waiters = this.#waiters.filter((w) => {
      if (!w.re.test(line)) return true;
      w.resolve(line);
      return false;
    });
  }

  /** The first line, read already or still to come, that matches `re`; fails after `ms`. */
  waitFor(re: RegExp, ms = BOUND_MS): Promise<string> {
    const found = this.lines.find((l) => re.test(l));
    if (found !== undefined) return Promise.resolve(found);
    const { promise, resolve, reject } = Promise.withResolvers<string>();
    const timer = setTimeout(() => reject(new Error(`No line matched ${re}`)), ms);
    this.#waiters.push({
      re,
      resolve: (l) => {
        clearTimeout(timer);
        resolve(l);
      },
    });
    return promise;
  }
}

/** Runs `use` with a new temporary folder whose name starts with `prefix`, removed afterwards. */
export async function withTempDir(
  prefix: string,
  use: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix });
  try {
    await use(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Whether `command args...` can be run here and exits 0 (a tool a test needs: kubectl, a Python module). */
export async function commandSucceeds(command: string, args: readonly string[]): Promise<boolean> {
  try {
    const out = await new Deno.Command(command, {
      args: [...args],
      stdout: "null",
      stderr: "null",
    }).output();
    return out.success;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}
