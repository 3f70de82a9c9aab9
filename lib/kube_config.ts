/**
 * Finding and loading the kubeconfig (a file, `KUBECONFIG`, `~/.kube/config`
 * or the in-cluster service account), and the one shared HTTP/1.1
 * connection pool every request goes through.
 *
 * The pool matters: @kubernetes/client-node would negotiate HTTP/2 (whose
 * GOAWAY handling can abort a Deno process) and build a new TLS connection
 * per request. {@linkcode PooledKubeConfig} overrides how client-node
 * authenticates a request so that it, too, uses the shared pool.
 *
 * @module
 */

import { KubeConfig, type RequestContext } from "@kubernetes/client-node";
import { Agent } from "undici";

/** The in-cluster service-account folder. */
export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/** Raised when no usable kubeconfig can be loaded; the message says which source failed and why. */
export class KubeConfigError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "KubeConfigError";
  }
}

/** Where to look for a kubeconfig; main.ts fills this from flags and the environment. */
export interface KubeConfigSource {
  /** `--kubeconfig`: wins over everything. */
  path?: string;
  /** `KUBECONFIG` (first existing entry of a colon-separated list). */
  envKubeconfig?: string;
  /** `HOME`, for `~/.kube/config`. */
  home?: string;
  /** `KUBERNETES_SERVICE_HOST` / `KUBERNETES_SERVICE_PORT`, for in-cluster config. */
  serviceHost?: string;
  servicePort?: string;
  /** The service-account folder (default {@linkcode SERVICE_ACCOUNT_DIR}). */
  serviceAccountDir?: string;
}

/** A loaded kubeconfig and where it came from. */
export interface LoadedKubeConfig {
  config: PooledKubeConfig;
  /** "file /path", "in-cluster", for logs. */
  origin: string;
  /** The context's namespace (in-cluster: the pod's), if any. */
  namespace: string | undefined;
  /** Warnings to log (for example TLS verification switched off). */
  warnings: string[];
}

function exists(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/**
 * Loads the kubeconfig: `path`, else the first existing entry of
 * `envKubeconfig`, else `~/.kube/config`, else the in-cluster service account.
 * Checks that it names a current context with a cluster.
 */
export function loadKubeConfig(source: KubeConfigSource): LoadedKubeConfig {
  const config = new PooledKubeConfig();
  let origin: string;
  const candidates = source.path !== undefined
    ? [source.path]
    : (source.envKubeconfig ?? "").split(":").filter((p) => p !== "");
  const explicit = candidates.length > 0;
  const home = source.home === undefined ? undefined : `${source.home}/.kube/config`;
  const file = explicit
    ? candidates.find(exists)
    : (home !== undefined && exists(home) ? home : undefined);
  if (explicit && file === undefined) {
    const what = source.path !== undefined ? "--kubeconfig" : "KUBECONFIG";
    throw new KubeConfigError(
      `Cannot read kubeconfig from ${what} "${candidates.join(":")}": no such file`,
    );
  }
  if (file !== undefined) {
    try {
      config.loadFromFile(file);
    } catch (e) {
      throw new KubeConfigError(
        `Cannot parse kubeconfig ${file}: ${e instanceof Error ? e.message : e}`,
        { cause: e },
      );
    }
    origin = `file ${file}`;
  } else if (source.serviceHost !== undefined && source.serviceHost !== "") {
    const dir = source.serviceAccountDir ?? SERVICE_ACCOUNT_DIR;
    if (!exists(`${dir}/token`)) {
      throw new KubeConfigError(`Cannot use in-cluster config: ${dir}/token does not exist`);
    }
    const host = source.serviceHost.includes(":") ? `[${source.serviceHost}]` : source.serviceHost;
    config.loadFromClusterAndUser(
      {
        name: "in-cluster",
        server: `https://${host}:${source.servicePort ?? "443"}`,
        caFile: `${dir}/ca.crt`,
        skipTLSVerify: false,
      },
      {
        name: "in-cluster",
        authProvider: { name: "tokenFile", config: { tokenFile: `${dir}/token` } },
      },
    );
    origin = "in-cluster";
  } else {
    throw new KubeConfigError(
      "Cannot find a kubeconfig: pass --kubeconfig, set KUBECONFIG, create ~/.kube/config, or run in a pod",
    );
  }
  const context = config.getCurrentContext();
  if (context === undefined || context === "" || config.getContextObject(context) === null) {
    throw new KubeConfigError(`Cannot use kubeconfig ${origin}: it has no current context`);
  }
  const cluster = config.getCurrentCluster();
  if (cluster === null || cluster.server === "") {
    throw new KubeConfigError(
      `Cannot use kubeconfig ${origin}: context "${context}" names no cluster`,
    );
  }
  const warnings: string[] = [];
  if (cluster.skipTLSVerify) {
    warnings.push(
      `TLS verification of ${cluster.server} is off (insecure-skip-tls-verify in ${origin})`,
    );
  }
  let namespace = config.getContextObject(context)?.namespace;
  if (origin === "in-cluster") {
    const dir = source.serviceAccountDir ?? SERVICE_ACCOUNT_DIR;
    try {
      namespace = Deno.readTextFileSync(`${dir}/namespace`).trim() || undefined;
    } catch {
      // No namespace file: the caller falls back to its default namespace.
    }
  }
  return { config, origin, namespace, warnings };
}

/** Options for the shared connection pool. */
export interface PoolOptions {
  /** Idle keep-alive connections are closed after this long (default 30 s). */
  keepAliveTimeoutMs?: number;
}

/**
 * A KubeConfig whose requests, including those made by client-node's typed
 * APIs, go through one shared undici Agent speaking HTTP/1.1.
 */
export class PooledKubeConfig extends KubeConfig {
  #agent: Agent | undefined;
  #closed = false;
  #poolOptions: PoolOptions = {};

  /** Sets pool options; call before the first request. */
  configurePool(options: PoolOptions): void {
    this.#poolOptions = options;
  }

  /** The shared dispatcher, created on first use from the current cluster and user. */
  get dispatcher(): Agent {
    if (this.#agent !== undefined) return this.#agent;
    if (this.#closed) throw new Error("Cannot send a request: the connection pool is closed");
    const cluster = this.getCurrentCluster();
    const user = this.getCurrentUser();
    const read = (file?: string, data?: string): string | undefined => {
      if (file !== undefined && file !== "") return Deno.readTextFileSync(file);
      if (data !== undefined && data !== "") return atob(data);
      return undefined;
    };
    const connect: Record<string, unknown> = {};
    const ca = read(cluster?.caFile, cluster?.caData);
    if (ca !== undefined) connect.ca = ca;
    const cert = read(user?.certFile, user?.certData);
    if (cert !== undefined) connect.cert = cert;
    const key = read(user?.keyFile, user?.keyData);
    if (key !== undefined) connect.key = key;
    if (cluster?.skipTLSVerify === true) connect.rejectUnauthorized = false;
    if (cluster?.tlsServerName !== undefined) connect.servername = cluster.tlsServerName;
    this.#agent = new Agent({
      allowH2: false,
      connect,
      keepAliveTimeout: this.#poolOptions.keepAliveTimeoutMs ?? 30_000,
      keepAliveMaxTimeout: this.#poolOptions.keepAliveTimeoutMs ?? 30_000,
    });
    return this.#agent;
  }

  /**
   * The headers that authenticate a request (bearer token, exec plugin,
   * token file, basic auth), refreshed as the authenticators decide.
   */
  async authHeaders(): Promise<Record<string, string>> {
    const opts: { headers?: Record<string, string>; auth?: string } = {};
    await this.applyToHTTPSOptions(opts);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(opts.headers ?? {})) headers[k] = String(v);
    if (opts.auth !== undefined && !opts.auth.startsWith("undefined:")) {
      headers.Authorization = `Basic ${btoa(opts.auth)}`;
    }
    return headers;
  }

  /** Authenticates a client-node request and routes it through the shared pool. */
  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    for (const [k, v] of Object.entries(await this.authHeaders())) context.setHeaderParam(k, v);
    context.setDispatcher(this.dispatcher);
  }

  /** Closes the pool's connections. */
  async close(): Promise<void> {
    this.#closed = true;
    const agent = this.#agent;
    this.#agent = undefined;
    if (agent !== undefined) await agent.destroy();
  }
}
