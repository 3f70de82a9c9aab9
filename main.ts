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
  type StatusCommand,
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
import { type HealthServer, startHealthServer } from "./lib/health_server.ts";
import { Liveness } from "./lib/liveness.ts";
import { addLogSecrets, logLevelFrom, setupLogging, teardownLogging } from "./lib/log.ts";
import { Metrics } from "./lib/metrics.ts";
import { createSinks } from "./lib/sinks/mod.ts";
import { isSecretHeader } from "./lib/redact.ts";
import type { KubeConfig } from "@kubernetes/client-node";
import type { Sink } from "./lib/sinks/sink.ts";
import { formatStatus, readStatus, StatusReadError } from "./lib/status.ts";

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

/** The configured credentials, which no log line may show. */
function configSecrets(config: Config): string[] {
  return [
    config.datadog.apiKey,
    config.webhook.bearerToken,
    ...Object.entries(config.webhook.headers).filter(([name]) => isSecretHeader(name)).map((
      [, value],
    ) => value),
  ].filter((s): s is string => s !== undefined);
}

/** The kubeconfig user's static credentials, which no log line may show. */
function kubeConfigSecrets(kube: KubeConfig): string[] {
  const user = kube.getCurrentUser();
  return [user?.token, user?.password].filter((s): s is string => typeof s === "string");
}

function uniqueSuffix(): string {
  return [...crypto.getRandomValues(new Uint8Array(3))].map((b) => b.toString(16).padStart(2, "0"))
    .join("");
}

async function runCollectorCommand(cmd: RunCommand): Promise<number> {
  const env = Deno.env.toObject();
  let level;
  try {
    level = logLevelFrom(env.DD_LOG_LEVEL);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    console.error(`kevents: ${e.message}`);
    return 2;
  }
  await setupLogging({ level });
  const log = getLogger(["kevents"]);
  let config: Config;
  let client: KubeClient;
  let sinks: Sink[];
  const metrics = new Metrics();
  const liveness = new Liveness();
  try {
    config = resolveConfig(cmd, env);
    addLogSecrets(configSecrets(config));
    const kube = loadKubeConfig({
      path: cmd.kubeconfig,
      envKubeconfig: env.KUBECONFIG,
      home: env.HOME,
      serviceHost: env.KUBERNETES_SERVICE_HOST,
      servicePort: env.KUBERNETES_SERVICE_PORT,
    });
    addLogSecrets(kubeConfigSecrets(kube.config));
    for (const w of [...config.warnings, ...kube.warnings]) log.warn(w);
    client = new KubeClient(kube.config, {
      requestTimeoutMs: config.timings.requestTimeoutMs,
      userAgent: `kevents/${VERSION}`,
      metrics,
    });
    log.info("Using {origin} ({server})", { origin: kube.origin, server: client.server });
    sinks = createSinks(config, { userAgent: `kevents/${VERSION}`, metrics });
  } catch (e) {
    if (e instanceof ConfigError || e instanceof KubeConfigError) {
      log.fatal(e.message);
      await teardownLogging();
      return 2;
    }
    throw e;
  }
  let started = false;
  let health: HealthServer;
  try {
    health = await startHealthServer({
      hostname: config.health.address,
      port: config.health.port,
      ready: () => started,
      live: () => liveness.check(config.health.watchStallLimitMs),
      metrics: async () => ({ contentType: metrics.contentType, text: await metrics.render() }),
    });
  } catch (e) {
    log.fatal(
      "Cannot serve the health endpoint on {address} port {port} (kevents_health_address, " +
        "kevents_health_port): {error}",
      { address: config.health.address, port: config.health.port, error: String(e) },
    );
    await Promise.all(sinks.map((s) => s.close()));
    await client.close();
    await teardownLogging();
    return 1;
  }
  log.info("Health and metrics on http://{address}:{port} (/healthz, /readyz, /metrics)", {
    address: config.health.address,
    port: health.port,
  });
  const identity = `${env.POD_NAME || env.HOSTNAME || "kevents"}-${uniqueSuffix()}`;
  const root = new AbortController();
  const signal = shutdownSignal();
  signal.promise.then((sig) => {
    log.info("Stopping on {signal}", { signal: sig });
    root.abort(new Error(`Stopped by ${sig}`));
  });
  try {
    log.info("Starting as {identity}", { identity });
    started = true;
    await runCollector({ client, config, identity, sinks, metrics, liveness }, root.signal);
    return 0;
  } finally {
    signal.dispose();
    await health.close();
    await Promise.all(sinks.map((s) => s.close()));
    await client.close();
    log.info("Stopped");
    await teardownLogging();
  }
}

/** `kevents status`: settings resolved as for run, then read-only requests; never logs credentials. */
async function runStatusCommand(cmd: StatusCommand): Promise<number> {
  const env = Deno.env.toObject();
  let config: Config;
  let client: KubeClient;
  try {
    config = resolveConfig({ name: "run", config: cmd.config, kubeconfig: cmd.kubeconfig }, env);
    const kube = loadKubeConfig({
      path: cmd.kubeconfig,
      envKubeconfig: env.KUBECONFIG,
      home: env.HOME,
      serviceHost: env.KUBERNETES_SERVICE_HOST,
      servicePort: env.KUBERNETES_SERVICE_PORT,
    });
    for (const w of [...config.warnings, ...kube.warnings]) console.error(`kevents: warning: ${w}`);
    client = new KubeClient(kube.config, {
      requestTimeoutMs: config.timings.requestTimeoutMs,
      userAgent: `kevents/${VERSION}`,
    });
  } catch (e) {
    if (e instanceof ConfigError || e instanceof KubeConfigError) {
      console.error(`kevents: ${e.message}`);
      return 2;
    }
    throw e;
  }
  try {
    console.log(formatStatus(await readStatus(client, config), cmd.output));
    return 0;
  } catch (e) {
    if (e instanceof StatusReadError) {
      console.error(`kevents: ${e.message}`);
      return 1;
    }
    throw e;
  } finally {
    await client.close();
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
    case "status":
      return await runStatusCommand(cmd);
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
