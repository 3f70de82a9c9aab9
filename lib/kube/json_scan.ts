/**
 * Checks that a text is one JSON object, without building its value, and
 * notes where chosen members lie on the way: the watch stream's fast path,
 * which must know that a line is valid JSON and read a few of its strings,
 * but need not decode the rest.
 *
 * The scanner never accepts what `JSON.parse` would refuse. It may give up
 * on valid text it does not handle (a control character anywhere, even as
 * whitespace; an escaped member name where members are picked; a member
 * picked twice, of which `JSON.parse` keeps the last; nesting deeper than
 * {@linkcode MAX_DEPTH}): `scan` then returns false, as for invalid text,
 * and the caller decodes the text with `JSON.parse`, which decides.
 *
 * @module
 */

/** What a picked member holds (its kind). */
export const ABSENT = 0;
/** A string without escapes: its characters are those between the quotes. */
export const STRING = 1;
/** A string with escapes. */
export const ESCAPED_STRING = 2;
/** `null`. */
export const NULL = 3;
/** An object. */
export const OBJECT = 4;
/** A number, `true`, `false` or an array. */
export const OTHER = 5;

/** Deepest nesting scanned; deeper text is left to `JSON.parse`. */
export const MAX_DEPTH = 256;

const FAIL = -1;
/**
 * The rest of a flat object after its brace (members whose values are
 * strings without escapes, numbers or literals, in compact JSON): one
 * regular expression goes through it several times faster than the scanner
 * does step by step. Control characters are ruled out before (`CONTROL`).
 */
const FLAT_REST =
  /(?:"[^"\\]*":(?:"[^"\\]*"|-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|true|false|null)(?:,(?=")|(?=\})))*\}/y;
/** Where no backslash is left: beyond any index. */
const NONE = 0x7fffffff;
/** Control characters are refused in strings and allowed (tab, CR, LF) only as whitespace. */
// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f]/;

interface Node {
  /** Member names picked in this object. */
  names: string[];
  /** Their slots. */
  slots: number[];
  /** The members picked inside each, when there are. */
  children: (Node | undefined)[];
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

function isHex(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
}

/**
 * Scans texts for the members at the given paths (dotted names from the
 * top-level object: `object.metadata.uid`), one text at a time; after a
 * successful {@linkcode JsonPicker.scan}, `kinds`, `starts` and `ends` tell
 * for each path (in the order given) what its value is and where it lies.
 */
export class JsonPicker {
  /** Per path: what the last scanned text holds there ({@linkcode ABSENT}, {@linkcode STRING}...). */
  readonly kinds: Uint8Array;
  /** Per path: where the value starts in the last scanned text. */
  readonly starts: Int32Array;
  /** Per path: where the value ends (exclusive). */
  readonly ends: Int32Array;
  readonly #paths: readonly string[];
  readonly #root: Node = { names: [], slots: [], children: [] };
  #text = "";
  /** The next backslash at or after the scan position, or NONE. */
  #backslash = NONE;
  /** Whether the last string scanned had escapes. */
  #escaped = false;
  /** The kind of the last value scanned. */
  #kind = ABSENT;

  /** Paths of members to pick; a path's parents are picked too (as objects). */
  constructor(paths: readonly string[]) {
    const all: string[] = [...paths];
    for (const path of paths) {
      if (path === "" || path.split(".").some((name) => name === "")) {
        throw new RangeError(`Cannot pick the JSON member "${path}": a name is empty`);
      }
      let node = this.#root;
      const names = path.split(".");
      for (let depth = 0; depth < names.length; depth++) {
        const prefix = names.slice(0, depth + 1).join(".");
        let slot = all.indexOf(prefix);
        if (slot < 0) slot = all.push(prefix) - 1;
        let k = node.names.indexOf(names[depth]!);
        if (k < 0) {
          k = node.names.push(names[depth]!) - 1;
          node.slots.push(slot);
          node.children.push(undefined);
        }
        if (depth < names.length - 1) {
          node = node.children[k] ??= { names: [], slots: [], children: [] };
        }
      }
    }
    this.#paths = all;
    this.kinds = new Uint8Array(all.length);
    this.starts = new Int32Array(all.length);
    this.ends = new Int32Array(all.length);
  }

  /** The slot of a path given to the constructor, or of one of their parents. */
  slot(path: string): number {
    const slot = this.#paths.indexOf(path);
    if (slot < 0) throw new RangeError(`Cannot find the JSON member "${path}": it is not picked`);
    return slot;
  }

  /**
   * Scans `text`: true when it is one JSON object and the scanner could
   * tell (the picked members are then in `kinds`, `starts` and `ends`);
   * false when it is not valid JSON or the scanner gave up (see the module
   * documentation).
   */
  scan(text: string): boolean {
    this.kinds.fill(ABSENT);
    if (CONTROL.test(text)) return false;
    this.#text = text;
    const b = text.indexOf("\\");
    this.#backslash = b < 0 ? NONE : b;
    let j = 0;
    while (text.charCodeAt(j) === 32) j++;
    if (text.charCodeAt(j) !== 123) return false;
    j = this.#object(j, this.#root, 1);
    if (j < 0) return false;
    while (text.charCodeAt(j) === 32) j++;
    return j === text.length;
  }

  /**
   * The string at `slot` in the last scanned text: undefined when absent
   * or null; throws for other kinds.
   */
  string(slot: number): string | undefined {
    const kind = this.kinds[slot];
    if (kind === STRING) return this.#text.slice(this.starts[slot]! + 1, this.ends[slot]! - 1);
    if (kind === ESCAPED_STRING) {
      return JSON.parse(this.#text.slice(this.starts[slot], this.ends[slot])) as string;
    }
    if (kind === ABSENT || kind === NULL) return undefined;
    throw new TypeError(`Cannot read "${this.#paths[slot]}" as a string: it is not one`);
  }

  /** Whether the string at `slot` of the last scanned text is exactly `value` (false when not a string without escapes). */
  stringIs(slot: number, value: string): boolean {
    return this.kinds[slot] === STRING &&
      this.ends[slot]! - this.starts[slot]! === value.length + 2 &&
      this.#text.startsWith(value, this.starts[slot]! + 1);
  }

  /** The text of the value at `slot` in the last scanned text, as it is there. */
  raw(slot: number): string {
    return this.#text.slice(this.starts[slot], this.ends[slot]);
  }

  /** Forgets the last scanned text. */
  clear(): void {
    this.#text = "";
  }

  /** `i` is at an opening quote; returns the index after the closing one. */
  #string(i: number): number {
    const q = this.#text.indexOf('"', i + 1);
    if (q < 0) return FAIL;
    if (this.#backslash > q) {
      this.#escaped = false;
      return q + 1;
    }
    return this.#escapedString(i + 1);
  }

  /** A string with a backslash before its first quote, from `j` (after the opening quote). */
  #escapedString(j: number): number {
    const s = this.#text;
    for (;;) {
      const c = s.charCodeAt(j);
      if (c === 34) break;
      if (c === 92) {
        const e = s.charCodeAt(j + 1);
        if (e === 117) {
          if (
            !(isHex(s.charCodeAt(j + 2)) && isHex(s.charCodeAt(j + 3)) &&
              isHex(s.charCodeAt(j + 4)) && isHex(s.charCodeAt(j + 5)))
          ) return FAIL;
          j += 6;
        } else if (
          e === 34 || e === 92 || e === 47 || e === 98 || e === 102 || e === 110 || e === 114 ||
          e === 116
        ) {
          j += 2;
        } else return FAIL;
      } else if (c !== c) {
        return FAIL; // NaN: the text ended inside the string.
      } else j++;
    }
    this.#escaped = true;
    const b = s.indexOf("\\", j + 1);
    this.#backslash = b < 0 ? NONE : b;
    return j + 1;
  }

  #number(i: number): number {
    const s = this.#text;
    let j = i;
    let c = s.charCodeAt(j);
    if (c === 45) c = s.charCodeAt(++j);
    if (c === 48) c = s.charCodeAt(++j);
    else if (c >= 49 && c <= 57) {
      do c = s.charCodeAt(++j); while (isDigit(c));
    } else return FAIL;
    if (c === 46) {
      c = s.charCodeAt(++j);
      if (!isDigit(c)) return FAIL;
      do c = s.charCodeAt(++j); while (isDigit(c));
    }
    if (c === 101 || c === 69) {
      c = s.charCodeAt(++j);
      if (c === 43 || c === 45) c = s.charCodeAt(++j);
      if (!isDigit(c)) return FAIL;
      do c = s.charCodeAt(++j); while (isDigit(c));
    }
    return j;
  }

  #value(i: number, node: Node | undefined, depth: number): number {
    const s = this.#text;
    switch (s.charCodeAt(i)) {
      case 34: {
        const end = this.#string(i);
        this.#kind = this.#escaped ? ESCAPED_STRING : STRING;
        return end;
      }
      case 123: {
        const end = this.#object(i, node, depth + 1);
        this.#kind = OBJECT; // After the members, which set it too.
        return end;
      }
      case 91: {
        const end = this.#array(i, depth + 1);
        this.#kind = OTHER;
        return end;
      }
      case 116:
        this.#kind = OTHER;
        return s.startsWith("true", i) ? i + 4 : FAIL;
      case 102:
        this.#kind = OTHER;
        return s.startsWith("false", i) ? i + 5 : FAIL;
      case 110:
        this.#kind = NULL;
        return s.startsWith("null", i) ? i + 4 : FAIL;
      default:
        this.#kind = OTHER;
        return this.#number(i);
    }
  }

  #object(i: number, node: Node | undefined, depth: number): number {
    if (depth > MAX_DEPTH) return FAIL;
    const s = this.#text;
    let j = i + 1;
    if (node === undefined) {
      FLAT_REST.lastIndex = j;
      if (FLAT_REST.test(s)) return FLAT_REST.lastIndex;
    }
    while (s.charCodeAt(j) === 32) j++;
    if (s.charCodeAt(j) === 125) return j + 1;
    for (;;) {
      if (s.charCodeAt(j) !== 34) return FAIL;
      const nameEnd = this.#string(j);
      if (nameEnd < 0) return FAIL;
      let slot = -1;
      let child: Node | undefined;
      if (node !== undefined) {
        // An escaped name may equal a picked one once decoded.
        if (this.#escaped) return FAIL;
        const length = nameEnd - j - 2;
        const names = node.names;
        for (let k = 0; k < names.length; k++) {
          const name = names[k]!;
          if (name.length === length && s.startsWith(name, j + 1)) {
            slot = node.slots[k]!;
            child = node.children[k];
            break;
          }
        }
      }
      j = nameEnd;
      while (s.charCodeAt(j) === 32) j++;
      if (s.charCodeAt(j) !== 58) return FAIL;
      j++;
      while (s.charCodeAt(j) === 32) j++;
      const start = j;
      j = this.#value(j, child, depth);
      if (j < 0) return FAIL;
      if (slot >= 0) {
        // Picked twice: JSON.parse keeps the last one, and so must whoever reads it.
        if (this.kinds[slot] !== ABSENT) return FAIL;
        this.kinds[slot] = this.#kind;
        this.starts[slot] = start;
        this.ends[slot] = j;
      }
      while (s.charCodeAt(j) === 32) j++;
      const c = s.charCodeAt(j);
      if (c === 125) return j + 1;
      if (c !== 44) return FAIL;
      j++;
      while (s.charCodeAt(j) === 32) j++;
    }
  }

  #array(i: number, depth: number): number {
    if (depth > MAX_DEPTH) return FAIL;
    const s = this.#text;
    let j = i + 1;
    while (s.charCodeAt(j) === 32) j++;
    if (s.charCodeAt(j) === 93) return j + 1;
    for (;;) {
      j = this.#value(j, undefined, depth);
      if (j < 0) return FAIL;
      while (s.charCodeAt(j) === 32) j++;
      const c = s.charCodeAt(j);
      if (c === 93) return j + 1;
      if (c !== 44) return FAIL;
      j++;
      while (s.charCodeAt(j) === 32) j++;
    }
  }
}
