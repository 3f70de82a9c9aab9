/**
 * Checks what the current context of a kubeconfig uses, so that a
 * kubeconfig that cannot work stops kevents at start (exit 2) with the
 * file, the field, the value and the rule, instead of retrying forever:
 * {@linkcode validateCurrent} reads the certificate and token files, checks
 * PEM blocks and base64 data, the server and proxy URLs, and the exec
 * plugin's API version.
 *
 * @module
 */

import { type Current, EXEC_API_VERSIONS, fieldError, KubeConfigError } from "./kubeconfig_file.ts";

/** Why a file could not be read, in words. */
export function readFailure(e: unknown): string {
  if (e instanceof Deno.errors.NotFound) return "no such file";
  if (e instanceof Deno.errors.PermissionDenied) {
    return "permission denied (its mode or owner keeps kevents out)";
  }
  if (e instanceof Deno.errors.NotCapable) {
    return "kevents is not allowed to read it (Deno's --allow-read)";
  }
  if (e instanceof Deno.errors.IsADirectory) return "it is a directory";
  return e instanceof Error ? e.message : String(e);
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([A-Za-z0-9+/=\r\n\t ]*?)-----END \1-----/g;

/** The types of the PEM blocks in `text` whose base64 body decodes; empty when there is none. */
function pemBlockTypes(text: string): string[] {
  const types: string[] = [];
  for (const m of text.matchAll(PEM_BLOCK)) {
    try {
      const der = atob(m[2]!.replace(/\s+/g, ""));
      // Every certificate and key in DER is an ASN.1 SEQUENCE.
      if (der.length > 0 && der.charCodeAt(0) === 0x30) types.push(m[1]!);
    } catch {
      // Not base64: not a block.
    }
  }
  return types;
}

/** Strict base64 decoding to text; undefined when `data` is not base64. */
function decodeBase64(data: string): string | undefined {
  const compact = data.replace(/\s+/g, "");
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(compact) || compact.length % 4 !== 0) return undefined;
  try {
    return new TextDecoder().decode(Uint8Array.from(atob(compact), (c) => c.charCodeAt(0)));
  } catch {
    return undefined;
  }
}

/** What a PEM field must hold. */
interface PemRule {
  /** "certificate": CERTIFICATE blocks; "key": a private key block. */
  kind: "certificate" | "key";
}

function pemProblem(text: string, rule: PemRule): string | undefined {
  const types = pemBlockTypes(text);
  if (rule.kind === "certificate") {
    return types.includes("CERTIFICATE")
      ? undefined
      : "must hold PEM certificates (-----BEGIN CERTIFICATE-----)";
  }
  return types.some((t) => t.endsWith("PRIVATE KEY"))
    ? undefined
    : "must hold a PEM private key (-----BEGIN ... PRIVATE KEY-----)";
}

/**
 * Reads a PEM field given as a file or as base64 data, checking it.
 * Returns the PEM text, or undefined when neither is set.
 */
export function readPem(
  file: string,
  at: string,
  pair: { fileKey: string; dataKey: string; path?: string; data?: string },
  rule: PemRule,
): string | undefined {
  if (pair.path !== undefined && pair.data !== undefined) {
    throw fieldError(
      file,
      `${at}.${pair.fileKey}`,
      pair.path,
      `only one of ${pair.fileKey} and ${pair.dataKey} may be set`,
    );
  }
  if (pair.path !== undefined) {
    let text: string;
    try {
      text = Deno.readTextFileSync(pair.path);
    } catch (e) {
      throw fieldError(
        file,
        `${at}.${pair.fileKey}`,
        pair.path,
        `cannot be read: ${readFailure(e)}`,
        e,
      );
    }
    const problem = pemProblem(text, rule);
    if (problem !== undefined) throw fieldError(file, `${at}.${pair.fileKey}`, pair.path, problem);
    return text;
  }
  if (pair.data !== undefined) {
    const shown = pair.data.length > 40 ? `${pair.data.slice(0, 40)}...` : pair.data;
    const text = decodeBase64(pair.data);
    if (text === undefined) {
      throw fieldError(file, `${at}.${pair.dataKey}`, shown, "must be base64 (of PEM text)");
    }
    const problem = pemProblem(text, rule);
    if (problem !== undefined) {
      throw fieldError(
        file,
        `${at}.${pair.dataKey}`,
        shown,
        `once decoded from base64, ${problem}`,
      );
    }
    return text;
  }
  return undefined;
}

/** Checks a server or proxy URL; returns it parsed. */
function checkUrl(
  file: string,
  field: string,
  value: string,
  schemes: readonly string[],
): URL {
  if (/\s/.test(value)) throw fieldError(file, field, value, "must not contain spaces");
  const want = schemes.map((s) => `${s}://`).join(" or ");
  if (!/^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.test(value)) {
    throw fieldError(file, field, value, `must be a URL with a scheme (${want}host:port)`);
  }
  const scheme = value.slice(0, value.indexOf(":")).toLowerCase();
  if (!schemes.includes(scheme)) {
    throw fieldError(file, field, value, `must start with ${want}`);
  }
  const port = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/(?:[^@/]*@)?(?:\[[^\]]*\]|[^:/?#]*)(?::([^/?#]*))?/
    .exec(value)?.[1];
  if (port !== undefined && port !== "") {
    if (!/^\d+$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
      throw fieldError(file, field, value, "its port must be a number from 1 to 65535");
    }
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch (e) {
    throw fieldError(file, field, value, "is not a valid URL", e);
  }
  if (url.hostname === "") throw fieldError(file, field, value, "must name a host");
  return url;
}

/** The checked TLS material and endpoints of the current context, ready to connect. */
export interface Resolved {
  server: string;
  /** PEM text of the CA bundle, if any. */
  ca?: string;
  /** PEM client certificate and key, if any. */
  cert?: string;
  key?: string;
  skipTLSVerify: boolean;
  tlsServerName?: string;
  proxyUrl?: string;
}

/**
 * Checks every field the current context uses and reads its TLS files.
 * `checkRun` is asked whether an exec plugin's command may run.
 */
export function validateCurrent(
  current: Current,
  options: { canRun: (command: string) => boolean },
): Resolved {
  const { cluster, user, context } = current;
  const cf = cluster.file;
  const cat = `clusters[${cluster.name}].cluster`;
  if (cluster.server === "") {
    throw fieldError(cf, `${cat}.server`, "", "must be set (https://host:port)");
  }
  checkUrl(cf, `${cat}.server`, cluster.server, ["https", "http"]);
  if (cluster.proxyUrl !== undefined) {
    if (/^socks5h?:\/\//i.test(cluster.proxyUrl)) {
      throw fieldError(
        cf,
        `${cat}.proxy-url`,
        cluster.proxyUrl,
        "kevents supports http:// and https:// proxies, not SOCKS",
      );
    }
    checkUrl(cf, `${cat}.proxy-url`, cluster.proxyUrl, ["http", "https"]);
  }
  const ca = readPem(cf, cat, {
    fileKey: "certificate-authority",
    dataKey: "certificate-authority-data",
    path: cluster.caFile,
    data: cluster.caData,
  }, { kind: "certificate" });
  const resolved: Resolved = {
    server: cluster.server,
    ca,
    skipTLSVerify: cluster.skipTLSVerify,
    tlsServerName: cluster.tlsServerName,
    proxyUrl: cluster.proxyUrl,
  };
  if (user === undefined) return resolved;
  const uf = user.file;
  const uat = `users[${user.name}].user`;
  const who = `Cannot use kubeconfig file ${uf}: context "${context.name}", user "${user.name}"`;
  if (user.authProvider !== undefined) {
    const name = user.authProvider.name ?? "";
    const removed = name === "gcp" || name === "azure"
      ? " (removed from kubectl and client-go in Kubernetes 1.26)"
      : "";
    throw new KubeConfigError(
      `${who}: auth-provider "${name}"${removed} is not supported: use a token, a client ` +
        "certificate or an exec credential plugin (users[].user.exec)",
      { file: uf, field: `${uat}.auth-provider`, value: name, rule: "is not supported" },
    );
  }
  resolved.cert = readPem(uf, uat, {
    fileKey: "client-certificate",
    dataKey: "client-certificate-data",
    path: user.certFile,
    data: user.certData,
  }, { kind: "certificate" });
  resolved.key = readPem(uf, uat, {
    fileKey: "client-key",
    dataKey: "client-key-data",
    path: user.keyFile,
    data: user.keyData,
  }, { kind: "key" });
  if ((resolved.cert === undefined) !== (resolved.key === undefined)) {
    const has = resolved.cert === undefined ? "client-key" : "client-certificate";
    const lacks = resolved.cert === undefined ? "client-certificate" : "client-key";
    const given = (has === "client-key" ? user.keyFile : user.certFile) ?? "(inline data)";
    throw fieldError(uf, `${uat}.${has}`, given, `needs ${lacks} as well`);
  }
  if (user.token === undefined && user.tokenFile !== undefined) {
    try {
      Deno.readTextFileSync(user.tokenFile);
    } catch (e) {
      throw new KubeConfigError(
        `${who}: cannot read its tokenFile ${user.tokenFile}: ${readFailure(e)}`,
        {
          file: uf,
          field: `${uat}.tokenFile`,
          value: user.tokenFile,
          rule: "must be readable",
          cause: e,
        },
      );
    }
  }
  const exec = user.exec;
  if (exec !== undefined) {
    if (!EXEC_API_VERSIONS.includes(exec.apiVersion)) {
      throw new KubeConfigError(
        `${who}: exec apiVersion "${exec.apiVersion}" is not supported: use ` +
          EXEC_API_VERSIONS.join(" or "),
        { file: uf, field: `${uat}.exec.apiVersion`, value: exec.apiVersion, rule: "unsupported" },
      );
    }
    if (exec.interactiveMode === "Always") {
      throw new KubeConfigError(
        `${who}: exec interactiveMode "Always" cannot work: kevents runs without a terminal`,
        { file: uf, field: `${uat}.exec.interactiveMode`, value: "Always", rule: "no terminal" },
      );
    }
    if (exec.command === "") {
      throw new KubeConfigError(`${who}: exec names no command`, {
        file: uf,
        field: `${uat}.exec.command`,
        value: "",
        rule: "must be set",
      });
    }
    if (!options.canRun(exec.resolvedCommand)) {
      throw new KubeConfigError(
        `${who}: the exec credential plugin "${exec.command}" cannot run, as kevents is not ` +
          "allowed to start programs (Deno's --allow-run, which the kevents binary is built " +
          "without; build it with --allow-run to use exec plugins): use a token or a client " +
          "certificate",
        { file: uf, field: `${uat}.exec.command`, value: exec.command, rule: "needs --allow-run" },
      );
    }
  }
  return resolved;
}
