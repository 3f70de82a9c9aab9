/**
 * Exec credential plugins (`users[].user.exec`), as client-go runs them:
 * the command gets `KUBERNETES_EXEC_INFO` (an ExecCredential with
 * `spec.interactive: false` and, when asked, the cluster), prints an
 * ExecCredential whose status holds a token or a client certificate and
 * key, and may say when they expire. The credential is kept until then, or
 * until the API server answers 401; concurrent requests share one run.
 *
 * @module
 */

import type { ExecConfig } from "./kubeconfig_file.ts";

/** Raised when a plugin cannot be run or prints something that is not a usable credential. */
export class ExecCredentialError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ExecCredentialError";
  }
}

/** A credential a plugin printed. */
export interface ExecCredential {
  token?: string;
  /** PEM client certificate and key. */
  cert?: string;
  key?: string;
  /** When it expires (ms since the epoch); undefined: until the server refuses it. */
  expiresAt?: number;
}

/** The cluster a plugin is told about when `provideClusterInfo` is set. */
export interface ExecClusterInfo {
  server: string;
  tlsServerName?: string;
  skipTLSVerify: boolean;
  /** Base64 of the CA bundle. */
  caData?: string;
  proxyUrl?: string;
}

/** Options of {@linkcode ExecCredentialProvider}. */
export interface ExecCredentialOptions {
  cluster: ExecClusterInfo;
  /** The plugin is killed after this long (default 60 s). */
  timeoutMs?: number;
  /** A credential is renewed this long before it expires (default 10 s). */
  renewBeforeMs?: number;
  /** The clock (default Date.now). */
  now?: () => number;
  /** Called with every secret a plugin prints, for the log redactor. */
  onSecret?: (secret: string) => void;
}

/** The last lines of a plugin's stderr, for an error message. */
function tail(text: string): string {
  const lines = text.trim().split("\n").slice(-3).join(" | ");
  return lines.length > 300 ? `${lines.slice(0, 300)}...` : lines;
}

/** Runs an exec plugin on demand and keeps its credential until it expires. */
export class ExecCredentialProvider {
  readonly #exec: ExecConfig;
  readonly #o: ExecCredentialOptions;
  #cached: ExecCredential | undefined;
  #running: Promise<ExecCredential> | undefined;
  /** How many times the plugin ran (for tests and logs). */
  runs = 0;

  constructor(exec: ExecConfig, options: ExecCredentialOptions) {
    this.#exec = exec;
    this.#o = options;
  }

  /** The current credential, running the plugin when there is none or it (nearly) expired. */
  credential(): Promise<ExecCredential> {
    const now = (this.#o.now ?? Date.now)();
    const cached = this.#cached;
    if (
      cached !== undefined &&
      (cached.expiresAt === undefined ||
        now < cached.expiresAt - (this.#o.renewBeforeMs ?? 10_000))
    ) {
      return Promise.resolve(cached);
    }
    this.#running ??= this.#run().then((c) => {
      this.#cached = c;
      return c;
    }).finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  /** Forgets the credential (the server refused it): the next request runs the plugin again. */
  invalidate(): void {
    this.#cached = undefined;
  }

  #execInfo(): string {
    const c = this.#o.cluster;
    const spec: Record<string, unknown> = { interactive: false };
    if (this.#exec.provideClusterInfo) {
      const cluster: Record<string, unknown> = { server: c.server };
      if (c.tlsServerName !== undefined) cluster["tls-server-name"] = c.tlsServerName;
      if (c.skipTLSVerify) cluster["insecure-skip-tls-verify"] = true;
      if (c.caData !== undefined) cluster["certificate-authority-data"] = c.caData;
      if (c.proxyUrl !== undefined) cluster["proxy-url"] = c.proxyUrl;
      spec.cluster = cluster;
    }
    return JSON.stringify({ apiVersion: this.#exec.apiVersion, kind: "ExecCredential", spec });
  }

  async #run(): Promise<ExecCredential> {
    const exec = this.#exec;
    const what = `The exec credential plugin "${exec.command}"`;
    const env: Record<string, string> = { KUBERNETES_EXEC_INFO: this.#execInfo() };
    for (const { name, value } of exec.env) env[name] = value;
    const timeoutMs = this.#o.timeoutMs ?? 60_000;
    this.runs++;
    let out: Deno.CommandOutput;
    try {
      out = await new Deno.Command(exec.resolvedCommand, {
        args: exec.args,
        env,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(timeoutMs),
      }).output();
    } catch (e) {
      const hint = exec.installHint === undefined ? "" : ` (${exec.installHint.trim()})`;
      throw new ExecCredentialError(
        `${what} cannot be run: ${e instanceof Error ? e.message : e}${hint}`,
        { cause: e },
      );
    }
    const stderr = new TextDecoder().decode(out.stderr);
    if (out.signal !== null) {
      throw new ExecCredentialError(
        `${what} was stopped by ${out.signal}` +
          (out.signal === "SIGTERM" ? ` (it did not finish within ${timeoutMs} ms)` : "") +
          (stderr.trim() === "" ? "" : `: ${tail(stderr)}`),
      );
    }
    if (!out.success) {
      throw new ExecCredentialError(
        `${what} exited with code ${out.code}` + (stderr.trim() === "" ? "" : `: ${tail(stderr)}`),
      );
    }
    return this.#parse(new TextDecoder().decode(out.stdout), what);
  }

  #parse(stdout: string, what: string): ExecCredential {
    let doc: unknown;
    try {
      doc = JSON.parse(stdout);
    } catch (e) {
      throw new ExecCredentialError(`${what} printed something that is not JSON`, { cause: e });
    }
    const cred = doc as {
      kind?: unknown;
      apiVersion?: unknown;
      status?: {
        token?: unknown;
        clientCertificateData?: unknown;
        clientKeyData?: unknown;
        expirationTimestamp?: unknown;
      };
    } | null;
    if (cred === null || typeof cred !== "object" || cred.kind !== "ExecCredential") {
      throw new ExecCredentialError(`${what} printed JSON that is not an ExecCredential`);
    }
    if (cred.apiVersion !== this.#exec.apiVersion) {
      throw new ExecCredentialError(
        `${what} printed an ExecCredential of apiVersion "${String(cred.apiVersion)}", not the ` +
          `kubeconfig's "${this.#exec.apiVersion}"`,
      );
    }
    const status = cred.status;
    if (status === undefined || status === null || typeof status !== "object") {
      throw new ExecCredentialError(`${what} printed an ExecCredential without a status`);
    }
    const result: ExecCredential = {};
    if (typeof status.token === "string" && status.token.trim() !== "") {
      // A token with a trailing newline would make an invalid header.
      result.token = status.token.trim();
    }
    const cert = status.clientCertificateData;
    const key = status.clientKeyData;
    if ((typeof cert === "string" && cert !== "") !== (typeof key === "string" && key !== "")) {
      throw new ExecCredentialError(
        `${what} printed only one of clientCertificateData and clientKeyData: both are needed`,
      );
    }
    if (typeof cert === "string" && cert !== "") {
      result.cert = cert;
      result.key = key as string;
    }
    if (result.token === undefined && result.cert === undefined) {
      throw new ExecCredentialError(
        `${what} printed an ExecCredential with neither a token nor a client certificate`,
      );
    }
    const expiry = status.expirationTimestamp;
    if (expiry !== undefined && expiry !== null) {
      const at = typeof expiry === "string" ? Date.parse(expiry) : NaN;
      if (Number.isNaN(at)) {
        throw new ExecCredentialError(
          `${what} printed an expirationTimestamp that is not an RFC 3339 time: ${
            JSON.stringify(expiry)
          }`,
        );
      }
      result.expiresAt = at;
    }
    for (const secret of [result.token, result.key]) {
      if (secret !== undefined) this.#o.onSecret?.(secret);
    }
    return result;
  }
}
