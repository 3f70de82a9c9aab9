/**
 * Finding and loading the kubeconfig (`--kubeconfig`, the `KUBECONFIG`
 * list, `~/.kube/config` or the in-cluster service account), and the
 * credentials of every request.
 *
 * The files are read by kubeconfig_file.ts, not by @kubernetes/client-node,
 * whose `KubeConfig` costs ~55 MiB of memory at run time (its module pulls
 * in the whole generated API). Credentials follow kubectl (client-go): a
 * token, from the kubeconfig or a token file, is trimmed of surrounding
 * whitespace (a token written to a file or a Secret often ends in a
 * newline, which no HTTP header may hold); a `tokenFile` is read again
 * every minute and after a 401, as the kubelet rotates a projected token;
 * an exec plugin's credential is kept until it expires or is refused; and
 * an `http://` server (`kubectl proxy`) gets no credentials, as client-go
 * sends them only over TLS.
 *
 * @module
 */

import { ExecCredentialProvider } from "./exec_credential.ts";
import { type HttpTransport, openTransport } from "./http_transport.ts";
import {
  type Cluster,
  type Context,
  type Current,
  currentOf,
  flattenedView,
  type Kubeconfig,
  KubeConfigError,
  mergeKubeconfigs,
  parseKubeconfig,
  type User,
} from "./kubeconfig_file.ts";
import { readFailure, type Resolved, validateCurrent } from "./kubeconfig_check.ts";

export { EXEC_API_VERSIONS, KubeConfigError } from "./kubeconfig_file.ts";
export type { Cluster, Context, User } from "./kubeconfig_file.ts";

/** The in-cluster service-account folder. */
export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/** Where to look for a kubeconfig; main.ts fills this from flags and the environment. */
export interface KubeConfigSource {
  /** `--kubeconfig`: wins over everything. */
  path?: string;
  /** `KUBECONFIG`: a colon-separated list, merged as kubectl merges it. */
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
  /** "file /path", "files a:b", "in-cluster", for logs. */
  origin: string;
  /** The context's namespace (in-cluster: the pod's), if any. */
  namespace: string | undefined;
  /** Warnings to log (for example TLS verification switched off). */
  warnings: string[];
}

/** Whether `path` is a file; false when nothing is there; KubeConfigError when it cannot be looked at. */
function exists(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return false;
    throw new KubeConfigError(`Cannot read kubeconfig ${path}: ${readFailure(e)}`, { cause: e });
  }
}

function readKubeconfig(file: string): Kubeconfig {
  let text: string;
  try {
    text = Deno.readTextFileSync(file);
  } catch (e) {
    throw new KubeConfigError(`Cannot read kubeconfig ${file}: ${readFailure(e)}`, { cause: e });
  }
  return parseKubeconfig(file, text);
}

/** Whether kevents may start `command` (Deno's --allow-run). */
function canRun(command: string): boolean {
  return Deno.permissions.querySync({ name: "run", command }).state === "granted";
}

/**
 * Loads the kubeconfig: `path`, else the existing files of `envKubeconfig`
 * merged, else `~/.kube/config`, else the in-cluster service account.
 * Checks everything the current context uses (server URL, certificates,
 * token file, exec plugin), so that a kubeconfig that cannot work stops
 * kevents at start with the file, the field, the value and the rule.
 */
export function loadKubeConfig(source: KubeConfigSource): LoadedKubeConfig {
  const candidates = source.path !== undefined
    ? [source.path]
    : (source.envKubeconfig ?? "").split(":").filter((p) => p !== "");
  const explicit = candidates.length > 0;
  const home = source.home === undefined ? undefined : `${source.home}/.kube/config`;
  // kubectl skips the entries of KUBECONFIG that do not exist.
  const files = explicit
    ? candidates.filter(exists)
    : (home !== undefined && exists(home) ? [home] : []);
  if (explicit && files.length === 0) {
    const what = source.path !== undefined ? "--kubeconfig" : "KUBECONFIG";
    throw new KubeConfigError(
      `Cannot read kubeconfig from ${what} "${candidates.join(":")}": no such file`,
    );
  }
  const config = new PooledKubeConfig();
  let origin: string;
  if (files.length > 0) {
    origin = files.length === 1 ? `file ${files[0]}` : `files ${files.join(":")}`;
    config.load(mergeKubeconfigs(files.map(readKubeconfig)), origin);
  } else if (source.serviceHost !== undefined && source.serviceHost !== "") {
    const dir = source.serviceAccountDir ?? SERVICE_ACCOUNT_DIR;
    if (!exists(`${dir}/token`)) {
      throw new KubeConfigError(`Cannot use in-cluster config: ${dir}/token does not exist`);
    }
    const host = source.serviceHost.includes(":") ? `[${source.serviceHost}]` : source.serviceHost;
    const file = "in-cluster config";
    origin = "in-cluster";
    config.load({
      clusters: [{
        name: "in-cluster",
        server: `https://${host}:${source.servicePort ?? "443"}`,
        caFile: `${dir}/ca.crt`,
        skipTLSVerify: false,
        file,
      }],
      // Read again every minute and after a 401: the kubelet rotates a projected token.
      users: [{ name: "in-cluster", tokenFile: `${dir}/token`, file }],
      contexts: [{ name: "in-cluster", cluster: "in-cluster", user: "in-cluster", file }],
      currentContext: "in-cluster",
      files: [],
    }, origin);
  } else {
    throw new KubeConfigError(
      "Cannot find a kubeconfig: pass --kubeconfig, set KUBECONFIG, create ~/.kube/config, or run in a pod",
    );
  }
  config.validate(canRun);
  const cluster = config.getCurrentCluster()!;
  const warnings: string[] = [];
  if (cluster.skipTLSVerify && !isPlainHttp(cluster.server)) {
    warnings.push(
      `TLS verification of ${cluster.server} is off (insecure-skip-tls-verify in ${origin})`,
    );
  }
  const user = config.getCurrentUser();
  if (isPlainHttp(cluster.server) && user !== null && hasCredentials(user)) {
    warnings.push(
      `The credentials of user "${user.name}" (${origin}) are not sent to ${cluster.server}: ` +
        "as with kubectl, they go only over TLS (https://); a plain-HTTP server such as " +
        "kubectl proxy adds its own",
    );
  }
  let namespace = config.getContextObject(config.getCurrentContext())?.namespace;
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

/** Whether a server URL is plain HTTP, which gets no credentials (see the module documentation). */
function isPlainHttp(server: string): boolean {
  return server.toLowerCase().startsWith("http:");
}

/** Whether `user` would authenticate over TLS. */
function hasCredentials(user: User): boolean {
  return [user.token, user.tokenFile, user.certData, user.certFile, user.username, user.password]
    .some((v) => v !== undefined && v !== "") || user.exec !== undefined;
}

/** How long a token read from a file is used before the file is read again: client-go's minute. */
export const TOKEN_FILE_REFRESH_MS = 60_000;

/** Options for the shared connection pool. */
export interface PoolOptions {
  /** Idle keep-alive connections are closed after this long (default 30 s). */
  keepAliveTimeoutMs?: number;
}

/** A token file with the token last read from it and when. */
interface TokenFile {
  path: string;
  token?: string;
  readAt?: number;
}

/**
 * A loaded kubeconfig whose requests all go through one shared
 * HTTP/1.1 pool (http_transport.ts), through the cluster's `proxy-url`
 * when it has one.
 */
export class PooledKubeConfig {
  #config: Kubeconfig = { clusters: [], users: [], contexts: [], currentContext: "", files: [] };
  #origin = "the kubeconfig";
  #current: Current | undefined;
  #resolved: Resolved | undefined;
  #transport: Promise<HttpTransport> | undefined;
  /** The client certificate the pool was opened with. */
  #transportCert: string | undefined;
  #closed = false;
  #poolOptions: PoolOptions = {};
  #tokenFiles = new Map<string, TokenFile>();
  #exec: ExecCredentialProvider | undefined;
  /** Told every secret read at run time (token files, exec plugins), for the log redactor. */
  onSecret: ((secret: string) => void) | undefined;

  /** Replaces the configuration (one file or several merged); `origin` names it in errors. */
  load(config: Kubeconfig, origin: string): void {
    this.#config = config;
    this.#origin = origin;
    this.#current = undefined;
    this.#resolved = undefined;
    this.#exec = undefined;
    this.#tokenFiles.clear();
    for (const user of config.users) {
      if (user.token === undefined && user.tokenFile !== undefined) {
        this.#tokenFiles.set(user.name, { path: user.tokenFile });
      }
    }
  }

  /** Loads a kubeconfig's text; relative paths are `file`'s folder's (default: the working folder). */
  loadFromString(text: string, file = "./kubeconfig"): void {
    this.load(parseKubeconfig(file, text), `file ${file}`);
  }

  /** Loads a kubeconfig file. */
  loadFromFile(path: string): void {
    this.load(readKubeconfig(path), `file ${path}`);
  }

  /**
   * Checks everything the current context uses; `mayRun` says whether an
   * exec plugin's command may run. Throws KubeConfigError.
   */
  validate(mayRun: (command: string) => boolean = () => true): void {
    const current = currentOf(this.#config, this.#origin);
    this.#resolved = validateCurrent(current, { canRun: mayRun });
    this.#current = current;
  }

  #currentChecked(): { current: Current; resolved: Resolved } {
    if (this.#current === undefined || this.#resolved === undefined) this.validate();
    return { current: this.#current!, resolved: this.#resolved! };
  }

  /** The clusters, users and contexts, merged. */
  get clusters(): readonly Cluster[] {
    return this.#config.clusters;
  }
  get users(): readonly User[] {
    return this.#config.users;
  }
  get contexts(): readonly Context[] {
    return this.#config.contexts;
  }

  getCurrentContext(): string {
    return this.#config.currentContext;
  }

  getContextObject(name: string): Context | null {
    return this.#config.contexts.find((c) => c.name === name) ?? null;
  }

  getCurrentCluster(): Cluster | null {
    const context = this.getContextObject(this.#config.currentContext);
    return this.#config.clusters.find((c) => c.name === context?.cluster) ?? null;
  }

  getCurrentUser(): User | null {
    const context = this.getContextObject(this.#config.currentContext);
    return this.#config.users.find((u) => u.name === context?.user) ?? null;
  }

  /** What `kubectl config view --minify --raw --flatten -o json` prints for this kubeconfig. */
  view(): unknown {
    return flattenedView(this.#config, this.#origin);
  }

  /**
   * Authenticates `user` with the bearer token in the file at `path`
   * (trimmed), read on first use, every {@linkcode TOKEN_FILE_REFRESH_MS}
   * and after a 401.
   */
  setTokenFile(user: string, path: string): void {
    this.#tokenFiles.set(user, { path });
  }

  /** Whether `user` authenticates with a token file. */
  hasTokenFile(user: string): boolean {
    return this.#tokenFiles.has(user);
  }

  /** The token of a user's token file; the last one read when a later read fails. */
  #fileToken(user: string): string | undefined {
    const file = this.#tokenFiles.get(user);
    if (file === undefined) return undefined;
    const now = Date.now();
    if (file.readAt === undefined || now - file.readAt >= TOKEN_FILE_REFRESH_MS) {
      try {
        file.token = Deno.readTextFileSync(file.path).trim();
        file.readAt = now;
        if (file.token !== "") this.onSecret?.(file.token);
      } catch (e) {
        // As client-go: a rotation in progress keeps the token read last.
        if (file.token === undefined) {
          throw new Error(`Cannot read the token file ${file.path}: ${readFailure(e)}`, {
            cause: e,
          });
        }
      }
    }
    return file.token === "" ? undefined : file.token;
  }

  /**
   * The server refused the credentials (401): read the token file again and
   * run the exec plugin again on the next request, as client-go does.
   */
  credentialsRejected(): void {
    for (const file of this.#tokenFiles.values()) file.readAt = undefined;
    this.#exec?.invalidate();
  }

  /** Sets pool options; call before the first request. */
  configurePool(options: PoolOptions): void {
    this.#poolOptions = options;
  }

  /** The exec plugin of the current user, if it has one. */
  #execProvider(): ExecCredentialProvider | undefined {
    if (this.#exec !== undefined) return this.#exec;
    const { current, resolved } = this.#currentChecked();
    const exec = current.user?.exec;
    if (exec === undefined) return undefined;
    this.#exec = new ExecCredentialProvider(exec, {
      cluster: {
        server: resolved.server,
        tlsServerName: resolved.tlsServerName,
        skipTLSVerify: resolved.skipTLSVerify,
        caData: resolved.ca === undefined ? undefined : btoa(resolved.ca),
        proxyUrl: resolved.proxyUrl,
      },
      onSecret: (s) => this.onSecret?.(s),
    });
    return this.#exec;
  }

  /**
   * The shared connection pool, opened on first use from the current
   * cluster and user (and the exec plugin's client certificate, once
   * {@linkcode authHeaders} has run it). See http_transport.ts.
   */
  transport(): Promise<HttpTransport> {
    if (this.#closed) {
      return Promise.reject(new Error("Cannot send a request: the connection pool is closed"));
    }
    if (this.#transport !== undefined) return this.#transport;
    const { resolved } = this.#currentChecked();
    const cert = this.#execCert ?? (resolved.cert === undefined ? undefined : {
      cert: resolved.cert,
      key: resolved.key!,
    });
    this.#transportCert = cert?.cert;
    this.#transport = openTransport({
      ca: resolved.ca,
      cert: cert?.cert,
      key: cert?.key,
      skipTLSVerify: resolved.skipTLSVerify,
      tlsServerName: resolved.tlsServerName,
      proxyUrl: resolved.proxyUrl,
      keepAliveTimeoutMs: this.#poolOptions.keepAliveTimeoutMs,
    });
    return this.#transport;
  }

  #execCert: { cert: string; key: string } | undefined;

  /**
   * The headers that authenticate a request (bearer token, token file,
   * exec plugin, basic auth), refreshed as their sources decide, plus the
   * impersonation headers. A plain-HTTP server gets only the latter, as
   * from kubectl. Call before {@linkcode dispatcher}: an exec plugin's new
   * client certificate replaces the pool.
   */
  async authHeaders(): Promise<Record<string, string>> {
    const { current, resolved } = this.#currentChecked();
    const user = current.user;
    const headers: Record<string, string> = {};
    if (user === undefined) return headers;
    if (user.impersonateUser !== undefined) headers["Impersonate-User"] = user.impersonateUser;
    if (user.impersonateUid !== undefined) headers["Impersonate-Uid"] = user.impersonateUid;
    if (user.impersonateGroups !== undefined && user.impersonateGroups.length > 0) {
      headers["Impersonate-Group"] = user.impersonateGroups.join(", ");
    }
    if (isPlainHttp(resolved.server)) return headers;
    const token = user.token?.trim() || this.#fileToken(user.name);
    if (token !== undefined && token !== "") {
      headers.Authorization = `Bearer ${token}`;
      return headers;
    }
    const exec = this.#execProvider();
    if (exec !== undefined) {
      const credential = await exec.credential();
      if (credential.cert !== undefined && credential.cert !== this.#transportCert) {
        this.#execCert = { cert: credential.cert, key: credential.key! };
        this.#replaceTransport();
      }
      if (credential.token !== undefined) headers.Authorization = `Bearer ${credential.token}`;
      return headers;
    }
    if (user.username !== undefined || user.password !== undefined) {
      const pair = new TextEncoder().encode(`${user.username ?? ""}:${user.password ?? ""}`);
      headers.Authorization = `Basic ${btoa(String.fromCharCode(...pair))}`;
    }
    return headers;
  }

  /**
   * Opens a new pool on the next request (the exec plugin gave a new client
   * certificate). The old one is closed: a watch on it breaks and is
   * retried as after any broken connection.
   */
  #replaceTransport(): void {
    const old = this.#transport;
    this.#transport = undefined;
    old?.then((t) => t.close()).catch(() => {
      // A pool that failed to open has nothing to close.
    });
  }

  /** Closes the pool's connections. */
  async close(): Promise<void> {
    this.#closed = true;
    const transport = this.#transport;
    this.#transport = undefined;
    if (transport !== undefined) await (await transport).close();
  }
}
