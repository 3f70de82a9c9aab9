/**
 * TLS material for the fake API server, made at start with WebCrypto.
 *
 * Each call creates a throw-away certificate authority and one server
 * certificate signed by it, both ECDSA P-256 with SHA-256. Nothing is read
 * from or written to disk and no external tool is run; the certificates are
 * assembled with the small DER encoder in `_der.ts`. The CA's private key is
 * dropped once the server certificate is signed, so the CA can vouch for
 * nothing else.
 *
 * @module
 */

import {
  bitString,
  boolean,
  type Bytes,
  explicit,
  implicit,
  integer,
  isPrintable,
  namedBits,
  octetString,
  oid,
  printableString,
  sequence,
  set,
  time,
  utf8String,
} from "./_der.ts";

/** PEM material for a TLS server and the CA that signed it. */
export interface TlsMaterial {
  /** The CA certificate, for clients to trust. */
  caCertPem: string;
  /** The server certificate (leaf only), for the server to present. */
  certPem: string;
  /** The server's private key, PKCS#8. */
  keyPem: string;
}

/** Options for {@linkcode generateTlsMaterial}. */
export interface GenerateTlsOptions {
  /** Names the server answers to; IPs become iPAddress SANs, others dNSName SANs. Default `["127.0.0.1", "localhost", "::1"]`. */
  hosts?: string[];
  /** How long both certificates stay valid, in days. Default 365. */
  validDays?: number;
  /** Common name of the server certificate; the CA's is this plus `" CA"`. Default `"kevents-fake-apiserver"`. */
  commonName?: string;
}

const defaultHosts = ["127.0.0.1", "localhost", "::1"];

/** How far notBefore is set back, so a client whose clock lags a little still accepts the certificate. */
const clockSkewMs = 5 * 60 * 1000;

const Oid = {
  ecdsaWithSha256: "1.2.840.10045.4.3.2",
  commonName: "2.5.4.3",
  subjectKeyIdentifier: "2.5.29.14",
  keyUsage: "2.5.29.15",
  subjectAltName: "2.5.29.17",
  basicConstraints: "2.5.29.19",
  authorityKeyIdentifier: "2.5.29.35",
  extKeyUsage: "2.5.29.37",
  serverAuth: "1.3.6.1.5.5.7.3.1",
} as const;

/** Bit numbers of the KeyUsage BIT STRING (RFC 5280 section 4.2.1.3). */
const KeyUsage = { digitalSignature: 0, keyCertSign: 5, cRLSign: 6 } as const;

const ecdsaP256: EcKeyGenParams = { name: "ECDSA", namedCurve: "P-256" };

/** Generates a fresh ECDSA P-256 CA and a server certificate signed by it. */
export async function generateTlsMaterial(options: GenerateTlsOptions = {}): Promise<TlsMaterial> {
  const hosts = options.hosts ?? defaultHosts;
  const validDays = options.validDays ?? 365;
  const commonName = options.commonName ?? "kevents-fake-apiserver";
  if (!(Number.isFinite(validDays) && validDays > 0)) {
    throw new RangeError(`Cannot generate TLS material: validDays ${validDays} must be positive`);
  }
  if (commonName === "") {
    throw new RangeError("Cannot generate TLS material: commonName must not be empty");
  }
  const now = Date.now();
  const notBefore = new Date(now - clockSkewMs);
  const notAfter = new Date(now + validDays * 24 * 60 * 60 * 1000);
  if (!(notAfter.getUTCFullYear() <= 9999)) {
    throw new RangeError(
      `Cannot generate TLS material: validDays ${validDays} ends after year 9999`,
    );
  }
  const altNames = subjectAltNames(hosts);

  // Only the server key is ever exported; the CA's private key stays inside WebCrypto.
  const [caKeys, serverKeys] = await Promise.all([
    crypto.subtle.generateKey(ecdsaP256, false, ["sign", "verify"]),
    crypto.subtle.generateKey(ecdsaP256, true, ["sign", "verify"]),
  ]);
  const [caSpki, serverSpki, serverPkcs8] = await Promise.all([
    exportBytes("spki", caKeys.publicKey),
    exportBytes("spki", serverKeys.publicKey),
    exportBytes("pkcs8", serverKeys.privateKey),
  ]);
  const [caKeyId, serverKeyId] = await Promise.all([
    keyIdentifier(caKeys),
    keyIdentifier(serverKeys),
  ]);

  // The server certificate's issuer must be byte-for-byte the CA's subject,
  // so the encoded name is made once and used for both.
  const caName = distinguishedName(`${commonName} CA`);

  const caCert = await signCertificate({
    serial: randomSerial(),
    issuer: caName,
    subject: caName,
    notBefore,
    notAfter,
    spki: caSpki,
    extensions: [
      extension(Oid.basicConstraints, true, sequence(boolean(true), integer(0))),
      extension(
        Oid.keyUsage,
        true,
        namedBits([KeyUsage.digitalSignature, KeyUsage.keyCertSign, KeyUsage.cRLSign]),
      ),
      extension(Oid.subjectKeyIdentifier, false, octetString(caKeyId)),
    ],
    signingKey: caKeys.privateKey,
  });

  const serverCert = await signCertificate({
    serial: randomSerial(),
    issuer: caName,
    subject: distinguishedName(commonName),
    notBefore,
    notAfter,
    spki: serverSpki,
    extensions: [
      // CA:FALSE is the DEFAULT, and DER leaves defaults out: an empty SEQUENCE.
      extension(Oid.basicConstraints, true, sequence()),
      extension(Oid.keyUsage, true, namedBits([KeyUsage.digitalSignature])),
      extension(Oid.extKeyUsage, false, sequence(oid(Oid.serverAuth))),
      extension(Oid.subjectAltName, false, sequence(...altNames)),
      extension(Oid.subjectKeyIdentifier, false, octetString(serverKeyId)),
      extension(Oid.authorityKeyIdentifier, false, sequence(implicit(0, caKeyId))),
    ],
    signingKey: caKeys.privateKey,
  });

  return {
    caCertPem: pem("CERTIFICATE", caCert),
    certPem: pem("CERTIFICATE", serverCert),
    keyPem: pem("PRIVATE KEY", serverPkcs8),
  };
}

interface CertificateFields {
  serial: Uint8Array;
  issuer: Uint8Array;
  subject: Uint8Array;
  notBefore: Date;
  notAfter: Date;
  /** DER SubjectPublicKeyInfo, as WebCrypto exports it. */
  spki: Uint8Array;
  extensions: Uint8Array[];
  signingKey: CryptoKey;
}

/** Builds the TBSCertificate, signs it and wraps both into a Certificate (RFC 5280 section 4.1). */
async function signCertificate(fields: CertificateFields): Promise<Bytes> {
  const signatureAlgorithm = sequence(oid(Oid.ecdsaWithSha256));
  const tbs = sequence(
    explicit(0, integer(2)), // v3
    integer(fields.serial),
    signatureAlgorithm,
    fields.issuer,
    sequence(time(fields.notBefore), time(fields.notAfter)),
    fields.subject,
    fields.spki,
    explicit(3, sequence(...fields.extensions)),
  );
  const raw = new Uint8Array(
    await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, fields.signingKey, tbs),
  );
  return sequence(tbs, signatureAlgorithm, bitString(ecdsaSignatureToDer(raw)));
}

/**
 * Converts WebCrypto's ECDSA signature (r and s as fixed-width halves) to the
 * Ecdsa-Sig-Value SEQUENCE { r INTEGER, s INTEGER } that X.509 carries.
 */
function ecdsaSignatureToDer(raw: Uint8Array): Uint8Array {
  const half = raw.length / 2;
  return sequence(integer(raw.subarray(0, half)), integer(raw.subarray(half)));
}

/** Encodes an Extension; `critical` is left out when false because FALSE is its DEFAULT. */
function extension(id: string, critical: boolean, value: Uint8Array): Uint8Array {
  return critical
    ? sequence(oid(id), boolean(true), octetString(value))
    : sequence(oid(id), octetString(value));
}

/** Encodes a Name holding a single common name. */
function distinguishedName(commonName: string): Uint8Array {
  const value = isPrintable(commonName) ? printableString(commonName) : utf8String(commonName);
  return sequence(set(sequence(oid(Oid.commonName), value)));
}

/** 16 random bytes with the top bit clear (positive) and the next set (no leading zero byte). */
function randomSerial(): Uint8Array {
  const serial = crypto.getRandomValues(new Uint8Array(16));
  serial[0] = (serial[0]! & 0x7f) | 0x40;
  return serial;
}

/** SHA-1 of the subjectPublicKey bits, method (1) of RFC 5280 section 4.2.1.2. */
async function keyIdentifier(keys: CryptoKeyPair): Promise<Bytes> {
  // For an EC key the "raw" export is exactly those bits: the uncompressed point.
  const point = await exportBytes("raw", keys.publicKey);
  return new Uint8Array(await crypto.subtle.digest("SHA-1", point));
}

async function exportBytes(format: "raw" | "spki" | "pkcs8", key: CryptoKey): Promise<Bytes> {
  return new Uint8Array(await crypto.subtle.exportKey(format, key));
}

/** Encodes the GeneralNames of the subjectAltName extension, IPs as iPAddress and the rest as dNSName. */
function subjectAltNames(hosts: string[]): Uint8Array[] {
  if (hosts.length === 0) {
    throw new RangeError("Cannot generate TLS material: hosts must name at least one host");
  }
  return hosts.map((host) => {
    const ip = parseIp(host);
    if (ip !== undefined) return implicit(7, ip);
    if (!dnsName.test(host)) {
      throw new RangeError(
        `Cannot generate TLS material: host "${host}" is neither an IP address nor a DNS name`,
      );
    }
    return implicit(2, new TextEncoder().encode(host));
  });
}

/** Letters, digits and hyphens in dot-separated labels, with an optional leading wildcard label. */
const dnsName =
  /^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** Parses an IPv4 or IPv6 address (brackets allowed) to its 4 or 16 bytes, or undefined if it is not one. */
function parseIp(host: string): Uint8Array | undefined {
  const text = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  return parseIpv4(text) ?? parseIpv6(text);
}

function parseIpv4(text: string): Uint8Array | undefined {
  const parts = text.split(".");
  if (
    parts.length !== 4 || !parts.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p) && Number(p) < 256)
  ) {
    return undefined;
  }
  return Uint8Array.from(parts.map(Number));
}

function parseIpv6(text: string): Uint8Array | undefined {
  if (!text.includes(":")) return undefined;
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const groups = (half: string | undefined, last: boolean): number[] | undefined => {
    if (half === undefined || half === "") return [];
    const out: number[] = [];
    const parts = half.split(":");
    for (const [i, part] of parts.entries()) {
      // An embedded IPv4 address may close the text, standing for two groups.
      const v4 = last && i === parts.length - 1 ? parseIpv4(part) : undefined;
      if (v4 !== undefined) {
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else if (/^[0-9A-Fa-f]{1,4}$/.test(part)) {
        out.push(parseInt(part, 16));
      } else {
        return undefined;
      }
    }
    return out;
  };
  const compressed = halves.length === 2;
  const head = groups(halves[0], !compressed);
  const tail = groups(halves[1], true);
  if (head === undefined || tail === undefined) return undefined;
  const missing = 8 - head.length - tail.length;
  if (compressed ? missing < 1 : missing !== 0) return undefined;
  const all = [...head, ...new Array<number>(missing).fill(0), ...tail];
  return Uint8Array.from(all.flatMap((g) => [g >> 8, g & 0xff]));
}

/** Wraps DER bytes in PEM armour with 64-column base64 lines. */
function pem(label: string, der: Uint8Array): string {
  const base64 = btoa(String.fromCharCode(...der));
  const lines = base64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}
