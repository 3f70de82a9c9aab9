import assert from "node:assert/strict";
import {
  ABSENT,
  ESCAPED_STRING,
  JsonPicker,
  MAX_DEPTH,
  NULL,
  OBJECT,
  OTHER,
  STRING,
} from "../../lib/kube/json_scan.ts";

/** Whether JSON.parse takes `text` as an object (not an array or a scalar). */
function isJsonObject(text: string): boolean {
  try {
    const value = JSON.parse(text);
    return value !== null && typeof value === "object" && !Array.isArray(value);
  } catch {
    return false;
  }
}

/** A small seeded PRNG (mulberry32), so that a failure can be replayed. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A random JSON value, with the strings and numbers JSON allows at their edges. */
function randomValue(next: () => number, depth: number): unknown {
  const pick = Math.floor(next() * (depth > 3 ? 6 : 8));
  const strings = [
    "",
    "plain",
    'q"uote',
    "back\\slash",
    "\u00e9\u4e8b\u{1f680}",
    "\n\t\u0001",
    "</",
  ];
  switch (pick) {
    case 0:
      return strings[Math.floor(next() * strings.length)];
    case 1:
      return [0, -1, 1.5, -0.25e-7, 1e21, 123456789][Math.floor(next() * 6)];
    case 2:
      return next() < 0.5;
    case 3:
      return null;
    case 4:
    case 5:
      return `s${Math.floor(next() * 1000)}`;
    case 6: {
      const out: Record<string, unknown> = {};
      const n = Math.floor(next() * 4);
      for (let i = 0; i < n; i++) out[`k${Math.floor(next() * 5)}`] = randomValue(next, depth + 1);
      return out;
    }
    default:
      return Array.from({ length: Math.floor(next() * 3) }, () => randomValue(next, depth + 1));
  }
}

Deno.test("JsonPicker accepts exactly the objects JSON.parse accepts, or defers to it", async (t) => {
  const picker = new JsonPicker(["a", "a.b"]);

  await t.step("valid objects of every shape are accepted", () => {
    const valid = [
      "{}",
      " { } ",
      '{"a":1}',
      '{"a":{"b":"x"},"c":[1,2,{"d":[]}],"e":null,"f":true,"g":false}',
      '{"n":[-0,0.5,1e5,1E+5,1e-5,-12.75e3]}',
      '{"s":"\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\uD83D\\uDE80"}',
      '{ "a" : { "b" : "x" } , "c" : [ 1 , 2 ] }',
      `{"deep":${"[".repeat(MAX_DEPTH - 2)}${"]".repeat(MAX_DEPTH - 2)}}`,
    ];
    for (const text of valid) {
      assert.ok(isJsonObject(text), `the test's own case: ${text}`);
      assert.equal(picker.scan(text), true, text);
    }
  });

  await t.step("invalid text is never accepted", () => {
    const invalid = [
      "",
      "{",
      "}",
      "[]",
      '"a"',
      "null",
      '{"a":1,}',
      '{"a":1 "b":2}',
      '{"a" 1}',
      "{a:1}",
      "{'a':1}",
      '{"a":01}',
      '{"a":1.}',
      '{"a":.5}',
      '{"a":1e}',
      '{"a":-}',
      '{"a":+1}',
      '{"a":NaN}',
      '{"a":tru}',
      '{"a":nul}',
      '{"a":"x}',
      '{"a":"\\x"}',
      '{"a":"\\u12g4"}',
      '{"a":"\\',
      '{"a":[1,]}',
      '{"a":[1 2]}',
      '{"a":1}}',
      '{"a":1} x',
      '{"a":1}{"b":2}',
      '{"a":"line\nbreak"}',
      '{"a":"tab\there"}',
      '{"a":"\u0000"}',
      '{"a":\u00a01}',
      '{"a":1}\u2028',
    ];
    for (const text of invalid) {
      assert.ok(!isJsonObject(text), `the test's own case: ${JSON.stringify(text)}`);
      assert.equal(picker.scan(text), false, JSON.stringify(text));
    }
  });

  await t.step("valid text it does not handle is left to JSON.parse (false)", () => {
    const deferred = [
      '{"a":1,\t"b":2}', // a tab as whitespace
      '{"a":1}\r', // a CR as whitespace
      '{"\\u0061":{"b":"x"}}', // an escaped name where members are picked
      '{"a":{"b":"x"},"a":{"b":"y"}}', // a picked member twice: JSON.parse keeps the last
      '{"a":{"b":"x","b":"y"}}',
      `{"deep":${"[".repeat(MAX_DEPTH + 1)}${"]".repeat(MAX_DEPTH + 1)}}`, // no stack to spare
    ];
    for (const text of deferred) {
      assert.ok(isJsonObject(text), `the test's own case: ${JSON.stringify(text)}`);
      assert.equal(picker.scan(text), false, JSON.stringify(text));
    }
    // Repeated names that are not picked, and escaped names outside picked objects, are fine.
    assert.equal(picker.scan('{"x":1,"x":2,"a":{"b":"v"},"c":{"\\u0063":3}}'), true);
  });

  await t.step("on 5,000 random objects and their mutations it agrees with JSON.parse", () => {
    const next = random(11);
    const deep = new JsonPicker(["k0", "k1.k2", "k3.k0.k1"]);
    let checked = 0;
    for (let i = 0; i < 5000; i++) {
      const value: Record<string, unknown> = {};
      for (let k = 0; k < 4; k++) value[`k${k}`] = randomValue(next, 0);
      const text = JSON.stringify(value);
      assert.equal(deep.scan(text), true, text);
      // Mutate one character: the result must never be accepted unless JSON.parse takes it.
      const at = Math.floor(next() * text.length);
      const chars = ['"', "\\", ",", ":", "{", "}", "[", "]", "0", "e", "-", " ", "x", "\u0001"];
      const mutated = text.slice(0, at) + chars[Math.floor(next() * chars.length)] +
        text.slice(at + (next() < 0.5 ? 1 : 0));
      if (deep.scan(mutated)) {
        assert.ok(isJsonObject(mutated), `accepted invalid JSON: ${mutated}`);
        checked++;
      }
    }
    assert.ok(checked > 100, `mutations that stayed valid: ${checked}`);
  });
});

Deno.test("JsonPicker notes what each picked member holds and where", async (t) => {
  const picker = new JsonPicker([
    "type",
    "object.metadata.resourceVersion",
    "object.metadata.uid",
    "object.reason",
    "object.series.lastObservedTime",
  ]);
  const slot = (path: string) => picker.slot(path);

  await t.step("strings, objects, null and absent members", () => {
    const text = '{"type":"ADDED","object":{"metadata":{"uid":"u-1","resourceVersion":"42",' +
      '"labels":{"uid":"not this one"}},"reason":null,"involvedObject":{"uid":"nor this"}}}';
    assert.equal(picker.scan(text), true);
    assert.equal(picker.kinds[slot("type")], STRING);
    assert.equal(picker.string(slot("type")), "ADDED");
    assert.equal(picker.kinds[slot("object")], OBJECT, "a parent is picked as an object");
    assert.equal(picker.kinds[slot("object.metadata")], OBJECT);
    assert.equal(picker.string(slot("object.metadata.resourceVersion")), "42");
    assert.equal(picker.string(slot("object.metadata.uid")), "u-1", "only at its own path");
    assert.equal(picker.kinds[slot("object.reason")], NULL);
    assert.equal(picker.string(slot("object.reason")), undefined);
    assert.equal(picker.kinds[slot("object.series")], ABSENT);
    assert.equal(picker.string(slot("object.series.lastObservedTime")), undefined);
    const object = slot("object");
    assert.equal(
      text.slice(picker.starts[object], picker.ends[object]),
      JSON.stringify(JSON.parse(text).object),
      "the object's text, exactly",
    );
    assert.equal(picker.raw(object), JSON.stringify(JSON.parse(text).object));
  });

  await t.step("an escaped string is decoded as JSON.parse decodes it", () => {
    const text = '{"object":{"reason":"say \\"hi\\" \\u00e9\\n","metadata":{}}}';
    assert.equal(picker.scan(text), true);
    assert.equal(picker.kinds[slot("object.reason")], ESCAPED_STRING);
    assert.equal(picker.string(slot("object.reason")), JSON.parse(text).object.reason);
    assert.equal(picker.stringIs(slot("object.reason"), 'say "hi" \u00e9\n'), false);
  });

  await t.step("other kinds are noted as such and are not read as strings", () => {
    const text = '{"type":7,"object":{"reason":[1],"series":"x","metadata":{"uid":false}}}';
    assert.equal(picker.scan(text), true);
    assert.equal(picker.kinds[slot("type")], OTHER);
    assert.equal(picker.kinds[slot("object.reason")], OTHER);
    assert.equal(picker.kinds[slot("object.series")], STRING);
    assert.equal(picker.kinds[slot("object.metadata.uid")], OTHER);
    assert.throws(() => picker.string(slot("type")), TypeError);
  });

  await t.step("each scan starts afresh", () => {
    assert.equal(picker.scan('{"type":"A"}'), true);
    assert.equal(picker.kinds[slot("object")], ABSENT);
    assert.equal(picker.stringIs(slot("type"), "A"), true);
    assert.equal(picker.stringIs(slot("type"), "AB"), false);
  });

  await t.step("an empty path or name is refused, and so is an unknown slot", () => {
    assert.throws(() => new JsonPicker(["a..b"]), RangeError);
    assert.throws(() => new JsonPicker([""]), RangeError);
    assert.throws(() => picker.slot("object.nope"), RangeError);
  });
});
