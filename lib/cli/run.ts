/**
 * `kevents run`, the default command: its options, their parser, and the
 * command itself, which wires logging, configuration, the kubeconfig, the
 * sinks and the health server around the collector.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import { runCollector } from "../collector.ts";
import { type Config, ConfigError, type SinkSpec } from "../config/mod.ts";
import { KubeClient, KubeConfigError, type PooledKubeConfig } from "../kube/mod.ts";
import {
  addLogSecrets,
  type HealthServer,
  Liveness,
  logLevelFrom,
  Metrics,
  setupLogging,
  startHealthServer,
  teardownLogging,
  urlSecrets,
} from "../ops/mod.ts";
import { createSinks, type Sink } from "../sinks/mod.ts";
import { loadSettings } from "./_settings.ts";
import { type CommandContext, stopName } from "./_context.ts";
import { type HelpCommand, type OptionSpec, parseOptions, path } from "./_options.ts";
import { VERSION } from "./usage.ts";

/** Options of `kevents run`. */
export interface RunCommand {
  name: "run";
  /** `--kubeconfig`: wins over KUBECONFIG, ~/.kube/config and in-cluster config. */
  kubeconfig?: string;
  /** `--config`: path of datadog.yaml (or a directory holding it). */
  config?: string;
}

const OPTIONS: Readonly<Record<string, OptionSpec<RunCommand>>> = {
  kubeconfig: { type: "string", apply: (cmd, v, flag) => cmd.kubeconfig = path(flag, v) },
  config: { type: "string", apply: (cmd, v, flag) => cmd.config = path(flag, v) },
};

/** Parses the arguments after `run` (or all of them, when the command is left out). */
export function parseRun(args: readonly string[]): RunCommand | HelpCommand {
  return parseOptions("run", args, { name: "run" }, OPTIONS);
}

/** The configured credentials, which no log line may show. */
function configSecrets(config: Config): string[] {
  // Every header value, not only those named like credentials: a receiver
  // may take its key in any header (X-Custom-Auth, DD-Application-Key...).
  // A URL's query values and user info are often credentials too (?token=).
  // The flat settings count even when their sink is off: a value is a
  // secret wherever it was written. Named sinks carry their own.
  const specs: SinkSpec[] = [
    ...config.outputs,
    { name: "", type: "webhook", webhook: config.webhook },
    { name: "", type: "datadog", datadog: config.datadog },
    { name: "", type: "otlp", otlp: config.otlp },
  ];
  return specs.flatMap((spec) => {
    switch (spec.type) {
      case "webhook":
        return [
          spec.webhook.bearerToken,
          ...Object.values(spec.webhook.headers),
          ...urlSecrets(spec.webhook.url),
        ];
      case "datadog":
        return [
          spec.datadog.apiKey,
          ...urlSecrets(spec.datadog.url),
          ...urlSecrets(spec.datadog.proxy),
        ];
      case "otlp":
        return [...Object.values(spec.otlp.headers), ...urlSecrets(spec.otlp.url)];
      default:
        return [];
    }
  }).filter((s): s is string => s !== undefined);
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

/**
 * Runs `kevents run` until `ctx.stop`: logging, configuration, kubeconfig,
 * sinks and the health server, then the collector. Returns the exit code:
 * 2 for bad configuration (nothing started), 1 when the health endpoint
 * cannot be served, 0 after a clean stop.
 */
export async function runRun(cmd: RunCommand, ctx: CommandContext): Promise<number> {
  const { env } = ctx;
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
    const loaded = loadSettings(cmd, env);
    config = loaded.config;
    const kube = loaded.kube;
    addLogSecrets([...configSecrets(config), ...kubeConfigSecrets(kube.config)]);
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
  const logStop = () => log.info("Stopping on {signal}", { signal: stopName(ctx.stop) });
  ctx.stop.addEventListener("abort", logStop, { once: true });
  try {
    log.info("Starting as {identity}", { identity });
    started = true;
    await runCollector({ client, config, identity, sinks, metrics, liveness }, ctx.stop);
    return 0;
  } finally {
    ctx.stop.removeEventListener("abort", logStop);
    await health.close();
    await Promise.all(sinks.map((s) => s.close()));
    await client.close();
    log.info("Stopped");
    await teardownLogging();
  }
}
