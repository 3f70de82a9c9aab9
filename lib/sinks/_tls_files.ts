/**
 * The TLS files of the HTTP sinks (`kevents_webhook_ca_file`,
 * `kevents_otlp_cert_file`...), read and checked at start by createSinks:
 * every certificate parses, the key is an unencrypted private key of the
 * client certificate; otherwise a ConfigError names the setting, its
 * source, the path and the rule, and nothing starts.
 *
 * @module
 */

import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import { ConfigError } from "../config/mod.ts";
import type { HttpTlsOptions } from "./_http.ts";

/** The TLS file settings of an HTTP sink, and where each came from. */
export interface TlsFileSettings {
  caFile: string | undefined;
  certFile: string | undefined;
  keyFile: string | undefined;
  fileSources?: { caFile?: string; certFile?: string; keyFile?: string };
  insecureSkipVerify: boolean;
}

/** A PEM block: its label (CERTIFICATE, PRIVATE KEY...) and the whole block. */
interface PemBlock {
  label: string;
  text: string;
}

function pemBlocks(text: string): PemBlock[] {
  const blocks: PemBlock[] = [];
  for (const m of text.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g)) {
    blocks.push({ label: m[1]!, text: m[0] });
  }
  return blocks;
}

/** What each file must hold, for settings named `<prefix>_ca_file`, `_cert_file`, `_key_file`. */
function rules(prefix: string): Record<"caFile" | "certFile" | "keyFile", string> {
  const certKey = settingName(prefix, "cert_file");
  return {
    caFile: "must name a readable PEM file of one or more CA certificates " +
      "(-----BEGIN CERTIFICATE----- blocks)",
    certFile: "must name a readable PEM file of the client certificate " +
      "(a -----BEGIN CERTIFICATE----- block, then any intermediates)",
    keyFile: "must name a readable PEM file of the unencrypted private key of " +
      `${certKey} (a -----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or ` +
      "EC PRIVATE KEY block)",
  };
}

/**
 * A TLS file setting's name: `<prefix>_<suffix>` for the flat settings
 * (`kevents_otlp_ca_file`), `<prefix><suffix>` for a prefix ending in "."
 * (a named sink's option: `kevents_sinks archive.ca_file`).
 */
function settingName(prefix: string, suffix: string): string {
  return prefix.endsWith(".") ? `${prefix}${suffix}` : `${prefix}_${suffix}`;
}

const KEY_SUFFIXES = { caFile: "ca_file", certFile: "cert_file", keyFile: "key_file" } as const;

/** Why a certificate file's text is not usable; undefined when every certificate in it parses. */
function certificateProblem(text: string): string | undefined {
  const certs = pemBlocks(text).filter((b) => b.label === "CERTIFICATE");
  if (certs.length === 0) return "it holds no -----BEGIN CERTIFICATE----- block";
  for (const [i, block] of certs.entries()) {
    try {
      new X509Certificate(block.text);
    } catch {
      return `its certificate ${i + 1} of ${certs.length} is not a valid X.509 certificate`;
    }
  }
  return undefined;
}

/** The private key in a key file's text, or why there is none. */
function privateKey(text: string): KeyObject | { problem: string } {
  const keys = pemBlocks(text).filter((b) => b.label.endsWith("PRIVATE KEY"));
  if (keys.length === 0) return { problem: "it holds no PEM private key block" };
  if (keys[0]!.label === "ENCRYPTED PRIVATE KEY" || /Proc-Type: 4,ENCRYPTED/.test(keys[0]!.text)) {
    return { problem: "its key is encrypted, and kevents takes no passphrase" };
  }
  try {
    return createPrivateKey(keys[0]!.text);
  } catch {
    return { problem: "its private key block is not a valid key" };
  }
}

/**
 * The TLS options of `settings`, the files read with `read` and checked;
 * ConfigError when one cannot be read or does not hold what it must.
 * `prefix` names the settings (`kevents_otlp`).
 */
export function readTlsFiles(
  settings: TlsFileSettings,
  prefix: string,
  read: (path: string) => string,
): HttpTlsOptions {
  const ruleOf = rules(prefix);
  type Name = keyof typeof KEY_SUFFIXES;
  const refuse = (name: Name, path: string, problem: string, cause?: unknown) => {
    const key = settingName(prefix, KEY_SUFFIXES[name]);
    const rule = ruleOf[name];
    const source = settings.fileSources?.[name] ?? "default";
    return new ConfigError({
      key,
      source,
      value: path,
      rule,
      message: `Cannot use ${key} ${JSON.stringify(path)} (${source}): ${problem}; it ${rule}`,
      cause,
    });
  };
  const file = (name: Name): string | undefined => {
    const path = settings[name];
    if (path === undefined) return undefined;
    let text: string;
    try {
      text = read(path);
    } catch (e) {
      throw refuse(name, path, `cannot read it: ${e instanceof Error ? e.message : e}`, e);
    }
    if (name !== "keyFile") {
      const problem = certificateProblem(text);
      if (problem !== undefined) throw refuse(name, path, problem);
    }
    return text;
  };
  const ca = file("caFile");
  const cert = file("certFile");
  const key = file("keyFile");
  if (cert !== undefined && key !== undefined) {
    const found = privateKey(key);
    if ("problem" in found) throw refuse("keyFile", settings.keyFile!, found.problem);
    const leaf = pemBlocks(cert).find((b) => b.label === "CERTIFICATE")!;
    if (!new X509Certificate(leaf.text).checkPrivateKey(found)) {
      throw refuse(
        "keyFile",
        settings.keyFile!,
        `it is not the key of the certificate in ${settings.certFile}`,
      );
    }
  }
  return { ca, cert, key, insecureSkipVerify: settings.insecureSkipVerify };
}
