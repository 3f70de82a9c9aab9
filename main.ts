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
} from "./lib/cli/mod.ts";
import { runCollector } from "./lib/collector.ts";
import {
  agent5FileCandidates,
  type Config,
  ConfigError,
  configFileCandidates,
  parseConfig,
} from "./lib/config/mod.ts";
import { KubeClient } from "./lib/kube/client.ts";
import {
  KubeConfigError,
  loadKubeConfig,
  type PooledKubeConfig,
  SERVICE_ACCOUNT_DIR,
} from "./lib/kube/kubeconfig.ts";
import { type HealthServer, startHealthServer } from "./lib/ops/health_server.ts";
import { Liveness } from "./lib/ops/liveness.ts";
import { addLogSecrets, logLevelFrom, setupLogging, teardownLogging } from "./lib/ops/log.ts";
import { Metrics } from "./lib/ops/metrics.ts";
import { createSinks } from "./lib/sinks/mod.ts";
import { urlSecrets } from "./lib/ops/redact.ts";
import type { Sink } from "./lib/sinks/sink.ts";
import { formatStatus, readStatus, StatusReadError } from "./lib/ops/status.ts";

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
  // Loaded only for this command: `kevents run` keeps none of it in memory.
  const { EventGenerator, startFakeApiServer } = await import("./lib/fake_apiserver/mod.ts");
  const server = await startFakeApiServer({
    port: cmd.port,
    tls: !cmd.plainHttp,
    // Nobody sends credentials over plain HTTP: requests act as the admin,
    // as behind kubectl proxy, and the kubeconfig written holds no token.
    anonymousAuth: cmd.plainHttp ? "admin" : false,
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

/** A file kevents reads: its text, or in words why it cannot be read. */
type FileRead = { text: string } | { problem: string };

/** Why reading a file failed, in words. */
function readProblem(e: unknown): string {
  if (e instanceof Deno.errors.PermissionDenied) {
    return "permission denied (its mode or owner, or a folder on its path, keeps kevents out)";
  }
  if (e instanceof Deno.errors.NotCapable) {
    return "kevents is not allowed to read it (Deno's --allow-read)";
  }
  if (e instanceof Deno.errors.FilesystemLoop) {
    return "its path is a loop of symbolic links";
  }
  return e instanceof Error ? e.message : String(e);
}

/** What a file system object that is neither a file nor a folder is, for messages. */
function describeKind(info: Deno.FileInfo): string {
  if (info.isFifo) return "a named pipe (FIFO)";
  if (info.isSocket) return "a socket";
  if (info.isCharDevice) return "a character device";
  if (info.isBlockDevice) return "a block device";
  return "not a regular file";
}

/**
 * Reads `path`; undefined when nothing is there or it is a folder (a
 * candidate that does not apply). Only a regular file is opened: reading a
 * FIFO would block the start until something writes to it.
 */
function readIfExists(path: string): FileRead | undefined {
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(path);
  } catch (e) {
    // NotADirectory: a component of the path is a file, so nothing is at the path.
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) {
      return undefined;
    }
    return { problem: readProblem(e) };
  }
  if (info.isDirectory) return undefined;
  if (!info.isFile) return { problem: `it is ${describeKind(info)}, not a regular file` };
  try {
    return { text: Deno.readTextFileSync(path) };
  } catch (e) {
    return { problem: readProblem(e) };
  }
}

const CONFIG_FILE_RULE = "must be a readable regular file (a datadog.yaml, or a directory " +
  "holding one)";

/**
 * The first of `paths` that exists, read; ConfigError naming `key`, `source`
 * and the path when one exists but cannot be read.
 */
function readFirst(
  paths: readonly string[],
  what: { key: string; source: string; rule: string },
): { path: string; text: string } | undefined {
  for (const path of paths) {
    const read = readIfExists(path);
    if (read === undefined) continue;
    if ("text" in read) return { path, text: read.text };
    throw new ConfigError({
      key: what.key,
      source: what.source,
      value: path,
      rule: what.rule,
      message: `Cannot read ${what.key} ${JSON.stringify(path)} (${what.source}): ` +
        `${read.problem}; it ${what.rule}`,
    });
  }
  return undefined;
}

/** Resolves the configuration from datadog.yaml and the environment, once. */
function resolveConfig(cmd: RunCommand, env: Record<string, string>): Config {
  const { paths, required } = configFileCandidates(cmd.config, env);
  const source = cmd.config !== undefined && cmd.config !== ""
    ? "--config"
    : required
    ? "DD_CONF_PATH"
    : "default, in the working directory";
  const file = readFirst(paths, { key: "config file", source, rule: CONFIG_FILE_RULE });
  if (file === undefined && required) {
    throw new ConfigError({
      key: "config file",
      source,
      value: paths.join(" or "),
      rule: "must name an existing datadog.yaml (or a directory holding one)",
    });
  }
  // The Agent 5 kubernetes check configuration, for its deprecated leader-election settings.
  const agent5File = readFirst(agent5FileCandidates(file?.path), {
    key: "Agent 5 kubernetes check configuration",
    source: "read for leader_candidate and leader_lease_duration",
    rule: "must be a readable regular file when it exists",
  });
  return parseConfig({
    file,
    agent5File,
    env,
    serviceAccountNamespace: readFirst([`${SERVICE_ACCOUNT_DIR}/namespace`], {
      key: "service-account namespace file",
      source: "the default of kube_resources_namespace",
      rule: "must be a readable regular file when it exists",
    })?.text,
  });
}

/** The configured credentials, which no log line may show. */
function configSecrets(config: Config): string[] {
  // Every header value, not only those named like credentials: a receiver
  // may take its key in any header (X-Custom-Auth, DD-Application-Key...).
  // A URL's query values and user info are often credentials too (?token=).
  return [
    config.datadog.apiKey,
    config.webhook.bearerToken,
    ...Object.values(config.webhook.headers),
    ...urlSecrets(config.webhook.url),
    ...urlSecrets(config.datadog.url),
  ].filter((s): s is string => s !== undefined);
}

/** The kubeconfig user's static credentials, which no log line may show. */
function kubeConfigSecrets(kube: PooledKubeConfig): string[] {
  const user = kube.getCurrentUser();
  return [user?.token, user?.password, user?.keyData].filter((s): s is string =>
    typeof s === "string"
  );
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
  metrics.watchActivityFrom(() => liveness.lastReceivedAt);
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
    // Token files and exec plugins give their secrets at run time.
    kube.config.onSecret = (secret) => addLogSecrets([secret]);
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
  const host = config.health.address.includes(":")
    ? `[${config.health.address}]`
    : config.health.address;
  log.info("Health and metrics on {url} (/healthz, /readyz, /metrics)", {
    url: `http://${host}:${health.port}`,
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
        // Loaded only for this command, as the fake API server it embeds.
        const { runDemo } = await import("./lib/demo/demo.ts");
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
