/**
 * A minimal DER encoder: just enough ASN.1 to write X.509 certificates.
 *
 * Every helper returns the complete encoding (tag, length, content) of one
 * value, so structures are built by nesting calls the way the ASN.1 module
 * nests types. Only definite-length, primitive-or-constructed forms with tag
 * numbers below 31 are needed, which keeps the tag byte a single octet.
 *
 * @module
 */

/** Universal tag numbers used by X.509, with the constructed bit set where DER requires it. */
const Tag = {
  boolean: 0x01,
  integer: 0x02,
  bitString: 0x03,
  octetString: 0x04,
  oid: 0x06,
  utf8String: 0x0c,
  printableString: 0x13,
  utcTime: 0x17,
  generalizedTime: 0x18,
  sequence: 0x30,
  set: 0x31,
} as const;

/** Bytes backed by a plain ArrayBuffer, as WebCrypto accepts them. */
export type Bytes = Uint8Array<ArrayBuffer>;

/** Concatenates byte arrays. */
export function concat(...parts: Uint8Array[]): Bytes {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Encodes a length: short form below 128, otherwise 0x80|count followed by big-endian bytes. */
function encodeLength(length: number): Bytes {
  if (length < 0x80) return Uint8Array.of(length);
  const bytes: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n & 0xff);
  return Uint8Array.of(0x80 | bytes.length, ...bytes);
}

/** Encodes one tag-length-value triple. */
export function tlv(tag: number, content: Uint8Array): Bytes {
  return concat(Uint8Array.of(tag), encodeLength(content.length), content);
}

/** Encodes a SEQUENCE of already-encoded elements. */
export function sequence(...elements: Uint8Array[]): Bytes {
  return tlv(Tag.sequence, concat(...elements));
}

/** Encodes a SET of already-encoded elements (callers pass a single element or sorted ones). */
export function set(...elements: Uint8Array[]): Bytes {
  return tlv(Tag.set, concat(...elements));
}

/** Encodes a BOOLEAN. */
export function boolean(value: boolean): Bytes {
  return tlv(Tag.boolean, Uint8Array.of(value ? 0xff : 0x00));
}

/**
 * Encodes a non-negative INTEGER from its big-endian magnitude.
 *
 * DER wants the shortest two's-complement form: redundant leading zeros go,
 * and a zero byte is put back when the top bit would otherwise read as a sign.
 */
export function integer(magnitude: Uint8Array | number): Bytes {
  let bytes = typeof magnitude === "number" ? numberBytes(magnitude) : magnitude;
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  bytes = bytes.subarray(start);
  if (bytes.length === 0) bytes = Uint8Array.of(0);
  if ((bytes[0]! & 0x80) !== 0) bytes = concat(Uint8Array.of(0), bytes);
  return tlv(Tag.integer, bytes);
}

function numberBytes(value: number): Bytes {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`Cannot encode integer ${value}: must be a non-negative safe integer`);
  }
  const bytes: number[] = [];
  for (let n = value; n > 0; n = Math.floor(n / 256)) bytes.unshift(n & 0xff);
  return Uint8Array.from(bytes);
}

/** Encodes an OBJECT IDENTIFIER from its dotted form, e.g. `"1.2.840.10045.4.3.2"`. */
export function oid(dotted: string): Bytes {
  const arcs = dotted.split(".").map(Number);
  const [first, second, ...rest] = arcs;
  if (first === undefined || second === undefined || arcs.some((a) => !Number.isSafeInteger(a))) {
    throw new RangeError(`Cannot encode object identifier "${dotted}": malformed arcs`);
  }
  // The first two arcs share one subidentifier; each subidentifier is base-128,
  // most significant group first, with the high bit marking "more follows".
  const bytes: number[] = [];
  for (const arc of [first * 40 + second, ...rest]) {
    const groups = [arc & 0x7f];
    for (let n = Math.floor(arc / 128); n > 0; n = Math.floor(n / 128)) {
      groups.unshift(0x80 | (n & 0x7f));
    }
    bytes.push(...groups);
  }
  return tlv(Tag.oid, Uint8Array.from(bytes));
}

/** Encodes a BIT STRING whose length is a whole number of bytes (no unused bits). */
export function bitString(bytes: Uint8Array): Bytes {
  return tlv(Tag.bitString, concat(Uint8Array.of(0), bytes));
}

/**
 * Encodes a named-bit BIT STRING (such as KeyUsage) from the numbers of the set bits.
 *
 * Bit 0 is the most significant bit of the first byte; DER drops trailing zero
 * bits and records how many bits of the last byte are unused.
 */
export function namedBits(bits: number[]): Bytes {
  if (bits.length === 0) return tlv(Tag.bitString, Uint8Array.of(0));
  const highest = Math.max(...bits);
  const bytes = new Uint8Array(Math.floor(highest / 8) + 1);
  for (const bit of bits) bytes[Math.floor(bit / 8)]! |= 0x80 >> (bit % 8);
  const unused = 7 - (highest % 8);
  return tlv(Tag.bitString, concat(Uint8Array.of(unused), bytes));
}

/** Encodes an OCTET STRING. */
export function octetString(bytes: Uint8Array): Bytes {
  return tlv(Tag.octetString, bytes);
}

/** Encodes a UTF8String. */
export function utf8String(text: string): Bytes {
  return tlv(Tag.utf8String, new TextEncoder().encode(text));
}

const printable = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

/** Encodes a PrintableString; throws if the text has characters outside its small alphabet. */
export function printableString(text: string): Bytes {
  if (!printable.test(text)) {
    throw new RangeError(`Cannot encode "${text}" as PrintableString: unsupported character`);
  }
  return tlv(Tag.printableString, new TextEncoder().encode(text));
}

/** Tells whether a text fits the PrintableString alphabet. */
export function isPrintable(text: string): boolean {
  return printable.test(text);
}

/**
 * Encodes an X.509 Time, to the second, in UTC.
 *
 * RFC 5280 section 4.1.2.5: years 1950 to 2049 must be UTCTime (two-digit
 * year), every other year GeneralizedTime (four-digit year).
 */
export function time(date: Date): Bytes {
  const year = date.getUTCFullYear();
  if (!(year >= 0 && year <= 9999)) {
    throw new RangeError(`Cannot encode time: year ${year} is outside 0 to 9999`);
  }
  const pad = (n: number, width = 2) => String(n).padStart(width, "0");
  const rest = pad(date.getUTCMonth() + 1) + pad(date.getUTCDate()) + pad(date.getUTCHours()) +
    pad(date.getUTCMinutes()) + pad(date.getUTCSeconds()) + "Z";
  const encoder = new TextEncoder();
  if (year >= 1950 && year <= 2049) {
    return tlv(Tag.utcTime, encoder.encode(pad(year % 100) + rest));
  }
  return tlv(Tag.generalizedTime, encoder.encode(pad(year, 4) + rest));
}

/** Wraps an encoded value in an EXPLICIT context-specific tag `[number]` (constructed). */
export function explicit(number: number, inner: Uint8Array): Bytes {
  return tlv(0xa0 | number, inner);
}

/** Encodes raw content under an IMPLICIT context-specific primitive tag `[number]`. */
export function implicit(number: number, content: Uint8Array): Bytes {
  return tlv(0x80 | number, content);
}
