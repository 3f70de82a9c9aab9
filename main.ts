/**
 * kevents' entry point: the only place that reads `Deno.args`, `Deno.env`
 * and signals. It parses the command line, hands the command the
 * environment and a stop signal, and maps the outcome to an exit code (0
 * success, 1 runtime failure, 2 bad command line or configuration). The
 * commands live in lib/cli/.
 *
 * @module
 */

import {
  parseCommandLine,
  runDemoCommand,
  runFakeApiServer,
  runRun,
  runStatus,
  StopRequested,
  USAGE,
  UsageError,
  VERSION,
} from "./lib/cli/mod.ts";

/** An AbortSignal aborted (with a StopRequested) when SIGINT or SIGTERM arrives. */
function stopOnSignals(): { signal: AbortSignal } & Disposable {
  const controller = new AbortController();
  const handlers = (["SIGINT", "SIGTERM"] as const).map((sig) => {
    const h = () => controller.abort(new StopRequested(sig));
    Deno.addSignalListener(sig, h);
    return [sig, h] as const;
  });
  return {
    signal: controller.signal,
    [Symbol.dispose]: () => handlers.forEach(([s, h]) => Deno.removeSignalListener(s, h)),
  };
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
    case "fake-apiserver": {
      using stop = stopOnSignals();
      return await runFakeApiServer(cmd, { env: Deno.env.toObject(), stop: stop.signal });
    }
    case "run": {
      using stop = stopOnSignals();
      return await runRun(cmd, { env: Deno.env.toObject(), stop: stop.signal });
    }
    case "status":
      return await runStatus(cmd, Deno.env.toObject());
    case "demo":
      return await runDemoCommand(cmd);
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
