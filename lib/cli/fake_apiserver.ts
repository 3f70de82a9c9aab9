/**
 * `kevents fake-apiserver`: its options, their parser, and the command,
 * which runs the fake API server (loaded only for this command) until stopped.
 *
 * @module
 */

import { type CommandContext, stopName } from "./_context.ts";
import { type HelpCommand, number, type OptionSpec, parseOptions, path } from "./_options.ts";

/** Options of `kevents fake-apiserver`. */
export interface FakeApiServerCommand {
  name: "fake-apiserver";
  /** Where to write the kubeconfig (default "./kevents-fake.kubeconfig"). */
  kubeconfigOut: string;
  /** Port (default 0: any free port). */
  port: number;
  /** Plain HTTP instead of HTTPS with a generated CA. */
  plainHttp: boolean;
  /** Generated events per second; 0 disables the generator (default 5). */
  eventsPerSecond: number;
  /** Stop generating after this many changes (default: never). */
  eventsTotal?: number;
  /** Seed of the event generator (default 1). */
  seed: number;
  /** Event TTL in seconds (default 3600). */
  eventTtlSeconds: number;
  /** Reproduce the events watch quirk of the real server (stale RV: 200 and close). */
  eventsWatchQuirk: boolean;
}

const OPTIONS: Readonly<Record<string, OptionSpec<FakeApiServerCommand>>> = {
  "kubeconfig-out": { type: "string", apply: (cmd, v, flag) => cmd.kubeconfigOut = path(flag, v) },
  port: {
    type: "string",
    apply: (cmd, v, flag) =>
      cmd.port = number(
        flag,
        v,
        (n) => Number.isInteger(n) && n >= 0 && n <= 65535,
        "must be an integer from 0 to 65535",
      ),
  },
  "plain-http": { type: "boolean", apply: (cmd) => cmd.plainHttp = true },
  "events-per-second": {
    type: "string",
    apply: (cmd, v, flag) =>
      cmd.eventsPerSecond = number(
        flag,
        v,
        (n) => n >= 0 && n <= 1_000_000,
        "must be a number from 0 to 1000000",
      ),
  },
  seed: {
    type: "string",
    apply: (cmd, v, flag) =>
      cmd.seed = number(flag, v, (n) => Number.isInteger(n), "must be an integer"),
  },
  "events-total": {
    type: "string",
    apply: (cmd, v, flag) =>
      cmd.eventsTotal = number(
        flag,
        v,
        (n) => Number.isInteger(n) && n > 0,
        "must be a whole number greater than 0",
      ),
  },
  "event-ttl": {
    type: "string",
    apply: (cmd, v, flag) =>
      cmd.eventTtlSeconds = number(
        flag,
        v,
        (n) => n > 0,
        "must be a number of seconds greater than 0",
      ),
  },
  "events-watch-quirk": { type: "boolean", apply: (cmd) => cmd.eventsWatchQuirk = true },
};

/** Parses the arguments after `fake-apiserver`. */
export function parseFakeApiServer(args: readonly string[]): FakeApiServerCommand | HelpCommand {
  return parseOptions("fake-apiserver", args, {
    name: "fake-apiserver",
    kubeconfigOut: "./kevents-fake.kubeconfig",
    port: 0,
    plainHttp: false,
    eventsPerSecond: 5,
    seed: 1,
    eventTtlSeconds: 3600,
    eventsWatchQuirk: false,
  }, OPTIONS);
}

/**
 * Runs `kevents fake-apiserver` until `ctx.stop`: writes the kubeconfig,
 * generates events if asked, prints where to point kubectl.
 */
export async function runFakeApiServer(
  cmd: FakeApiServerCommand,
  ctx: CommandContext,
): Promise<number> {
  // Loaded only for this command: `kevents run` keeps none of it in memory.
  const { EventGenerator, startFakeApiServer } = await import("../fake_apiserver/mod.ts");
  const server = await startFakeApiServer({
    port: cmd.port,
    tls: !cmd.plainHttp,
    // Nobody sends credentials over plain HTTP: requests act as the admin,
    // as behind kubectl proxy, and the kubeconfig written holds no token.
    anonymousAuth: cmd.plainHttp ? "admin" : false,
    eventTtlMs: cmd.eventTtlSeconds * 1000,
    eventsWatchQuirk: cmd.eventsWatchQuirk,
  });
  try {
    await Deno.writeTextFile(cmd.kubeconfigOut, server.kubeconfig(), { mode: 0o600 });
    const generator = cmd.eventsPerSecond > 0
      ? server.startEventGenerator(new EventGenerator({ seed: cmd.seed }), {
        ratePerSecond: cmd.eventsPerSecond,
        total: cmd.eventsTotal,
      })
      : undefined;
    console.log(`Fake Kubernetes API server listening on ${server.url}`);
    console.log(`Kubeconfig written to ${cmd.kubeconfigOut}; try:`);
    console.log(`  KUBECONFIG=${cmd.kubeconfigOut} kubectl get events -A --watch`);
    console.log(
      generator === undefined
        ? "No events are generated (--events-per-second 0)."
        : `Generating ${cmd.eventsPerSecond} events per second (seed ${cmd.seed}). Stop with Ctrl-C.`,
    );
    generator?.done.then((n) => {
      if (cmd.eventsTotal !== undefined) console.log(`Generator finished after ${n} changes.`);
    });
    await stopped(ctx.stop);
    const sig = stopName(ctx.stop);
    const generated = await generator?.stop();
    console.log(
      `Stopping on ${sig}${
        generated === undefined ? "" : ` after ${generated} generated changes`
      }.`,
    );
    return 0;
  } finally {
    await server.close();
  }
}

/** Resolves when `signal` is aborted. */
function stopped(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) =>
    signal.addEventListener("abort", () => resolve(), { once: true })
  );
}
