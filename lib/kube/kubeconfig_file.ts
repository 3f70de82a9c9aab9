/**
 * Kubeconfig files as kubectl reads them, without @kubernetes/client-node's
 * runtime (whose `KubeConfig` pulls in its whole generated API, ~55 MiB of
 * memory, for a few hundred lines of work):
 *
 * - {@linkcode parseKubeconfig} reads one file into clusters, users and
 *   contexts, with relative paths made the file's, and checks each field's
 *   type;
 * - {@linkcode mergeKubeconfigs} merges a `KUBECONFIG` list as client-go
 *   does: the first file that names a cluster, user or context wins it, and
 *   the first `current-context` set wins;
 * - kubeconfig_check.ts then checks what the current context uses;
 * - {@linkcode flattenedView} is what `kubectl config view --minify --raw
 *   --flatten -o json` prints for the same files, the tests' oracle.
 *
 * @module
 */

import YAML from "yaml";

/** The exec credential plugin API versions client-go accepts. */
export const EXEC_API_VERSIONS: readonly string[] = [
  "client.authentication.k8s.io/v1",
  "client.authentication.k8s.io/v1beta1",
];

/**
 * Raised when no usable kubeconfig can be loaded. The message says which
 * file and field failed, the value, and the rule it breaks.
 */
export class KubeConfigError extends Error {
  /** The kubeconfig file, when one is to blame. */
  readonly file: string | undefined;
  /** The field, as a path (`clusters[c1].cluster.server`). */
  readonly field: string | undefined;
  /** The offending value. */
  readonly value: string | undefined;
  /** The rule it breaks. */
  readonly rule: string | undefined;

  constructor(
    message: string,
    options?: { cause?: unknown; file?: string; field?: string; value?: string; rule?: string },
  ) {
    super(message, options);
    this.name = "KubeConfigError";
    this.file = options?.file;
    this.field = options?.field;
    this.value = options?.value;
    this.rule = options?.rule;
  }
}

/** A field's error: `Cannot use kubeconfig file F: FIELD "VALUE": RULE`. */
export function fieldError(
  file: string,
  field: string,
  value: unknown,
  rule: string,
  cause?: unknown,
): KubeConfigError {
  const shown = typeof value === "string" ? value : JSON.stringify(value) ?? String(value);
  return new KubeConfigError(
    `Cannot use kubeconfig file ${file}: ${field} ${JSON.stringify(shown)}: ${rule}`,
    { file, field, value: shown, rule, cause },
  );
}

/** An exec credential plugin (users[].user.exec). */
export interface ExecConfig {
  apiVersion: string;
  /** As written; {@linkcode ExecConfig.resolvedCommand} is the one run. */
  command: string;
  /** The command with a relative path made the kubeconfig folder's (client-go does the same). */
  resolvedCommand: string;
  args: string[];
  env: { name: string; value: string }[];
  provideClusterInfo: boolean;
  interactiveMode?: string;
  installHint?: string;
}

/** A cluster entry; paths are absolute. Names follow client-node's, which tests also use. */
export interface Cluster {
  name: string;
  server: string;
  /** Base64 of the PEM bundle (certificate-authority-data). */
  caData?: string;
  /** certificate-authority, made absolute. */
  caFile?: string;
  skipTLSVerify: boolean;
  tlsServerName?: string;
  proxyUrl?: string;
  /** The file the entry came from. */
  file: string;
}

/** A user entry; paths are absolute. */
export interface User {
  name: string;
  /** The token, trimmed of surrounding whitespace (no header may hold a newline). */
  token?: string;
  /** The token as written (kubectl's view shows it so). */
  tokenAsWritten?: string;
  /** tokenFile as written (kubectl's view shows it so). */
  tokenFileAsWritten?: string;
  /** tokenFile, made absolute. */
  tokenFile?: string;
  certData?: string;
  certFile?: string;
  keyData?: string;
  keyFile?: string;
  username?: string;
  password?: string;
  impersonateUser?: string;
  impersonateGroups?: string[];
  impersonateUid?: string;
  exec?: ExecConfig;
  /** Present only to be refused with a clear message. */
  authProvider?: { name?: string };
  file: string;
}

/** A context entry. */
export interface Context {
  name: string;
  cluster: string;
  user: string;
  namespace?: string;
  file: string;
}

/** One or more kubeconfig files, merged. */
export interface Kubeconfig {
  clusters: Cluster[];
  users: User[];
  contexts: Context[];
  currentContext: string;
  /** The files read, in order. */
  files: string[];
}

/** The folder of a file path ("." for a bare name). */
export function dirOf(path: string): string {
  return path.includes("/") ? path.slice(0, path.lastIndexOf("/")) || "/" : ".";
}

/** `path` made relative to `dir` when it is not absolute. */
function resolvePath(dir: string, path: string): string {
  return path.startsWith("/") ? path : `${dir}/${path}`;
}

type Obj = Record<string, unknown>;

/** Reads the typed fields of one YAML mapping, naming the field on a type error. */
class Fields {
  constructor(readonly file: string, readonly at: string, readonly obj: Obj) {}

  #fail(key: string, value: unknown, rule: string): never {
    throw fieldError(this.file, `${this.at}.${key}`, value, rule);
  }

  string(key: string): string | undefined {
    const v = this.obj[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "string") this.#fail(key, v, "must be a string");
    return v === "" ? undefined : v;
  }

  bool(key: string): boolean {
    const v = this.obj[key];
    if (v === undefined || v === null) return false;
    if (typeof v !== "boolean") this.#fail(key, v, "must be true or false");
    return v;
  }

  strings(key: string): string[] | undefined {
    const v = this.obj[key];
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v) || v.some((s) => typeof s !== "string")) {
      this.#fail(key, v, "must be a list of strings");
    }
    return v as string[];
  }

  object(key: string): Obj | undefined {
    const v = this.obj[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "object" || Array.isArray(v)) this.#fail(key, v, "must be a mapping");
    return v as Obj;
  }
}

/** The named entries of a list (`clusters`, `users`, `contexts`), with their inner mapping. */
function namedEntries(
  file: string,
  doc: Obj,
  list: string,
  inner: string,
): { name: string; fields: Fields }[] {
  const v = doc[list];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw fieldError(file, list, v, "must be a list");
  return v.map((entry, i) => {
    if (entry === null || typeof entry !== "object" || Array.isArray(entry)) {
      throw fieldError(file, `${list}[${i}]`, entry, "must be a mapping with name and " + inner);
    }
    const name = (entry as Obj).name;
    if (typeof name !== "string" || name === "") {
      throw fieldError(file, `${list}[${i}].name`, name ?? "", "must be a non-empty string");
    }
    const body = (entry as Obj)[inner] ?? {};
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      throw fieldError(file, `${list}[${name}].${inner}`, body, "must be a mapping");
    }
    return { name, fields: new Fields(file, `${list}[${name}].${inner}`, body as Obj) };
  });
}

function parseExec(f: Fields, dir: string): ExecConfig | undefined {
  const exec = f.object("exec");
  if (exec === undefined) return undefined;
  const e = new Fields(f.file, `${f.at}.exec`, exec);
  const command = e.string("command") ?? "";
  const envList = exec.env;
  const env: { name: string; value: string }[] = [];
  if (envList !== undefined && envList !== null) {
    if (!Array.isArray(envList)) throw fieldError(f.file, `${e.at}.env`, envList, "must be a list");
    for (const [i, item] of envList.entries()) {
      const v = item as Obj | null;
      if (v === null || typeof v !== "object" || typeof v.name !== "string") {
        throw fieldError(
          f.file,
          `${e.at}.env[${i}]`,
          item,
          "must be a mapping with name and value",
        );
      }
      env.push({ name: v.name, value: typeof v.value === "string" ? v.value : "" });
    }
  }
  return {
    apiVersion: e.string("apiVersion") ?? "",
    command,
    // client-go: a command with a path separator is relative to the kubeconfig's folder;
    // a bare name is looked up on PATH.
    resolvedCommand: command.includes("/") ? resolvePath(dir, command) : command,
    args: e.strings("args") ?? [],
    env,
    provideClusterInfo: e.bool("provideClusterInfo"),
    // client-go defaults it for v1beta1 (kubectl's view shows it); v1 must set it.
    interactiveMode: e.string("interactiveMode") ??
      (e.string("apiVersion") === "client.authentication.k8s.io/v1beta1"
        ? "IfAvailable"
        : undefined),
    installHint: e.string("installHint"),
  };
}

/** Parses one kubeconfig file's text; `file` names it in errors and anchors relative paths. */
export function parseKubeconfig(file: string, text: string): Kubeconfig {
  let parsed: unknown;
  try {
    parsed = YAML.parse(text);
  } catch (e) {
    // The parser's message goes on with an excerpt of the file: its first line says it all.
    const first = (e instanceof Error ? e.message : String(e)).split("\n")[0];
    throw new KubeConfigError(`Cannot parse kubeconfig ${file}: ${first}`, { cause: e, file });
  }
  if (parsed === null || parsed === undefined) parsed = {};
  if (typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new KubeConfigError(
      `Cannot parse kubeconfig ${file}: it is not a YAML mapping (apiVersion, kind, clusters...)`,
      { file },
    );
  }
  const doc = parsed as Obj;
  const dir = dirOf(file);
  const current = doc["current-context"];
  if (current !== undefined && current !== null && typeof current !== "string") {
    throw fieldError(file, "current-context", current, "must be a string");
  }
  const clusters = namedEntries(file, doc, "clusters", "cluster").map(({ name, fields: f }) => {
    const caFile = f.string("certificate-authority");
    return {
      name,
      server: f.string("server") ?? "",
      caData: f.string("certificate-authority-data"),
      caFile: caFile === undefined ? undefined : resolvePath(dir, caFile),
      skipTLSVerify: f.bool("insecure-skip-tls-verify"),
      tlsServerName: f.string("tls-server-name"),
      proxyUrl: f.string("proxy-url"),
      file,
    } satisfies Cluster;
  });
  const users = namedEntries(file, doc, "users", "user").map(({ name, fields: f }) => {
    const certFile = f.string("client-certificate");
    const keyFile = f.string("client-key");
    const tokenFile = f.string("tokenFile");
    const provider = f.object("auth-provider");
    const token = f.string("token");
    return {
      name,
      token: token?.trim() || undefined,
      tokenAsWritten: token,
      tokenFileAsWritten: tokenFile,
      tokenFile: tokenFile === undefined ? undefined : resolvePath(dir, tokenFile),
      certData: f.string("client-certificate-data"),
      certFile: certFile === undefined ? undefined : resolvePath(dir, certFile),
      keyData: f.string("client-key-data"),
      keyFile: keyFile === undefined ? undefined : resolvePath(dir, keyFile),
      username: f.string("username"),
      password: f.string("password"),
      impersonateUser: f.string("as"),
      impersonateGroups: f.strings("as-groups"),
      impersonateUid: f.string("as-uid"),
      exec: parseExec(f, dir),
      authProvider: provider === undefined
        ? undefined
        : { name: typeof provider.name === "string" ? provider.name : undefined },
      file,
    } satisfies User;
  });
  const contexts = namedEntries(file, doc, "contexts", "context").map(({ name, fields: f }) => ({
    name,
    cluster: f.string("cluster") ?? "",
    user: f.string("user") ?? "",
    namespace: f.string("namespace"),
    file,
  } satisfies Context));
  return {
    clusters,
    users,
    contexts,
    currentContext: typeof current === "string" ? current : "",
    files: [file],
  };
}

/**
 * Merges kubeconfigs in `KUBECONFIG` order as client-go does: the first
 * file to name a cluster, user or context keeps it, and the first
 * non-empty `current-context` wins.
 */
export function mergeKubeconfigs(configs: readonly Kubeconfig[]): Kubeconfig {
  const merged: Kubeconfig = {
    clusters: [],
    users: [],
    contexts: [],
    currentContext: "",
    files: [],
  };
  const add = <T extends { name: string }>(into: T[], from: readonly T[]) => {
    for (const entry of from) {
      if (!into.some((e) => e.name === entry.name)) into.push(entry);
    }
  };
  for (const c of configs) {
    add(merged.clusters, c.clusters);
    add(merged.users, c.users);
    add(merged.contexts, c.contexts);
    if (merged.currentContext === "") merged.currentContext = c.currentContext;
    merged.files.push(...c.files);
  }
  return merged;
}

/** The current context with its cluster and user (undefined: anonymous). */
export interface Current {
  context: Context;
  cluster: Cluster;
  user: User | undefined;
}

/** Finds the current context, its cluster and its user; KubeConfigError when one is missing. */
export function currentOf(config: Kubeconfig, origin: string): Current {
  const name = config.currentContext;
  if (name === "") {
    throw new KubeConfigError(`Cannot use kubeconfig ${origin}: it has no current context`);
  }
  const context = config.contexts.find((c) => c.name === name);
  if (context === undefined) {
    throw new KubeConfigError(
      `Cannot use kubeconfig ${origin}: it has no current context (current-context "${name}" ` +
        "names no context)",
    );
  }
  const cluster = config.clusters.find((c) => c.name === context.cluster);
  if (context.cluster === "" || cluster === undefined) {
    throw new KubeConfigError(
      `Cannot use kubeconfig ${origin}: context "${name}" names no cluster` +
        (context.cluster === "" ? "" : ` ("${context.cluster}" is not defined)`),
      {
        file: context.file,
        field: `contexts[${name}].context.cluster`,
        value: context.cluster,
        rule: "must name a cluster the kubeconfig defines",
      },
    );
  }
  let user: User | undefined;
  if (context.user !== "") {
    user = config.users.find((u) => u.name === context.user);
    if (user === undefined) {
      throw new KubeConfigError(
        `Cannot use kubeconfig ${origin}: context "${name}" names user "${context.user}", ` +
          "which the kubeconfig does not define",
      );
    }
  }
  return { context, cluster, user };
}

/** base64 of a file's bytes, as `kubectl config view --flatten` embeds it. */
function fileAsBase64(path: string): string {
  const bytes = Deno.readFileSync(path);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/**
 * The current context as `kubectl config view --minify --raw --flatten -o
 * json` prints it: certificate files embedded as base64 data, everything
 * else as written. Tests compare it with kubectl's.
 */
export function flattenedView(config: Kubeconfig, origin = "the kubeconfig"): unknown {
  const { context, cluster, user } = currentOf(config, origin);
  const c: Obj = { server: cluster.server };
  if (cluster.tlsServerName !== undefined) c["tls-server-name"] = cluster.tlsServerName;
  if (cluster.skipTLSVerify) c["insecure-skip-tls-verify"] = true;
  if (cluster.caFile !== undefined) c["certificate-authority-data"] = fileAsBase64(cluster.caFile);
  if (cluster.caData !== undefined) c["certificate-authority-data"] = cluster.caData;
  if (cluster.proxyUrl !== undefined) c["proxy-url"] = cluster.proxyUrl;
  let users: unknown = null;
  if (user !== undefined) {
    const u: Obj = {};
    if (user.certFile !== undefined) u["client-certificate-data"] = fileAsBase64(user.certFile);
    if (user.certData !== undefined) u["client-certificate-data"] = user.certData;
    if (user.keyFile !== undefined) u["client-key-data"] = fileAsBase64(user.keyFile);
    if (user.keyData !== undefined) u["client-key-data"] = user.keyData;
    if (user.tokenAsWritten !== undefined) u.token = user.tokenAsWritten;
    if (user.tokenFileAsWritten !== undefined) u.tokenFile = user.tokenFileAsWritten;
    if (user.impersonateUser !== undefined) u.as = user.impersonateUser;
    if (user.impersonateUid !== undefined) u["as-uid"] = user.impersonateUid;
    if (user.impersonateGroups !== undefined) u["as-groups"] = user.impersonateGroups;
    if (user.username !== undefined) u.username = user.username;
    if (user.password !== undefined) u.password = user.password;
    if (user.exec !== undefined) {
      const e = user.exec;
      const exec: Obj = {
        command: e.command,
        args: e.args.length === 0 ? null : e.args,
        env: e.env.length === 0 ? null : e.env,
        apiVersion: e.apiVersion,
        provideClusterInfo: e.provideClusterInfo,
      };
      if (e.installHint !== undefined) exec.installHint = e.installHint;
      if (e.interactiveMode !== undefined) exec.interactiveMode = e.interactiveMode;
      u.exec = exec;
    }
    users = [{ name: user.name, user: u }];
  }
  const ctx: Obj = { cluster: context.cluster, user: context.user };
  if (context.namespace !== undefined) ctx.namespace = context.namespace;
  return {
    kind: "Config",
    apiVersion: "v1",
    preferences: {},
    clusters: [{ name: cluster.name, cluster: c }],
    users,
    contexts: [{ name: context.name, context: ctx }],
    "current-context": context.name,
  };
}
