/**
 * kevents' entry point: the only place that reads `Deno.args`, `Deno.env`
 * and signals. It parses the command line, wires the parts together and maps
 * the outcome to an exit code (0 success, 1 runtime failure, 2 bad command
 * line or configuration).
 *
 * @module
 */

import {
  type FakeApiServerCommand,
  parseCommandLine,
  USAGE,
  UsageError,
  VERSION,
} from "./lib/cli.ts";
import { EventGenerator, startFakeApiServer } from "./lib/fake_apiserver/mod.ts";

/** Resolves when SIGINT or SIGTERM arrives. */
function shutdownSignal(): { promise: Promise<string>; dispose: () => void } {
  const { promise, resolve } = Promise.withResolvers<string>();
  const handlers = (["SIGINT", "SIGTERM"] as const).map((sig) => {
    const h = () => resolve(sig);
    Deno.addSignalListener(sig, h);
    return [sig, h] as const;
  });
  return { promise, dispose: () => handlers.forEach(([s, h]) => Deno.removeSignalListener(s, h)) };
}

async function runFakeApiServer(cmd: FakeApiServerCommand): Promise<number> {
  const server = await startFakeApiServer({
    port: cmd.port,
    tls: !cmd.plainHttp,
    eventTtlMs: cmd.eventTtlSeconds * 1000,
    eventsWatchQuirk: cmd.eventsWatchQuirk,
  });
  const signal = shutdownSignal();
  try {
    await Deno.writeTextFile(cmd.kubeconfigOut, server.kubeconfig(), { mode: 0o600 });
    const generator = cmd.eventsPerSecond > 0
      ? server.startEventGenerator(new EventGenerator({ seed: cmd.seed }), {
        ratePerSecond: cmd.eventsPerSecond,
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
    const sig = await signal.promise;
    const generated = await generator?.stop();
    console.log(
      `Stopping on ${sig}${
        generated === undefined ? "" : ` after ${generated} generated changes`
      }.`,
    );
    return 0;
  } finally {
    signal.dispose();
    await server.close();
  }
}

async function main(args: string[]): Promise<number> {
  let cmd;
  try {
    cmd = parseCommandLine(args);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`kevents: ${e.message}`);
      return 2;
    }
    throw e;
  }
  switch (cmd.name) {
    case "help":
      console.log(USAGE);
      return 0;
    case "version":
      console.log(`kevents ${VERSION} (deno ${Deno.version.deno})`);
      return 0;
    case "fake-apiserver":
      return await runFakeApiServer(cmd);
  }
}

if (import.meta.main) {
  try {
    Deno.exitCode = await main(Deno.args);
  } catch (e) {
    console.error(`kevents: ${e instanceof Error ? e.message : e}`);
    Deno.exitCode = 1;
  }
}
