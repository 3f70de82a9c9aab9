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
 * Credentials follow kubectl (client-go) where client-node differs: a
 * token, from the kubeconfig or a token file, is trimmed of surrounding
 * whitespace (a token written to a file or a Secret often ends in a
 * newline, which no HTTP header may hold); a user's `tokenFile` is read,
 * and read again every minute; and an `http://` server (`kubectl proxy`)
 * is accepted but gets no credentials, as client-go sends them only over
 * TLS, where client-node refuses the server outright unless
 * `insecure-skip-tls-verify` is set.
 *
 * @module
 */

import { KubeConfig, type RequestContext, type User } from "@kubernetes/client-node";
import { Agent } from "undici";
import YAML from "yaml";

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

/** Why a file could not be read, in words. */
function readFailure(e: unknown): string {
  if (e instanceof Deno.errors.PermissionDenied) {
    return "permission denied (its mode or owner keeps kevents out)";
  }
  if (e instanceof Deno.errors.NotCapable) {
    return "kevents is not allowed to read it (Deno's --allow-read)";
  }
  if (e instanceof Deno.errors.IsADirectory) return "it is a directory";
  return e instanceof Error ? e.message : String(e);
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

/** The exec credential plugin API versions client-go accepts. */
export const EXEC_API_VERSIONS: readonly string[] = [
  "client.authentication.k8s.io/v1",
  "client.authentication.k8s.io/v1beta1",
];

/**
 * Checks that the current context's user authenticates in a way kevents
 * can keep up for as long as it runs: a token, a client certificate, a user
 * name and password, or an exec credential plugin of a known API version
 * that kevents may run. An `auth-provider` is refused: client-go removed its
 * gcp and azure providers in Kubernetes 1.26, and the oidc one cannot
 * refresh its token here, so each would end in a stream of 401s.
 */
function checkUser(config: KubeConfig, origin: string, context: string): void {
  const name = config.getContextObject(context)?.user ?? "";
  const where = `Cannot use kubeconfig ${origin}: context "${context}"`;
  if (name === "") return; // No user: anonymous requests, which the server judges.
  const user = config.getUser(name);
  if (user === null) {
    throw new KubeConfigError(
      `${where} names user "${name}", which the kubeconfig does not define`,
    );
  }
  const what = `${where}, user "${name}"`;
  const provider = user.authProvider as { name?: string } | undefined | null;
  if (provider !== undefined && provider !== null) {
    const removed = provider.name === "gcp" || provider.name === "azure"
      ? " (removed from kubectl and client-go in Kubernetes 1.26)"
      : "";
    throw new KubeConfigError(
      `${what}: auth-provider "${provider.name ?? ""}"${removed} is not supported: use a ` +
        "token, a client certificate or an exec credential plugin (users[].user.exec)",
    );
  }
  const exec = user.exec as { apiVersion?: string; command?: string } | undefined | null;
  if (exec === undefined || exec === null) return;
  if (!EXEC_API_VERSIONS.includes(exec.apiVersion ?? "")) {
    throw new KubeConfigError(
      `${what}: exec apiVersion "${exec.apiVersion ?? ""}" is not supported: use ` +
        EXEC_API_VERSIONS.join(" or "),
    );
  }
  const command = exec.command ?? "";
  if (command === "") throw new KubeConfigError(`${what}: exec names no command`);
  const run = Deno.permissions.querySync({ name: "run", command });
  if (run.state !== "granted") {
    throw new KubeConfigError(
      `${what}: the exec credential plugin "${command}" cannot run, as kevents is not allowed ` +
        "to start programs (Deno's --allow-run, which the kevents binary is built without): " +
        "use a token or a client certificate",
    );
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
  /** The kubeconfig users' token files, checked below for the current user. */
  const userTokenFiles = new Map<string, string>();
  if (file !== undefined) {
    let text: string;
    try {
      text = Deno.readTextFileSync(file);
    } catch (e) {
      throw new KubeConfigError(`Cannot read kubeconfig ${file}: ${readFailure(e)}`, { cause: e });
    }
    try {
      config.loadFromString(text);
      // As loadFromFile does: relative certificate and key paths are the file's.
      const dir = file.includes("/") ? file.slice(0, file.lastIndexOf("/")) || "/" : ".";
      config.makePathsAbsolute(dir);
      config.users = config.users.map(trimmedToken);
      for (const [user, path] of tokenFiles(text)) {
        // Relative to the kubeconfig's folder, as kubectl resolves it.
        const absolute = path.startsWith("/") ? path : `${dir}/${path}`;
        config.setTokenFile(user, absolute);
        userTokenFiles.set(user, absolute);
      }
    } catch (e) {
      throw new KubeConfigError(
        // The YAML parser's message goes on with an excerpt of the file: its first line says it all.
        `Cannot parse kubeconfig ${file}: ${
          (e instanceof Error ? e.message : String(e)).split("\n")[0]
        }`,
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
      { name: "in-cluster" },
    );
    // Read again every minute: the kubelet rotates a projected token.
    config.setTokenFile("in-cluster", `${dir}/token`);
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
  if (origin !== "in-cluster") checkUser(config, origin, context);
  const userName = config.getContextObject(context)?.user ?? "";
  const tokenFile = userTokenFiles.get(userName);
  if (tokenFile !== undefined) {
    try {
      Deno.readTextFileSync(tokenFile);
    } catch (e) {
      throw new KubeConfigError(
        `Cannot use kubeconfig ${origin}: context "${context}", user "${userName}": ` +
          `cannot read its tokenFile ${tokenFile}: ${readFailure(e)}`,
        { cause: e },
      );
    }
  }
  const warnings: string[] = [];
  if (cluster.skipTLSVerify && !isPlainHttp(cluster.server)) {
    warnings.push(
      `TLS verification of ${cluster.server} is off (insecure-skip-tls-verify in ${origin})`,
    );
  }
  const user = config.getCurrentUser();
  if (isPlainHttp(cluster.server) && user !== null && hasCredentials(user, config)) {
    warnings.push(
      `The credentials of user "${user.name}" (${origin}) are not sent to ${cluster.server}: ` +
        "as with kubectl, they go only over TLS (https://); a plain-HTTP server such as " +
        "kubectl proxy adds its own",
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

/** Whether a server URL is plain HTTP, which gets no credentials (see the module documentation). */
function isPlainHttp(server: string): boolean {
  return server.toLowerCase().startsWith("http:");
}

/** Whether `user` would authenticate over TLS. */
function hasCredentials(user: User, config: PooledKubeConfig): boolean {
  return [user.token, user.certData, user.certFile, user.username, user.password]
    .some((v) => v !== undefined && v !== null && v !== "") ||
    (user.exec !== undefined && user.exec !== null) || config.hasTokenFile(user.name);
}

/** `user` with its token trimmed of surrounding whitespace, as kubectl reads a token file. */
function trimmedToken(user: User): User {
  return typeof user.token === "string" && user.token !== user.token.trim()
    ? { ...user, token: user.token.trim() }
    : user;
}

/**
 * The `tokenFile` of each user of a kubeconfig (kubectl's key, which
 * client-node does not read), by user name, for users without a `token`,
 * which wins over it as in kubectl.
 */
function tokenFiles(text: string): Map<string, string> {
  const files = new Map<string, string>();
  const doc = YAML.parse(text) as { users?: unknown } | null;
  if (doc === null || typeof doc !== "object" || !Array.isArray(doc.users)) return files;
  for (const entry of doc.users as { name?: unknown; user?: Record<string, unknown> }[]) {
    const file = entry?.user?.tokenFile;
    const token = entry?.user?.token;
    if (typeof entry?.name !== "string" || typeof file !== "string" || file === "") continue;
    if (typeof token === "string" && token !== "") continue;
    files.set(entry.name, file);
  }
  return files;
}

/** How long a token read from a file is used before the file is read again: client-go's minute. */
export const TOKEN_FILE_REFRESH_MS = 60_000;

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
  /** Token files by user name, with the token last read from each and when. */
  #tokenFiles = new Map<string, { path: string; token?: string; readAt?: number }>();

  /**
   * Authenticates `user` with the bearer token in the file at `path`
   * (trimmed), read on first use and again every {@linkcode TOKEN_FILE_REFRESH_MS}.
   */
  setTokenFile(user: string, path: string): void {
    this.#tokenFiles.set(user, { path });
  }

  /** Whether `user` authenticates with a token file. */
  hasTokenFile(user: string): boolean {
    return this.#tokenFiles.has(user);
  }

  /** The token of the current user's token file; the last one read when a later read fails. */
  #fileToken(user: string): string | undefined {
    const file = this.#tokenFiles.get(user);
    if (file === undefined) return undefined;
    const now = Date.now();
    if (file.readAt === undefined || now - file.readAt >= TOKEN_FILE_REFRESH_MS) {
      try {
        file.token = Deno.readTextFileSync(file.path).trim();
        file.readAt = now;
      } catch (e) {
        // As client-go: a rotation in progress keeps the token read last.
        if (file.token === undefined) {
          throw new Error(
            `Cannot read the token file ${file.path}: ${e instanceof Error ? e.message : e}`,
            { cause: e },
          );
        }
      }
    }
    return file.token === "" ? undefined : file.token;
  }

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
   * token file, basic auth), refreshed as the authenticators decide. A
   * plain-HTTP server gets only the impersonation header, as from kubectl.
   */
  async authHeaders(): Promise<Record<string, string>> {
    const user = this.getCurrentUser();
    if (isPlainHttp(this.getCurrentCluster()?.server ?? "")) {
      // applyToHTTPSOptions would throw here: it also builds a Node agent
      // (unused: requests go through the pool), which refuses http://.
      return typeof user?.impersonateUser === "string"
        ? { "Impersonate-User": user.impersonateUser }
        : {};
    }
    const opts: { headers?: Record<string, string>; auth?: string } = {};
    await this.applyToHTTPSOptions(opts);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(opts.headers ?? {})) headers[k] = String(v);
    if (opts.auth !== undefined && !opts.auth.startsWith("undefined:")) {
      headers.Authorization = `Basic ${btoa(opts.auth)}`;
    }
    const fileToken = user === null || typeof user.token === "string" && user.token !== ""
      ? undefined
      : this.#fileToken(user.name);
    if (fileToken !== undefined) headers.Authorization = `Bearer ${fileToken}`;
    // A token an exec plugin printed with a newline: no header may hold one.
    const bearer = /^Bearer\s+(.*)$/s.exec(headers.Authorization ?? "");
    if (bearer !== null) headers.Authorization = `Bearer ${bearer[1]!.trim()}`;
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
