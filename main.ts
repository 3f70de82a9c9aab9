/**
 * kevents' entry point: the only place that reads `Deno.args`, `Deno.env`
 * and signals. It parses the command line, wires the parts together and maps
 * the outcome to an exit code (0 success, 1 runtime failure, 2 bad command
 * line or configuration).
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import {
  type FakeApiServerCommand,
  parseCommandLine,
  type RunCommand,
  USAGE,
  UsageError,
  VERSION,
} from "./lib/cli.ts";
import { runCollector } from "./lib/collector.ts";
import { runDemo } from "./lib/demo.ts";
import {
  agent5FileCandidates,
  type Config,
  ConfigError,
  configFileCandidates,
  parseConfig,
} from "./lib/config.ts";
import { EventGenerator, startFakeApiServer } from "./lib/fake_apiserver/mod.ts";
import { KubeClient } from "./lib/kube_client.ts";
import { KubeConfigError, loadKubeConfig, SERVICE_ACCOUNT_DIR } from "./lib/kube_config.ts";
import { logLevelFrom, setupLogging, teardownLogging } from "./lib/log.ts";
import { createSinks } from "./lib/sinks/mod.ts";
import type { Sink } from "./lib/sinks/sink.ts";

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

function readIfExists(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.IsADirectory) {
      return undefined;
    }
    throw e;
  }
}

/** Resolves the configuration from datadog.yaml and the environment, once. */
function resolveConfig(cmd: RunCommand, env: Record<string, string>): Config {
  const { paths, required } = configFileCandidates(cmd.config, env);
  let file: { path: string; text: string } | undefined;
  for (const path of paths) {
    const text = readIfExists(path);
    if (text !== undefined) {
      file = { path, text };
      break;
    }
  }
  if (file === undefined && required) {
    const source = cmd.config !== undefined ? "--config" : "DD_CONF_PATH";
    throw new ConfigError({
      key: "config file",
      source,
      value: paths.join(" or "),
      rule: "must name an existing datadog.yaml (or a directory holding one)",
    });
  }
  // The Agent 5 kubernetes check configuration, for its deprecated leader-election settings.
  let agent5File: { path: string; text: string } | undefined;
  for (const path of agent5FileCandidates(file?.path)) {
    const text = readIfExists(path);
    if (text !== undefined) {
      agent5File = { path, text };
      break;
    }
  }
  return parseConfig({
    file,
    agent5File,
    env,
    serviceAccountNamespace: readIfExists(`${SERVICE_ACCOUNT_DIR}/namespace`),
  });
}

function uniqueSuffix(): string {
  return [...crypto.getRandomValues(new Uint8Array(3))].map((b) => b.toString(16).padStart(2, "0"))
    .join("");
}

async function runCollectorCommand(cmd: RunCommand): Promise<number> {
  const env = Deno.env.toObject();
  await setupLogging({ level: logLevelFrom(env.DD_LOG_LEVEL) });
  const log = getLogger(["kevents"]);
  let config: Config;
  let client: KubeClient;
  let sinks: Sink[];
  try {
    config = resolveConfig(cmd, env);
    const kube = loadKubeConfig({
      path: cmd.kubeconfig,
      envKubeconfig: env.KUBECONFIG,
      home: env.HOME,
      serviceHost: env.KUBERNETES_SERVICE_HOST,
      servicePort: env.KUBERNETES_SERVICE_PORT,
    });
    for (const w of [...config.warnings, ...kube.warnings]) log.warn(w);
    client = new KubeClient(kube.config, {
      requestTimeoutMs: config.timings.requestTimeoutMs,
      userAgent: `kevents/${VERSION}`,
    });
    log.info("Using {origin} ({server})", { origin: kube.origin, server: client.server });
    sinks = createSinks(config, { userAgent: `kevents/${VERSION}` });
  } catch (e) {
    if (e instanceof ConfigError || e instanceof KubeConfigError) {
      log.fatal(e.message);
      await teardownLogging();
      return 2;
    }
    throw e;
  }
  const identity = `${env.POD_NAME || env.HOSTNAME || "kevents"}-${uniqueSuffix()}`;
  const root = new AbortController();
  const signal = shutdownSignal();
  signal.promise.then((sig) => {
    log.info("Stopping on {signal}", { signal: sig });
    root.abort(new Error(`Stopped by ${sig}`));
  });
  try {
    log.info("Starting as {identity}", { identity });
    await runCollector({ client, config, identity, sinks }, root.signal);
    return 0;
  } finally {
    signal.dispose();
    await Promise.all(sinks.map((s) => s.close()));
    await client.close();
    log.info("Stopped");
    await teardownLogging();
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
    case "run":
      return await runCollectorCommand(cmd);
    case "demo": {
      // Warnings of the crashed replica would bury the timeline: only errors are logged.
      await setupLogging({ level: "error", json: false });
      try {
        const result = await runDemo({ eventsPerSecond: cmd.eventsPerSecond, seed: cmd.seed });
        return result.gaps === 0 ? 0 : 1;
      } finally {
        await teardownLogging();
      }
    }
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
